"""Benchmark: query-string parsing and base64url, compiled vs pure Python.

Run from the repository root after building the extensions::

    python setup.py build_ext --inplace
    python bench/bench_codecs.py [--number 20000] [--repeat 5] [--json]

The input is a realistic tracker GET (``/i``) query string: 25 parameters,
percent-encoded URLs and titles (with UTF-8), and a base64url ``cx`` context of
about 600 characters.  Three operations are timed for each implementation in
the same process: ``parse_query_string`` on the whole query string,
``decode_base64url`` on the ``cx`` value, and the enrichment's real sequence
(parse, then decode ``cx``).  The pure-Python twin is the baseline, so the
ratio is what to compare between machines.  Before timing, each
implementation's results are checked against the expected pairs and bytes
(built independently with ``urllib.parse`` and ``base64``); that check is
printed beside the numbers and makes the exit status non-zero if it fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ext  # noqa: E402
from bench.timing import ops_per_second  # noqa: E402


def realistic_query() -> tuple[str, list, bytes]:
    """(query string, expected pairs, expected cx bytes)."""
    contexts = {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
        "data": [
            {
                "schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
                "data": {"id": "4f0dc34c-1b2a-4e2e-8b5b-abcdef012345"},
            },
            {
                "schema": "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0",
                "data": {"navigationStart": 1700000000000, "fetchStart": 1700000000003,
                         "domainLookupStart": 1700000000010, "responseEnd": 1700000000120,
                         "domComplete": 1700000000480, "loadEventEnd": 1700000000495},
            },
        ],
    }
    cx = json.dumps(contexts, separators=(",", ":")).encode()
    pairs = [
        ("e", "pv"),
        ("url", "https://www.example.com/produkte/schuhe/laufen?utm_source=newsletter&utm_medium=email"),
        ("page", "Laufschuhe für Damen & Herren | Beispiel-Shop"),
        ("refr", "https://www.google.com/search?q=laufschuhe+größe+39"),
        ("tv", "js-3.17.0"),
        ("tna", "sp1"),
        ("aid", "example-store"),
        ("p", "web"),
        ("tz", "Europe/Berlin"),
        ("lang", "de-DE"),
        ("cs", "UTF-8"),
        ("f_pdf", "1"),
        ("f_qt", "0"),
        ("res", "2560x1440"),
        ("cd", "24"),
        ("cookie", "1"),
        ("eid", "2f1c0b4e-8d3a-4c8e-9f0e-6a1b2c3d4e5f"),
        ("dtm", "1700000000123"),
        ("vp", "1280x720"),
        ("ds", "1280x4000"),
        ("vid", "3"),
        ("sid", "a1b2c3d4-e5f6-4a5b-8c7d-9e0f1a2b3c4d"),
        ("duid", "d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f5a"),
        ("stm", "1700000000130"),
        ("cx", base64.urlsafe_b64encode(cx).decode().rstrip("=")),
    ]
    return urllib.parse.urlencode(pairs), pairs, cx


def enrich_step(impl):
    """What the enrichment does with a GET: parse, then decode cx."""
    parse, decode = impl.parse_query_string, impl.decode_base64url

    def step(qs):
        params = dict(parse(qs))  # last duplicate wins, as in Snowplow
        return decode(params["cx"])

    return step


OPS = ("parse", "base64", "parse+base64")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (best is kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)

    qs, pairs, cx = realistic_query()
    cx_text = dict(pairs)["cx"]
    results = {}
    for name, impl in ext.implementations().items():
        step = enrich_step(impl)
        correct = (
            impl.parse_query_string(qs) == pairs
            and impl.decode_base64url(cx_text) == cx
            and step(qs) == cx
        )
        results[name] = {
            "correct": correct,
            "parse_ops_s": ops_per_second(impl.parse_query_string, qs, args.number, args.repeat),
            "base64_ops_s": ops_per_second(impl.decode_base64url, cx_text, args.number, args.repeat),
            "parse+base64_ops_s": ops_per_second(step, qs, args.number, args.repeat),
        }
    summary = {
        "query_chars": len(qs),
        "params": len(pairs),
        "cx_chars": len(cx_text),
        "python": sys.version.split()[0],
        "implementations": results,
    }
    if "compiled" in results:
        summary["ratio"] = {
            op: results["compiled"][f"{op}_ops_s"] / results["python"][f"{op}_ops_s"] for op in OPS
        }

    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"tracker query string: {summary['query_chars']} chars, {summary['params']} params, "
            f"cx {summary['cx_chars']} chars; Python {summary['python']}, "
            f"best of {args.repeat} x {args.number}"
        )
        print(f"{'implementation':<16}" + "".join(f"{op + ' ops/s':>20}" for op in OPS) + "  correct")
        for name, r in results.items():
            print(f"{name:<16}" + "".join(f"{r[op + '_ops_s']:>20,.0f}" for op in OPS) + f"  {r['correct']}")
        if "ratio" in summary:
            print(f"{'compiled/python':<16}" + "".join(f"{summary['ratio'][op]:>19.1f}x" for op in OPS))
        else:
            print("compiled extension not available: no ratio (build it first)")
    return 0 if all(r["correct"] for r in results.values()) and "compiled" in results else 1


if __name__ == "__main__":
    sys.exit(main())
