"""Bad rows validate against the schemas the project ships in schemas/."""
import json
from pathlib import Path

import jsonschema
import pytest

from processor.badrows import size_violation

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def shipped_schema(iglu_uri: str) -> dict:
    vendor, name, fmt, version = iglu_uri.removeprefix("iglu:").split("/")
    return json.loads((SCHEMAS / vendor / name / fmt / version).read_text())


@pytest.mark.parametrize("payload", [b"x" * 5000, "événement " * 100, b"\xff\xfe broken utf-8"])
def test_size_violation_matches_its_schema(payload):
    row = json.loads(size_violation("snowmelt-collector", 1000, 5000, payload, "must fit"))
    schema = shipped_schema(row["schema"])
    # Iglu's self-describing schemas are JSON Schema draft 4
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(row["data"])
    assert len(row["data"]["payload"]) <= 100  # a tenth of the limit
    assert row["data"]["failure"]["actualSizeBytes"] == 5000


def test_expectation_is_capped_to_the_schema_length():
    row = json.loads(size_violation("a", 10, 20, "p", "e" * 1000))
    assert len(row["data"]["failure"]["expectation"]) == 256


def validate_row(row_bytes: bytes) -> dict:
    row = json.loads(row_bytes)
    jsonschema.Draft4Validator(shipped_schema(row["schema"]),
                               format_checker=jsonschema.FormatChecker()).validate(row["data"])
    return row


def test_adapter_failures_become_rows_matching_their_schemas():
    import base64

    from ext import CollectorPayload, encode_collector_payload
    from processor.adapters import CPFV, adapt
    from processor.badrows import (ADAPTER_FAILURES, TRACKER_PROTOCOL_VIOLATIONS, adapter_bad_row,
                                   collector_payload_format_violation, collector_payload_json)

    def payload(path, querystring=None, body=None, content_type=None):
        return CollectorPayload(schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
                                ip_address="203.0.113.9", timestamp=1_764_288_000_123, encoding="UTF-8",
                                collector="snowmelt-0.1.0-kafka", path=path, querystring=querystring, body=body,
                                content_type=content_type, headers=["Host: c.acme.com"],
                                network_user_id="11111111-1111-4111-8111-111111111111")

    kinds = {"adapter_failures": ADAPTER_FAILURES, "tracker_protocol_violations": TRACKER_PROTOCOL_VIOLATIONS}
    cases = [payload("/com.acme/nope", "a=1"), payload("/i"), payload("/com.snowplowanalytics.snowplow/tp2",
             "x=1", "not json", "application/json"), payload("/com.snowplowanalytics.snowplow/tp2", None,
             '{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":[]}', "application/json")]
    for p in cases:
        result = adapt(p)
        f = result.failure
        row = validate_row(adapter_bad_row(kinds[f.kind], f.vendor, f.version, f.messages,
                                           collector_payload_json(p, f.vendor, f.version, result.querystring)))
        assert row["data"]["payload"]["timestamp"] == "2025-11-28T00:00:00.123Z"
    for p in (payload("/a/b/c"), payload("/i", "u=%zz")):
        result = adapt(p)
        assert result.failure.kind == CPFV
        raw = encode_collector_payload(p)
        row = validate_row(collector_payload_format_violation(raw, result.failure.messages[0]))
        assert base64.b64decode(row["data"]["payload"]) == raw
    validate_row(collector_payload_format_violation(b"\x00garbage", {"error": "not a CollectorPayload"}))


def test_a_bad_row_holds_no_more_memory_than_its_bytes():
    # orjson hands back its whole output buffer (a power of two); thousands of bad rows held by a batch
    # or the Micro API's store took twice their size (+227 MB for a 1 MB request whose events all failed).
    import tracemalloc

    from processor.badrows import generic_error
    tracemalloc.start()
    try:
        rows = [generic_error(b"x" * 2500, ["a failure"]) for _ in range(200)]
        allocated = sum(stat.size for stat in tracemalloc.take_snapshot().statistics("filename"))
    finally:
        tracemalloc.stop()
    held = sum(len(row) for row in rows)
    assert held > 200 * 2500
    assert allocated < held * 1.2
