"""Collector scaling: one process against two processes sharing one port (SO_REUSEPORT).

The same wrk load (GET pixel by default) runs, in the same run and against the
same Kafka broker, first against one ``snowmelt collector --reuse-port`` and
then against two of them bound to the same port, where the kernel spreads the
connections between the two listening sockets.  Each collector process is
pinned to its own CPU (``taskset``: process 1 on CPU 0, process 2 on CPU 1);
wrk and the broker are not pinned.  Reported: requests/s for 1 and 2
processes and their ratio (the goal: about 2x on two cores).

The same pair of runs against a bare aiohttp server (the same GIF, no
tracking work, no Kafka; started by this script with SO_REUSEPORT) gives the
ceiling the machine allows in the same run: on a 2-core machine wrk and the
broker share the two cores with the servers, so neither ratio can reach 2.

Correctness beside every collector timing: records on the raw topic >= 2xx
answers (acked delivery: a 2xx means the broker has the record), no socket
errors or non-2xx answers, and the CPU seconds each collector process used
during the timed run (both must have served: SO_REUSEPORT really spread the
load).  Rounds alternate the order of 1 and 2 processes; the table shows the
median.  Where the CPU went during each timed run (the servers, wrk, the
broker, anything else on the machine, idle) is recorded beside it.

    python bench/collector_scaling_bench.py [--duration 10] [--connections 64] [--rounds 3] \\
        [--workload GET|POST10] [--out bench/results/collector-scaling.json]

The collector's producer settings come from the environment as usual; the
acked default lingers 0.5 ms, so two producers at half the rate each send
twice the produce requests and the broker's CPU doubles.  To measure with
larger producer batches and enough connections to fill them:

    SNOWMELT_KAFKA__PRODUCER="{linger.ms: 5}" python bench/collector_scaling_bench.py --connections 256

Needs ``wrk``, ``taskset`` and ``ss`` (Debian packages) and a Kafka broker: one is
started from the test services (``KAFKA_BOOTSTRAP_SERVERS`` uses yours).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import corpus
from bench.collector_bench import TP2, parse_wrk, raw_offset, wait_ready
from bench.profiling import group_cpu, machine_busy_seconds, process_cpu
from tests.services.kafka import broker_from_env
from tests.services.server import free_port


def serve_bare(port: int) -> None:
    """The baseline server: aiohttp answering the collector's GIF / "ok", bound with SO_REUSEPORT."""
    import asyncio

    from aiohttp import web

    from collector.app import PIXEL

    async def pixel(_request):
        return web.Response(body=PIXEL, content_type="image/gif")

    async def post(request):
        await request.read()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_get("/i", pixel)
        app.router.add_post("/{vendor}/{version}", post)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_port=True).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


def listening_pids(port: int) -> set[int]:
    """The pids with a listening TCP socket on ``port`` (from ``ss``)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], check=False, capture_output=True, text=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Servers:
    """``count`` server processes of ``kind`` (bare or collector) on one port, process i on CPU i."""

    def __init__(self, kind: str, count: int, bootstrap: str, topic: str, delivery: str):
        self.port = free_port()
        self.kind = kind
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if kind == "bare":
            cmd = [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(self.port)]
        else:
            cmd = [sys.executable, "-m", "snowmelt.cli", "collector", "--reuse-port"]
            env.update({
                "SNOWMELT_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "SNOWMELT_TOPICS__RAW": topic,
                "SNOWMELT_COLLECTOR__HOST": "127.0.0.1", "SNOWMELT_COLLECTOR__PORT": str(self.port),
                "SNOWMELT_COLLECTOR__DELIVERY": delivery, "SNOWMELT_COLLECTOR__HEALTH_PROBE_INTERVAL": "0.5",
                "SNOWMELT_LOGGING__LEVEL": "WARNING",
            })
        self.procs: list[subprocess.Popen] = []
        for cpu in range(count):
            self.procs.append(subprocess.Popen(["taskset", "-c", str(cpu % (os.cpu_count() or 1))] + cmd,
                                               env=env, cwd=ROOT))
        wait_ready(f"http://127.0.0.1:{self.port}" + ("/i" if kind == "bare" else "/sink-health"),
                   self.procs, timeout=60)
        # the port answering proves one process listens: wait for every process's own socket
        # (the collector binds only once its producer has started)
        deadline = time.monotonic() + 60
        while listening_pids(self.port) != {p.pid for p in self.procs}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every server process listens on {self.port}")
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError("a server process exited")
            time.sleep(0.05)

    def cpu(self) -> list[float]:
        return [process_cpu(p.pid) for p in self.procs]

    def stop(self) -> list[int]:
        for proc in self.procs:
            proc.terminate()
        return [proc.wait(60) for proc in self.procs]


def run_wrk(url: str, duration: int, connections: int, headers: dict, body_file: str | None) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    env = dict(os.environ)
    script = None
    if body_file:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            'local f = io.open(os.getenv("SNOWMELT_BENCH_BODY"), "rb")\n'
            "wrk.body = f:read('*a')\nf:close()\n"
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json; charset=UTF-8"\n')
        cmd += ["-s", str(script)]
        env["SNOWMELT_BENCH_BODY"] = body_file
    cmd.append(url)
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    finally:
        if script is not None:
            script.unlink()
    return parse_wrk(text)


def measure(kind: str, count: int, args, broker, topic: str, path: str, headers: dict, body: str | None) -> dict:
    servers = Servers(kind, count, broker.bootstrap_servers, topic, args.delivery)
    try:
        url = f"http://127.0.0.1:{servers.port}{path}"
        run_wrk(url, 2, args.connections, headers, body)  # warm-up
        before = raw_offset(broker.bootstrap_servers, topic) if kind == "collector" else 0
        cpu_before = servers.cpu()
        broker_pid = getattr(broker, "pid", None)
        broker_before = group_cpu(broker_pid) if broker_pid else 0.0
        wrk_before, busy_before = children_cpu_seconds(), machine_busy_seconds()
        stats = run_wrk(url, args.duration, args.connections, headers, body)
        busy = machine_busy_seconds() - busy_before
        stats["cpu_s_per_process"] = [round(b - a, 2) for a, b in zip(cpu_before, servers.cpu())]
        # where the machine's CPU went during the timed run: the servers, wrk, the broker, and
        # everything else (other work on the machine competes with the measurement)
        cpu = {"servers": sum(stats["cpu_s_per_process"]),
               "wrk": children_cpu_seconds() - wrk_before,
               "broker": (group_cpu(broker_pid) - broker_before) if broker_pid else 0.0}
        cpu["other"] = max(busy - sum(cpu.values()), 0.0)
        cpu["idle"] = max(args.duration * (os.cpu_count() or 1) - busy, 0.0)
        stats["cpu_s"] = {k: round(v, 2) for k, v in cpu.items()}
    finally:
        codes = servers.stop()
    stats["processes"] = count
    stats["duration_s"] = args.duration
    stats["exit_codes"] = codes
    if kind == "collector":
        written = raw_offset(broker.bootstrap_servers, topic) - before
        ok = stats["requests"] - stats["non_2xx"]
        stats["records_written"] = written
        # wrk stops mid-request: answers in flight at the end are written but not counted by wrk
        stats["all_2xx_on_topic"] = written >= ok
    stats["all_served"] = all(c > 0.5 for c in stats["cpu_s_per_process"])
    stats["clean"] = stats["non_2xx"] == 0 and stats["socket_errors"] == 0
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delivery", default="acked", choices=["acked", "buffered"])
    parser.add_argument("--workload", default="GET", choices=["GET", "POST10"])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "collector-scaling.json"))
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        serve_bare(args.bare_server)
        return 0
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            print(f"{tool} is needed (apt-get install {'wrk' if tool == 'wrk' else 'util-linux'})", file=sys.stderr)
            return 2

    rng = random.Random(7)
    headers = corpus.browser_headers(rng)
    body = None
    if args.workload == "GET":
        path, events = "/i?" + corpus.get_query(rng), 1
    else:
        body = tempfile.mkstemp(suffix=".json")[1]
        Path(body).write_bytes(corpus.post_body(rng, 10))
        path, events = TP2, 10

    broker = broker_from_env()
    broker.start()
    topic = f"bench-scale-raw-{int(time.time())}"
    broker.create_topics([topic], partitions=6)
    runs: dict[str, dict[int, list[dict]]] = {"bare": {1: [], 2: []}, "collector": {1: [], 2: []}}
    try:
        # the broker's JIT warms up on an untimed run first
        warm = Servers("collector", 1, broker.bootstrap_servers, topic, args.delivery)
        try:
            run_wrk(f"http://127.0.0.1:{warm.port}{path}", 5, args.connections, headers, body)
        finally:
            warm.stop()
        for rnd in range(args.rounds):
            for kind in ("bare", "collector"):
                for count in (1, 2) if rnd % 2 == 0 else (2, 1):
                    stats = measure(kind, count, args, broker, topic, path, headers, body)
                    runs[kind][count].append(stats)
                    print(json.dumps({"round": rnd + 1, "kind": kind, **stats}), flush=True)
    finally:
        broker.close()
        if body:
            os.unlink(body)

    def median_rps(kind: str, count: int) -> float:
        return statistics.median(s["rps"] for s in runs[kind][count])

    summary = {}
    for kind in ("bare", "collector"):
        one, two = median_rps(kind, 1), median_rps(kind, 2)
        summary[kind] = {"rps_1": round(one), "rps_2": round(two), "ratio": round(two / one, 3),
                         "events_per_s_2": round(two * events),
                         # requests per CPU second the server processes used: what a core buys
                         "rps_per_server_cpu_s": {count: round(statistics.median(
                             r["requests"] / r["duration_s"] / max(r["cpu_s"]["servers"] / r["duration_s"], 1e-9)
                             for r in runs[kind][count])) for count in (1, 2)},
                         "cpu_s": {count: {part: round(statistics.median(r["cpu_s"][part] for r in runs[kind][count]), 2)
                                           for part in ("servers", "wrk", "broker", "other", "idle")}
                                   for count in (1, 2)}}
    checks = [s for kind in runs for count in runs[kind] for s in runs[kind][count]]
    correct = all(s["clean"] and s["all_served"] and s.get("all_2xx_on_topic", True)
                  and all(c == 0 for c in s["exit_codes"]) for s in checks)
    report = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "broker": broker.kind, "delivery": args.delivery, "workload": args.workload,
        "wrk": {"threads": 1, "connections": args.connections, "duration_s": args.duration, "pinned": False},
        "pinning": "server process i on CPU i; wrk and the broker unpinned",
        "summary": summary, "correct": correct, "runs": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{args.workload}, {args.connections} connections, {args.duration}s x {args.rounds} rounds, "
          f"broker {broker.kind}, delivery {args.delivery}, {os.cpu_count()} CPUs")
    print("| server | 1 process req/s | 2 processes req/s | ratio 2/1 | req per server CPU-s, 1 / 2 processes "
          "| correctness |")
    print("|---|---|---|---|---|---|")
    for kind in ("bare", "collector"):
        s = summary[kind]
        ok = all(x["clean"] and x["all_served"] and x.get("all_2xx_on_topic", True)
                 for c in runs[kind] for x in runs[kind][c])
        per_cpu = s["rps_per_server_cpu_s"]
        print(f"| {kind} | {s['rps_1']} | {s['rps_2']} | {s['ratio']:.2f} | {per_cpu[1]} / {per_cpu[2]} "
              f"| {'ok' if ok else 'FAILED'} |")
    print(f"\nCPU seconds during a {args.duration}s run ({os.cpu_count()} CPUs: {args.duration * (os.cpu_count() or 1)}s"
          " in all), medians")
    print("| server | processes | servers | wrk | broker | other work | idle |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("bare", "collector"):
        for count in (1, 2):
            c = summary[kind]["cpu_s"][count]
            print(f"| {kind} | {count} | {c['servers']} | {c['wrk']} | {c['broker']} | {c['other']} | {c['idle']} |")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
