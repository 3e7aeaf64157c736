"""Regression guard: this checkout against a git ref, on the same machine, in one run.

    python -m bench.against REF [--rounds N] [--preset NAME ...] [--ref-python PATH] [--python PATH]
    python -m bench.against REF --metric 'NAME=REGEX' [--lower-is-better NAME] -- MODULE [ARGS ...]

The ref is checked out into a temporary git worktree and its compiled
extensions are built there (``python setup.py build_ext --inplace``); then the
same benchmark runs alternately in the ref's tree and in this one (ref, this,
this, ref, ... so that a machine that slows down or speeds up during the run
weighs on both sides alike), each in its own process with its own tree first
on ``PYTHONPATH``.  Each metric is read from a run's output with a regular
expression whose first group is a number; the medians of the rounds are
compared and their ratio printed (this / ref, and whether that is better).

Each side runs under this interpreter unless ``--ref-python`` or ``--python`` names another one (a
CPython 3.11 with the project's dependencies installed): ``python -m bench.against HEAD --ref-python
/usr/bin/python3.11`` (that one in a virtual environment of its own) measures what another build of CPython
does to the same code, such as a build with profile-guided and link-time optimisation, as deployed images
have, against one without.

These machines are shared and noisy: a ratio within about 10 % of 1.0 from two
rounds is not a finding; use ``--rounds 4`` or more before believing one.

Presets (``--preset``, repeatable; all of them by default):

- ``stage``: ``bench.bench_enrich --records 2000 --repeat 3`` without and with
  the default enrichments, compiled events/s (higher is better);
- ``codecs``: ``bench.bench_codecs``, compiled calls/s parsing a tracker query string, decoding
  its base64 context, and both;
- ``worker``: ``bench.enrich_kafka_bench --events 150000``, bare pixels and ``--corpus``: a
  ``snowmelt enrich`` process on Kafka, events by the wall and per CPU-second of its process, and each
  against the stage alone in the same run (over 40,000 events the worker's window is about a second, and its
  events per CPU-second read 1.01-1.59x those over 150,000 in alternating runs of the corpus);
- ``hostile``: ``bench.hostile_bench stage`` for the one-event kinds, ms per
  event on the second and third runs (lower is better).

The command exits 1 when a metric is worse than ``--fail-below`` (a ratio,
better-is-higher after inverting the lower-is-better ones; default: never), so
it can gate a change by hand; it is not run in CI (timings there mean nothing).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Bench:
    """One command and the metrics read from its output."""
    name: str
    argv: list[str]
    metrics: dict[str, str]                 # metric -> regex, first group a number
    lower_is_better: set[str] = field(default_factory=set)


HOSTILE_ONE_EVENT = ("long_referer_host", "many_query_parameters", "long_get_querystring", "deep_json")


def _worker_metrics(traffic: str) -> dict[str, str]:
    """What ``bench.enrich_kafka_bench`` prints of the worker: its rate by the wall and per CPU-second (its
    process's CPU), and each against the stage alone in the same run."""
    return {f"worker events/s, {traffic}": r"^worker \(at_least_once\): ([\d,]+)",
            f"worker events per CPU-second, {traffic}": r"^worker \(at_least_once\): .*?([\d,]+) events per CPU-second",
            f"worker / stage, {traffic}": r"worker / stage ([\d.]+)",
            f"worker / stage per CPU-second, {traffic}": r"worker / stage .*?([\d.]+) per CPU-second"}


PRESETS: dict[str, list[Bench]] = {
    "stage": [
        Bench("stage", ["bench.bench_enrich", "--records", "2000", "--repeat", "3"],
              {"stage events/s": r"^compiled\s+([\d,.]+)"}),
        Bench("stage+enrichments", ["bench.bench_enrich", "--records", "2000", "--repeat", "3",
                                    "--enrichments", "default"],
              {"stage+enrichments events/s": r"^compiled\s+([\d,.]+)"}),
    ],
    "codecs": [
        Bench("codecs", ["bench.bench_codecs"],
              {f"{op} ops/s": r"^compiled\s+" + r"[\d,]+\s+" * column + r"([\d,]+)"
               for column, op in enumerate(("query string", "base64", "query string+base64"))}),
    ],
    "worker": [
        Bench("worker", ["bench.enrich_kafka_bench", "--events", "150000"], _worker_metrics("pixels")),
        Bench("worker corpus", ["bench.enrich_kafka_bench", "--events", "150000", "--corpus"],
              _worker_metrics("corpus")),
    ],
    "hostile": [
        Bench("hostile", ["bench.hostile_bench", "stage", "--kinds", *HOSTILE_ONE_EVENT],
              {f"{kind} ms/event": rf"^{kind}\s.*\(again ([\d.]+)\)" for kind in HOSTILE_ONE_EVENT},
              lower_is_better={f"{kind} ms/event" for kind in HOSTILE_ONE_EVENT}),
    ],
}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def read_metrics(bench: Bench, output: str) -> dict[str, float]:
    """The metrics found in ``output``; a metric whose pattern does not match is missing."""
    found = {}
    for name, pattern in bench.metrics.items():
        match = re.search(pattern, output, re.MULTILINE)
        if match:
            found[name] = _number(match.group(1))
    return found


def checkout(ref: str, into: Path) -> str:
    """A worktree of ``ref`` at ``into`` with its extensions built; returns the commit."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), commit],
                   check=True, capture_output=True, text=True)
    build = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=into,
                           capture_output=True, text=True)
    if build.returncode:
        raise SystemExit(f"building the extensions of {ref} failed:\n{build.stdout[-2000:]}{build.stderr[-2000:]}")
    return commit


def interpreter(python: str) -> str:
    """``python`` and what it says it is (its version and build)."""
    try:
        done = subprocess.run([python, "-c", "import sys; print(sys.version.replace(chr(10), ' '))"],
                              capture_output=True, text=True)
    except OSError as exc:
        return f"{python} (does not start: {exc})"
    return f"{python} ({done.stdout.strip() or 'does not start: ' + done.stderr.strip()[-200:]})"


def remove(into: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(into)], capture_output=True)
    shutil.rmtree(into, ignore_errors=True)


def pythonpath(tree: Path) -> str:
    """``PYTHONPATH`` with ``tree`` first: a process started with it runs that tree's code."""
    return os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])


def tree_env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWMELT_")}
    env["PYTHONPATH"] = pythonpath(tree)
    env["SNOWMELT_REQUIRE_EXTENSIONS"] = "1"
    return env


def check_tree(tree: Path, python: str = sys.executable) -> None:
    """Fail unless a process of ``python`` run for ``tree`` imports the project and its compiled extensions
    from it."""
    probe = subprocess.run([python, "-c", "import ext, processor; print(ext.__file__); print(processor.__file__)"],
                           cwd=tree, env=tree_env(tree), capture_output=True, text=True)
    paths = probe.stdout.split()
    if probe.returncode or len(paths) != 2 or not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in paths):
        raise SystemExit(f"a process for {tree} does not import the project from it:\n{probe.stdout}{probe.stderr}")


def run(bench: Bench, tree: Path, timeout: float, python: str = sys.executable) -> dict[str, float]:
    done = subprocess.run([python, "-m", *bench.argv], cwd=tree, env=tree_env(tree),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"{bench.name} failed in {tree} ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    found = read_metrics(bench, done.stdout)
    missing = set(bench.metrics) - set(found)
    if missing:
        raise SystemExit(f"{bench.name} in {tree}: no {', '.join(sorted(missing))} in its output:\n{done.stdout[-3000:]}")
    return found


def compare(benches: list[Bench], ref_tree: Path, rounds: int, timeout: float, progress=print,
            ref_python: str = sys.executable, python: str = sys.executable) -> list[dict]:
    """Run every bench ``rounds`` times on each side (the ref's tree under ``ref_python``, this one under
    ``python``), alternating; one row per metric."""
    samples: dict[str, dict[str, list[float]]] = {}
    for bench in benches:
        for round_number in range(rounds):
            order = [("ref", ref_tree, ref_python), ("this", ROOT, python)]
            if round_number % 2:
                order.reverse()
            for side, tree, interpreter in order:
                for name, value in run(bench, tree, timeout, interpreter).items():
                    samples.setdefault(name, {"ref": [], "this": []})[side].append(value)
            progress(f"  {bench.name}: round {round_number + 1} of {rounds} done")
    lower = set().union(*(b.lower_is_better for b in benches))
    rows = []
    for name, sides in samples.items():
        ref, this = statistics.median(sides["ref"]), statistics.median(sides["this"])
        ratio = this / ref if ref else float("inf")
        gain = (1 / ratio if ratio else float("inf")) if name in lower else ratio
        rows.append({"metric": name, "ref": ref, "this": this, "ratio": ratio, "better_by": gain,
                     "lower_is_better": name in lower, "ref_samples": sides["ref"], "this_samples": sides["this"]})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'metric':<36}{'ref':>14}{'this':>14}{'this/ref':>10}  verdict"]
    for r in rows:
        verdict = "better" if r["better_by"] > 1.10 else "worse" if r["better_by"] < 1 / 1.10 else "same (within 10 %)"
        lines.append(f"{r['metric']:<36}{r['ref']:>14,.2f}{r['this']:>14,.2f}{r['ratio']:>9.2f}x  {verdict}"
                     + ("  (lower is better)" if r["lower_is_better"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref", help="the git ref to compare with (a commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each bench on each side (default 2)")
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: all of them")
    parser.add_argument("--metric", action="append", default=[], metavar="NAME=REGEX",
                        help="read NAME from the command's output (first group: a number); with a command after --")
    parser.add_argument("--lower-is-better", action="append", default=[], metavar="NAME")
    parser.add_argument("--fail-below", type=float, default=0.0, metavar="RATIO",
                        help="exit 1 when a metric's better-by ratio is below this (e.g. 0.9)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per bench run")
    parser.add_argument("--ref-python", default=sys.executable, metavar="PATH",
                        help="the interpreter the ref's side runs under (default: this one)")
    parser.add_argument("--python", default=sys.executable, metavar="PATH",
                        help="the interpreter this checkout's side runs under (default: this one)")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1:] if "--" in argv else []  # -- MODULE [ARGS]: a bench of your own
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if command:
        if not args.metric:
            parser.error("a command needs at least one --metric NAME=REGEX")
        metrics = dict(m.split("=", 1) for m in args.metric)
        benches = [Bench(command[0], command, metrics, set(args.lower_is_better))]
    else:
        benches = [b for name in (args.preset or sorted(PRESETS)) for b in PRESETS[name]]
    with tempfile.TemporaryDirectory(prefix="snowmelt-against-") as tmp:
        ref_tree = Path(tmp) / "tree"
        commit = checkout(args.ref, ref_tree)
        try:
            check_tree(ref_tree, args.ref_python)
            check_tree(ROOT, args.python)
            print(f"ref {args.ref} ({commit[:10]}) in {ref_tree}, {interpreter(args.ref_python)}; this checkout "
                  f"{ROOT}, {interpreter(args.python)}; {args.rounds} rounds each")
            rows = compare(benches, ref_tree, args.rounds, args.timeout, ref_python=args.ref_python,
                           python=args.python)
        finally:
            remove(ref_tree)
    print(format_rows(rows))
    worst = min(r["better_by"] for r in rows)
    return 1 if args.fail_below and worst < args.fail_below else 0


if __name__ == "__main__":
    sys.exit(main())
