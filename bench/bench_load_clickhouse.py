"""ClickHouseStore.write on chdb against the raw insert rate of the same rows, in the same run.

    python bench/bench_load_clickhouse.py [--records 5000] [--batch 20000] [--repeat 3]

Enriched lines are made once by the enrichment stage from bench/corpus.py
traffic (page views, page pings, structured and self-describing events, three
contexts each; no enrichments configured).  Then, on one chdb data folder:

- raw: ``insert_arrow`` of the pre-built Arrow tables (the same rows, already
  parsed) into ``events_raw``, a copy of the ``events`` DDL without the
  wide-row columns;
- store: ``ClickHouseStore.write`` of the same lines as batches (TSV -> Arrow,
  schema discovery, ALTERs on first sight, insert with the batch token).

Each is the best of ``--repeat`` rounds (fresh tokens each time); the row
counts in both tables are printed beside the timing, and the ratio store/raw.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_lines(records: int) -> list[bytes]:
    from bench.bench_enrich import build_records, write_registry
    from processor.iglu import EmbeddedRepository, Resolver
    from processor.stage import Enricher

    registry = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    write_registry(registry)
    enricher = Enricher(Resolver([EmbeddedRepository("bench", registry)], include_builtin=True))
    random.seed(1)
    lines: list[bytes] = []
    for record in build_records(records)[0]:
        lines.extend(line.encode() if isinstance(line, str) else line for line in enricher.enrich(record).good)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from loaders.arrow import enriched_table
    from loaders.base import Batch
    from loaders.clickhouse import ClickHouseStore, events_ddl
    from snowmelt.config import ClickHouseConfig

    lines = build_lines(args.records)
    batches = [lines[i:i + args.batch] for i in range(0, len(lines), args.batch)]
    tables = [enriched_table(b).table for b in batches]
    store = ClickHouseStore(ClickHouseConfig(backend="chdb", chdb_path=tempfile.mkdtemp(prefix="bench-ch-")))
    store.open()
    backend = store.backend
    backend.command(events_ddl("snowplow", 0).replace("snowplow`.events", "snowplow`.events_raw"))

    raw_best = store_best = float("inf")
    for round_ in range(args.repeat):
        start = time.perf_counter()
        for i, table in enumerate(tables):
            backend.insert_arrow("`snowplow`.events_raw", table, {"insert_deduplication_token": f"raw-{round_}-{i}"})
        raw_best = min(raw_best, time.perf_counter() - start)
        start = time.perf_counter()
        offset = round_ * len(lines)
        for values in batches:
            store.write(Batch("enriched", "bench", 0, offset, offset + len(values) - 1, tuple(values)))
            offset += len(values)
        store_best = min(store_best, time.perf_counter() - start)
    [(raw_rows,)] = backend.query("SELECT count() FROM snowplow.events_raw")
    [(store_rows,)] = backend.query("SELECT count() FROM snowplow.events")
    [(bad_rows,)] = backend.query("SELECT count() FROM snowplow.bad_rows")
    wide = [r[0] for r in backend.query("SELECT name FROM system.columns WHERE database='snowplow' AND "
                                        "table='events' AND name LIKE '%\\_1'")]
    n = len(lines)
    print(f"rows per round: {n} in {len(batches)} batches of up to {args.batch}")
    print(f"raw insert_arrow (pre-built Arrow): {n / raw_best:,.0f} rows/s   rows in events_raw: {raw_rows} "
          f"(expected {n * args.repeat})")
    print(f"ClickHouseStore.write (TSV lines):  {n / store_best:,.0f} rows/s   rows in events: {store_rows} "
          f"(expected {n * args.repeat}), bad rows: {bad_rows}, wide columns: {len(wide)}")
    print(f"ratio store/raw: {raw_best / store_best:.2f}")
    store.close()


if __name__ == "__main__":
    main()
