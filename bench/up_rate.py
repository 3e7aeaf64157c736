"""How fast ``snowmelt up`` enriches: events sent as fast as it accepts them, timed until its Micro API counts them.

    python -m bench.up_rate                        # 40,000 events, one round
    python -m bench.up_rate --events 60000 --rounds 3 --closed 32

Each round starts a fresh ``snowmelt up`` (default settings: the ClickHouse store
on, the standard enrichments, the stage in a process of its own; a resolver of
the traffic's own schemas) and sends it ``--events`` events of
:mod:`bench.loadgen` traffic (tp2 POSTs of 20 events and GET page views with
three contexts each, every one good) on ``--closed`` connections, each sending its
next request when the last is answered.  A request answered 503 (the queue
full) is not sent again, so what counts is what was accepted.  The clock runs
from the first request to the moment ``/micro/all`` counts every accepted
event: the rate at which ``up`` takes events in and enriches them, the
serving process and the stage process sharing the machine with the sender.
Also reported: the CPU seconds of ``up``'s processes over the same window
(``/proc``; the serving process and the stage process apart), and events per
CPU-second of theirs.

With ``bench.against`` (the median of the rounds is the ``median`` line)::

    python -m bench.against REF --rounds 3 --metric 'rate=median\\s+([\\d,]+)' -- bench.up_rate --events 40000
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.profiling import process_table, process_tree  # noqa: E402

def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid``, and of the processes under it that still run (its stage)."""
    table = process_table()
    tree = process_tree(pid, table)
    return (table[pid][1], sum(table[each][1] for each in tree[1:])) if tree else (0.0, 0.0)


def counted(url: str) -> dict:
    """``/micro/all``: the good events and bad rows counted so far."""
    with urllib.request.urlopen(url + "/micro/all", timeout=10) as resp:
        return json.loads(resp.read())


def one_round(events: int, closed: int, batch: int, timeout: float, enrichments: str) -> dict:
    from bench.corpus import write_registry
    from bench.loadgen import build_requests, run_load
    from tests.services.up import UpProcess

    requests = build_requests(events, batch=batch, get_share=0.1, bad_share=0.0, seed=7)
    folder = Path(tempfile.mkdtemp(prefix="up-rate-"))
    resolver = write_registry(folder)  # the traffic's own schemas (com.acme, org.w3): every event good
    up = UpProcess(folder / "data", resolver=resolver,
                   settings={"up.progress_interval": "0", "up.enrichments": enrichments})
    try:
        up.start(timeout=120)
        cpu0, started = cpu_seconds(up.proc.pid), time.perf_counter()
        report, accepted = run_load(up.url, closed=closed, duration=3600.0, progress=False, requests=requests)
        sent = time.perf_counter() - started
        deadline = time.monotonic() + timeout
        while (total := counted(up.url)["total"]) < len(accepted):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{total:,} of {len(accepted):,} events counted after {timeout:.0f} s")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        serving, stage = (after - before for after, before in zip(cpu_seconds(up.proc.pid), cpu0))
        bad = counted(up.url)["bad"]
    finally:
        up.kill()
        up.remove_log()
        shutil.rmtree(folder, ignore_errors=True)
    if bad:
        raise RuntimeError(f"{bad:,} of the {len(accepted):,} events became bad rows: the traffic is meant to be good")
    return {"events": len(accepted), "refused_requests": report.status_5xx, "seconds": round(seconds, 2),
            "send_seconds": round(sent, 2), "events_per_s": round(len(accepted) / seconds, 1),
            "cpu_seconds": round(serving + stage, 2), "serving_cpu_seconds": round(serving, 2),
            "stage_cpu_seconds": round(stage, 2),
            "events_per_cpu_s": round(len(accepted) / (serving + stage), 1) if serving + stage else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--closed", type=int, default=32, help="concurrent connections, each one request at a time")
    parser.add_argument("--batch", type=int, default=20, help="events per POST")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the events to be counted")
    parser.add_argument("--enrichments", default="standard", help="up.enrichments (default: standard, as up's)")
    parser.add_argument("--json", help="write the rounds here")
    args = parser.parse_args(argv)
    rounds = []
    for number in range(1, args.rounds + 1):
        result = one_round(args.events, args.closed, args.batch, args.timeout, args.enrichments)
        rounds.append(result)
        print(f"round {number}: {result['events']:,} events accepted ({result['refused_requests']} requests "
              f"answered 503) and counted in {result['seconds']} s (sent in {result['send_seconds']} s): "
              f"{result['events_per_s']:,.0f} events/s; up's processes {result['cpu_seconds']} CPU-s (serving "
              f"{result['serving_cpu_seconds']}, stage {result['stage_cpu_seconds']}), "
              f"{result['events_per_cpu_s']:,.0f} events per CPU-second", flush=True)
    rate = statistics.median(r["events_per_s"] for r in rounds)
    per_cpu = statistics.median(r["events_per_cpu_s"] for r in rounds)
    per_event = {role: statistics.median(r[f"{role}_cpu_seconds"] / r["events"] * 1e6 for r in rounds)
                 for role in ("serving", "stage")}
    print(f"median {rate:,.0f} events/s, {per_cpu:,.0f} events per CPU-second of up (CPU an event: serving "
          f"{per_event['serving']:.1f} us, stage {per_event['stage']:.1f} us)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
