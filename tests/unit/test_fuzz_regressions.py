"""Inputs the fuzzers (tests/fuzz/targets.py) found crashing, kept as regression tests.

Each test states the input and what must happen instead of the crash.  The
last test replays the raw fuzzer inputs through the fuzz targets themselves
when atheris is installed.
"""
import base64
import json

import pytest

from ext import SCHEMA, CollectorPayload, encode_collector_payload
from processor import badrows
from processor.enriched import FIELD_INDEX
from processor.iglu import Resolver
from processor.stage import Enricher
from tests.services.payloads import TP2

NOW = 1_764_288_005.0


@pytest.fixture(scope="module")
def enricher():
    return Enricher(Resolver([]), clock=lambda: NOW)


def raw(**fields):
    base = {"schema": SCHEMA, "ip_address": "203.0.113.9", "timestamp": 1_764_288_000_123, "encoding": "UTF-8",
            "collector": "snowmelt-test", "path": "/i", "querystring": "e=pv&aid=shop&url=https%3A%2F%2Fa.com%2F"}
    base.update(fields)
    return encode_collector_payload(CollectorPayload(**base))


def only_bad_row(out) -> dict:
    assert out.good == [] and len(out.bad) == 1, (out.good, out.bad)
    return json.loads(out.bad[0].decode("utf-8"))


# Found by fuzz_enrich: a CollectorPayload whose i64 timestamp is beyond datetime's range
# (2**63-1 ms) raised ValueError building the bad row's request context, and one that
# reached the TSV raised OverflowError formatting collector_tstamp.  Such a record was then made a
# collector_payload_format_violation of snowmelt's own; the oracle's envelope corpus showed 3.9.0
# keeping it: a timestamp from year 0 to 9999 is the event's (1969, year 0), any other fails the event
# with formatCollectorTstamp's message (the values printed by Joda-Time 2.10.10 on JDK 17), after
# the parameters' own messages are found.
@pytest.mark.parametrize("timestamp,text", [
    (2**63 - 1, "292278994-08-17 07:12:55.807"), (-(2**63), "-292275055-05-16 16:47:04.192"),
    (253_402_300_800_000, "10000-01-01 00:00:00.000"), (-62_167_219_200_001, "-0001-12-31 23:59:59.999")])
@pytest.mark.parametrize("querystring", ["e=pv&aid=shop", "e=pv&aid=shop&tid=x"])
def test_collector_timestamp_outside_years_0_to_9999_fails_the_event(enricher, timestamp, text, querystring):
    row = only_bad_row(enricher.enrich(raw(timestamp=timestamp, path="/i", querystring=querystring)))
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    messages = [m["message"] for m in row["data"]["failure"]["messages"]]
    assert messages[0] == {"field": "collector_tstamp", "value": text.replace(" ", "T") + "Z",
                           "expectation": f"formatted as {text} is not Redshift-compatible"}
    assert [m["field"] for m in messages[1:]] == (["tid"] if "tid" in querystring else [])
    assert row["data"]["payload"]["enriched"]["collector_tstamp"] is None
    assert row["data"]["payload"]["raw"]["timestamp"] == text.replace(" ", "T") + "Z"


@pytest.mark.parametrize("timestamp,text", [(-1, "1969-12-31 23:59:59.999"),
                                            (-62_135_596_800_001, "0000-12-31 23:59:59.999")])
def test_collector_timestamps_before_1970_are_enriched_as_joda_prints_them(enricher, timestamp, text):
    out = enricher.enrich(raw(timestamp=timestamp, path="/i", querystring="e=pv&aid=shop"))
    assert out.bad == [] and len(out.good) == 1
    assert out.good[0].split("\t")[3] == text


@pytest.mark.parametrize("path,querystring", [("/nope", "e=pv"), (TP2, "e=xx"), ("/i", None)])
def test_a_collector_timestamp_out_of_range_does_not_change_what_fails_before_the_event(enricher, path, querystring):
    # the loader and the adapter do not read the timestamp: their rows are those of an ordinary one
    far, near = (enricher.enrich(raw(timestamp=t, path=path, querystring=querystring))
                 for t in (2**63 - 1, 1_764_288_000_000))
    assert [json.loads(row)["schema"] for row in far.bad] == [json.loads(row)["schema"] for row in near.bad]
    assert far.good == near.good == []


@pytest.mark.parametrize("timestamp", [0, 253_402_300_799_999])
def test_collector_timestamps_at_the_range_limits_are_enriched(enricher, timestamp):
    out = enricher.enrich(raw(timestamp=timestamp))
    assert out.bad == [] and len(out.good) == 1
    collector_tstamp = out.good[0].split("\t")[3]
    assert collector_tstamp == ("1970-01-01 00:00:00.000" if timestamp == 0 else "9999-12-31 23:59:59.999")


# Found reading the code the fuzzer pointed at: device timestamps whose skew is larger than the
# collector's time since 1970 gave a derived_tstamp before year 1 (OverflowError writing the TSV).  It is
# written as Snowplow's enrich 3.9.0 writes it (Joda-Time's period, whatever year it gives; the values are
# Joda-Time 2.10's), no longer held at the collector's time.
@pytest.mark.parametrize("timestamp,querystring,derived", [
    (0, "e=pv&dtm=0&stm=253402300799999", "-6060-01-01 00:00:00.001"),
    (1_000, "e=pv&dtm=0&stm=2000", "1969-12-31 23:59:59.000"),
    (1_000, "e=pv&dtm=0&stm=1000", "1970-01-01 00:00:00.000"),
    (1_764_288_000_123, "e=pv&dtm=1764287000000&stm=1764287001000", "2025-11-27 23:59:59.123"),
])
def test_derived_tstamp_before_1970_and_before_year_0_is_written(enricher, timestamp, querystring, derived):
    out = enricher.enrich(raw(timestamp=timestamp, querystring=querystring))
    assert out.bad == [] and len(out.good) == 1
    assert out.good[0].split("\t")[FIELD_INDEX["derived_tstamp"]] == derived


# Found by fuzz_enrich: bytes that are not UTF-8 in a payload field are decoded as lone
# surrogates (surrogateescape); the bad row carrying them raised UnicodeEncodeError.
@pytest.mark.parametrize("fields", [
    {"path": b"/\x9e\x9e\xde!"},
    {"path": TP2, "body": b'{"schema": "\xff\xfe", "data": []}', "content_type": "application/json"},
    {"path": "/com.acme/v1", "querystring": b"a=\xc3"},
    {"user_agent": b"UA \xed\xa0\x80", "querystring": "e=zz"},
])
def test_undecodable_bytes_give_a_utf8_bad_row(enricher, fields):
    out = enricher.enrich(raw(**fields))
    assert out.good == [] and len(out.bad) == 1
    text = out.bad[0].decode("utf-8")  # valid UTF-8
    doc = json.loads(text)
    assert doc["schema"].startswith("iglu:com.snowplowanalytics.snowplow.badrows/")
    assert "\ufffd" in text and not any("\ud800" <= c <= "\udfff" for c in text)


def test_bad_row_replaces_only_lone_surrogates():
    row = badrows.bad_row("iglu:x/y/jsonschema/1-0-0", "a", {"m": "\udc9e é \U0001f600"}, {"p": "ok"})
    assert json.loads(row)["data"]["failure"]["m"] == "\ufffd é \U0001f600"
    clean = badrows.bad_row("iglu:x/y/jsonschema/1-0-0", "a", {"m": "é"}, None)
    assert clean == json.dumps(json.loads(clean), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# The raw inputs libFuzzer wrote (crash-* files), replayed through the targets.
CRASH_INPUTS = [
    ("enrich", "9/cAAAAAAAAA1zs="),  # timestamp 2**63-1 -> ValueError in iso_timestamp
    ("enrich", "np7eIQo="),  # undecodable path -> UnicodeEncodeError in bad_row
    ("adapt", "AgAiOwAAAAAAI/9dQQo6XQ=="),  # Iglu webhook, JSON body '""' -> TypeError unpacking a NotJSON
    # Iglu webhook, a JSON string body holding brackets -> TypeError comparing their count with no depth limit
    ("adapt", "1zAjOVTvvaecnJycnJycnJycnJycnJycnJycnJycnJycnJycnJycnJycsAF429t6LrhBwS8="),
]


# Found by fuzz_adapt: a POST to the Iglu webhook whose JSON body is a string ('""') made the adapter
# unpack a NotJSON failure as a schema key and data (TypeError); it is an adapter_failures row.
def test_iglu_webhook_body_that_is_a_json_string_is_an_adapter_failure(enricher):
    out = enricher.enrich(raw(path="/com.snowplowanalytics.iglu/v1", querystring="cx=e30", body='""',
                              content_type="application/json; charset=utf-8"))
    row = only_bad_row(out)
    assert "/adapter_failures/" in row["schema"] and row["data"]["failure"]["vendor"] == "com.snowplowanalytics.iglu"


# Found by fuzz_adapt (3 December 2026): a JSON string body with a bracket in it (its text read again as JSON,
# with no depth limit) raised TypeError.  Snowplow's Iglu adapter does not read a JSON string again: any body
# that is not a JSON object is NotIglu INVALID_DATA_PAYLOAD, the string itself as its json.
@pytest.mark.parametrize("body", ['"{"', json.dumps('{"schema":"iglu:com.acme/e/jsonschema/1-0-0","data":{}}')])
def test_iglu_webhook_body_that_is_a_json_string_is_not_read_again(enricher, body):
    out = enricher.enrich(raw(path="/com.snowplowanalytics.iglu/v1", querystring="", body=body,
                              content_type="application/json"))
    row = only_bad_row(out)
    assert "/adapter_failures/" in row["schema"]
    assert row["data"]["failure"]["messages"] == [{"json": json.loads(body), "error": "INVALID_DATA_PAYLOAD"}]


@pytest.mark.parametrize("target,input_b64", CRASH_INPUTS)
def test_fuzzer_inputs_replay_cleanly(target, input_b64):
    pytest.importorskip("atheris", reason="atheris is not installed: the raw fuzzer inputs need its data provider")
    from tests.fuzz import targets

    targets.TARGETS[target](base64.b64decode(input_b64))
