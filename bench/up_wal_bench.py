"""What ``snowmelt up``'s write-ahead log costs: throughput and latency with each fsync policy, same run.

    python -m bench.up_wal_bench                       # 2 rounds, 8 s closed loop + 8 s at 3,000 events/s
    python -m bench.up_wal_bench --rounds 3 --seconds 10 --rate 3000

For each mode -- ``off`` (``up.wal: false``, a 2xx means in memory only), and
the log with ``wal_fsync`` ``never``, ``interval`` and ``always`` (the
default) -- a fresh ``snowmelt up`` (store on, default settings otherwise)
takes :mod:`bench.loadgen` traffic twice: an open loop at ``--rate`` events/s
(latency from the intended start: p50, p99), then a closed loop of
``--closed`` connections (the events it accepts a second, answered 2xx;
beyond what enrichment keeps up with the queue fills and the rest get 503).  Modes alternate within
each round so that the machine's noise falls on all of them; the report gives
each mode's median over the rounds and its ratio to ``off``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {
    "off": {"up.wal": "false"},
    "never": {"up.wal_fsync": "never"},
    "interval": {"up.wal_fsync": "interval"},
    "always": {"up.wal_fsync": "always"},
}


def one(mode: str, seconds: float, rate: float, closed: int) -> dict:
    from bench.loadgen import run_load
    from tests.services.up import UpProcess

    folder = Path(tempfile.mkdtemp(prefix=f"wal-bench-{mode}-"))
    up = UpProcess(folder / "data", settings={"up.progress_interval": "0", **MODES[mode]}).start()
    try:
        paced, _ = run_load(up.url, rate=rate, duration=seconds, progress=False, seed=2)
        most, _ = run_load(up.url, closed=closed, duration=seconds, progress=False)
        wal_bytes = sum(f.stat().st_size for f in (folder / "data" / "wal").glob("*.wal"))
    finally:
        up.kill()
        up.remove_log()
    return {"events_per_s": most.events_accepted / most.duration_s, "closed_p99_ms": most.latency_ms.get("p99", 0.0),
            "open_p50_ms": paced.latency_ms.get("p50", 0.0), "open_p99_ms": paced.latency_ms.get("p99", 0.0),
            "open_5xx": paced.status_5xx + paced.connection_errors, "wal_bytes_at_kill": wal_bytes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=3000.0, help="open loop: events per second")
    parser.add_argument("--closed", type=int, default=32, help="closed loop: concurrent connections")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    for round_ in range(args.rounds):
        for mode in args.modes:
            result = one(mode, args.seconds, args.rate, args.closed)
            runs[mode].append(result)
            print(f"round {round_ + 1} {mode:8} {result['events_per_s']:8,.0f} events/s (closed {args.closed}), "
                  f"at {args.rate:,.0f}/s p50 {result['open_p50_ms']:.1f} ms p99 {result['open_p99_ms']:.1f} ms, "
                  f"5xx {result['open_5xx']}", flush=True)
    summary = {}
    for mode, results in runs.items():
        summary[mode] = {key: statistics.median(r[key] for r in results) for key in results[0]}
    base = summary.get("off")
    print(f"\nmedian of {args.rounds} rounds ({args.seconds:.0f} s each)")
    print(f"{'mode':10}{'events/s':>10}{'vs off':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99 vs off':>12}")
    for mode, row in summary.items():
        ratio = row["events_per_s"] / base["events_per_s"] if base else float("nan")
        p99_ratio = row["open_p99_ms"] / base["open_p99_ms"] if base and base["open_p99_ms"] else float("nan")
        row["throughput_vs_off"], row["p99_vs_off"] = round(ratio, 3), round(p99_ratio, 3)
        print(f"{mode:10}{row['events_per_s']:10,.0f}{ratio:8.2f}{row['open_p50_ms']:9.1f}{row['open_p99_ms']:9.1f}"
              f"{p99_ratio:12.2f}")
    if args.json:
        print(json.dumps({"rounds": runs, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
