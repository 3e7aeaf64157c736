"""networknt json-schema-validator 1.0.70's reports, as Snowplow's enrich 3.9.0 writes them (dataReports).

The expected texts follow networknt 1.0.70's message templates (``jsv-messages.properties``) and the
way its validators format their arguments and order their messages (Apache-2.0; facts only): see
:mod:`processor.jsv_messages`.  Every case below was also checked against networknt 1.0.70 itself
(its released jar with Jackson 2.15.2, enrich 3.9.0's, and ethlo ITU 1.5.1, configured as
iglu-scala-client 1.5.0 configures it, objects fed in Scala 2.12 Map order), as were some 20,000
generated schema/instance pairs and every schema bundled in ``schemas/``; the one difference found is
the one :mod:`processor.jsv_messages` lists for ``format: email`` (unknown top-level domains).  The
cases transcribed from Snowplow's own test suites are in ``tests/conformance/test_enrich_390_data_reports.py``.
"""
from __future__ import annotations

import pytest

from processor import jsv_messages
from processor.jsv_messages import _java_double, _java_hash_order, reports
from processor.protocol import scala_map_order


def got(schema, instance):
    return [(m.message, m.path, m.type, list(m.arguments)) for m in reports(schema, instance)]


NOT_STRING = '"not" : {"type":"string"}'
IPV4 = ("^(([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\\.){3}"
        "([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$")

CASES = [
    # -- type
    ("type", {"type": "string"}, 42, [("$: integer found, string expected", "$", "type", ["integer", "string"])]),
    ("type-number", {"type": "integer"}, 1.5, [("$: number found, integer expected", "$", "type", ["number", "integer"])]),
    ("type-null", {"type": "object"}, None, [("$: null found, object expected", "$", "type", ["null", "object"])]),
    ("type-bool", {"type": "number"}, True, [("$: boolean found, number expected", "$", "type", ["boolean", "number"])]),
    ("type-array", {"type": "array"}, {}, [("$: object found, array expected", "$", "type", ["object", "array"])]),
    ("type-number-takes-integer", {"type": "number"}, 3, []),
    ("type-nullable", {"type": "string", "nullable": True}, None, []),
    ("type-unknown", {"type": "text"}, "a", [("$: string found, unknown expected", "$", "type", ["string", "unknown"])]),
    ("unionType", {"type": ["string", "null"]}, 42,
     [("$: integer found, but [string, null] is required", "$", "unionType", ["integer", "[string, null]"])]),
    ("unionType-nested", {"properties": {"a": {"type": ["integer", "boolean"]}}}, {"a": "x"},
     [("$.a: string found, but [integer, boolean] is required", "$.a", "unionType",
       ["string", "[integer, boolean]"])]),
    # -- objects
    ("required", {"required": ["a", "b"]}, {"c": 1},
     [("$.a: is missing but it is required", "$", "required", ["a"]),
      ("$.b: is missing but it is required", "$", "required", ["b"])]),
    ("required-not-object", {"required": ["a"]}, [1], []),
    ("additionalProperties", {"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b.c": 2},
     [("$.b.c: is not defined in the schema and the schema does not allow additional properties", "$",
       "additionalProperties", ["b.c"])]),
    ("additionalProperties-schema", {"additionalProperties": {"type": "integer"}}, {"a": 1, "b": "x"},
     [("$.b: string found, integer expected", "$.b", "type", ["string", "integer"])]),
    ("additionalProperties-patternProperties", {"patternProperties": {"^x": {}}, "additionalProperties": False},
     {"xa": 1, "ya": 1},
     [("$.ya: is not defined in the schema and the schema does not allow additional properties", "$",
       "additionalProperties", ["ya"])]),
    ("patternProperties", {"patternProperties": {"^x": {"type": "string"}}}, {"x1": 1, "y": 1},
     [("$.x1: integer found, string expected", "$.x1", "type", ["integer", "string"])]),
    ("minProperties", {"minProperties": 2}, {"a": 1},
     [("$: should have a minimum of 2 properties", "$", "minProperties", ["2"])]),
    ("maxProperties", {"maxProperties": 1}, {"a": 1, "b": 2},
     [("$: may only have a maximum of 1 properties", "$", "maxProperties", ["1"])]),
    ("dependencies-array", {"dependencies": {"a": ["b", "c"]}}, {"a": 1},
     [("$: has an error with dependencies {a=[b, c]}", "$", "dependencies", ["{a=[b, c]}"])]),
    ("dependencies-schema", {"dependencies": {"a": {"required": ["z"]}}}, {"a": 1},
     [("$.z: is missing but it is required", "$", "required", ["z"])]),
    # -- arrays
    ("items", {"items": {"type": "string"}}, ["a", 1, True],
     [("$[1]: integer found, string expected", "$[1]", "type", ["integer", "string"]),
      ("$[2]: boolean found, string expected", "$[2]", "type", ["boolean", "string"])]),
    ("items-tuple-additionalItems", {"items": [{"type": "string"}], "additionalItems": False}, [1, 2, 3],
     [("$[0]: integer found, string expected", "$[0]", "type", ["integer", "string"]),
      ("$[1]: no validator found at this index", "$", "items", ["1"]),
      ("$[2]: no validator found at this index", "$", "items", ["2"])]),
    ("items-additionalItems-schema", {"items": [{}], "additionalItems": {"type": "string"}}, [1, 2],
     [("$[1]: integer found, string expected", "$[1]", "type", ["integer", "string"])]),
    ("minItems", {"minItems": 1}, [], [("$: there must be a minimum of 1 items in the array", "$", "minItems", ["1"])]),
    ("maxItems", {"maxItems": 1}, [1, 2],
     [("$: there must be a maximum of 1 items in the array", "$", "maxItems", ["1"])]),
    ("uniqueItems", {"uniqueItems": True}, [1, {"a": [1]}, {"a": [1]}],
     [("$: the items in the array must be unique", "$", "uniqueItems", [])]),
    ("uniqueItems-integer-is-not-decimal", {"uniqueItems": True}, [1, 1.0], []),
    # -- strings
    ("minLength", {"minLength": 2}, "a", [("$: must be at least 2 characters long", "$", "minLength", ["2"])]),
    ("minLength-code-points", {"minLength": 2}, "\U0001F600", [("$: must be at least 2 characters long", "$", "minLength", ["2"])]),
    ("maxLength", {"maxLength": 3}, "abcd", [("$: may only be 3 characters long", "$", "maxLength", ["3"])]),
    ("pattern", {"pattern": "^[a-z]+$"}, "A1",
     [("$: does not match the regex pattern ^[a-z]+$", "$", "pattern", ["^[a-z]+$"])]),
    ("pattern-is-a-search", {"pattern": "b"}, "abc", []),
    ("format-ipv4", {"format": "ipv4"}, "1.2.3", [(f"$: does not match the ipv4 pattern {IPV4}", "$", "format", ["ipv4", IPV4])]),
    ("format-date-time", {"format": "date-time"}, "2020-13-01T00:00:00Z",
     [("$: 2020-13-01T00:00:00Z is an invalid date-time", "$", "dateTime", ["2020-13-01T00:00:00Z", "date-time"])]),
    ("format-date-time-ok", {"format": "date-time"}, "2020-12-01T10:00:00.123+01:00", []),
    ("format-date", {"format": "date"}, "2021-02-29", [("$: 2021-02-29 is an invalid date", "$", "dateTime", ["2021-02-29", "date"])]),
    # date-time as ethlo ITU 1.5.1 reads it, date as java.time.LocalDate.parse (checked against both)
    ("format-date-time-no-seconds", {"format": "date-time"}, "2020-01-01T10:00+01:00", []),
    ("format-date-time-leap-second", {"format": "date-time"}, "2016-12-31T23:59:60Z", []),
    ("format-date-time-not-a-leap-second", {"format": "date-time"}, "2016-06-30T23:59:60Z",
     [("$: 2016-06-30T23:59:60Z is an invalid date-time", "$", "dateTime", ["2016-06-30T23:59:60Z", "date-time"])]),
    ("format-date-time-offset", {"format": "date-time"}, "2020-01-01T00:00:00+18:01",
     [("$: 2020-01-01T00:00:00+18:01 is an invalid date-time", "$", "dateTime",
       ["2020-01-01T00:00:00+18:01", "date-time"])]),
    ("format-date-time-unknown-offset", {"format": "date-time"}, "2020-01-01T00:00:00-00:00",
     [("$: 2020-01-01T00:00:00-00:00 is an invalid date-time", "$", "dateTime",
       ["2020-01-01T00:00:00-00:00", "date-time"])]),
    ("format-date-year-zero", {"format": "date"}, "0000-02-29", []),
    ("format-date-signed", {"format": "date"}, "+2020-01-01", [("$: +2020-01-01 is an invalid date", "$", "dateTime", ["+2020-01-01", "date"])]),
    ("format-email-ip", {"format": "email"}, "a@[1.2.3.4]", []),
    ("format-email-dots", {"format": "email"}, "a..b@c.de",
     [("$: does not match the a..b@c.de pattern email", "$", "format", ["a..b@c.de", "email"])]),
    ("format-email-one-letter-tld", {"format": "email"}, "a@b.c",
     [("$: does not match the a@b.c pattern email", "$", "format", ["a@b.c", "email"])]),
    ("format-uuid", {"format": "uuid"}, "nope", [("$: nope is an invalid uuid", "$", "uuid", ["nope", "uuid"])]),
    ("format-email", {"format": "email"}, "nope", [("$: does not match the nope pattern email", "$", "format", ["nope", "email"])]),
    ("format-unknown", {"format": "thing"}, "x", []),
    ("format-not-a-string", {"format": "ipv4"}, 5, []),
    # -- numbers
    ("minimum", {"minimum": 5}, 4, [("$: must have a minimum value of 5", "$", "minimum", ["5"])]),
    ("minimum-decimal", {"minimum": 1.5}, 1, [("$: must have a minimum value of 1.5", "$", "minimum", ["1.5"])]),
    ("minimum-exclusive", {"minimum": 5, "exclusiveMinimum": True}, 5,
     [("$: must have a minimum value of 5", "$", "minimum", ["5"])]),
    ("maximum", {"maximum": 10}, 10.5, [("$: must have a maximum value of 10", "$", "maximum", ["10"])]),
    ("maximum-exclusive", {"maximum": 10, "exclusiveMaximum": True}, 10,
     [("$: must have a maximum value of 10", "$", "maximum", ["10"])]),
    # an integer schema's bound is compared with the value's long part: 5.5 passes maximum 5
    ("maximum-integer-truncates", {"type": "integer", "maximum": 5}, 5.5,
     [("$: number found, integer expected", "$", "type", ["number", "integer"])]),
    ("multipleOf", {"multipleOf": 2}, 3, [("$: must be multiple of 2.0", "$", "multipleOf", ["2.0"])]),
    ("multipleOf-decimal", {"multipleOf": 0.01}, 1.234, [("$: must be multiple of 0.01", "$", "multipleOf", ["0.01"])]),
    ("multipleOf-decimal-ok", {"multipleOf": 0.01}, 1.23, []),
    # -- any type
    ("enum", {"enum": ["a", 1, None, True, 1.5, [1], {"b": 2}]}, "x",
     [("$: does not have a value in the enumeration [a, 1, null, true, 1.5, , ]", "$", "enum",
       ["[a, 1, null, true, 1.5, , ]"])]),
    ("enum-number", {"enum": [1, 2]}, 1.0, []),
    ("enum-nullable", {"enum": ["a"], "nullable": True}, "b",
     [("$: does not have a value in the enumeration [a, null]", "$", "enum", ["[a, null]"])]),
    ("allOf", {"allOf": [{"type": "string"}, {"minLength": 3}]}, "a",
     [("$: must be at least 3 characters long", "$", "minLength", ["3"])]),
    ("anyOf", {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 5}]}, 3,
     [("$: should be valid to any of the schemas string", "$", "anyOf", ["string"]),
      ("$: must have a minimum value of 5", "$", "minimum", ["5"])]),
    ("anyOf-types", {"anyOf": [{"type": "string"}, {"type": "integer"}]}, None,
     [("$: should be valid to any of the schemas string", "$", "anyOf", ["string"]),
      ("$: should be valid to any of the schemas integer", "$", "anyOf", ["integer"])]),
    ("anyOf-valid", {"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1, []),
    ("oneOf-several", {"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 5,
     [('$: should be valid to one and only one of schema, but more than one are valid: {"type":"integer"}{"minimum":0}',
       "$", "oneOf", ['{"type":"integer"}{"minimum":0}'])]),
    ("oneOf-one", {"oneOf": [{"type": "integer"}, {"type": "string"}]}, 5, []),
    # none valid: the alternatives' errors; "type" ones rank first
    ("oneOf-none", {"oneOf": [{"minLength": 5}, {"type": "integer"}]}, "abc",
     [("$: string found, integer expected", "$", "type", ["string", "integer"]),
      ("$: must be at least 5 characters long", "$", "minLength", ["5"])]),
    # none valid: required errors are dropped when there are others, additionalProperties ones too
    ("oneOf-none-drops", {"oneOf": [{"required": ["a"], "additionalProperties": False},
                                    {"required": ["b"], "maxProperties": 0}]}, {"c": 1},
     [("$: may only have a maximum of 0 properties", "$", "maxProperties", ["0"])]),
    ("oneOf-none-only-required", {"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, {},
     [("$.a: is missing but it is required", "$", "required", ["a"]),
      ("$.b: is missing but it is required", "$", "required", ["b"])]),
    ("not", {"not": {"type": "string"}}, "a",
     [(f"$: should not be valid to the schema {NOT_STRING}", "$", "not", [NOT_STRING])]),
    ("ref", {"definitions": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/definitions/s"}}}, {"a": 1},
     [("$.a: integer found, string expected", "$.a", "type", ["integer", "string"])]),
    ("ref-remote-accepts", {"properties": {"a": {"$ref": "http://example.com/s.json"}}}, {"a": 1}, []),
    # -- paths: names written as they are
    ("path-odd-names", {"properties": {"a b": {"properties": {"c.d": {"items": {"type": "string"}}}}}},
     {"a b": {"c.d": [1]}}, [("$.a b.c.d[0]: integer found, string expected", "$.a b.c.d[0]", "type", ["integer", "string"])]),
    # -- repeated messages are one
    ("set", {"allOf": [{"required": ["a"]}, {"required": ["a"]}]}, {},
     [("$.a: is missing but it is required", "$", "required", ["a"])]),
]


@pytest.mark.parametrize("schema, instance, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_keyword(schema, instance, expected):
    assert got(schema, instance) == expected


# ------------------------------------------------------------------ order


def test_keywords_run_properties_first_then_by_name():
    schema = {"type": "object", "required": ["z"], "additionalProperties": False, "minProperties": 5,
              "properties": {"a": {"type": "string", "pattern": "^x", "minLength": 3, "enum": ["zzzz"]}}}
    assert [(m.path, m.type) for m in reports(schema, {"a": "b", "b": 2})] == [
        ("$.a", "enum"), ("$.a", "minLength"), ("$.a", "pattern"),  # properties first, then sorted by name
        ("$", "additionalProperties"), ("$", "minProperties"), ("$", "required")]


def test_properties_in_java_hash_map_order_and_required_with_the_first_missing_one():
    # schema order b, a; java.util.HashMap visits a (bucket 1) before b (bucket 2); a is missing,
    # so the whole required list is reported when a is visited, before b's own error
    schema = {"properties": {"b": {"type": "string"}, "a": {}}, "required": ["a"]}
    assert [(m.path, m.type) for m in reports(schema, {"b": 1})] == [("$", "required"), ("$.b", "type")]


def test_properties_order_many_names():
    names = [f"prop{i}" for i in range(20)] + ["targetUrl", "elementId", "count"]
    schema = {"properties": {n: {"type": "string"} for n in names}}
    order = [m.path[2:] for m in reports(schema, {n: 1 for n in names})]
    from processor.scala_order import java_string_hash as _java_string_hash
    assert order == _java_hash_order(scala_map_order(names), [_java_string_hash(n) for n in scala_map_order(names)])
    assert sorted(order) == sorted(names)


def test_members_in_scala_map_order():
    # more than four members: Snowplow's Jackson copy iterates them in Scala 2.12 HashMap order
    instance = {f"k{i}": i for i in range(8)}
    extra = [m.arguments[0] for m in reports({"additionalProperties": False}, instance)]
    assert extra == scala_map_order(list(instance)) and extra != list(instance)
    few = {"d": 1, "c": 2, "b": 3}
    assert [m.arguments[0] for m in reports({"additionalProperties": False}, few)] == ["d", "c", "b"]


def test_one_of_without_a_valid_alternative_orders_its_errors_by_hash_then_priority():
    schema = {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}
    msgs = reports(schema, None)
    expected = _java_hash_order(msgs, [jsv_messages._message_hash(m) for m in msgs])
    assert msgs == expected and len(msgs) == 3 and all(m.type == "type" for m in msgs)


def test_message_hash_is_java_hash_code():
    # ValidationMessage.hashCode over (type, code, path, schemaPath, details=null, arguments, message)
    m = jsv_messages._message("required", "$", "#/required", "a")
    from processor.scala_order import java_string_hash as h
    expected = 0
    for part in ("required", "1028", "$", "#/required"):
        expected = (31 * expected + h(part)) & 0xFFFFFFFF
    expected = (31 * expected) & 0xFFFFFFFF
    expected = (31 * expected + (31 + h("a"))) & 0xFFFFFFFF
    expected = (31 * expected + h("$.a: is missing but it is required")) & 0xFFFFFFFF
    assert jsv_messages._message_hash(m) == expected


@pytest.mark.parametrize("value, text", [
    (2.0, "2.0"), (0.01, "0.01"), (1e-3, "0.001"), (1e-4, "1.0E-4"), (1234567.0, "1234567.0"),
    (1e7, "1.0E7"), (1.5e10, "1.5E10"), (-2.5, "-2.5"), (0.0, "0.0"), (100.0, "100.0")])
def test_java_double_to_string(value, text):
    assert _java_double(value) == text


def test_java_hash_map_grows():
    names = [str(i) for i in range(13)]  # 13 > 12: sixteen buckets become thirty-two
    from processor.scala_order import java_string_hash as _java_string_hash
    hashes = [_java_string_hash(n) for n in names]
    assert _java_hash_order(names, hashes) == sorted(names, key=lambda n: ((_java_string_hash(n) ^ (_java_string_hash(n) >> 16)) & 31, names.index(n)))
