"""API request enrichment against a local HTTP stub (no network beyond 127.0.0.1)."""
import base64
import json

import pytest

from processor.analytics import parse_tsv
from processor.enriched import EnrichedEvent
from processor.enrichments import ConfigError, EnrichmentFailure, EventContext
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher

from .conftest import config_doc, raw_record, run
from .http_stub import HttpStub

NAME = "api_request_enrichment_config"
VENDOR = "com.snowplowanalytics.snowplow.enrichments"
USER = "iglu:com.acme/user/jsonschema/1-0-0"
CLIENT = "iglu:com.acme/client_session/jsonschema/1-0-0"


@pytest.fixture
def stub():
    with HttpStub() as s:
        yield s


def params(stub, *, method="GET", uri=None, inputs=None, outputs=None, cache=None, timeout=2000, auth=None,
           **extra):
    p = {
        "inputs": inputs or [{"key": "user", "pojo": {"field": "user_id"}},
                             {"key": "client", "json": {"field": "contexts", "schemaCriterion": CLIENT.replace(
                                 "1-0-0", "1-*-*"), "jsonPath": "$.userId"}}],
        "api": {"http": {"method": method, "uri": uri or stub.url + "/users/{{user}}?client={{client}}",
                         "timeout": timeout,
                         "authentication": auth if auth is not None else {}}},
        "outputs": outputs or [{"schema": USER, "json": {"jsonPath": "$.record"}}],
        "cache": cache or {"size": 10, "ttl": 60},
    }
    p.update(extra)
    return p


def event(user="ada lovelace/1", client="c-9"):
    contexts = [{"schema": CLIENT, "data": {"userId": client}}] if client else None
    return EnrichedEvent(user_id=user, contexts=contexts, app_id="shop")


def test_get_fills_placeholders_url_encoded_and_attaches_entity(load, stub):
    stub.route("GET", "/users/ada%20lovelace%2F1", {"record": {"name": "Ada", "tier": 3}})
    enrichment = load(config_doc(NAME, "1-0-0", params(stub), vendor=VENDOR))
    _, ctx = run(enrichment, event())
    assert ctx.derived == [{"schema": USER, "data": {"name": "Ada", "tier": 3}}]
    assert len(stub.requests) == 1
    req = stub.requests[0]
    assert req.method == "GET" and req.query == {"client": ["c-9"]} and req.body == b""
    assert "authorization" not in req.headers


def test_post_sends_inputs_as_json_body_with_basic_auth(load, stub):
    stub.route("POST", "/lookup", lambda r: {"record": {"seen": r.json}})
    p = params(stub, method="POST", uri=stub.url + "/lookup",
               auth={"httpBasic": {"username": "enrich", "password": "s3cret"}})
    enrichment = load(config_doc(NAME, "1-0-1", p, vendor=VENDOR))
    _, ctx = run(enrichment, event())
    req = stub.requests[0]
    assert req.json == {"user": "ada lovelace/1", "client": "c-9"}
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"enrich:s3cret").decode()
    assert req.headers["content-type"].startswith("application/json")
    assert ctx.derived[0]["data"] == {"seen": {"user": "ada lovelace/1", "client": "c-9"}}


def test_second_event_with_same_inputs_is_served_from_cache(load, stub):
    stub.route("GET", "/users/u1", {"record": {"n": 1}})
    stub.route("GET", "/users/u2", {"record": {"n": 2}})
    enrichment = load(config_doc(NAME, "1-0-0", params(stub, uri=stub.url + "/users/{{user}}",
                                                       inputs=[{"key": "user", "pojo": {"field": "user_id"}}]),
                                 vendor=VENDOR))
    for user in ("u1", "u1", "u2", "u1"):
        _, ctx = run(enrichment, EnrichedEvent(user_id=user))
        assert ctx.derived[0]["data"] == {"n": int(user[1])}
    assert [r.path for r in stub.requests] == ["/users/u1", "/users/u2"]


def test_zero_cache_size_means_every_event_asks(load, stub):
    stub.route("GET", "/users/u1", {"record": {"n": 1}})
    enrichment = load(config_doc(NAME, "1-0-1", params(stub, uri=stub.url + "/users/{{user}}",
                                                       inputs=[{"key": "user", "pojo": {"field": "user_id"}}],
                                                       cache={"size": 0, "ttl": 0}), vendor=VENDOR))
    run(enrichment, EnrichedEvent(user_id="u1"))
    run(enrichment, EnrichedEvent(user_id="u1"))
    assert len(stub.requests) == 2


@pytest.mark.parametrize("ev", [event(user=None), event(client=None), event(user="")])
def test_missing_input_means_no_request_and_no_entity(load, stub, ev):
    enrichment = load(config_doc(NAME, "1-0-0", params(stub), vendor=VENDOR))
    _, ctx = run(enrichment, ev)
    assert ctx.derived == [] and stub.requests == []


def test_placeholder_without_input_means_no_request(load, stub):
    enrichment = load(config_doc(NAME, "1-0-0", params(stub, uri=stub.url + "/u/{{user}}/{{nope}}"), vendor=VENDOR))
    _, ctx = run(enrichment, event())
    assert ctx.derived == [] and stub.requests == []


def test_json_inputs_from_unstruct_event_and_derived_contexts(load, stub):
    stub.route("GET", "/p/SKU-1/DE", {"record": {"ok": True}})
    inputs = [
        {"key": "sku", "json": {"field": "unstruct_event", "schemaCriterion": "iglu:com.acme/view/jsonschema/1-*-*",
                                "jsonPath": "$.product.sku"}},
        {"key": "country", "json": {"field": "derived_contexts",
                                    "schemaCriterion": "iglu:com.acme/geo/jsonschema/*-*-*", "jsonPath": "$.cc"}},
    ]
    enrichment = load(config_doc(NAME, "1-0-0", params(stub, uri=stub.url + "/p/{{sku}}/{{country}}", inputs=inputs),
                                 vendor=VENDOR))
    ev = EnrichedEvent(unstruct_event={"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                                       "data": {"schema": "iglu:com.acme/view/jsonschema/1-2-0",
                                                "data": {"product": {"sku": "SKU-1"}}}})
    from .conftest import make_payload
    ctx = EventContext(make_payload(), {}, derived=[{"schema": "iglu:com.acme/geo/jsonschema/2-0-0",
                                                     "data": {"cc": "DE"}}])
    enrichment.enrich(ev, ctx)
    assert ctx.derived[-1] == {"schema": USER, "data": {"ok": True}}
    # a schema outside the criterion is not an input
    ev.unstruct_event["data"]["schema"] = "iglu:com.acme/view/jsonschema/2-0-0"
    ctx2 = EventContext(make_payload(), {}, derived=list(ctx.derived[:1]))
    enrichment.enrich(ev, ctx2)
    assert len(ctx2.derived) == 1 and len(stub.requests) == 1


def test_timeout_fails_the_event(load, stub):
    stub.route("GET", "/slow", {"record": {}}, delay=5)
    enrichment = load(config_doc(NAME, "1-0-0", params(stub, uri=stub.url + "/slow", timeout=100), vendor=VENDOR))
    with pytest.raises(EnrichmentFailure) as info:
        run(enrichment, event())
    assert "error" in info.value.messages[0] and "/slow" in info.value.messages[0]["error"]


@pytest.mark.parametrize("route", [
    (500, {"oops": 1}),            # server error
    (200, b"not json"),            # not JSON
    (200, {"other": {}}),          # output path finds nothing
])
def test_api_errors_fail_unless_ignore_on_error(load, stub, route):
    stub.route("GET", "/x", route)
    failing = load(config_doc(NAME, "1-0-2", params(stub, uri=stub.url + "/x"), vendor=VENDOR))
    with pytest.raises(EnrichmentFailure):
        run(failing, event())
    ignoring = load(config_doc(NAME, "1-0-2", params(stub, uri=stub.url + "/x", ignoreOnError=True), vendor=VENDOR))
    _, ctx = run(ignoring, event())
    assert ctx.derived == []


def test_ignore_on_error_covers_timeouts_and_errors_are_not_cached(load, stub):
    stub.route("GET", "/slow", {"record": {}}, delay=5)
    enrichment = load(config_doc(NAME, "1-0-2", params(stub, uri=stub.url + "/slow", timeout=50,
                                                       ignoreOnError=True), vendor=VENDOR))
    for _ in range(2):
        _, ctx = run(enrichment, event())
        assert ctx.derived == []
    assert len(stub.requests) == 2


def test_output_path_with_filter_and_several_outputs(load, stub):
    stub.route("GET", "/users/u", {"items": [{"k": "a", "v": {"x": 1}}, {"k": "b", "v": {"x": 2}}],
                                   "meta": {"id": "m"}})
    outputs = [{"schema": USER, "json": {"jsonPath": "$.items[?(@.k == 'b')].v"}},
               {"schema": "iglu:com.acme/meta/jsonschema/1-0-0", "json": {"jsonPath": "$.meta"}}]
    enrichment = load(config_doc(NAME, "1-0-0", params(stub, uri=stub.url + "/users/{{user}}",
                                                       inputs=[{"key": "user", "pojo": {"field": "user_id"}}],
                                                       outputs=outputs), vendor=VENDOR))
    _, ctx = run(enrichment, EnrichedEvent(user_id="u"))
    assert [e["data"] for e in ctx.derived] == [{"x": 2}, {"id": "m"}]


@pytest.mark.parametrize("version,mutate,field", [
    ("1-0-0", lambda p: p.pop("outputs"), "outputs"),
    ("1-0-0", lambda p: p["api"]["http"].update(method="DELETE"), "method"),
    ("1-0-0", lambda p: p["api"]["http"].update(timeout=0), "timeout"),
    ("1-0-0", lambda p: p.update(cache={"size": 0, "ttl": 10}), "size"),   # 1-0-0 needs size >= 1
    ("1-0-1", lambda p: p.update(ignoreOnError=True), "ignoreOnError"),    # only 1-0-2 has it
    ("1-0-2", lambda p: p["inputs"][0].update(key="bad key"), "key"),
    ("1-0-2", lambda p: p["inputs"][0].update(pojo={"field": "no_such_field"}), "pojo.field"),
    ("1-0-2", lambda p: p["outputs"][0].update(schema="iglu:com.acme/user/jsonschema/1-*-0"), "schema"),
    ("1-0-2", lambda p: p["outputs"][0]["json"].update(jsonPath="$.[[["), "jsonPath"),
    ("1-0-2", lambda p: p["api"]["http"].update(uri="ftp://x/{{user}}"), "uri"),
])
def test_invalid_config_is_refused_naming_the_field(load, stub, version, mutate, field):
    p = params(stub)
    mutate(p)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load(config_doc(NAME, version, p, vendor=VENDOR))


def test_config_with_wrong_vendor_is_refused(load, stub):
    with pytest.raises(ConfigError, match="vendor"):
        load(config_doc(NAME, "1-0-0", params(stub)))


def test_through_the_stage(stub, tmp_path):
    root = tmp_path / "registry"
    vendor, name, fmt, version = USER.removeprefix("iglu:").split("/")
    (root / vendor / name / fmt).mkdir(parents=True)
    (root / vendor / name / fmt / version).write_text(json.dumps({
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": vendor, "name": name, "format": fmt, "version": version},
        "type": "object", "properties": {"name": {"type": "string"}, "tier": {"type": "integer"}},
        "required": ["name"], "additionalProperties": False}))
    resolver = Resolver([EmbeddedRepository("test", root)])
    from processor.enrichments import parse_enrichment
    p = params(stub, uri=stub.url + "/users/{{user}}", inputs=[{"key": "user", "pojo": {"field": "user_id"}}])
    enrichment = parse_enrichment(config_doc(NAME, "1-0-2", p, vendor=VENDOR), resolver)
    stub.route("GET", "/users/ada", {"record": {"name": "Ada", "tier": 3}})
    stub.route("GET", "/users/bob", {"record": {"name": 7}})  # does not validate
    enricher = Enricher(resolver, enrichments=[enrichment], clock=lambda: 1_764_288_005.0)

    def raw(uid):
        return raw_record(querystring=f"e=pv&p=web&tv=js-4.1.0&aid=shop&uid={uid}&url=https%3A%2F%2Fshop.acme.com%2F")

    out = enricher.enrich(raw("ada"))
    assert out.bad == [] and len(out.good) == 1
    row = parse_tsv(out.good[0])
    assert row["user_id"] == "ada"
    assert row["contexts_com_acme_user_1"] == [{"name": "Ada", "tier": 3}]
    bad = enricher.enrich(raw("bob"))
    assert bad.good == [] and len(bad.bad) == 1
    assert "enrichment_failures" in json.loads(bad.bad[0])["schema"]


def test_a_placeholder_value_of_dots_cannot_climb_the_path(load, stub):
    stub.route("GET", "/users/%2E%2E", {"record": {"n": 1}})
    stub.route("GET", "/users/a.b", {"record": {"n": 2}})
    enrichment = load(config_doc(NAME, "1-0-0", params(stub, uri=stub.url + "/users/{{user}}",
                                                       inputs=[{"key": "user", "pojo": {"field": "user_id"}}]),
                                 vendor=VENDOR))
    for user, n in (("..", 1), ("a.b", 2)):
        _, ctx = run(enrichment, EnrichedEvent(user_id=user))
        assert ctx.derived[0]["data"] == {"n": n}
    # the requests stayed under /users/: no "/users/.." that a server or proxy would resolve to "/"
    assert [r.path for r in stub.requests] == ["/users/%2E%2E", "/users/a.b"]
