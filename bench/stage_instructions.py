"""The enrichment stage's machine instructions per event, this checkout against a git ref: a measure noise cannot move.

    python -m bench.stage_instructions [--ref REF] [--records 300] [--enrichments none default] [--each]
                                       [--corpus bench|oracle]

These machines are shared: the same stage run twice in a row differs by up to 40 % in events per second
(``bench/RESULTS.md``), more than most single changes to the hot path are worth.  The number of
instructions the CPU executes for the same records is the same from run to run, so this counts them:
each tree's stage (compiled extensions) enriches the same records (``bench.bench_enrich``'s corpus: GET
page views and POST batches of 10 events with three contexts) under Valgrind's callgrind, once to warm
its caches with counting off, then once counted (``callgrind_control -i on`` around that pass only).
Both trees get the same records, registry and enrichment configs, written once by this process, and the
same string hashes (``PYTHONHASHSEED=0``: with random ones the same tree's count varies by about 1 %, the
probes of its dict and set lookups).

It prints instructions per event for each setting (``none``; ``default``: ``bench.bench_enrich``'s default
set, GeoLite2 included) and tree, and this / ref; ``--each`` adds this checkout's stage with each enrichment of
the default set alone, and what it adds to an event over none.  Instructions are not time: a cache miss or a system call
costs more than its instructions, and callgrind runs everything about 50 times slower, so keep
``--records`` small.  Use it to compare two versions of the Python and Cython code of the stage; time
them with ``bench.against``.  Needs ``valgrind`` (``apt-get install valgrind``).

``--corpus oracle`` counts ``bench.oracle_speed``'s records instead: the same traffic with 2 % bad events, whose
bad rows cost several good events each; an event is then a good event or a bad row.

``--compile MODULE [MODULE ...]`` adds a third tree: a copy of this checkout's code in which the named
modules (``processor.stage`` ...) are compiled by Cython as they are, without types (what compiling the
per-event path's Python into ``ext/`` gains before anyone rewrites it), and prints compiled / this.  The
copy is made in a temporary folder; this checkout is left as it is.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the child under callgrind
    sys.path.append(str(ROOT))

from bench import callgrind  # noqa: E402

#: seconds a tree's run may take (start-up, the warm pass and the counted one, all under callgrind)
TIMEOUT = 900.0


def _child(tree: str, work: str, setting: str, flag: str) -> None:
    """Runs under callgrind: the stage of ``tree`` on the records of ``work``; counting is switched on by the
    parent between the files ``flag.ready`` and ``flag.done``."""
    sys.path.insert(0, tree)
    os.environ["SNOWMELT_REQUIRE_EXTENSIONS"] = "1"
    from processor.enrichments import load_enrichments
    from processor.iglu import EmbeddedRepository, Resolver
    from processor.stage import Enricher

    import processor.stage

    if not Path(processor.stage.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"the stage was imported from {processor.stage.__file__}, not from {tree}")
    records = [bytes.fromhex(r) for r in json.loads((Path(work) / "records.json").read_text())]
    resolver = Resolver([EmbeddedRepository("bench", str(Path(work) / "registry"))], include_builtin=True)
    enrichments = load_enrichments(str(Path(work) / "enrichments"), resolver) if setting == "default" else []
    enricher = Enricher(resolver, enrichments=enrichments)
    for record in records:  # caches warm: schemas, validators, parsed agents
        enricher.enrich(record)
    with callgrind.counted_pass(flag) as report:
        good = bad = 0
        for record in records:
            out = enricher.enrich(record)
            good, bad = good + len(out.good), bad + len(out.bad)
        report.update(good=good, bad=bad)


def count(tree: Path, work: Path, setting: str, keep: Path | None = None) -> tuple[int, dict]:
    """(instructions of the counted pass, its good and bad event counts) for ``tree``'s stage; its callgrind
    output copied to ``keep`` when given."""
    return callgrind.count(
        lambda flag: [sys.executable, str(Path(__file__).resolve()), "--child", str(tree), str(work), setting, flag],
        timeout=TIMEOUT, keep=keep, env={**os.environ, "PYTHONHASHSEED": "0"})


#: what a compiled copy leaves out of this checkout: history, tests, build output and caches
_NOT_COPIED = (".git", "tests", "build", "results", ".hypothesis", "__pycache__", ".pytest_cache", "node_modules")

#: run in the copy with the modules' dotted names as arguments: compiles each ``.py`` in place, as it is
_BUILD = """
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup
modules = sys.argv[1:]
extensions = [Extension(name, [name.replace(".", "/") + ".py"]) for name in modules]
setup(script_args=["build_ext", "--inplace", "-q"], ext_modules=cythonize(
    extensions, quiet=True, compiler_directives={"language_level": "3", "binding": True, "annotation_typing": False}))
"""


def compiled_copy(modules: list[str], into: Path) -> Path:
    """A copy of this checkout's code at ``into`` with each of ``modules`` (dotted names of its ``.py``
    files) compiled by Cython without types; fails unless the copy imports each from its compiled file."""
    for name in modules:
        if not (ROOT / (name.replace(".", "/") + ".py")).is_file():
            raise SystemExit(f"--compile: {name} is not a module of this checkout")
    shutil.copytree(ROOT, into, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    for stale in into.glob("**/*.so"):  # only ext/ may bring compiled files; the modules are compiled below
        if not stale.parent.samefile(into / "ext"):
            stale.unlink()
    build = subprocess.run([sys.executable, "-c", _BUILD, *modules], cwd=into, capture_output=True, text=True)
    if build.returncode:
        raise SystemExit(f"compiling {', '.join(modules)} failed:\n{build.stdout[-2000:]}{build.stderr[-2000:]}")
    probe = subprocess.run([sys.executable, "-c", "import importlib, sys\nfor name in sys.argv[1:]: "
                            "print(importlib.import_module(name).__file__)", *modules],
                           cwd=into, env={**os.environ, "PYTHONPATH": str(into)}, capture_output=True, text=True)
    files = [Path(line) for line in probe.stdout.split()]
    if probe.returncode or len(files) != len(modules) or not all(
            f.suffix == ".so" and f.resolve().is_relative_to(into.resolve()) for f in files):
        raise SystemExit(f"the compiled copy does not import {', '.join(modules)} from its own compiled files:\n"
                         f"{probe.stdout}{probe.stderr[-2000:]}")
    return into


def prepare(work: Path, records: int, corpus: str = "bench") -> int:
    """The records, registry and enrichment configs both trees read; the number of raw records.

    ``corpus``: ``bench`` (``bench.bench_enrich``'s records, ``records`` of them) or ``oracle`` (what
    ``bench.oracle_speed`` gives snowmelt and Snowplow: the same traffic, as many events, and 2 % bad events
    as GETs of their own)."""
    sys.path.insert(0, str(ROOT))
    from bench.bench_enrich import build_records, default_enrichment_configs, write_registry

    if corpus == "oracle":
        from bench.oracle_bench import bench_records

        raw = bench_records(round(records * 5.5))
    else:
        raw, _ = build_records(records)
    (work / "records.json").write_text(json.dumps([r.hex() for r in raw]))
    write_registry(work / "registry")
    (work / "enrichments").mkdir()
    for doc in default_enrichment_configs():
        (work / "enrichments" / f"{doc['data']['name']}.json").write_text(json.dumps(doc))
    return len(raw)


def each_alone(work: Path, tmp: Path, events: int, none: int | None = None, keep: Path | None = None) -> None:
    """This checkout's stage with each enrichment of the default set alone (the same records): what each adds
    to an event over ``none``, the stage's count without enrichments (counted here when not given), its step
    in the stage included.  Each run's callgrind output is copied to ``keep`` when given
    (``callgrind-alone-<config>.out``)."""
    if none is None:
        none, _ = count(ROOT, work, "none")
    print(f"{'enrichment alone':<28}{'instructions/event':>20}{'over none':>12}")
    print(f"{'(none)':<28}{none / events:>20,.0f}{0:>12,}")
    for config in sorted((work / "enrichments").iterdir()):
        alone = tmp / f"alone-{config.stem}"
        shutil.copytree(work, alone)
        for other in (alone / "enrichments").iterdir():
            if other.name != config.name:
                other.unlink()
        total, _ = count(ROOT, alone, "default", keep / f"callgrind-alone-{config.stem}.out" if keep else None)
        print(f"{config.stem:<28}{total / events:>20,.0f}{(total - none) / events:>12,.0f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", help="git ref to compare with (a worktree is made and its extensions built)")
    parser.add_argument("--records", type=int, default=300, help="raw records (about 5.5 events each)")
    parser.add_argument("--corpus", choices=["bench", "oracle"], default="bench",
                        help="bench: bench.bench_enrich's traffic; oracle: bench.oracle_speed's, the same traffic "
                             "and 2 %% bad events (a GET each; their bad rows cost more than good events)")
    parser.add_argument("--enrichments", nargs="+", choices=["none", "default"], default=["none", "default"])
    parser.add_argument("--keep", metavar="DIR", help="keep each run's callgrind output in DIR (callgrind_annotate "
                        "reads it: which C functions the instructions are in)")
    parser.add_argument("--each", action="store_true", help="also count this checkout's stage with each enrichment "
                        "of the default set alone, and print what it adds to an event over none")
    parser.add_argument("--compile", nargs="+", metavar="MODULE", default=[],
                        help="also count a copy of this checkout with these modules compiled by Cython as they are")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    if not callgrind.available():
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    from bench.against import checkout, remove

    with tempfile.TemporaryDirectory(prefix="snowmelt-instructions-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        records = prepare(work, args.records, args.corpus)
        trees = {"this": ROOT}
        if args.compile:
            trees["compiled"] = compiled_copy(args.compile, Path(tmp) / "compiled")
            print(f"compiled: this checkout with {', '.join(args.compile)} compiled by Cython, in {trees['compiled']}")
        if args.ref:
            trees = {"ref": Path(tmp) / "ref", **trees}
            print(f"ref {args.ref} ({checkout(args.ref, trees['ref'])[:10]}) in {trees['ref']}; this checkout {ROOT}")
        try:
            print(f"{records} raw records ({args.corpus} corpus), counted once after a warm pass; an event is a "
                  "good event or a bad row")
            print(f"{'enrichments':<12}{'tree':<9}{'instructions/event':>20}{'good':>8}{'bad':>6}")
            this_totals, events = {}, 0
            for setting in args.enrichments:
                per_event = {}
                for name, tree in trees.items():
                    keep = Path(args.keep) / f"callgrind-{setting}-{name}.out" if args.keep else None
                    total, outcome = count(tree, work, setting, keep)
                    per_event[name] = total / (outcome["good"] + outcome["bad"])
                    if name == "this":
                        this_totals[setting], events = total, outcome["good"] + outcome["bad"]
                    print(f"{setting:<12}{name:<9}{per_event[name]:>20,.0f}{outcome['good']:>8}{outcome['bad']:>6}",
                          flush=True)
                if "ref" in per_event:
                    print(f"{setting:<12}this/ref {per_event['this'] / per_event['ref']:.3f}x instructions")
                if "compiled" in per_event:
                    print(f"{setting:<12}compiled/this {per_event['compiled'] / per_event['this']:.3f}x instructions")
            if args.each:
                each_alone(work, Path(tmp), events, this_totals.get("none"), Path(args.keep) if args.keep else None)
        finally:
            if args.ref:
                remove(trees["ref"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
