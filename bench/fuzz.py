"""Long coverage-guided fuzzing runs (atheris) of the decoders, the adapters and the stage.

Run from the repository root (``pip install atheris``; the compiled extensions
built, else only the pure twins run)::

    python bench/fuzz.py --target thrift --seconds 600
    python bench/fuzz.py --target all --seconds 300 --corpus bench/results/fuzz-corpus

Targets (``tests/fuzz/targets.py``): thrift, querystring, base64url, tsv,
params, url (compiled vs pure-Python twin: same result or same exception and
message), adapt and enrich (never raise, well-formed output).  ``--corpus`` keeps
the inputs that found new coverage between runs (one sub-folder per target with
``all``).  A crash prints the traceback, writes the input to
``--artifacts``/crash-* (also printed as base64) and exits non-zero: add it to
``tests/unit/test_fuzz_regressions.py``.  ``--target all`` runs each target in
its own process for ``--seconds`` and exits non-zero if any crashed.
"""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TARGETS = ("thrift", "querystring", "base64url", "tsv", "params", "url", "adapt", "enrich")


def run_all(argv: list[str]) -> int:
    """Each target in turn, in its own process (``atheris.Fuzz`` exits when done)."""
    corpus = None
    if "--corpus" in argv:
        i = argv.index("--corpus")
        corpus = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    failed = []
    for target in TARGETS:
        extra = ["--corpus", os.path.join(corpus, target)] if corpus else []
        rc = subprocess.call([sys.executable, os.path.abspath(__file__), "--target", target, *extra, *argv],
                             cwd=ROOT)
        print(f"== {target}: {'ok' if rc == 0 else f'CRASH (exit {rc})'}", flush=True)
        if rc != 0:
            failed.append(target)
    print(f"fuzzed {len(TARGETS)} targets; crashed: {', '.join(failed) or 'none'}", flush=True)
    return 1 if failed else 0


def main() -> None:
    argv = sys.argv[1:]
    if "--target" in argv and argv[argv.index("--target") + 1:argv.index("--target") + 2] == ["all"]:
        i = argv.index("--target")
        sys.exit(run_all(argv[:i] + argv[i + 2:]))
    from tests.fuzz.targets import main as fuzz_main
    fuzz_main(argv)


if __name__ == "__main__":
    main()
