"""Enriched TSV -> typed Arrow table: types from FIELD_KINDS, values as the analytics SDK reads them."""
import json
from datetime import datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from loaders.arrow import LOADER_PARSING_ERROR, LOW_CARDINALITY, enriched_schema, enriched_table
from processor.analytics import parse_tsv
from processor.enriched import FIELD_KINDS, FIELDS
from loader_lines import checkout, make_enricher, page_view, tracker_events

EID = "0c9e1f6a-2b3c-4d5e-8f90-{:012d}"


@pytest.fixture(scope="module")
def enricher(tmp_path_factory):
    return make_enricher(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def lines(enricher):
    return tracker_events(enricher, [checkout(EID.format(1)), page_view(EID.format(2), e="tr", tr_id="o1",
                                                                        tr_tt="1.005", tr_tx="19.99")])


def test_schema_follows_field_kinds():
    schema = enriched_schema()
    assert schema.names == list(FIELDS)
    expected = {"timestamp": pa.timestamp("ms", tz="UTC"), "int": pa.int32(), "float": pa.float64(),
                "decimal": pa.decimal128(18, 2), "bool": pa.bool_(), "json": pa.string()}
    for field in schema:
        kind = FIELD_KINDS[field.name]
        if kind == "string":
            assert field.type == (pa.dictionary(pa.int32(), pa.string()) if field.name in LOW_CARDINALITY
                                  else pa.string())
        else:
            assert field.type == expected[kind], field.name
    assert not schema.field("event_id").nullable and schema.field("app_id").nullable


def test_rows_match_the_analytics_sdk_field_for_field(lines):
    parsed = enriched_table(lines)
    assert parsed.malformed == [] and parsed.table.num_rows == 2
    for line, row in zip(lines, parsed.table.to_pylist()):
        sdk = parse_tsv(line.decode())
        for name in FIELDS:
            want, got = sdk.get(name), row[name]
            kind = FIELD_KINDS[name]
            if want is None or name.startswith(("contexts", "unstruct_event", "derived_contexts")):
                continue
            if kind == "timestamp":
                assert got == datetime.fromisoformat(want.replace("Z", "+00:00")), name
            elif kind == "decimal":
                assert got == Decimal(str(want)).quantize(Decimal("0.01"), rounding="ROUND_HALF_EVEN"), name
            else:
                assert got == want, name
        # JSON columns are the TSV's text, byte for byte
        fields = line.decode().split("\t")
        for name in ("contexts", "unstruct_event", "derived_contexts"):
            assert row[name] == (fields[FIELDS.index(name)] or None)
        assert all(row[name] is None for name in FIELDS if fields[FIELDS.index(name)] == "")


def test_decimals_round_half_to_even_to_cents(lines):
    row = enriched_table(lines).table.to_pylist()[1]
    assert row["tr_total"] == Decimal("1.00") and row["tr_tax"] == Decimal("19.99")
    assert row["collector_tstamp"] == datetime(2025, 11, 28, 0, 0, 0, 123000, tzinfo=timezone.utc)
    assert row["br_cookies"] is True and row["dvce_screenwidth"] == 1920


def test_malformed_lines_are_returned_apart_and_the_rest_lands(lines):
    good = list(lines) * 3
    short = b"shop\tweb\tonly three"
    not_int = lines[1].split(b"\t")
    not_int[FIELDS.index("txn_id")] = b"twelve"
    not_int = b"\t".join(not_int)
    no_id = lines[1].split(b"\t")
    no_id[FIELDS.index("event_id")] = b""
    no_id = b"\t".join(no_id)
    values = good[:2] + [short] + good[2:4] + [not_int, b""] + good[4:] + [no_id]
    parsed = enriched_table(values)
    assert parsed.table.num_rows == len(good)
    assert parsed.table.column("event_id").to_pylist() == [line.split(b"\t")[6].decode() for line in good]
    reasons = {m.line: m.reason for m in parsed.malformed}
    assert set(reasons) == {short, not_int, b"", no_id}
    assert "3 tab-separated fields" in reasons[short] and "twelve" in reasons[not_int]
    assert "event_id" in reasons[no_id]
    row = json.loads(next(m for m in parsed.malformed if m.line == short).bad_row("snowmelt-test"))
    assert row["schema"] == LOADER_PARSING_ERROR
    assert row["data"]["failure"] == {"type": "FieldNumberMismatch", "fieldCount": 3}
    assert row["data"]["payload"] == short.decode()
    row = json.loads(next(m for m in parsed.malformed if m.line == not_int).bad_row("snowmelt-test"))
    assert row["data"]["failure"]["type"] == "RowDecodingError"


def test_line_break_inside_a_value_is_malformed(lines):
    broken = lines[0][:50] + b"\n" + lines[0][50:]
    parsed = enriched_table([lines[1], broken])
    assert parsed.table.num_rows == 1 and [m.line for m in parsed.malformed] == [broken]


def test_empty_batch():
    parsed = enriched_table([])
    assert parsed.table.num_rows == 0 and parsed.table.schema == enriched_schema()
