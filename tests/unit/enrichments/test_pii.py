"""PII pseudonymisation enrichment: atomic fields and JSONPath-selected values hashed, pii_transformation emitted."""
import base64
import hashlib
import json
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import EnrichedEvent, to_tsv
from processor.enrichments import ConfigError
from processor.enrichments.pii import PARENT_EVENT_SCHEMA, PII_TRANSFORMATION_SCHEMA
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from tests.unit.test_stage import write_schema

from .conftest import config_doc, make_payload, raw_record, run

VENDOR = "com.snowplowanalytics.snowplow.enrichments"
EMAIL = "iglu:com.acme/email/jsonschema/1-0-0"
EMAIL_2 = "iglu:com.acme/email/jsonschema/2-0-0"
USER = "iglu:com.acme/user/jsonschema/1-0-2"
EVENT_ID = "0c9e1f6a-2b3c-4d5e-8f90-123456789abc"


def sha256(value, salt="pepper"):
    return hashlib.sha256((value + salt).encode("utf-8")).hexdigest()


def pii_config(pii, hash_function="SHA-256", salt="pepper", emit=False, version="2-0-0", **data):
    pseudonymize = {"hashFunction": hash_function}
    if salt is not None:
        pseudonymize["salt"] = salt
    doc = config_doc("pii_enrichment_config", version, {"pii": pii, "strategy": {"pseudonymize": pseudonymize}},
                     vendor=VENDOR)
    if version != "1-0-0":
        doc["data"]["emitEvent"] = emit
    doc["data"].update(data)
    return doc


def pojo(*names):
    return [{"pojo": {"field": n}} for n in names]


def json_rule(field, criterion, path):
    return {"json": {"field": field, "schemaCriterion": criterion, "jsonPath": path}}


def sample_event(**fields):
    defaults = dict(event_id=EVENT_ID, app_id="shop", platform="web", user_id="jane@acme.com",
                    user_ipaddress="203.0.113.9", domain_userid="d-1", se_label=None,
                    collector_tstamp=1_764_288_000_123, etl_tstamp=1_764_288_005_000,
                    v_collector="snowmelt-test", v_etl="snowmelt-0.1.0")
    defaults.update(fields)
    return EnrichedEvent(**defaults)


# ------------------------------------------------------------------ pojo


def test_pojo_fields_hashed_with_salt(load):
    enrichment = load(pii_config(pojo("user_id", "user_ipaddress", "se_label")))
    event, ctx = run(enrichment, sample_event())
    assert event.user_id == sha256("jane@acme.com")
    assert event.user_ipaddress == sha256("203.0.113.9")
    assert event.se_label is None  # unset fields stay unset
    assert event.domain_userid == "d-1"  # not configured
    assert ctx.emitted == []  # emitEvent false


def test_a_lone_surrogate_is_hashed_as_java_writes_it(load):
    # a JSON escape (\ud800 in a tp2 body) can put one in a field: Java's String.getBytes writes "?" there
    # (snowmelt raised UnicodeEncodeError: the event's fingerprint did so too, found by the body corpus)
    enrichment = load(pii_config(pojo("user_id")))
    event, _ = run(enrichment, sample_event(user_id="jane\ud800"))
    assert event.user_id == sha256("jane?")


@pytest.mark.parametrize("function,digest", [
    ("MD5", hashlib.md5), ("SHA-1", hashlib.sha1), ("SHA-256", hashlib.sha256),
    ("SHA-384", hashlib.sha384), ("SHA-512", hashlib.sha512),
])
def test_hash_functions_lower_hex(load, function, digest):
    enrichment = load(pii_config(pojo("user_id"), hash_function=function, salt="s"))
    event, _ = run(enrichment, sample_event(user_id="u-1"))
    assert event.user_id == digest(b"u-1s").hexdigest()


def test_md2_rfc1319_vector(load):
    pytest.importorskip("Crypto.Hash.MD2")
    enrichment = load(pii_config(pojo("user_id"), hash_function="MD2", salt=""))
    event, _ = run(enrichment, sample_event(user_id="abc"))
    assert event.user_id == "da853b0d3f88d99b30283a69e6ded6bb"


def test_config_1_0_0_has_no_salt(load):
    enrichment = load(pii_config(pojo("user_id"), salt=None, version="1-0-0"))
    event, ctx = run(enrichment, sample_event(user_id="u-1"))
    assert event.user_id == hashlib.sha256(b"u-1").hexdigest() and ctx.emitted == []


def test_field_listed_twice_is_hashed_once(load):
    enrichment = load(pii_config(pojo("user_id", "user_id")))
    event, _ = run(enrichment, sample_event(user_id="u-1"))
    assert event.user_id == sha256("u-1")


# ------------------------------------------------------------------ json


def test_unstruct_event_envelope_rewritten_in_place_when_schema_matches(load):
    enrichment = load(pii_config([json_rule("unstruct_event", "iglu:com.acme/email/jsonschema/1-*-*",
                                            "$.['email', 'ip']")]))
    inner = {"schema": EMAIL, "data": {"email": "jane@acme.com", "ip": "198.51.100.1", "n": 3}}
    envelope = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0", "data": inner}
    event, _ = run(enrichment, sample_event(unstruct_event=envelope))
    assert event.unstruct_event["data"]["data"] == {"email": sha256("jane@acme.com"), "ip": sha256("198.51.100.1"),
                                                    "n": 3}
    # a 2-0-0 entity does not match 1-*-*
    other = {"schema": EMAIL_2, "data": {"email": "jane@acme.com"}}
    event, _ = run(enrichment, sample_event(unstruct_event=other))
    assert event.unstruct_event["data"]["email"] == "jane@acme.com"


def test_contexts_only_matching_entities_and_nested_paths(load):
    enrichment = load(pii_config([json_rule("contexts", "iglu:com.acme/user/jsonschema/1-0-*", "$.profile.email"),
                                  json_rule("contexts", "iglu:com.acme/user/jsonschema/1-*-*", "$.aliases")]))
    contexts = [{"schema": USER, "data": {"profile": {"email": "a@x.io", "age": 40}, "aliases": ["a", 7, "b"]}},
                {"schema": EMAIL, "data": {"email": "a@x.io"}},
                {"schema": "iglu:com.acme/user/jsonschema/1-1-0", "data": {"profile": {"email": "c@x.io"}}}]
    event, _ = run(enrichment, sample_event(contexts=contexts))
    assert contexts[0]["data"] == {"profile": {"email": sha256("a@x.io"), "age": 40},
                                   "aliases": [sha256("a"), 7, sha256("b")]}
    assert contexts[1]["data"] == {"email": "a@x.io"}
    assert contexts[2]["data"] == {"profile": {"email": "c@x.io"}}  # 1-1-0 not in 1-0-*
    assert event.contexts is contexts


def test_derived_contexts_and_recursive_descent(load):
    enrichment = load(pii_config([json_rule("derived_contexts", "iglu:com.acme/email/jsonschema/*-*-*",
                                            "$..email")]))
    event = sample_event()
    from processor.enrichments import EventContext
    ctx = EventContext(make_payload(), {})
    ctx.derived.append({"schema": EMAIL_2, "data": {"email": "x@y.z", "inner": {"email": "p@q.r"}}})
    enrichment.enrich(event, ctx)
    assert ctx.derived[0]["data"] == {"email": sha256("x@y.z"), "inner": {"email": sha256("p@q.r")}}


def test_non_string_values_are_left_alone(load):
    enrichment = load(pii_config([json_rule("unstruct_event", "iglu:com.acme/email/jsonschema/1-*-*", "$.*")]))
    data = {"n": 1, "b": True, "o": {"k": "v"}, "z": None, "s": "secret"}
    event, _ = run(enrichment, sample_event(unstruct_event={"schema": EMAIL, "data": data}))
    assert data == {"n": 1, "b": True, "o": {"k": "v"}, "z": None, "s": sha256("secret")}


# ------------------------------------------------------------------ emitted event


def test_emit_event_builds_pii_transformation_event(load, resolver):
    enrichment = load(pii_config(pojo("user_id", "domain_userid") + [
        json_rule("contexts", "iglu:com.acme/email/jsonschema/1-*-*", "$.email")], emit=True))
    contexts = [{"schema": EMAIL, "data": {"email": "jane@acme.com"}}]
    event, ctx = run(enrichment, sample_event(contexts=contexts))
    assert len(ctx.emitted) == 1
    extra = ctx.emitted[0]
    assert extra.event == "pii_transformation" and extra.platform == "srv" and extra.app_id == "shop"
    assert extra.event_id != EVENT_ID and len(extra.event_id) == 36
    assert (extra.event_vendor, extra.event_name, extra.event_format, extra.event_version) == (
        "com.snowplowanalytics.snowplow", "pii_transformation", "jsonschema", "1-0-0")
    assert extra.collector_tstamp == event.collector_tstamp and extra.v_etl == event.v_etl
    assert extra.contexts == [{"schema": PARENT_EVENT_SCHEMA, "data": {"parentEventId": EVENT_ID}}]
    assert extra.unstruct_event == {"schema": PII_TRANSFORMATION_SCHEMA, "data": {
        "pii": {
            "pojo": [{"fieldName": "user_id", "originalValue": "jane@acme.com", "modifiedValue": sha256("jane@acme.com")},
                     {"fieldName": "domain_userid", "originalValue": "d-1", "modifiedValue": sha256("d-1")}],
            "json": [{"fieldName": "contexts", "originalValue": "jane@acme.com",
                      "modifiedValue": sha256("jane@acme.com"), "jsonPath": "$.email", "schema": EMAIL}],
        },
        "strategy": {"pseudonymize": {"hashFunction": "SHA-256"}},  # never the salt
    }}
    assert resolver.validate(extra.unstruct_event, field="unstruct_event").ok
    assert resolver.validate(extra.contexts[0], field="contexts").ok
    row = parse_tsv(to_tsv(extra))
    assert row["event"] == "pii_transformation"
    assert row["contexts_com_snowplowanalytics_snowplow_parent_event_1"] == [{"parentEventId": EVENT_ID}]


def test_nothing_replaced_nothing_emitted(load):
    enrichment = load(pii_config(pojo("user_id"), emit=True))
    _, ctx = run(enrichment, sample_event(user_id=None))
    assert ctx.emitted == []


def test_anonymous_only_hashes_only_with_sp_anonymous_header(load):
    enrichment = load(pii_config(pojo("user_id"), version="2-0-1", anonymousOnly=True))
    event, _ = run(enrichment, sample_event(user_id="u-1"), payload=make_payload(headers=["Host: c.acme.com"]))
    assert event.user_id == "u-1"
    event, _ = run(enrichment, sample_event(user_id="u-1"), payload=make_payload(headers=["sp-anonymous: *"]))
    assert event.user_id == sha256("u-1")


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("version,pii,strategy,field", [
    ("2-0-0", [{"pojo": {"field": "page_url"}}], {"hashFunction": "MD5", "salt": "s"}, r"pii\[0\]\.pojo\.field"),
    ("2-0-0", pojo("user_id"), {"hashFunction": "SHA256", "salt": "s"}, "hashFunction"),
    ("2-0-0", pojo("user_id"), {"hashFunction": "MD5"}, "salt"),
    ("2-0-0", [json_rule("body", "iglu:a/b/jsonschema/1-*-*", "$.x")], {"hashFunction": "MD5", "salt": "s"},
     r"pii\[0\]\.json\.field"),
    ("2-0-0", [json_rule("contexts", "iglu:a/b/jsonschema/1-x-*", "$.x")], {"hashFunction": "MD5", "salt": "s"},
     "schemaCriterion"),
    ("2-0-0", [json_rule("contexts", "iglu:a/b/jsonschema/1-*-*", "x")], {"hashFunction": "MD5", "salt": "s"},
     "jsonPath"),
    ("2-0-0", [json_rule("contexts", "iglu:a/b/jsonschema/1-*-*", "$.[[[")], {"hashFunction": "MD5", "salt": "s"},
     "jsonPath"),
    ("1-0-0", [json_rule("body", "iglu:a/b/jsonschema/1-*-*", "$.x")], {"hashFunction": "MD5"},
     r"pii\[0\]\.json\.field"),
])
def test_invalid_config_is_refused_naming_the_field(load, version, pii, strategy, field):
    doc = config_doc("pii_enrichment_config", version, {"pii": pii, "strategy": {"pseudonymize": strategy}},
                     vendor=VENDOR)
    if version != "1-0-0":
        doc["data"]["emitEvent"] = False
    with pytest.raises(ConfigError, match=field):
        load(doc)


def test_emit_event_is_required_from_2_0_0(load):
    doc = pii_config(pojo("user_id"))
    del doc["data"]["emitEvent"]
    with pytest.raises(ConfigError, match="emitEvent"):
        load(doc)


def test_anonymous_only_needs_2_0_1(load):
    with pytest.raises(ConfigError, match="anonymousOnly"):
        load(pii_config(pojo("user_id"), version="2-0-0", anonymousOnly=True))


# ------------------------------------------------------------------ the stage


def _b64(doc) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def test_through_the_stage(load, tmp_path):
    write_schema(tmp_path / "registry", EMAIL, {"type": "object", "properties": {
        "email": {"type": "string", "maxLength": 64}}, "required": ["email"], "additionalProperties": False})
    resolver = Resolver([EmbeddedRepository("test registry", tmp_path / "registry")])
    enrichment = load(pii_config(pojo("user_id", "user_ipaddress") + [
        json_rule("unstruct_event", "iglu:com.acme/email/jsonschema/1-*-*", "$.email"),
        json_rule("contexts", "iglu:com.acme/email/jsonschema/1-*-*", "$.email")], emit=True))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[enrichment])
    params = {"e": "ue", "p": "web", "tv": "js-4.1.0", "aid": "shop", "eid": EVENT_ID, "uid": "jane",
              "ue_px": _b64({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                             "data": {"schema": EMAIL, "data": {"email": "jane@acme.com"}}}),
              "cx": _b64({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                          "data": [{"schema": EMAIL, "data": {"email": "joe@acme.com"}}]})}
    raw = raw_record(querystring=urlencode(params), headers=["Host: c.acme.com"], hostname="c.acme.com")
    out = enricher.enrich(raw)
    assert out.bad == [] and len(out.good) == 2
    row = parse_tsv(out.good[0])
    assert row["event_id"] == EVENT_ID
    assert row["user_id"] == sha256("jane") and row["user_ipaddress"] == sha256("203.0.113.9")
    assert row["unstruct_event_com_acme_email_1"] == {"email": sha256("jane@acme.com")}
    assert row["contexts_com_acme_email_1"] == [{"email": sha256("joe@acme.com")}]
    extra = parse_tsv(out.good[1])
    assert extra["event"] == "pii_transformation" and extra["app_id"] == "shop" and extra["platform"] == "srv"
    assert extra["contexts_com_snowplowanalytics_snowplow_parent_event_1"] == [{"parentEventId": EVENT_ID}]
    transformation = extra["unstruct_event_com_snowplowanalytics_snowplow_pii_transformation_1"]
    assert [(p["fieldName"], p["originalValue"]) for p in transformation["pii"]["pojo"]] == [
        ("user_id", "jane"), ("user_ipaddress", "203.0.113.9")]
    assert [(j["fieldName"], j["originalValue"], j["schema"]) for j in transformation["pii"]["json"]] == [
        ("unstruct_event", "jane@acme.com", EMAIL), ("contexts", "joe@acme.com", EMAIL)]
    # the emitted event's self-describing data validates against the shipped schemas
    line = out.good[1].split("\t")
    from processor.enriched import FIELD_INDEX
    unstruct = json.loads(line[FIELD_INDEX["unstruct_event"]])
    assert resolver.validate(unstruct, "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-*",
                             field="unstruct_event").ok
    assert resolver.validate(unstruct["data"], field="unstruct_event").ok
    for item in json.loads(line[FIELD_INDEX["contexts"]])["data"]:
        assert resolver.validate(item, field="contexts").ok


def test_a_cached_entity_is_pseudonymised_for_each_event_and_stays_as_cached(load, resolver):
    # ua_parser's entity comes from its cache, the same for every event with that user agent: each event's
    # is pseudonymised once, and the cached data is left as it was
    useragent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:106.0) Gecko/20100101 Firefox/106.0"
    ua = load(config_doc("ua_parser_config", "1-0-0", {}))
    pii = load(pii_config([json_rule("derived_contexts", "iglu:com.snowplowanalytics.snowplow/ua_parser_context/"
                                     "jsonschema/1-*-*", "$.useragentFamily")]))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[ua, pii])
    for _ in range(3):
        out = enricher.enrich(raw_record(querystring=urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0"}),
                                         headers=[f"User-Agent: {useragent}"], user_agent=useragent))
        assert out.bad == []
        [entity] = parse_tsv(out.good[0])["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"]
        assert entity["useragentFamily"] == sha256("Firefox") and entity["osFamily"] == "Mac OS X"
    assert ua.parse(useragent)["useragentFamily"] == "Firefox"
