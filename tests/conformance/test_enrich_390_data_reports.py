"""The data reports of invalid data, as Snowplow's enrich 3.9.0 (iglu-scala-client 1.5.0) writes them.

The inputs, schemas and expected reports are the test data of iglu-scala-client 1.5.0 (Apache-2.0):

- ``modules/core/src/test/scala/com.snowplowanalytics.iglu.client/validator/RawValidationSpec.scala``
  (cases e2-e10; the same expectations are repeated in ``CachingValidationSpec.scala``);
- ``modules/core/src/test/resources/raw-jsonschema/beer-schema.json`` (the schema of e1-e2).

Snowplow's enrich 3.9.0 cases (``SnowplowAdapterSpec.scala``, e9 and e10: ``payload_data`` and
``geolocation_context``) are in ``test_enrich_390_adapters.py``.  Each case runs twice: through
:func:`processor.jsv_messages.reports` on the raw schema, as the spec validates it, and through
:class:`processor.iglu.Resolver` with the schema made self-describing, as an event would meet it.
No service is needed.
"""
from __future__ import annotations

import json

import pytest

from processor.iglu import EmbeddedRepository, Resolver, SchemaKey, ValidationError
from processor.jsv_messages import reports
from tests.unit.test_iglu import write_schema

BEER_SCHEMA = {
    "$schema": "https://json-schema.org/draft-04/schema",
    "description": "Simple schema for testing Validatable",
    "type": "object",
    "properties": {
        "country": {"type": "string"},
        "beers": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["country", "beers"],
    "additionalProperties": False,
}
SHORT_KEY = {"properties": {"shortKey": {"maxLength": 3}}}
TWO_KEYS = {"properties": {"twoKeys": {"properties": {"one": {}, "two": {}}, "additionalProperties": False}}}
ADDRESS = {"properties": {"address": {"format": "ipv4"}}}
IPV4 = ("^(([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\\.){3}"
        "([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$")
COUNTRY_TYPE = {"message": "$.country: integer found, string expected", "path": "$.country",
                "keyword": "type", "targets": ["integer", "string"]}
BEER_TYPE = {"message": "$.beers[1]: boolean found, string expected", "path": "$.beers[1]",
             "keyword": "type", "targets": ["boolean", "string"]}

CASES = [
    # e2: beer-schema.json invalidates invalid instances
    ("e2-non-string", BEER_SCHEMA, {"country": 123, "beers": []}, [COUNTRY_TYPE]),
    ("e2-missing-key", BEER_SCHEMA, {"country": "cy"},
     [{"message": "$.beers: is missing but it is required", "path": "$", "keyword": "required",
       "targets": ["beers"]}]),
    ("e2-heterogeneous-array", BEER_SCHEMA, {"country": "GB", "beers": ["ale", False]}, [BEER_TYPE]),
    ("e2-double-error", BEER_SCHEMA, {"country": 23, "beers": ["ale", False]}, [COUNTRY_TYPE, BEER_TYPE]),
    # e3: maxLength invalidates longer string
    ("e3-max-length", SHORT_KEY, {"shortKey": "aaaa"},
     [{"message": "$.shortKey: may only be 3 characters long", "path": "$.shortKey", "keyword": "maxLength",
       "targets": ["3"]}]),
    # e5: additionalProperties invalidates unexpected property
    ("e5-additional-properties", TWO_KEYS, {"twoKeys": {"one": 1, "two": 2, "three": 3}},
     [{"message": "$.twoKeys.three: is not defined in the schema and the schema does not allow additional "
                  "properties", "path": "$.twoKeys", "keyword": "additionalProperties", "targets": ["three"]}]),
    # e6: ipv4 format invalidates plain string
    ("e6-ipv4", ADDRESS, {"address": "non-ip"},
     [{"message": f"$.address: does not match the ipv4 pattern {IPV4}", "path": "$.address", "keyword": "format",
       "targets": ["ipv4", IPV4]}]),
]

VALID = [
    # e1: beer-schema.json validates valid instances
    ("e1", BEER_SCHEMA, {"country": "JP", "beers": ["Asahi", "Orion", "..."]}),
    ("e1", BEER_SCHEMA, {"country": "AQ", "beers": []}),
    ("e1", BEER_SCHEMA, {"country": "GR", "beers": ["Fix", "Mythos"]}),
    ("e1", BEER_SCHEMA, {"country": "fr", "beers": ["Jenlain"]}),
    # e4: maxLength does not try to validate integer
    ("e4", SHORT_KEY, {"shortKey": 5}),
    # e7: integers bigger than java.lang.Long.MAX_VALUE
    ("e7", {"type": "integer"}, 9223372036854775809),
    # e8: null in [array, null] type
    ("e8", {"type": ["array", "null"], "items": {"type": "object"}}, None),
    # e10: integer with number type
    ("e10", {"type": "number"}, 5),
]


def as_json(messages):
    return [{"message": m.message, "path": m.path, "keyword": m.type, "targets": list(m.arguments)} for m in messages]


@pytest.mark.parametrize("schema, instance, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_raw_validation_spec_reports(schema, instance, expected):
    assert as_json(reports(schema, instance)) == expected


@pytest.mark.parametrize("schema, instance", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_raw_validation_spec_valid_instances(schema, instance):
    assert reports(schema, instance) == []


def test_e9_stringly_integer_is_invalid():
    # e9: invalidate stringly integer with integer type (typeLoose is off)
    assert as_json(reports({"type": "integer"}, "5")) == [
        {"message": "$: string found, integer expected", "path": "$", "keyword": "type",
         "targets": ["string", "integer"]}]


@pytest.mark.parametrize("schema, instance, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_resolver_writes_the_same_reports(tmp_path, schema, instance, expected):
    body = dict(schema, self={"vendor": "com.acme", "name": "spec", "format": "jsonschema", "version": "1-0-0"})
    body["$schema"] = "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#"
    write_schema(tmp_path, body)
    resolver = Resolver([EmbeddedRepository("local", tmp_path)], include_builtin=False)
    out = resolver.validate(json.dumps({"schema": "iglu:com.acme/spec/jsonschema/1-0-0", "data": instance}))
    assert isinstance(out, ValidationError)
    assert out.schema_key == SchemaKey.parse("iglu:com.acme/spec/jsonschema/1-0-0")
    assert out.to_json()["error"] == {"error": "ValidationError", "dataReports": expected}


@pytest.mark.parametrize("fmt, value, valid", [
    # networknt 1.0.70 checks uuid in draft 4 (jsonschema_rs's draft 4 does not)
    ("uuid", "c6ef3124-b53a-4b13-a233-0088f79dcbcb", True),
    ("uuid", "not-a-uuid", False),
    # and takes a date-time without seconds before the offset (jsonschema_rs refuses it)
    ("date-time", "2020-01-01T00:00Z", True),
    ("date-time", "2020-01-01T00:00:00.123Z", True),
    ("date-time", "2020-01-01", False),
    ("date", "2020-02-30", False),
    ("ipv4", "1.2.3.4", True),
    ("ipv4", "1.2.3.256", False),
    ("hostname", "-bad.example", False),
    ("a-format-nobody-knows", "anything", True),
])
def test_the_resolver_judges_formats_as_snowplow_s_validator(tmp_path, fmt, value, valid):
    # the verdict (good event or schema_violations row) follows networknt, not jsonschema_rs
    body = {"type": "object", "properties": {"v": {"type": "string", "format": fmt}},
            "self": {"vendor": "com.acme", "name": "fmt", "format": "jsonschema", "version": "1-0-0"},
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#"}
    write_schema(tmp_path, body)
    resolver = Resolver([EmbeddedRepository("local", tmp_path)], include_builtin=False)
    out = resolver.validate({"schema": "iglu:com.acme/fmt/jsonschema/1-0-0", "data": {"v": value}})
    assert out.ok is valid, out.to_json() if not out.ok else out
    if not valid:
        assert out.to_json()["error"]["dataReports"][0]["path"] == "$.v"
