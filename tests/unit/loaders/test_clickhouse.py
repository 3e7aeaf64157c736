"""The ClickHouse store on chdb (ClickHouse's engine in-process): DDL, rows, dedup, wide columns, bad rows."""
import json
from decimal import Decimal

import pytest

from loaders.base import Batch
from loaders.clickhouse import ClickHouseStore, column_type, events_ddl, wide_column
from processor.enriched import FIELDS
from snowmelt.config import ClickHouseConfig
from loader_lines import CHECKOUT_1_1, REFUND, checkout, make_enricher, page_view, tracker_events

EID = "5a1e2c3d-0000-4000-8000-{:012d}"


@pytest.fixture(scope="module")
def enricher(tmp_path_factory):
    return make_enricher(tmp_path_factory.mktemp("registry"))


@pytest.fixture
def store(chdb_store):
    return chdb_store


def batch(values, first=0, kind="enriched", topic="enriched"):
    return Batch(kind, topic, 0, first, first + len(values) - 1, tuple(values), 1_764_288_000_000)


def rows(store, sql):
    return store.backend.query(sql)


def test_ddl_types_partition_order_ttl(store, tmp_path):
    types = dict(rows(store, "SELECT name, type FROM system.columns WHERE database='snowplow' AND table='events'"))
    assert types["collector_tstamp"] == "DateTime64(3, 'UTC')" and types["event_id"] == "String"
    assert types["etl_tstamp"] == "Nullable(DateTime64(3, 'UTC'))"
    assert types["app_id"] == types["event_name"] == "LowCardinality(Nullable(String))"
    assert types["txn_id"] == "Nullable(Int32)" and types["geo_latitude"] == "Nullable(Float64)"
    assert types["tr_total"] == "Nullable(Decimal(18, 2))" and types["br_cookies"] == "Nullable(Bool)"
    assert all(types[name] == column_type(name) for name in FIELDS)
    [(engine, partition, sorting)] = rows(store, "SELECT engine, partition_key, sorting_key FROM system.tables "
                                                 "WHERE database='snowplow' AND name='events'")
    assert engine == "ReplacingMergeTree" and partition == "toDate(collector_tstamp)"
    assert sorting == "app_id, event_name, collector_tstamp, event_id"
    [(create,)] = rows(store, "SELECT create_table_query FROM system.tables WHERE database='snowplow' AND name='events'")
    assert " TTL " not in create and "non_replicated_deduplication_window" in create
    assert "min_bytes_for_wide_part = 1073741824" in create
    assert ("bad_rows",) in rows(store, "SELECT name FROM system.tables WHERE database='snowplow'")


def test_ttl_from_config_added_and_removed_on_reopen(store, tmp_path):
    query = "SELECT create_table_query FROM system.tables WHERE database='snowplow' AND name='events'"
    store.close()
    for days in (30, 0):
        again = ClickHouseStore(ClickHouseConfig(backend="chdb", chdb_path=str(tmp_path / "ch"), ttl_days=days))
        again.open()
        [(create,)] = rows(again, query)
        assert ("TTL toDateTime(collector_tstamp) + toIntervalDay(30)" in create) == (days == 30)
        again.close()


def test_a_table_made_before_gets_compact_parts_unless_it_chose_its_own(store, tmp_path):
    """Tables made by an older version, without the part-format setting, get it when the store opens; a table
    whose owner set it keeps that value."""
    query = "SELECT create_table_query FROM system.tables WHERE database='snowplow' AND name='events'"
    for own, expected in ((None, "min_bytes_for_wide_part = 1073741824"), ("0", "min_bytes_for_wide_part = 0")):
        store.backend.command("DROP TABLE snowplow.events SYNC")
        older = events_ddl("snowplow", 0).replace(", min_bytes_for_wide_part = 1073741824", "")
        store.backend.command(older + (f", min_bytes_for_wide_part = {own}" if own else ""))
        [(create,)] = rows(store, query)
        assert ("min_bytes_for_wide_part" in create) == (own is not None)
        store.open()
        [(create,)] = rows(store, query)
        assert expected in create, create


def test_parts_are_compact_beyond_the_engines_default_size(store, enricher):
    """Parts larger than ClickHouse's default threshold (10 MiB uncompressed) stay Compact, merged ones too:
    merging a streaming load's small Wide parts cost twice the CPU (``COMPACT_PART_BYTES``)."""
    template = tracker_events(enricher, [checkout(EID.format(0))])[0]
    old = EID.format(0).encode()
    for first in (0, 12_000):
        store.write(batch([template.replace(old, EID.format(first + i).encode()) for i in range(12_000)], first))
    store.backend.command("OPTIMIZE TABLE snowplow.events FINAL")
    parts = rows(store, "SELECT part_type, rows, data_uncompressed_bytes FROM system.parts "
                        "WHERE database='snowplow' AND table='events' AND active")
    assert [(kind, count) for kind, count, _ in parts] == [("Compact", 24_000)], parts
    assert parts[0][2] > 10 * 1024 * 1024, parts


def test_enriched_batch_lands_field_for_field(store, enricher):
    lines = tracker_events(enricher, [checkout(EID.format(1)), page_view(EID.format(2), e="tr", tr_id="o1",
                                                                         tr_tt="1.005")])
    store.write(batch(lines))
    got = rows(store, "SELECT event_id, app_id, event, collector_tstamp, tr_total, br_cookies, dvce_screenwidth, "
                      "unstruct_event, contexts, event_name FROM snowplow.events ORDER BY event_id")
    fields = [line.decode().split("\t") for line in lines]
    assert [r[0] for r in got] == [EID.format(1), EID.format(2)]
    ue, tr = got
    assert ue[1] == "shop" and ue[2] == "unstruct" and ue[9] == "checkout"
    assert str(ue[3]).startswith("2025-11-28 00:00:00.123")
    assert ue[7] == fields[0][FIELDS.index("unstruct_event")] and ue[8] == fields[0][FIELDS.index("contexts")]
    assert Decimal(str(tr[4])) == Decimal("1.00") and tr[5] is True and tr[6] == 1920
    # every atomic field: what ClickHouse returns as text is what the TSV held (nulls for empty fields)
    text = store.backend.query("SELECT " + ", ".join(f"toString(`{name}`)" for name in FIELDS if name not in (
        "tr_total", "br_cookies") and "tstamp" not in name) + " FROM snowplow.events ORDER BY event_id")
    names = [name for name in FIELDS if name not in ("tr_total", "br_cookies") and "tstamp" not in name]
    for tsv, row in zip(fields, text):
        for name, value in zip(names, row):
            assert (value or "") == tsv[FIELDS.index(name)], name


def test_wide_columns_for_new_schemas_and_minor_versions(store, enricher):
    store.write(batch(tracker_events(enricher, [checkout(EID.format(1))])))
    columns = {r[0] for r in rows(store, "SELECT name FROM system.columns WHERE database='snowplow' AND table='events'")}
    assert {"unstruct_event_com_acme_checkout_1", "contexts_com_acme_product_1"} <= columns
    # mid-stream: a new minor version (same column) and a new schema (new column, camelCase -> snake_case)
    later = tracker_events(enricher, [checkout(EID.format(2), CHECKOUT_1_1, {"total": 5, "coupon": "X"},
                                               products=(("A", 1), ("B", 2))),
                                      checkout(EID.format(3), REFUND, {"amount": 3})])
    store.write(batch(later, first=1))
    got = rows(store, "SELECT event_id, unstruct_event_com_acme_checkout_1, unstruct_event_com_acme_refund_issued_2, "
                      "contexts_com_acme_product_1 FROM snowplow.events ORDER BY event_id")
    assert [(r[0], r[1] and json.loads(r[1]), r[2] and json.loads(r[2])) for r in got] == [
        (EID.format(1), {"total": 19.99}, None),
        (EID.format(2), {"total": 5, "coupon": "X"}, None),
        (EID.format(3), None, {"amount": 3})]
    assert [json.loads(c) for c in got[1][3]] == [{"sku": "A", "price": 1}, {"sku": "B", "price": 2}]
    assert wide_column("contexts", "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0")[0] == \
        "contexts_org_w3_performance_timing_1"


def test_same_token_twice_counts_once_and_event_id_dedup_by_final(store, enricher):
    lines = tracker_events(enricher, [page_view(EID.format(i)) for i in range(1, 6)])
    store.write(batch(lines))
    store.write(batch(lines))  # a retry of the same batch: same token
    assert rows(store, "SELECT count() FROM snowplow.events") == [(5,)]
    store.write(batch(lines, first=100))  # the same events again in another batch
    assert rows(store, "SELECT count() FROM snowplow.events") == [(10,)]
    assert rows(store, "SELECT count() FROM snowplow.events FINAL") == [(5,)]
    store.backend.command("OPTIMIZE TABLE snowplow.events FINAL")
    assert rows(store, "SELECT count(), uniqExact(event_id) FROM snowplow.events") == [(5, 5)]


def test_malformed_line_goes_to_bad_rows_and_the_rest_lands(store, enricher):
    lines = tracker_events(enricher, [page_view(EID.format(i)) for i in range(1, 4)])
    short = b"shop\tweb\tthree fields"
    store.write(batch([lines[0], short, lines[1], lines[2]]))
    store.write(batch([lines[0], short, lines[1], lines[2]]))
    assert rows(store, "SELECT count() FROM snowplow.events") == [(3,)]
    got = rows(store, "SELECT schema, failure, payload, batch_token FROM snowplow.bad_rows")
    assert len(got) == 1
    schema, failure, payload, token = got[0]
    assert schema.endswith("/loader_parsing_error/jsonschema/2-0-0")
    assert json.loads(failure) == {"type": "FieldNumberMismatch", "fieldCount": 3}
    assert json.loads(payload) == short.decode() and token == "enriched-0-0-3:bad"


def test_bad_rows_land_once(store):
    doc = {"schema": "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0",
           "data": {"processor": {"artifact": "snowmelt-enrich", "version": "0.1.0"},
                    "failure": {"timestamp": "2026-11-27T23:58:43.123Z", "errors": ["boom"]}, "payload": "p"}}
    values = [json.dumps(doc).encode(), b'{"schema": "not a bad row"}']
    store.write(batch(values, kind="bad", topic="bad"))
    store.write(batch(values, kind="bad", topic="bad"))
    got = rows(store, "SELECT schema, processor_artifact, toString(failure_tstamp), JSONExtractString(payload), "
                      "batch_token FROM snowplow.bad_rows ORDER BY schema")
    assert got == [("iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0", "snowmelt-enrich",
                    "2026-11-27 23:58:43.123", "p", "bad-0-0-1"),
                   ("not a bad row", "", "2025-11-28 00:00:00.000", "", "bad-0-0-1")]


def test_bad_rows_of_every_shape_land_one_row_each(store):
    # chdb reads plain UTF-8 lines from a file (its Arrow reader holds the interpreter's lock); a line
    # break inside a value, a carriage return or bytes that are not UTF-8 take the Arrow way
    values = [b'{"schema":"a","n":1}', b'{"schema":\n"b"}', b'{"schema":"c"}\r', b'{"schema":"d\xff"}',
              b"'quoted' \\ row"]
    store.write(batch(values, kind="bad", topic="it's bad"))
    store.write(batch(values[:1] + values[4:], kind="bad", topic="plain"))
    store.write(batch(values[:1] + values[4:], kind="bad", topic="plain"))  # the same token again: once
    got = rows(store, "SELECT batch_token, schema, line FROM snowplow.bad_rows")
    assert sorted((token, schema) for token, schema, _ in got) == [
        ("it's bad-0-0-4", ""), ("it's bad-0-0-4", "a"), ("it's bad-0-0-4", "b"), ("it's bad-0-0-4", "c"),
        ("it's bad-0-0-4", "d\ufffd"), ("plain-0-0-1", ""), ("plain-0-0-1", "a")]
    assert sorted(line for token, _, line in got if token == "plain-0-0-1") == ["'quoted' \\ row", '{"schema":"a","n":1}']
    assert not list(store.backend._insert_file.parent.glob("*.tmp"))


@pytest.mark.parametrize("message, unavailable", [
    ("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)", True),
    ("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)", True),
    ("Cannot write to file /data/tmp_insert/data.bin: No space left on device", True),
    ("Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR)", False),
])
def test_chdb_errors_that_pass_with_time_make_the_store_unavailable(message, unavailable):
    from loaders.base import StoreUnavailable
    from loaders.clickhouse import _unavailable_when_retryable

    with pytest.raises(StoreUnavailable if unavailable else RuntimeError, match="Code|space"):
        with _unavailable_when_retryable():
            raise RuntimeError(message)


def test_lines_read_from_a_file_land_as_the_same_rows_as_values(store):
    # snowmelt up's store reads its daily files as Lines (joined bytes, split only if something asks):
    # the bad rows are written to chdb's file as they are, a carriage return or bytes that are not UTF-8
    # still go the Arrow way
    from loaders.base import Lines

    values = [b'{"schema":"a","n":1}', b"'quoted' \\ row", b'{"schema":"c"}\r', b'{"schema":"d\xff"}']
    store.write(Batch("bad", "as-values", 0, 0, 3, tuple(values), 1_764_288_000_000))
    store.write(Batch("bad", "as-lines", 0, 0, 3, Lines(b"\n".join(values) + b"\n"), 1_764_288_000_000))
    store.write(Batch("bad", "plain-lines", 0, 0, 1, Lines(b"\n".join(values[:2]) + b"\n"), 1_764_288_000_000))
    got = rows(store, "SELECT batch_token, line FROM snowplow.bad_rows ORDER BY batch_token, line")
    by_token = {}
    for token, line in got:
        by_token.setdefault(token.split("-0-")[0], []).append(line)
    assert by_token["as-lines"] == by_token["as-values"] and len(by_token["as-values"]) == 4
    assert by_token["plain-lines"] == sorted(v.decode() for v in values[:2])


def test_a_batch_read_in_several_blocks_lands_whole(store, enricher, monkeypatch):
    # more than one CSV read block (4 MB; 64 KB here): each block's low-cardinality columns get a dictionary
    # of their own, which an Arrow file (how chdb is given the rows) only takes once unified
    from loaders import arrow

    monkeypatch.setattr(arrow, "_READ_BLOCK", 64 << 10)
    events = [page_view(EID.format(n), url=f"https://shop{(n // 50) % 7}.acme.com/{n}") for n in range(600)]
    lines = tracker_events(enricher, events)
    assert len(b"\n".join(lines)) > 2 * arrow._READ_BLOCK
    store.write(batch(lines))
    [[count, hosts]] = rows(store, "SELECT count(), uniqExact(page_urlhost) FROM snowplow.events")
    assert (count, hosts) == (600, 7)


def test_a_prepared_batch_lands_as_written_without_parsing_it_again(store, enricher, monkeypatch):
    # the loader prepares (parses) a batch while the one before is inserted; the insert then only inserts,
    # and a retry of the prepared batch is deduplicated like any other
    from loaders import clickhouse

    lines = tracker_events(enricher, [checkout(EID.format(1)), page_view(EID.format(2))])
    ready = store.prepare(batch([lines[0], b"shop\tweb\tthree fields", lines[1]]))
    assert store.prepare(batch([b'{"schema": "bad"}'], kind="bad", topic="bad")).prepared is None
    monkeypatch.setattr(clickhouse, "enriched_table", lambda *_: pytest.fail("a prepared batch parsed again"))
    store.write(ready)
    store.write(ready)
    assert rows(store, "SELECT event_id, unstruct_event_com_acme_checkout_1 FROM snowplow.events "
                       "ORDER BY event_id") == [(EID.format(1), '{"total":19.99}'), (EID.format(2), None)]
    [(schema, token)] = rows(store, "SELECT schema, batch_token FROM snowplow.bad_rows")
    assert schema.endswith("/loader_parsing_error/jsonschema/2-0-0") and token == "enriched-0-0-2:bad"


def test_the_engine_start_up_pages_are_given_back_once_and_the_store_still_works(store, enricher, monkeypatch):
    """``open`` gives back the pages of chdb's, pyarrow's and numpy's libraries only their start-up read
    (``snowmelt.residency``); opened again (after an outage) it keeps what its statements have used since, and
    pyarrow's are given back once a process."""
    import loaders.clickhouse as clickhouse

    calls = []
    monkeypatch.setattr(clickhouse, "release_package_pages", lambda *packages: calls.append(packages) or 1024)
    store.open()  # the fixture's open gave them back already
    assert calls == [] and store.backend.release_startup_memory() is None
    assert clickhouse._release_conversion_pages() is None
    store.write(batch(tracker_events(enricher, [page_view(EID.format(7))])))
    assert rows(store, "SELECT event_id FROM snowplow.events") == [(EID.format(7),)]


def test_every_insert_runs_on_one_of_the_engines_threads(store, enricher, monkeypatch):
    # a pipeline planned for every core cost a 250-row insert 1.16x the instructions, 20 bad rows 1.35x
    session = store.backend._session
    run = session.query
    inserts = []

    def recording(sql, *args, **kwargs):
        if sql.lstrip().upper().startswith("INSERT"):
            inserts.append(sql)
        return run(sql, *args, **kwargs)

    monkeypatch.setattr(session, "query", recording)
    lines = tracker_events(enricher, [page_view(EID.format(i)) for i in range(1, 3)])
    store.write(batch([lines[0], b"shop\tweb\tthree fields", lines[1]]))
    store.write(batch([b'{"schema": "not a bad row"}'], kind="bad", topic="bad"))
    store.backend.insert_lines("snowplow.bad_rows", [b"a line\rwith a carriage return"], "t", 0, {})
    assert len(inserts) == 4  # the events, the malformed line, the bad batch, a line the Arrow way
    assert all(" SETTINGS max_threads = 1" in sql for sql in inserts)
    assert rows(store, "SELECT count() FROM snowplow.events") == [(2,)]
    assert rows(store, "SELECT count() FROM snowplow.bad_rows") == [(3,)]


def test_an_event_twice_in_one_batch_is_one_row_after_a_merge_or_with_final_and_the_insert_does_not_merge(
        store, enricher):
    # merging the inserted block first (optimize_on_insert) cost a 1,250-row insert 1.31x the instructions
    line = tracker_events(enricher, [page_view(EID.format(1))])[0]
    other = tracker_events(enricher, [page_view(EID.format(2))])[0]
    store.write(batch([line, other, line]))
    assert rows(store, "SELECT count() FROM snowplow.events") == [(3,)]
    assert rows(store, "SELECT count(), uniqExact(event_id) FROM snowplow.events FINAL") == [(2, 2)]
    store.backend.command("OPTIMIZE TABLE snowplow.events FINAL")
    assert rows(store, "SELECT count(), uniqExact(event_id) FROM snowplow.events") == [(2, 2)]
