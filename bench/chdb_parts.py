"""What the ``events`` table's part format costs in chdb: the merges of a streaming load, and scans.

    python -m bench.chdb_parts merges [--inserts 160] [--rows 1250] [--per-second 8] [--rounds 2]
    python -m bench.chdb_parts scans [--rows 1000000]
    python -m bench.chdb_parts inserts [--sizes 1,100,1250,5000] [--inserts 40]
    python -m bench.chdb_parts insert-settings [--sizes 250,1250] [--inserts 10] [--bad-rows 20]

Rows are tracker traffic enriched by the stage (``bench.bench_load_clickhouse.build_lines``), parsed
into Arrow once; every insert gets fresh event ids, so that ReplacingMergeTree's merges keep every row.

``merges``
    For each table setting (the store's DDL, then the same with the engine's default of Wide parts from
    10 MiB, and the variants tried beside it), a fresh table gets ``--inserts`` inserts of ``--rows``
    rows, paced at ``--per-second`` as the ClickHouse loader writes them (at 10,000 events/s and
    ``load.batch_timeout`` 0.25 s on two partitions: 8 inserts of ~1,250 rows a second).  Prints the
    CPU-seconds of chdb's merge threads (``MergeMutate``) and of all threads, over the inserts and
    2 s after, and the parts left.
``scans``
    Builds a ``--rows`` table in one Compact part and one Wide part (``OPTIMIZE FINAL``) and times five
    queries on each, best of five runs.
``inserts``
    What one insert costs, as the loader makes it (:meth:`ChdbBackend.insert_arrow`), with merges
    stopped: ``--inserts`` inserts of each of ``--sizes`` rows into the store's table, into a table of
    the same columns on the ``Null`` engine (the insert without its part), and into a table of ten of
    those columns.  Prints the CPU milliseconds an insert and microseconds a row, all threads, and
    how they divide between the calling thread (``python``) and chdb's.
``insert-settings``
    The machine instructions of one insert as the loader makes it (``ChdbBackend.INSERT_SETTINGS``, one
    of the engine's threads; into ``events`` also ``EVENTS_INSERT_SETTINGS``, no merge of the inserted
    block) against the same insert with the engine's defaults (``max_threads = 0``, a thread a core;
    ``optimize_on_insert = 1``) and, into ``events``, with one thread alone; counted by callgrind
    (``bench.callgrind``: the machine's noise does not move them): ``--inserts`` inserts of each of
    ``--sizes`` rows into the store's table, and of ``--bad-rows`` bad rows into ``bad_rows``, each way
    in a process of its own after three inserts not counted.  Needs ``valgrind``; each count takes about
    half a minute (chdb's start-up under callgrind).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa

from bench import callgrind
from loaders.clickhouse import COMPACT_PARTS, EVENTS_INSERT_SETTINGS, ChdbBackend, bad_rows_ddl, events_ddl

DEFAULT_WIDE = 10 * 1024 * 1024  # the engine's own min_bytes_for_wide_part

VARIANTS = {
    "the store's DDL (Compact below 1 GiB)": "",
    "Wide from 10 MiB (the engine's default)": f"min_bytes_for_wide_part = {DEFAULT_WIDE}",
    "Wide from 10 MiB, no vertical merges": f"min_bytes_for_wide_part = {DEFAULT_WIDE}, "
                                            "enable_vertical_merge_algorithm = 0",
    "Compact below 100 MiB": "min_bytes_for_wide_part = 104857600",
}

QUERIES = {
    "count by event name": "SELECT count() FROM {t} WHERE event_name = 'page_view'",
    "sessions grouped": "SELECT count() FROM (SELECT domain_sessionid, count(), min(derived_tstamp), "
                        "max(derived_tstamp) FROM {t} GROUP BY domain_sessionid)",
    "top pages": "SELECT page_urlpath, count() c FROM {t} GROUP BY page_urlpath ORDER BY c DESC LIMIT 10",
    "ten columns of every row": "SELECT app_id, platform, event, user_id, domain_userid, page_url, page_referrer, "
                                "br_lang, os_timezone, geo_country FROM {t} FORMAT Null",
    "one row by id": "SELECT * FROM {t} WHERE event_id = 'none' FORMAT Null",
}


def table_ddl(name: str, settings: str) -> str:
    """The store's ``events`` DDL as table ``x.NAME``, with ``settings`` in place of its part-format one."""
    ddl = events_ddl("x", 0).replace("`x`.events", f"x.{name}")
    if f", {COMPACT_PARTS}" not in ddl:
        raise SystemExit(f"the store's DDL no longer ends with {COMPACT_PARTS!r}: update bench/chdb_parts.py")
    return ddl.replace(f", {COMPACT_PARTS}", f", {settings}") if settings else ddl


def fresh_ids(table: pa.Table) -> pa.Table:
    """``table`` with new event ids."""
    col = table.schema.get_field_index("event_id")
    field = table.schema.field(col)
    return table.set_column(col, field, pa.array([str(uuid.uuid4()) for _ in range(table.num_rows)], field.type))


def parts(backend: ChdbBackend, name: str) -> list[tuple]:
    return backend.query(f"SELECT part_type, count(), sum(rows) FROM system.parts WHERE database = 'x' "
                         f"AND table = '{name}' AND active GROUP BY part_type")


def merges(backend: ChdbBackend, base: pa.Table, args) -> None:
    from bench.profiling import cpu_by_thread, thread_cpu

    tables = [base.slice(i, args.rows) for i in range(0, base.num_rows - args.rows + 1, args.rows)]
    pid = os.getpid()
    for round_ in range(args.rounds):
        for n, (label, settings) in enumerate(VARIANTS.items()):
            name = f"m{round_}_{n}"
            backend.command(table_ddl(name, settings))
            batches = [fresh_ids(tables[i % len(tables)]) for i in range(args.inserts)]
            before = thread_cpu(pid)
            start = time.perf_counter()
            for i, batch in enumerate(batches):
                if (wait := start + i / args.per_second - time.perf_counter()) > 0:
                    time.sleep(wait)
                backend.insert_arrow(f"x.{name}", batch, {"insert_deduplication_token": uuid.uuid4().hex})
            time.sleep(2.0)  # the merges the last inserts started
            used = cpu_by_thread(before, thread_cpu(pid))
            print(f"round {round_ + 1} {label:<42} merges {used.get('MergeMutate', 0.0):5.2f} CPU-s, "
                  f"all threads {sum(used.values()):5.2f}; parts {parts(backend, name)}", flush=True)
            backend.command(f"DROP TABLE x.{name} SYNC")


def scans(backend: ChdbBackend, base: pa.Table, args) -> None:
    kinds = {"Compact": "min_bytes_for_wide_part = 10995116277760", "Wide": "min_bytes_for_wide_part = 0"}
    for kind, settings in kinds.items():
        backend.command(table_ddl(kind.lower(), settings))
    whole = pa.concat_tables([base] * max(1, 100_000 // base.num_rows))
    for _ in range(max(1, args.rows // whole.num_rows)):
        batch = fresh_ids(whole)
        for kind in kinds:
            backend.insert_arrow(f"x.{kind.lower()}", batch, {"insert_deduplication_token": uuid.uuid4().hex})
    for kind in kinds:
        backend.command(f"OPTIMIZE TABLE x.{kind.lower()} FINAL")
        print(f"{kind}: {parts(backend, kind.lower())}")
    for label, sql in QUERIES.items():
        for kind in kinds:
            best = min(_timed(backend, sql.format(t=f"x.{kind.lower()}")) for _ in range(5))
            print(f"{label:<26} {kind:<8} {best[0] * 1000:7.1f} ms, {best[1] * 1000:7.1f} ms of CPU", flush=True)


def _timed(backend: ChdbBackend, sql: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every thread of this process) of one query."""
    c0, t0 = time.process_time(), time.perf_counter()
    backend.query(sql)
    return time.perf_counter() - t0, time.process_time() - c0


#: the ten columns of the ``inserts`` mode's narrow table: its ordering key, and six more
NARROW = ("event_id", "app_id", "event_name", "collector_tstamp", "platform", "event", "user_id",
          "domain_userid", "page_url", "page_referrer")


def inserts(backend: ChdbBackend, base: pa.Table, args) -> None:
    from bench.profiling import cpu_by_thread, thread_cpu
    from loaders.clickhouse import column_type

    backend.command(table_ddl("store", ""))
    backend.command("CREATE TABLE x.null AS x.store ENGINE = Null")
    narrow = ", ".join(f"`{name}` {column_type(name)}" for name in NARROW)
    backend.command(f"CREATE TABLE x.narrow ({narrow}) ENGINE = ReplacingMergeTree "
                    "PARTITION BY toDate(collector_tstamp) ORDER BY (app_id, event_name, collector_tstamp, event_id) "
                    "SETTINGS allow_nullable_key = 1")
    for name in ("store", "narrow"):
        backend.command(f"SYSTEM STOP MERGES x.{name}")
    whole = pa.concat_tables([base] * (1 + max(args.sizes) // base.num_rows))
    pid = os.getpid()
    for rows in args.sizes:
        batches = [fresh_ids(whole.slice(0, rows)) for _ in range(args.inserts)]
        for name in ("store", "null", "narrow"):
            data = [b.select(list(NARROW)) for b in batches] if name == "narrow" else batches
            backend.insert_arrow(f"x.{name}", data[0], {})  # the first insert of a table reads its metadata
            before, c0 = thread_cpu(pid), time.process_time()
            for batch in data:
                backend.insert_arrow(f"x.{name}", batch, {"insert_deduplication_token": uuid.uuid4().hex})
            cpu = (time.process_time() - c0) / len(data)
            used = cpu_by_thread(before, thread_cpu(pid))
            calling = used.get("python", 0.0) / len(data)
            print(f"{rows:>6} rows into {name:<7} {cpu * 1000:6.1f} ms of CPU an insert "
                  f"({calling * 1000:5.1f} in the calling thread), {cpu / rows * 1e6:8.1f} us a row", flush=True)


#: the ``insert-settings`` mode's ways for each table: label -> each insert's settings besides its token (over
#: ``ChdbBackend.INSERT_SETTINGS``); the first is the engine's defaults, the last the loader's
INSERT_WAYS = {
    "events": {
        "the engine's defaults": {"max_threads": 0, "optimize_on_insert": 1},
        "one thread": {"optimize_on_insert": 1},
        "one thread, no merge (the loader's)": dict(EVENTS_INSERT_SETTINGS),
    },
    "bad_rows": {
        "the engine's defaults": {"max_threads": 0},
        "one thread (the loader's)": {},
    },
}

ROOT = Path(__file__).resolve().parents[1]


def _bad_line(i: int) -> bytes:
    """A bad row of about 1 KB, shaped like enrich's schema violations."""
    return json.dumps({
        "schema": "iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-0",
        "data": {"processor": {"artifact": "snowmelt-enrich", "version": "0.1.0"},
                 "failure": {"timestamp": "2026-12-05T12:00:00.000Z", "messages": [
                     {"schemaKey": "iglu:com.acme/product/jsonschema/1-0-0",
                      "error": {"error": "ValidationError", "dataReports": [
                          {"message": f"$.price: -{i} is less than the minimum of 0", "path": "$.price",
                           "keyword": "minimum", "targets": ["0"]}]}}]},
                 "payload": {"enriched": {"event_id": str(uuid.UUID(int=i)), "app_id": "shop"},
                             "raw": {"parameters": [{"name": "e", "value": "ue"}] * 12}}},
    }, separators=(",", ":")).encode()


def _insert_child(flag: str, target: str, label: str, rows: str, inserts: str, records: str) -> None:
    """Under callgrind: ``inserts`` inserts of ``rows`` rows into ``target`` (``events`` or ``bad_rows``) the
    ``INSERT_WAYS[target][label]`` way, three more before them not counted."""
    settings, rows_n = INSERT_WAYS[target][label], int(rows)
    if target == "events":
        from bench.bench_load_clickhouse import build_lines
        from loaders.arrow import enriched_table

        base = enriched_table(build_lines(int(records))).table
        whole = pa.concat_tables([base] * (1 + rows_n // base.num_rows)).slice(0, rows_n)
        batches = [fresh_ids(whole) for _ in range(3 + int(inserts))]
    else:
        batches = [[_bad_line(n * rows_n + i) for i in range(rows_n)] for n in range(3 + int(inserts))]
    with tempfile.TemporaryDirectory(prefix="bench-chdb-insert-") as path:
        backend = ChdbBackend(path)
        try:
            backend.command("CREATE DATABASE IF NOT EXISTS x")
            backend.command(table_ddl("store", ""))
            backend.command(bad_rows_ddl("x"))
            for table in ("store", "bad_rows"):
                backend.command(f"SYSTEM STOP MERGES x.{table}")

            def insert(batch) -> None:
                token = {"insert_deduplication_token": uuid.uuid4().hex, **settings}
                if target == "events":
                    backend.insert_arrow("x.store", batch, token)
                else:
                    backend.insert_lines("x.bad_rows", batch, uuid.uuid4().hex, 0, token)

            for batch in batches[:3]:  # the table's metadata read, the formats' first use
                insert(batch)
            with callgrind.counted_pass(flag) as report:
                for batch in batches[3:]:
                    insert(batch)
                report["inserts"] = len(batches) - 3
        finally:
            backend.close()


def insert_settings(args) -> None:
    if not callgrind.available():
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"instructions an insert, {args.inserts} inserts counted each (callgrind)")
    for target, rows in [("events", n) for n in args.sizes] + [("bad_rows", args.bad_rows)]:
        default = None
        for label in INSERT_WAYS[target]:
            total, report = callgrind.count(
                lambda flag: [sys.executable, "-m", "bench.chdb_parts", "insert-settings", "--child", flag, target,
                              label, str(rows), str(args.inserts), str(args.records)],
                timeout=900.0, env=env)
            per_insert = total / report["inserts"]
            default = default or per_insert
            print(f"{rows:>6} rows into {target:<8} {label:<36} {per_insert:>14,.0f}  {per_insert / default:.3f}x",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("merges", "scans", "inserts", "insert-settings"))
    parser.add_argument("--inserts", type=int, default=None,
                        help="merges: 160; inserts: 40 for each size; insert-settings: 10 for each size")
    parser.add_argument("--rows", type=int, default=None, help="rows an insert (merges: 1250) or in all (scans: 1M)")
    parser.add_argument("--per-second", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--records", type=int, default=None,
                        help="bench traffic records to enrich for the rows (3000; insert-settings: 300)")
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")], default=None,
                        help="inserts, insert-settings: rows an insert, comma-separated (1,100,1250,5000; "
                             "insert-settings: 250,1250)")
    parser.add_argument("--bad-rows", type=int, default=20, help="insert-settings: bad rows an insert")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _insert_child(*args.child)
        return
    args.rows = args.rows or (1250 if args.what == "merges" else 1_000_000)
    args.inserts = args.inserts or {"merges": 160, "insert-settings": 10}.get(args.what, 40)
    args.records = args.records or (300 if args.what == "insert-settings" else 3000)
    args.sizes = args.sizes or ([250, 1250] if args.what == "insert-settings" else [1, 100, 1250, 5000])
    if args.what == "insert-settings":
        insert_settings(args)
        return

    from bench.bench_load_clickhouse import build_lines
    from loaders.arrow import enriched_table

    base = enriched_table(build_lines(args.records)).table
    with tempfile.TemporaryDirectory(prefix="bench-chdb-parts-") as path:
        backend = ChdbBackend(path)
        backend.command("CREATE DATABASE IF NOT EXISTS x")
        try:
            {"merges": merges, "scans": scans, "inserts": inserts}[args.what](backend, base, args)
        finally:
            backend.close()


if __name__ == "__main__":
    main()
