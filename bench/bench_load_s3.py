"""S3 store throughput: ``S3Store.write`` against uploading the same objects pre-built, on SeaweedFS.

Realistic enriched lines are built once with the enrichment stage
(``processor.stage.Enricher``) from the tracker corpus of ``bench/corpus.py``
(what bench/bench_enrich.py enriches: page views, page pings, structured and
self-describing events with three contexts each), then cut into batches of
``--batch-size`` consecutive lines like the loader cuts a partition.  Against
a SeaweedFS started here (``tests/services/s3.py``; ``S3_ENDPOINT_URL`` for
another store), in this one run:

``store``
    ``S3Store.write(batch)`` for every batch: join, gzip (or Parquet), upload.
``raw``
    ``put_object`` of the very objects the store made (same keys under
    ``raw/``, same bytes, same sizes), pre-built before the clock starts: the
    store's raw write rate, the baseline of the ratio.
``encode``
    ``S3Store.encode(batch)`` alone (no upload): the loader's own CPU cost.

Rates are events per second of wall time, best of ``--repeat`` rounds, store
and raw rounds alternating; "per core" is events per CPU second of this
process (the loader's side: encoding, boto3, HTTP), the server runs on the
other core.  Correctness is printed beside: every batch is one object at its
key and reads back (gunzip, or Parquet) as exactly the batch's lines.
A table of gzip choices on the same batches (ISA-L levels, zlib levels)
shows the speed and ratio behind the store's ISA-L level 1.

    python bench/bench_load_s3.py [--records 4000] [--batch-size 5000] [--repeat 5] [--format tsv|parquet|both]
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_lines(records: int) -> list[bytes]:
    """Enriched TSV lines (bytes) from ``records`` raw corpus records (about 5.5 events each)."""
    from bench.bench_enrich import build_records, write_registry
    from processor.iglu import EmbeddedRepository, Resolver
    from processor.stage import Enricher

    with tempfile.TemporaryDirectory() as tmp:
        write_registry(Path(tmp) / "registry")
        enricher = Enricher(Resolver([EmbeddedRepository("bench", str(Path(tmp) / "registry"))], include_builtin=True))
        lines: list[bytes] = []
        raw, _ = build_records(records)
        for record in raw:
            out = enricher.enrich(record)
            if out.bad:
                raise SystemExit(f"the corpus produced bad rows: {out.bad[0][:300]!r}")
            lines.extend(line.encode("utf-8") for line in out.good)
    return lines


def make_batches(lines: list[bytes], size: int, round_no: int):
    from loaders.base import ENRICHED, Batch

    batches = []
    base = round_no * len(lines)  # each round its own offsets and hour: its own keys and folder
    for start in range(0, len(lines), size):
        values = tuple(lines[start:start + size])
        batches.append(Batch(ENRICHED, "enriched", 0, base + start, base + start + len(values) - 1, values,
                             first_timestamp_ms=1_764_320_000_000 + round_no * 3_600_000))
    return batches


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def check(server, bucket, store, batches, fmt: str) -> bool:
    """Every batch is one object at its key and holds exactly its lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    client = server.client()
    ext = ".tsv.gz" if fmt == "tsv" else ".parquet"
    for b in batches:
        data = client.get_object(Bucket=bucket, Key=store.key(b, ext))["Body"].read()
        if fmt == "tsv":
            if gzip.decompress(data) != b"\n".join(b.values) + b"\n":
                return False
        else:
            table = pq.read_table(pa.BufferReader(data), columns=["event_id"])
            expected = [line.split(b"\t", 7)[6].decode() for line in b.values]
            if table.column("event_id").to_pylist() != expected:
                return False
    listed = client.list_objects_v2(Bucket=bucket, Prefix=store.folder(batches[0]) + "/")
    return listed.get("KeyCount", 0) == len(batches)


def run_format(server, bucket, lines, fmt, batch_size, repeat) -> dict:
    from loaders.s3 import S3Store
    from snowmelt.config import S3Config

    store = S3Store(S3Config(backend="s3", bucket=bucket, endpoint_url=server.endpoint_url, region=server.region,
                             path_style=True, format=fmt, prefix=f"bench-{fmt}"))
    store.open()
    raw_client = server.client()
    n = len(lines)
    best = {"store": (1e9, 0.0), "raw": (1e9, 0.0), "encode": (1e9, 0.0)}
    correct = True
    sizes = 0
    for round_no in range(repeat):
        batches = make_batches(lines, batch_size, round_no)
        encode_t = timed(lambda batches=batches: [store.encode(b) for b in batches])
        store_t = timed(lambda batches=batches: [store.write(b) for b in batches])
        correct = correct and check(server, bucket, store, batches, fmt)
        prebuilt = [obj for b in batches for obj in store.encode(b)]
        sizes = sum(len(o.body) for o in prebuilt)
        raw_t = timed(lambda prebuilt=prebuilt: [raw_client.put_object(Bucket=bucket, Key="raw/" + o.key, Body=o.body,
                                                     ContentType=o.content_type) for o in prebuilt])
        for name, t in (("store", store_t), ("raw", raw_t), ("encode", encode_t)):
            if t[0] < best[name][0]:
                best[name] = t
    store.close()
    return {"format": fmt, "events": n, "batches": len(make_batches(lines, batch_size, 0)),
            "bytes_in": sum(len(line) + 1 for line in lines), "bytes_out": sizes, "correct": correct,
            **{f"{k}_wall": v[0] for k, v in best.items()}, **{f"{k}_cpu": v[1] for k, v in best.items()}}


def _zlib_gzip(level: int):
    def compress(data: bytes) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    return compress


def compression_table(lines: list[bytes], batch_size: int) -> list[tuple[str, float, float]]:
    from isal import igzip

    chunks = [b"\n".join(lines[i:i + batch_size]) + b"\n" for i in range(0, len(lines), batch_size)]
    total = sum(len(c) for c in chunks)
    rows = []
    choices = [(f"isal level {lvl}", lambda d, lvl=lvl: igzip.compress(d, compresslevel=lvl, mtime=0)) for lvl in (0, 1, 2)]
    choices += [(f"zlib level {lvl}", _zlib_gzip(lvl))
                for lvl in (1, 3, 6)]
    for name, fn in choices:
        best, out = 1e9, 0
        for _ in range(3):
            t0 = time.perf_counter()
            out = sum(len(fn(c)) for c in chunks)
            best = min(best, time.perf_counter() - t0)
        rows.append((name, len(lines) / best, total / max(out, 1)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=4000, help="raw corpus records (about 5.5 events each)")
    parser.add_argument("--batch-size", type=int, default=5000, help="events per batch (one object each)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--format", choices=["tsv", "parquet", "both"], default="both")
    args = parser.parse_args()

    from tests.services.s3 import s3_from_env

    lines = build_lines(args.records)
    formats = ["tsv", "parquet"] if args.format == "both" else [args.format]
    with s3_from_env() as server:
        os.environ.update(server.credentials_env())
        bucket = server.create_bucket(f"bench-load-s3-{os.getpid()}")
        results = [run_format(server, bucket, lines, fmt, args.batch_size, args.repeat) for fmt in formats]
        where = server.describe()
    print(f"{len(lines)} enriched events ({sum(map(len, lines)) / len(lines):,.0f} bytes each), batches of "
          f"{args.batch_size}, best of {args.repeat}; {where}")
    print(f"{'format':<9}{'store ev/s':>12}{'per core':>12}{'raw ev/s':>12}{'ratio':>7}{'encode ev/s':>13}"
          f"{'MB in':>8}{'MB out':>8}  correct")
    ok = True
    for r in results:
        n = r["events"]
        print(f"{r['format']:<9}{n / r['store_wall']:>12,.0f}{n / max(r['store_cpu'], 1e-9):>12,.0f}"
              f"{n / r['raw_wall']:>12,.0f}{r['raw_wall'] / r['store_wall']:>7.2f}{n / r['encode_wall']:>13,.0f}"
              f"{r['bytes_in'] / 1e6:>8.1f}{r['bytes_out'] / 1e6:>8.1f}  {r['correct']}")
        ok = ok and r["correct"]
    print("gzip choices on the same batches (events/s of compression alone, ratio):")
    for name, rate, ratio in compression_table(lines, args.batch_size):
        print(f"  {name:<14}{rate:>12,.0f}{ratio:>7.1f}x")
    print("correct:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
