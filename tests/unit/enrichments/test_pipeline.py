"""Enrichments in the stage: loading Snowplow's config folders, order, failures as bad rows."""
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from processor.enrichments import ConfigError, Enrichment, EnrichmentFailure, load_enrichments
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from tests.unit.test_stage import NOW, raw, validate_bad_row, write_schema

from .conftest import config_doc, write_json

ANON = config_doc("anon_ip", "1-0-1", {"anonOctets": 2, "anonSegments": 2})
ENTITY = "iglu:com.acme/request_host/jsonschema/1-0-0"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """The shipped schemas plus the entity schema of the test enrichment."""
    root = tmp_path_factory.mktemp("registry")
    write_schema(root, ENTITY, {"type": "object", "properties": {"host": {"type": "string"}},
                                "required": ["host"], "additionalProperties": False})
    return Resolver([EmbeddedRepository("test registry", root)], include_builtin=True)


def test_folder_loads_enabled_configs_and_skips_disabled(tmp_path, resolver):
    write_json(tmp_path / "anon_ip.json", ANON)
    write_json(tmp_path / "other.json", config_doc("anon_ip", "1-0-0", {"anonOctets": 1}, enabled=False))
    (tmp_path / "README.txt").write_text("not a config")
    loaded = load_enrichments(tmp_path, resolver)
    assert [e.name for e in loaded] == ["anon_ip"]
    assert loaded[0].schema_key == ANON["schema"]


def test_bundle_of_configs_is_read_as_snowplow_writes_it(tmp_path, resolver):
    write_json(tmp_path / "all.json", {"schema": "iglu:com.snowplowanalytics.snowplow/enrichments/jsonschema/1-0-0",
                                        "data": [ANON]})
    assert [e.name for e in load_enrichments(tmp_path, resolver)] == ["anon_ip"]


@pytest.mark.parametrize("content,message", [
    ("{not json", "not readable JSON"),
    (json.dumps({"data": {}}), "not a self-describing JSON"),
    (json.dumps(config_doc("no_such_enrichment", "1-0-0", {})), "unknown enrichment 'no_such_enrichment'"),
    (json.dumps(config_doc("anon_ip", "1-0-1", {"anonOctets": "two"})), r"\$\.data\.parameters\.anonOctets"),
    (json.dumps(config_doc("anon_ip", "3-0-0", {"anonOctets": 2})), "version 3-0-0 of anon_ip is not supported"),
    (json.dumps(config_doc("anon_ip", "1-0-1", {"anonOctets": 2}, vendor="com.acme")), "vendor 'com.acme'"),
])
def test_unusable_config_is_refused_at_start_up_naming_file_and_field(tmp_path, resolver, content, message):
    (tmp_path / "broken.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_enrichments(tmp_path, resolver)
    assert "broken.json" in str(info.value)


def test_the_same_enrichment_twice_is_refused(tmp_path, resolver):
    write_json(tmp_path / "a.json", ANON)
    write_json(tmp_path / "b.json", ANON)
    with pytest.raises(ConfigError, match="already configured"):
        load_enrichments(tmp_path, resolver)


def test_missing_folder_is_refused(tmp_path, resolver):
    with pytest.raises(ConfigError, match="does not exist"):
        load_enrichments(tmp_path / "nope", resolver)


# ---------------------------------------------------------------- in the stage

@dataclass(frozen=True)
class Scripted(Enrichment):
    """A test enrichment doing what it is told: set a field, attach an entity, fail, or crash."""

    name = "scripted"
    action: str = "entity"
    entity: dict | None = None
    schema_key: str = "iglu:com.acme/scripted/jsonschema/1-0-0"

    def enrich(self, event, ctx):
        if self.action == "fail":
            raise EnrichmentFailure.input("useragent", event.useragent, "a user agent this test accepts")
        if self.action == "crash":
            raise KeyError("boom")
        event.app_id = f"seen {event.user_ipaddress}"
        ctx.derived.append(self.entity or {"schema": ENTITY, "data": {"host": ctx.headers[0][1]}})


def page_view():
    return raw(querystring=urlencode({"e": "pv", "url": "https://shop.acme.com/", "p": "web", "tv": "js-3"}))


def enricher_with(resolver, *enrichments):
    return Enricher(resolver, clock=lambda: NOW, enrichments=list(enrichments))


def test_enrichments_run_in_order_and_their_entities_land_in_derived_contexts(tmp_path, registry):
    write_json(tmp_path / "anon_ip.json", ANON)
    anon = load_enrichments(tmp_path, registry)[0]
    out = enricher_with(registry, Scripted(), anon).enrich(page_view())
    assert out.bad == []
    event = parse_tsv(out.good[0])
    assert event["user_ipaddress"] == "203.0.x.x"
    assert event["app_id"] == "seen 203.0.113.9"  # ran before anon_ip, as listed
    columns = out.good[0].split("\t")
    assert json.loads(columns[FIELD_INDEX["derived_contexts"]]) == {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
        "data": [{"schema": ENTITY, "data": {"host": "c.acme.com"}}]}


@pytest.mark.parametrize("action,message", [
    ("fail", {"field": "useragent", "expectation": "a user agent this test accepts"}),
    ("crash", {"error": "KeyError: 'boom'"}),
])
def test_a_failing_enrichment_makes_an_enrichment_failures_row(registry, action, message):
    out = enricher_with(registry, Scripted(action=action)).enrich(page_view())
    assert out.good == []
    row = validate_bad_row(out.bad[0])
    assert row["schema"] == "iglu:com.snowplowanalytics.snowplow.badrows/enrichment_failures/jsonschema/2-0-1"
    [failure] = row["data"]["failure"]["messages"]
    assert failure["enrichment"] == {"schemaKey": "iglu:com.acme/scripted/jsonschema/1-0-0", "identifier": "scripted"}
    assert {k: failure["message"][k] for k in message} == message
    assert row["data"]["payload"]["enriched"]["page_url"] == "https://shop.acme.com/"
    assert {"name": "e", "value": "pv"} in row["data"]["payload"]["raw"]["parameters"]


@dataclass(frozen=True)
class Reading(Enrichment):
    """A test enrichment that notes what each event's enrichments before it attached (``ctx.earlier``)."""

    name = "reading"
    seen: list = field(default_factory=list)

    def enrich(self, event, ctx):
        self.seen.append(ctx.earlier)


def test_each_enrichment_sees_the_entities_of_those_before_it_the_last_ones_first(registry):
    first, second = ({"schema": ENTITY, "data": {"host": host}} for host in ("first", "second"))
    readers = [Reading() for _ in range(4)]
    enricher = enricher_with(registry, readers[0], Scripted(entity=first), readers[1], Scripted(entity=second),
                             readers[2], Reading(), readers[3])
    for _ in range(2):  # each event starts with none
        out = enricher.enrich(page_view())
        assert out.bad == []
    assert [r.seen for r in readers] == [[[], []], [[first]] * 2, [[second, first]] * 2, [[second, first]] * 2]
    columns = out.good[0].split("\t")
    assert json.loads(columns[FIELD_INDEX["derived_contexts"]])["data"] == [second, first]


def test_an_entity_that_fails_its_schema_fails_the_event(registry):
    bad = {"schema": ENTITY, "data": {"host": 42}}
    out = enricher_with(registry, Scripted(entity=bad)).enrich(page_view())
    assert out.good == []
    row = validate_bad_row(out.bad[0])
    [failure] = row["data"]["failure"]["messages"]
    assert failure["enrichment"] is None
    assert failure["message"]["error"]["error"] == "ValidationError"
