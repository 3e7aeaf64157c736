"""Benchmark: Thrift CollectorPayload encode/decode, compiled vs pure Python.

Run from the repository root after building the extension::

    python setup.py build_ext --inplace   # or: pip install -e . --no-build-isolation
    python bench/bench_thrift.py [--number 20000] [--repeat 5] [--json]

Both implementations run in the same process on the same realistic payload (a
tracker POST: 15 headers, a ~1.5 KB JSON body, a browser user agent); the pure
Python twin is the baseline, so the ratio is what to compare between machines.
Before timing, the script checks that both implementations produce the same
bytes and decode them back to the input, and prints that beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ext  # noqa: E402
from bench.timing import ops_per_second  # noqa: E402
from ext import SCHEMA, CollectorPayload  # noqa: E402


def realistic_payload() -> CollectorPayload:
    event = {
        "e": "pv",
        "url": "https://www.example.com/products/shoes/running?utm_source=newsletter&utm_medium=email",
        "page": "Running shoes | Example Store",
        "refr": "https://www.google.com/",
        "tv": "js-3.17.0",
        "tna": "sp1",
        "aid": "example-store",
        "p": "web",
        "tz": "Europe/Berlin",
        "lang": "de-DE",
        "cs": "UTF-8",
        "res": "2560x1440",
        "cd": "24",
        "cookie": "1",
        "eid": "2f1c0b4e-8d3a-4c8e-9f0e-6a1b2c3d4e5f",
        "dtm": "1700000000123",
        "vp": "1280x720",
        "ds": "1280x4000",
        "vid": "3",
        "sid": "a1b2c3d4-e5f6-4a5b-8c7d-9e0f1a2b3c4d",
        "duid": "d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f5a",
        "stm": "1700000000130",
        "cx": "eyJzY2hlbWEiOiJpZ2x1OmNvbS5zbm93cGxvd2FuYWx5dGljcy5zbm93cGxvdy9jb250ZXh0cy9qc29uc2NoZW1hLzEtMC0wIiwiZGF0YSI6W3sic2NoZW1hIjoiaWdsdTpjb20uc25vd3Bsb3dhbmFseXRpY3Muc25vd3Bsb3cvd2ViX3BhZ2UvanNvbnNjaGVtYS8xLTAtMCIsImRhdGEiOnsiaWQiOiI0ZjBkYzM0Yy0xYjJhLTRlMmUtOGI1Yi1hYmNkZWYwMTIzNDUifX1dfQ",  # noqa: E501
    }
    body = json.dumps(
        {
            "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
            "data": [event, dict(event, e="pp", eid="7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d")],
        },
        separators=(",", ":"),
    )
    user_agent = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
    )
    headers = [
        "Timeout-Access: <function1>",
        "Host: collector.example.com",
        "X-Forwarded-For: 203.0.113.7",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Port: 443",
        "X-Amzn-Trace-Id: Root=1-6553f5a0-1a2b3c4d5e6f7a8b9c0d1e2f",
        "Content-Length: %d" % len(body),
        "Origin: https://www.example.com",
        "Accept: */*",
        "Sec-Fetch-Site: same-site",
        "Sec-Fetch-Mode: cors",
        "Referer: https://www.example.com/products/shoes/running",
        "Accept-Encoding: gzip, deflate, br",
        "Accept-Language: de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
        "Cookie: sp=c0ffee00-1234-4321-abcd-0123456789ab; _sp_id.1fff=abc.1700000000.3.1700000100",
        "User-Agent: " + user_agent,
    ]
    return CollectorPayload(
        schema=SCHEMA,
        ip_address="203.0.113.7",
        timestamp=1_700_000_000_123,
        encoding="UTF-8",
        collector="snowmelt-0.1.0-kafka",
        user_agent=user_agent,
        referer_uri="https://www.example.com/products/shoes/running",
        path="/com.snowplowanalytics.snowplow/tp2",
        querystring=None,
        body=body,
        headers=headers,
        content_type="application/json; charset=UTF-8",
        hostname="collector.example.com",
        network_user_id="c0ffee00-1234-4321-abcd-0123456789ab",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (best is kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)

    impls = ext.implementations()
    p = realistic_payload()
    reference = impls["python"].encode_collector_payload(p)

    results = {}
    for name, impl in impls.items():
        encoded = impl.encode_collector_payload(p)
        correct = encoded == reference and impl.decode_collector_payload(reference) == p
        results[name] = {
            "correct": correct,
            "encode_ops_s": ops_per_second(impl.encode_collector_payload, p, args.number, args.repeat),
            "decode_ops_s": ops_per_second(impl.decode_collector_payload, reference, args.number, args.repeat),
        }
    summary = {
        "payload_bytes": len(reference),
        "body_bytes": len(p.body.encode()),
        "headers": len(p.headers),
        "python": sys.version.split()[0],
        "implementations": results,
    }
    if "compiled" in results:
        summary["ratio"] = {
            op: results["compiled"][f"{op}_ops_s"] / results["python"][f"{op}_ops_s"]
            for op in ("encode", "decode")
        }

    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"CollectorPayload: {summary['payload_bytes']} bytes "
            f"({summary['headers']} headers, {summary['body_bytes']} B body), "
            f"Python {summary['python']}, best of {args.repeat} x {args.number}"
        )
        print(f"{'implementation':<15}{'encode ops/s':>15}{'decode ops/s':>15}  correct")
        for name, r in results.items():
            print(f"{name:<15}{r['encode_ops_s']:>15,.0f}{r['decode_ops_s']:>15,.0f}  {r['correct']}")
        if "ratio" in summary:
            ratio = summary["ratio"]
            print(f"{'compiled/python':<15}{ratio['encode']:>14.1f}x{ratio['decode']:>14.1f}x")
        else:
            print("compiled extension not available: no ratio (build it first)")
    return 0 if all(r["correct"] for r in results.values()) and "compiled" in results else 1


if __name__ == "__main__":
    sys.exit(main())
