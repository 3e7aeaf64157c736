"""Iglu ``$supersededBy`` as Snowplow's enrich 3.9.0 (iglu-scala-client 1.5.0) follows it.

The inputs, test schemas and expected values are the test data of Snowplow's
enrich 3.9.0 and iglu-scala-client 1.5.0 (both Apache-2.0):

- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/enrichments/EnrichmentManagerSpec.scala``
  (enrich 3.9.0, "emit an EnrichedEvent with superseded schemas": the event, its contexts and
  the expected ``contexts``, ``derived_contexts`` and ``unstruct_event``);
- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/utils/IgluUtilsSpec.scala``
  (enrich 3.9.0: the superseded unstruct event and contexts, one ``validation_info`` per distinct schema);
- ``modules/common/src/test/resources/iglu-schemas/schemas/com.acme/{superseding_example,email_sent}/...``
  (enrich 3.9.0: the test schemas);
- ``modules/core/src/test/scala/com.snowplowanalytics.iglu.client/CachingClientSpec.scala`` and
  ``modules/core/src/test/resources/iglu-test-embedded/schemas/com.snowplowanalytics.iglu-test/
  {superseded-schema,invalid-superseded-schema}/...`` (iglu-scala-client 1.5.0: a valid and an
  invalid instance of a superseded schema, and the broken supersessions).

The test schemas are written here with a ``self`` that matches their path: Snowplow's files
name ``superseding_schema`` in ``superseding_example``'s and ``1-1-0`` in ``email_sent/1-0-0``,
which iglu-scala-client does not check and snowmelt refuses (``InvalidSchema``).  No service is needed.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from processor.enriched import FIELD_INDEX
from processor.iglu import EmbeddedRepository, Resolver, ResolutionError, SchemaKey, ValidationError
from processor.stage import Enricher
from tests.unit.test_stage import raw, validate_bad_row

DRAFT = "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#"
STRING = {"type": "string"}


def schema(vendor, name, version, properties, required, superseded_by=None):
    out = {"$schema": DRAFT, "description": "test schema"}
    if superseded_by is not None:
        out["$supersededBy"] = superseded_by
    out.update({"self": {"vendor": vendor, "name": name, "format": "jsonschema", "version": version},
                "type": "object", "properties": {p: STRING for p in properties},
                "required": required, "additionalProperties": False})
    return out


ENRICH_SCHEMAS = [
    schema("com.acme", "superseding_example", "1-0-0", "abc", ["field_a", "field_b"], "1-0-1"),
    schema("com.acme", "superseding_example", "1-0-1", "abcd", ["field_a", "field_b"]),
    schema("com.acme", "superseding_example", "2-0-0", "ef", ["field_e", "field_f"], "2-0-1"),
    schema("com.acme", "superseding_example", "2-0-1", "efg", ["field_e", "field_f"]),
    schema("com.acme", "email_sent", "1-0-0", ["emailAddress", "emailAddress2", "emailAddress3"],
           ["emailAddress", "emailAddress2"]),
]
for s in ENRICH_SCHEMAS:  # single letters stand for field_<letter>
    s["properties"] = {(p if len(p) > 1 else f"field_{p}"): STRING for p in s["properties"]}

CLIENT_SCHEMAS = [
    schema("com.snowplowanalytics.iglu-test", "superseded-schema", "1-0-0", ["id"], ["id"], "1-0-2"),
    schema("com.snowplowanalytics.iglu-test", "superseded-schema", "1-0-1", ["id", "name"], ["id"]),
    schema("com.snowplowanalytics.iglu-test", "superseded-schema", "1-0-2", ["id", "name"], ["id"]),
    schema("com.snowplowanalytics.iglu-test", "invalid-superseded-schema", "1-0-0", ["id"], ["id"], "1-0"),
    schema("com.snowplowanalytics.iglu-test", "invalid-superseded-schema", "1-0-1", ["id", "name"], ["id"], "1-0-3"),
    schema("com.snowplowanalytics.iglu-test", "invalid-superseded-schema", "1-0-2", ["id", "name", "price"], ["id"],
           "1-0-1"),
]
CLIENT_SCHEMAS[2]["properties"]["price"] = {"type": "number"}
CLIENT_SCHEMAS[5]["properties"]["price"] = {"type": "number"}


@pytest.fixture
def resolver(tmp_path):
    for s in ENRICH_SCHEMAS + CLIENT_SCHEMAS:
        me = s["self"]
        path = tmp_path / me["vendor"] / me["name"] / "jsonschema" / me["version"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(s))
    return Resolver([EmbeddedRepository("Iglu Test Embedded", tmp_path)])


def sdj(uri, **data):
    return {"schema": uri, "data": data}


EX = "iglu:com.acme/superseding_example/jsonschema/"
A_B = dict(field_a="value_a", field_b="value_b")


# --------------------------------------------------------------------------- EnrichmentManagerSpec


def test_an_event_with_superseded_schemas(resolver):
    co = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", "data": [
        sdj("iglu:com.acme/email_sent/jsonschema/1-0-0", emailAddress="hello@world.com", emailAddress2="foo@bar.org"),
        sdj(EX + "1-0-0", **A_B),
        sdj(EX + "1-0-0", **A_B, field_d="value_d"),
        sdj(EX + "1-0-1", **A_B, field_c="value_c", field_d="value_d"),
    ]}
    ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
          "data": sdj(EX + "2-0-0", field_e="value_e", field_f="value_f", field_g="value_g")}
    qs = urlencode({"e": "ue", "tv": "js-0.13.1", "p": "web", "co": json.dumps(co), "ue_pr": json.dumps(ue)})
    out = Enricher(resolver).enrich(raw("/i", qs))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    fields = out.good[0].split("\t")
    assert json.loads(fields[FIELD_INDEX["contexts"]]) == {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1", "data": [
            sdj("iglu:com.acme/email_sent/jsonschema/1-0-0", emailAddress="hello@world.com",
                emailAddress2="foo@bar.org"),
            sdj(EX + "1-0-1", **A_B),
            sdj(EX + "1-0-1", **A_B, field_d="value_d"),
            sdj(EX + "1-0-1", **A_B, field_c="value_c", field_d="value_d"),
        ]}
    assert json.loads(fields[FIELD_INDEX["derived_contexts"]]) == {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1", "data": [
            sdj("iglu:com.snowplowanalytics.iglu/validation_info/jsonschema/1-0-0",
                originalSchema=EX + "1-0-0", validatedWith="1-0-1"),
            sdj("iglu:com.snowplowanalytics.iglu/validation_info/jsonschema/1-0-0",
                originalSchema=EX + "2-0-0", validatedWith="2-0-1"),
        ]}
    assert json.loads(fields[FIELD_INDEX["unstruct_event"]]) == {
        "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
        "data": sdj(EX + "2-0-1", field_e="value_e", field_f="value_f", field_g="value_g")}
    # the event's schema fields are read from the event as validated
    assert [fields[FIELD_INDEX[f]] for f in ("event_vendor", "event_name", "event_format", "event_version")] == \
        ["com.acme", "superseding_example", "jsonschema", "2-0-1"]


# --------------------------------------------------------------------------- IgluUtilsSpec


SUPERSEDING_1 = sdj(EX + "1-0-0", field_a="value_a", field_b="value_b")
SUPERSEDING_2 = sdj(EX + "1-0-0", field_a="value_a", field_b="value_b", field_d="value_d")


def enrich_one(resolver, **params):
    out = Enricher(resolver).enrich(raw("/i", urlencode({"tv": "js-0.13.1", "p": "web", **params})))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    return out.good[0].split("\t")


@pytest.mark.parametrize("entity", [SUPERSEDING_1, SUPERSEDING_2], ids=["without-new-field", "with-new-field"])
def test_the_unstruct_event_validated_with_the_superseding_schema(resolver, entity):
    ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0", "data": entity}
    fields = enrich_one(resolver, e="ue", ue_pr=json.dumps(ue))
    assert json.loads(fields[FIELD_INDEX["unstruct_event"]])["data"] == dict(entity, schema=EX + "1-0-1")


def test_contexts_and_the_unstruct_event_share_one_validation_info(resolver):
    ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0", "data": SUPERSEDING_1}
    co = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
          "data": [SUPERSEDING_1, SUPERSEDING_2]}
    fields = enrich_one(resolver, e="ue", ue_pr=json.dumps(ue), co=json.dumps(co))
    assert [c["schema"] for c in json.loads(fields[FIELD_INDEX["contexts"]])["data"]] == [EX + "1-0-1"] * 2
    assert json.loads(fields[FIELD_INDEX["unstruct_event"]])["data"]["schema"] == EX + "1-0-1"
    assert json.loads(fields[FIELD_INDEX["derived_contexts"]])["data"] == [
        sdj("iglu:com.snowplowanalytics.iglu/validation_info/jsonschema/1-0-0",
            originalSchema=EX + "1-0-0", validatedWith="1-0-1")]


def test_an_event_without_superseded_schemas_has_no_validation_info(resolver):
    co = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
          "data": [sdj(EX + "1-0-1", **A_B)]}
    fields = enrich_one(resolver, e="pv", co=json.dumps(co))
    assert fields[FIELD_INDEX["derived_contexts"]] == ""


def test_validation_info_follows_the_enrichments_entities(resolver):
    from processor.enrichments import parse_enrichment

    headers = parse_enrichment({
        "schema": "iglu:com.snowplowanalytics.snowplow.enrichments/http_header_extractor_config/jsonschema/1-0-0",
        "data": {"name": "http_header_extractor_config", "vendor": "com.snowplowanalytics.snowplow.enrichments",
                 "enabled": True, "parameters": {"headersPattern": "Host"}}}, resolver)
    co = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", "data": [SUPERSEDING_1]}
    out = Enricher(resolver, enrichments=[headers]).enrich(
        raw("/i", urlencode({"e": "pv", "tv": "js-0.13.1", "p": "web", "co": json.dumps(co)})))
    derived = json.loads(out.good[0].split("\t")[FIELD_INDEX["derived_contexts"]])["data"]
    assert [d["schema"].split("/")[1] for d in derived] == ["http_header", "validation_info"]


# --------------------------------------------------------------------------- CachingClientSpec (iglu-scala-client)


TEST = "iglu:com.snowplowanalytics.iglu-test/"


@pytest.mark.parametrize("data", [{"id": "test-id"}, {"id": "test-id", "name": "test-name"}])
def test_a_valid_instance_of_a_superseded_schema(resolver, data):
    out = resolver.validate({"schema": TEST + "superseded-schema/jsonschema/1-0-0", "data": data})
    assert out.ok and str(out.schema_key.version) == "1-0-2"
    assert out.superseded == SchemaKey.parse(TEST + "superseded-schema/jsonschema/1-0-0")


def test_an_invalid_instance_of_a_superseded_schema_names_the_superseding_version(resolver):
    out = resolver.validate({"schema": TEST + "superseded-schema/jsonschema/1-0-0",
                             "data": {"id": "test-id", "name": "test-name", "field_a": "value_a"}})
    assert isinstance(out, ValidationError)
    error = out.to_json()["error"]
    assert error["supersededBy"] == "1-0-2" and error["error"] == "ValidationError"
    assert out.to_json()["schemaKey"] == TEST + "superseded-schema/jsonschema/1-0-0"


@pytest.mark.parametrize("version,expected", [
    ("1-0-0", "Invalid schema version: 1-0"),
    # 1-0-3 does not exist: the superseding version is not found, in the repository of the schema
    ("1-0-1", None),
    ("1-0-2", "Superseding version 1-0-1 isn't greater than the version of schema "
              "com.snowplowanalytics.iglu-test/invalid-superseded-schema/jsonschema/1-0-2"),
])
def test_invalid_supersessions_are_resolution_errors(resolver, version, expected):
    out = resolver.validate({"schema": TEST + f"invalid-superseded-schema/jsonschema/{version}",
                             "data": {"id": "test-id"}})
    assert isinstance(out, ResolutionError)
    history = {h.repository: h for h in out.lookup_history}
    errors = history["Iglu Test Embedded"].errors
    if expected is None:
        assert [e.error for e in errors] == ["NotFound"]
    else:
        assert [e.error for e in errors] == ["ClientFailure"] and expected in errors[0].message


def test_a_broken_supersession_is_a_schema_violation(resolver):
    ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
          "data": {"schema": TEST + "invalid-superseded-schema/jsonschema/1-0-2", "data": {"id": "x"}}}
    out = Enricher(resolver).enrich(raw("/i", urlencode({"e": "ue", "tv": "js-0.13.1", "p": "web",
                                                        "ue_pr": json.dumps(ue)})))
    assert out.good == []
    row = validate_bad_row(out.bad[0])
    [message] = row["data"]["failure"]["messages"]
    assert message["schemaKey"] == TEST + "invalid-superseded-schema/jsonschema/1-0-2"
    assert message["error"]["error"] == "ResolutionError"
