"""Collector throughput and latency on one core, against a bare aiohttp baseline.

For each workload (GET pixel; POST batches of 10 and 50 events) the same wrk
load runs first against a bare aiohttp server answering the same GIF/"ok"
(``bench/bare_server.py``), then against ``snowmelt collector`` writing to a
real Kafka broker.  Servers are pinned to CPU 0 (``taskset``: the collector's
librdkafka threads share that core), wrk and the broker to the other CPU.
Reported: requests/s, events/s, p50/p99 latency, the collector/bare ratio, and
the correctness check beside each collector timing: records on the raw topic
== 2xx answers.

    python bench/collector_bench.py [--duration 10] [--connections 64] [--delivery acked] [--profile]

``--profile`` keeps a py-spy flame graph of the collector during each
workload's timed run in ``bench/results/flame-collector-<workload>.svg``.

Needs ``wrk`` (Debian package) and a Kafka broker: one is started from the
test services (``KAFKA_BOOTSTRAP_SERVERS`` uses yours).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import corpus  # noqa: E402
from bench.profiling import RESULTS, cpu_by_thread, flame, pin, thread_cpu  # noqa: E402
from tests.services.collector import free_port  # noqa: E402
from tests.services.kafka import broker_from_env  # noqa: E402

TP2 = "/com.snowplowanalytics.snowplow/tp2"
SERVER_CPU = "0"
LOAD_CPU = "1"


def wait_ready(url: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200 (any answer for the bare server), failing if a process exits.

    For the collector ``url`` is ``/sink-health``: 200 once its producer reaches the broker.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            if "sink-health" not in url:
                return  # the bare server answers
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def parse_wrk(text: str) -> dict:
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    out["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\b", text)
        out[f"p{pct}_ms"] = round(seconds(*m.groups()) * 1000, 3) if m else None
    return out


def run_wrk(url: str, duration: int, connections: int, headers: dict, body_file: str | None) -> dict:
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    env = dict(os.environ)
    if body_file:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            'local f = io.open(os.getenv("SNOWMELT_BENCH_BODY"), "rb")\n'
            "wrk.body = f:read('*a')\nf:close()\n"
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json; charset=UTF-8"\n'
        )
        cmd += ["-s", str(script)]
        env["SNOWMELT_BENCH_BODY"] = body_file
    cmd.append(url)
    text = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return parse_wrk(text)


def raw_offset(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        md = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in md.topics[topic].partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high
        return total
    finally:
        consumer.close()


class Server:
    def __init__(self, kind: str, bootstrap: str, topic: str, delivery: str):
        self.port = free_port()
        self.kind = kind
        env = dict(os.environ)
        if kind == "bare":
            cmd = [sys.executable, str(ROOT / "bench" / "bare_server.py"), str(self.port)]
        else:
            cmd = [sys.executable, "-m", "snowmelt.cli", "collector"]
            env.update({
                "SNOWMELT_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "SNOWMELT_TOPICS__RAW": topic,
                "SNOWMELT_COLLECTOR__HOST": "127.0.0.1", "SNOWMELT_COLLECTOR__PORT": str(self.port),
                "SNOWMELT_COLLECTOR__DELIVERY": delivery, "SNOWMELT_LOGGING__LEVEL": "WARNING",
            })
        env["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, env=env, cwd=ROOT)
        wait_ready(f"http://127.0.0.1:{self.port}" + ("/i" if kind == "bare" else "/sink-health"), [self.proc])

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--delivery", default="acked", choices=["acked", "buffered"])
    parser.add_argument("--profile", action="store_true", help="keep py-spy flame graphs of the collector")
    parser.add_argument("--only", help="run only workloads whose name contains this (e.g. GET)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "collector.json"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    import ext

    rng = random.Random(7)
    headers = corpus.browser_headers(rng)
    bodies = {}
    for size in (10, 50):
        path = Path(tempfile.mkstemp(suffix=".json")[1])
        path.write_bytes(corpus.post_body(rng, size))
        bodies[size] = str(path)
    workloads = [
        ("GET pixel", "/i?" + corpus.get_query(rng), None, 1),
        ("POST 10 events", TP2, bodies[10], 10),
        ("POST 50 events", TP2, bodies[50], 50),
    ]

    if args.only:
        workloads = [w for w in workloads if args.only.lower() in w[0].lower()]
    # The broker shares the load generator's core: its lean test JVM settings
    # (C1 only, serial GC) leave wrk more of that core than a full JIT would.
    broker = broker_from_env()
    broker.start()
    if getattr(broker, "pid", None):
        pin(broker.pid, {int(LOAD_CPU)})
    topic = f"bench-raw-{int(time.time())}"
    broker.create_topics([topic], partitions=3)
    results = []
    try:
        for name, path, body, events in workloads:
            row = {"workload": name, "events_per_request": events}
            for kind in ("bare", "collector"):
                server = Server(kind, broker.bootstrap_servers, topic, args.delivery)
                try:
                    before = raw_offset(broker.bootstrap_servers, topic) if kind == "collector" else 0
                    url = f"http://127.0.0.1:{server.port}{path}"
                    run_wrk(url, 2, args.connections, headers, body)  # warm-up
                    if kind == "collector":
                        before = raw_offset(broker.bootstrap_servers, topic)
                    profile = None
                    if args.profile and kind == "collector":
                        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
                        profile = RESULTS / f"flame-collector-{slug}.svg"
                    cpu_before = thread_cpu(server.proc.pid)
                    with flame(server.proc.pid, profile):
                        stats = run_wrk(url, args.duration, args.connections, headers, body)
                    # where the server's core went: the event loop's thread, librdkafka's threads
                    stats["cpu_s_by_thread"] = cpu_by_thread(cpu_before, thread_cpu(server.proc.pid))
                    stats["cpu_us_per_request"] = round(
                        1e6 * sum(stats["cpu_s_by_thread"].values()) / max(1, stats["requests"]), 1)
                finally:
                    code = server.stop()
                if kind == "collector":
                    written = raw_offset(broker.bootstrap_servers, topic) - before
                    ok = stats["requests"] - stats["non_2xx"]
                    # wrk stops mid-request: answers in flight at the end may be counted as written but not seen
                    stats["records_written"] = written
                    stats["all_2xx_on_topic"] = written >= ok
                    stats["exit_code"] = code
                row[kind] = stats
            row["ratio"] = round(row["collector"]["rps"] / row["bare"]["rps"], 3)
            row["collector_events_per_s"] = round(row["collector"]["rps"] * events)
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        broker.close()
        for path in bodies.values():
            os.unlink(path)

    report = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "thrift_implementation": ext.IMPLEMENTATION,
        "delivery": args.delivery,
        "broker": broker.kind,
        "wrk": {"threads": 1, "connections": args.connections, "duration_s": args.duration},
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("\n| workload | bare req/s | collector req/s | ratio | collector events/s | p50 ms | p99 ms | 2xx on topic |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        c = r["collector"]
        print(f"| {r['workload']} | {r['bare']['rps']:.0f} | {c['rps']:.0f} | {r['ratio']:.2f} | "
              f"{r['collector_events_per_s']} | {c['p50_ms']} | {c['p99_ms']} | {c['all_2xx_on_topic']} |")
    return 0 if all(r["collector"]["all_2xx_on_topic"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
