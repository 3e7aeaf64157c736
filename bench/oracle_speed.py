"""Speed against Snowplow: enrich-kafka 3.9.0 and ``snowmelt enrich`` on the same raw topic, one core each.

    SP_ENRICH_DIR=../shared/snowplow-enrich SP_ENRICH_WORK=/work/sp-enrich-work \\
        python -m bench.oracle_speed [--events 100000] [--enrichments none std default] [--cpu 1] [--rounds 3]
                                     [--snowmelt-passes 3] [--profile]

The raw topic is filled once with the project's corpus (``bench.oracle_bench.bench_records``: tracker GETs
and POST batches with contexts, 2 % bad events).  Then, for each enrichment setting (``none``; ``std``:
Snowplow's standard set of ``$SP_ENRICH_DIR/config/enrichments-std`` for both sides, the same data files;
``default``: the standard set and ip_lookups, the same GeoLite2 City file on both sides),
each enricher runs alone with a new consumer group, pinned with ``taskset`` to ``--cpu``, while the broker,
the Iglu servers and this script keep to the other cores.  A run ends when its good and bad topics have
not grown for ``--quiet`` seconds.

Output compression is the same on both sides: the oracle's enrich config sets only ``acks=all`` on its
producers, so Snowplow writes uncompressed records (the Kafka client's default), and snowmelt is given
``kafka.producer: {compression.type: none}`` to do the same.  ``--output-compression default`` keeps
snowmelt's own default (lz4) against Snowplow's uncompressed output (on 4 December the two settings gave
snowmelt 26,777 and 26,847 events per CPU-second without enrichments, in two runs: no difference to see).

For each run: records written (good + bad), the enricher's CPU seconds from ``/proc`` (over the whole run,
start-up included, and between its first and last output record), events per CPU-second over the latter,
the wall rate from its first to its last output record (the records' Kafka timestamps) and over the second
half of them (after warm-up: the JVM's JIT), and its peak RSS (``VmHWM``).  The ratio snowmelt / Snowplow
of each is printed; ``--json`` keeps everything.  ``--rounds N`` runs the whole sequence N times (new
topics and groups each round) and prints the median of the rounds' ratios of events per CPU-second: each
round's two sides run minutes apart, where the machine's speed, which drifts by 10-20 % from one run to
the next, is most alike.  Snowplow's side takes one to two minutes over 100,000 events, snowmelt's five to
fifteen seconds, so a short slowdown of the machine moves snowmelt's measure much more than Snowplow's:
``--snowmelt-passes N`` runs snowmelt's side N times in each round (topics and a group of its own each) and
measures the passes as one run, their events over their CPU seconds (the passes are kept in the JSON).
``--profile`` keeps a py-spy flame graph of snowmelt's side of each setting's first round
(``bench/results/flame-oracle-snowmelt-<setting>.svg``) and adds each side's CPU seconds by thread name to its
results (librdkafka's threads are ``rdk:*``; Python's threads share the process's name).  py-spy's
sampling slows the side it samples (on 4 December snowmelt did 0.71-0.74 of its unprofiled events per
CPU-second): take ratios from runs without ``--profile``.  Services are
started and stopped as in ``bench.oracle_bench`` (same environment variables).

snowmelt's side runs this checkout's code under the interpreter that runs this script, or under each of
``--snowmelt-python PATH ...`` in turn in every round (sides ``sm``, ``sm-2`` ...; each a CPython 3.11 with the
project's dependencies installed), and each is compared with Snowplow and with the first.  Measure with the
build you deploy: the official images' CPython is built with profile-guided and link-time optimisation, as
Debian's ``python3.11`` is, and pyenv's default build is not.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from bench.against import ROOT, interpreter, pythonpath
from bench.oracle_bench import ENRICHMENT_SETTINGS, Bench, BenchError, end_offsets, locate
from bench.profiling import RESULTS, CpuSampler, flame, peak_rss_mb, thread_cpu


def output_times(bootstrap: str, topics: list[str], expected: int, timeout: float = 180.0) -> list[float]:
    """The Kafka timestamps (seconds) of every record of ``topics``, sorted."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"oracle-speed-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(topics)
    times: list[float] = []
    deadline = time.monotonic() + timeout
    try:
        while len(times) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error() is None:
                    times.append(msg.timestamp()[1] / 1000)
    finally:
        consumer.close()
    if len(times) < expected:
        raise BenchError(f"read {len(times)} of {expected} output records of {topics}")
    return sorted(times)


def round_label(setting: str, round_: int) -> str:
    """What names a round of ``setting`` in the results: ``none``, ``none #2``, ..."""
    return setting if round_ == 1 else f"{setting} #{round_}"


class SpeedBench(Bench):
    def run_alone(self, side: str, setting: str, cpu: int, quiet: float, deadline: float, round_: int = 1,
                  output_compression: str = "none", profile: bool = False, passes: int = 1,
                  python: str = sys.executable) -> dict:
        """Run one enricher alone on the raw topic until its output stops growing; its measures.  Each round
        writes topics of its own and reads with a group of its own.  ``output_compression`` is snowmelt's
        ``kafka.producer`` ``compression.type``, or ``default`` for its own.  ``profile``: a flame graph of
        snowmelt's first side (``sm``) in the first round, and the CPU seconds of each side's threads by name.  ``passes``
        runs the enricher that many times over the whole topic, each pass with topics and a group of its own,
        and measures them as one run (:func:`combine_passes`).  snowmelt's side runs under ``python``."""
        run = round_label(setting, round_).replace(" #", "-")
        if passes == 1:
            return self._run_once(side, setting, run, cpu, quiet, deadline, output_compression,
                                  profile and round_ == 1, profile, python)
        return combine_passes([
            self._run_once(side, setting, f"{run}-pass{k}", cpu, quiet, deadline, output_compression,
                           profile and round_ == 1 and k == 1, profile, python)
            for k in range(1, passes + 1)])

    def _run_once(self, side: str, setting: str, run: str, cpu: int, quiet: float, deadline: float,
                  output_compression: str, flame_graph: bool, threads_cpu: bool,
                  python: str = sys.executable) -> dict:
        """One run of ``side``'s enricher over the raw topic, into topics and with a group named by ``run``."""
        corpus = "bench"
        raw = self.topic(corpus, "raw")
        good, bad = (self.topic(corpus, f"{side}-{kind}-{run}") for kind in ("good", "bad"))
        group = f"os-{self.run_id}-{side}-{run}"
        if side == "sp":
            cmd = [str(self.sp_dir / "run_enrich.sh"), self.bootstrap, raw, good, bad, "--group", group,
                   "--resolver", str(self.resolver), "--cpus", str(cpu), "--heap", "2g",
                   "--work-dir", str(self.work / f"sp-run-{run}")]
            cmd += self.enrichment_args(setting)[0]
        else:
            cfg = self.work / f"sm-{run}.yml"
            producer = "" if output_compression == "default" else \
                f"  producer:\n    compression.type: {output_compression}\n"
            cfg.write_text(f"kafka:\n  bootstrap_servers: {self.bootstrap}\n{producer}topics:\n  raw: {raw}\n"
                           f"  enriched: {good}\n  bad: {bad}\nenrich:\n  group_id: {group}\n")
            cmd = ["taskset", "-c", str(cpu), python, "-m", "snowmelt.cli", "enrich", "--config", str(cfg),
                   "--resolver", str(self.resolver)]
            cmd += self.enrichment_args(setting)[1]
        env = {**os.environ, "SP_ENRICH_WORK": str(self.sp_work)}
        if side != "sp":  # this checkout's code, whichever interpreter runs it
            env["PYTHONPATH"] = pythonpath(ROOT)
        from confluent_kafka import Consumer

        offsets = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "oracle-speed-offsets"})
        proc = self.procs.start(f"{side}-{run}", cmd, env=env)
        peak = threads = None
        started = time.monotonic()
        last, since = -1, time.monotonic()
        flame_path = RESULTS / f"flame-oracle-snowmelt-{setting}.svg" if flame_graph and side == "sm" else None
        try:
            # the CPU on the clock of the output's Kafka timestamps
            with CpuSampler(proc.pid, clock=time.time) as cpu, flame(proc.pid, flame_path):
                while True:
                    peak = peak_rss_mb(proc.pid) or peak
                    if proc.poll() is not None:
                        raise BenchError(f"{side} enricher exited with code {proc.returncode} (see {self.work}/logs)")
                    total = end_offsets(offsets, good) + end_offsets(offsets, bad)
                    now = time.monotonic()
                    if total != last:
                        last, since = total, now
                    elif total > 0 and now - since >= quiet:
                        break
                    if now - started > deadline:
                        raise BenchError(f"{side} ({setting}): {total} output records, still growing after "
                                         f"{deadline:g} s")
                    time.sleep(0.5)
            if threads_cpu:
                threads = {name: round(seconds, 2) for name, seconds in thread_cpu(proc.pid).items()}
        finally:
            offsets.close()
            self.procs.stop(proc)
        times = output_times(self.bootstrap, [good, bad], last)
        first, end = times[0], times[-1]
        half = times[len(times) // 2]
        cpu_output = cpu.between(first, end)
        return {
            "records": last,
            "cpu_s_total": round(cpu.samples[-1][1], 2),
            "cpu_s_output": round(cpu_output, 2),
            "events_per_cpu_s": round(last / cpu_output, 1) if cpu_output > 0 else None,
            "wall_rate": round(last / (end - first), 1) if end > first else None,
            "steady_rate": round((len(times) - len(times) // 2) / (end - half), 1) if end > half else None,
            "output_seconds": round(end - first, 2),
            "peak_rss_mb": round(peak, 1) if peak else None,
            **({"cpu_s_by_thread": threads} if threads is not None else {}),
        }


def combine_passes(passes: list[dict]) -> dict:
    """Several passes of one enricher over the same topic measured as one run: their records and CPU seconds
    added, events per CPU-second and the wall rate as the totals' quotients (what one run over all of them
    would give, not the best or the median pass: a slow stretch of the machine counts as it does in a long
    run), the steady rate the median of the passes', peak RSS the highest; each pass's own measures kept under
    ``passes``."""
    def total(key: str) -> float:
        return sum(p[key] or 0 for p in passes)

    records, cpu, seconds = total("records"), total("cpu_s_output"), total("output_seconds")
    steady = [p["steady_rate"] for p in passes if p["steady_rate"]]
    rss = [p["peak_rss_mb"] for p in passes if p["peak_rss_mb"]]
    return {
        "records": records,
        "cpu_s_total": round(total("cpu_s_total"), 2),
        "cpu_s_output": round(cpu, 2),
        "events_per_cpu_s": round(records / cpu, 1) if cpu > 0 else None,
        "wall_rate": round(records / seconds, 1) if seconds > 0 else None,
        "steady_rate": round(statistics.median(steady), 1) if steady else None,
        "output_seconds": round(seconds, 2),
        "peak_rss_mb": max(rss) if rss else None,
        "passes": passes,
    }


def snowmelt_sides(pythons: list[str]) -> list[tuple[str, str]]:
    """``(side, interpreter)`` for each interpreter snowmelt runs under: ``sm`` for the first, then ``sm-2``..."""
    return [("sm" if i == 1 else f"sm-{i}", python) for i, python in enumerate(pythons, 1)]


def round_ratios(results: dict, setting: str, side: str = "sm", over: str = "sp") -> list[float]:
    """``side`` / ``over`` (snowmelt / Snowplow unless told) events per CPU-second in each round of ``setting``
    (:func:`round_label`)."""
    ratios = []
    round_ = 1
    while (sides := results.get(round_label(setting, round_))) is not None:
        sp, sm = sides[over].get("events_per_cpu_s"), sides[side].get("events_per_cpu_s")
        if sp and sm:
            ratios.append(round(sm / sp, 2))
        round_ += 1
    return ratios


def _number(value: float | None) -> str:
    """A measure as the table writes it; ``-`` where a run gave none (no CPU time or no span to divide by)."""
    return "-" if value is None else f"{value:,}"


def format_table(results: dict) -> str:
    lines = ["| enrichments | side | records | CPU s (all / output) | events per CPU-s | wall events/s | "
             "steady events/s | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for setting, sides in results.items():
        ours = [side for side in sides if side != "sp"]  # sm, then sm-2 ... (one per interpreter)
        for side in ["sp", *ours]:
            name = "Snowplow enrich-kafka 3.9.0" if side == "sp" else "snowmelt enrich" + _under(side)
            r = sides[side]
            lines.append(f"| {setting} | {name} | {r['records']:,} | {r['cpu_s_total']} / {r['cpu_s_output']} | "
                         f"{_number(r['events_per_cpu_s'])} | {_number(r['wall_rate'])} | "
                         f"{_number(r['steady_rate'])} | {_number(r['peak_rss_mb'])} |")
        sp = sides["sp"]
        for side in ours:
            sm = sides[side]
            ratios = {k: round(sm[k] / sp[k], 2) for k in ("events_per_cpu_s", "wall_rate", "steady_rate")
                      if sm.get(k) and sp.get(k)}
            lines.append(f"| {setting} | snowmelt{_under(side)} / Snowplow | | | {ratios.get('events_per_cpu_s')}x | "
                         f"{ratios.get('wall_rate')}x | {ratios.get('steady_rate')}x | |")
    return "\n".join(lines)


def _under(side: str) -> str:
    """How the table names a snowmelt side after the first: `` (sm-2)``."""
    return "" if side == "sm" else f" ({side})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.oracle_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="events of the bench corpus (default 100000)")
    ap.add_argument("--enrichments", nargs="+", choices=ENRICHMENT_SETTINGS, default=["none", "std"],
                    help="none, std (Snowplow's standard set) and default (std and ip_lookups); default: none std")
    ap.add_argument("--cpu", type=int, default=1, help="the core each enricher is pinned to (default 1)")
    ap.add_argument("--quiet", type=float, default=5, help="seconds the output must stay unchanged at the end")
    ap.add_argument("--deadline", type=float, default=1200, help="seconds one run may take")
    ap.add_argument("--work-dir", help="keep logs and configs here (default: a temp folder, removed)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run both sides this many times in turn (Snowplow, then snowmelt, each setting) and "
                         "print the median of the rounds' ratios: the machine's speed drifts between runs")
    ap.add_argument("--snowmelt-passes", type=int, default=1, metavar="N",
                    help="in each round, run snowmelt's side N times over the topic and measure the passes as one "
                         "run (default 1): one pass is a few seconds against Snowplow's minutes, so it sees "
                         "more of the machine's short slowdowns, or fewer")
    ap.add_argument("--snowmelt-python", nargs="+", default=[sys.executable], metavar="PATH",
                    help="the interpreters snowmelt's side runs under, each in turn in every round (sides sm, "
                         "sm-2 ...; default: the one running this script)")
    ap.add_argument("--output-compression", choices=("none", "default"), default="none",
                    help="snowmelt's output compression: none, as Snowplow's config writes (default), or "
                         "snowmelt's own default (lz4)")
    ap.add_argument("--profile", action="store_true",
                    help="keep a py-spy flame graph of snowmelt's side of each setting's first round in "
                         "bench/results/, and each side's CPU seconds by thread name")
    args = ap.parse_args(argv)
    if args.snowmelt_passes < 1:
        ap.error("--snowmelt-passes must be at least 1")
    sides = snowmelt_sides(args.snowmelt_python)
    try:
        sp_dir, sp_work, jar, iglu_central = locate(need_assets=args.enrichments != ["none"])
    except BenchError as exc:
        print(f"oracle_speed: {exc}", file=sys.stderr)
        return 2
    others = sorted(set(os.sched_getaffinity(0)) - {args.cpu})
    if others:
        os.sched_setaffinity(0, others)  # the broker, the Iglu servers and this script: not the enrichers' core
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="oracle-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = SpeedBench(SimpleNamespace(corpus=["bench"], bench_events=args.events), sp_dir, sp_work, jar,
                       iglu_central, work)
    results: dict[str, dict] = {}

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        bench.start_services()
        raw = bench.fill_raw("bench")
        print(f"# broker {bench.bootstrap}; {raw} raw records; enrichers on core {args.cpu}, the rest on "
              f"{others}; snowmelt's output compression: {args.output_compression}; work folder {work}",
              file=sys.stderr)
        for side, python in sides:
            print(f"# {side}: snowmelt under {interpreter(python)}", file=sys.stderr)
        for round_ in range(1, args.rounds + 1):
            for setting in args.enrichments:
                label = round_label(setting, round_)
                results[label] = {}
                for side, python in [("sp", sys.executable), *sides]:
                    results[label][side] = bench.run_alone(
                        side, setting, args.cpu, args.quiet, args.deadline, round_, args.output_compression,
                        args.profile, passes=1 if side == "sp" else args.snowmelt_passes, python=python)
                    print(f"# {label} {side}: {results[label][side]}", file=sys.stderr, flush=True)
        print(format_table(results))
        if args.rounds > 1:
            for setting in args.enrichments:
                for side, _python in sides:
                    ratios = round_ratios(results, setting, side)
                    print(f"{setting}: snowmelt{_under(side)} / Snowplow events per CPU-second, median of "
                          f"{len(ratios)} rounds {statistics.median(ratios):.2f}x "
                          f"(rounds: {', '.join(f'{r:.2f}x' for r in ratios)})")
                for side, _python in sides[1:]:
                    ratios = round_ratios(results, setting, side, over="sm")
                    print(f"{setting}: snowmelt ({side}) / snowmelt, the same rounds: median "
                          f"{statistics.median(ratios):.2f}x (rounds: {', '.join(f'{r:.2f}x' for r in ratios)})")
    except KeyboardInterrupt:
        print("oracle_speed: interrupted", file=sys.stderr)
        return 130
    except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"oracle_speed: {exc}", file=sys.stderr)
        return 2
    finally:
        bench.procs.stop_all()
        if args.json:
            Path(args.json).write_text(json.dumps({"events": args.events, "cpu": args.cpu,
                                                   "output_compression": args.output_compression,
                                                   "snowmelt_passes": args.snowmelt_passes,
                                                   "snowmelt_python": {side: interpreter(python)
                                                                       for side, python in sides},
                                                   "results": results}, indent=1))
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
