"""snowmelt's Python enrichment: process(event, params) from a base64 script or a module."""
import base64
import json
import textwrap

import pytest

from processor.enriched import FIELD_INDEX, EnrichedEvent
from processor.enrichments import ConfigError, EnrichmentFailure
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher

from .conftest import config_doc, make_payload, raw_record, run

NAME = "python_script_config"
VENDOR = "io.snowmelt"
ENTITY = "iglu:com.acme/py_entity/jsonschema/1-0-0"

SCRIPT = textwrap.dedent("""
    TIERS = {"u1": "gold"}

    def process(event, params):
        if event.app_id == params["blocked"]:
            raise ValueError("blocked app " + event.app_id)
        event.user_id = (event.user_id or "anon").upper()
        return [{"schema": "%s", "data": {"app": event.app_id, "tier": TIERS.get(event.user_id.lower(), "free")}}]
""" % ENTITY)


def b64(source: str) -> str:
    return base64.b64encode(source.encode("utf-8")).decode("ascii")


def py_config(parameters: dict, **kwargs) -> dict:
    return config_doc(NAME, "1-0-0", parameters, vendor=VENDOR, **kwargs)


def test_script_sets_fields_and_returns_entities(load):
    enrichment = load(py_config({"script": b64(SCRIPT), "config": {"blocked": "spam"}}))
    event, ctx = run(enrichment, EnrichedEvent(app_id="shop", user_id="u1"))
    assert event.user_id == "U1"
    assert ctx.derived == [{"schema": ENTITY, "data": {"app": "shop", "tier": "gold"}}]


def test_raising_fails_the_event_naming_the_exception(load):
    enrichment = load(py_config({"script": b64(SCRIPT), "config": {"blocked": "spam"}}))
    with pytest.raises(EnrichmentFailure, match="ValueError: blocked app spam") as info:
        run(enrichment, EnrichedEvent(app_id="spam"))
    assert "error" in info.value.messages[0]


def test_module_from_a_file_relative_to_the_enrichments_folder(load, tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "enrich_acme.py").write_text(SCRIPT)
    enrichment = load(py_config({"module": "scripts/enrich_acme.py", "config": {"blocked": "x"}}))
    _, ctx = run(enrichment, EnrichedEvent(app_id="shop"))
    assert ctx.derived[0]["data"] == {"app": "shop", "tier": "free"}


def test_module_by_dotted_name(load, tmp_path, monkeypatch):
    (tmp_path / "acme_enrich_mod.py").write_text(SCRIPT)
    monkeypatch.syspath_prepend(str(tmp_path))
    enrichment = load(py_config({"module": "acme_enrich_mod", "config": {"blocked": "x"}}))
    _, ctx = run(enrichment, EnrichedEvent(app_id="shop", user_id="u1"))
    assert ctx.derived[0]["data"]["tier"] == "gold"


def test_a_third_parameter_receives_the_event_context(load):
    source = textwrap.dedent("""
        def process(event, params, ctx):
            host = dict(ctx.headers).get("Host")
            return [{"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": {"host": host, "n": len(ctx.derived)}}]
    """)
    enrichment = load(py_config({"script": b64(source)}))
    _, ctx = run(enrichment, EnrichedEvent(), payload=make_payload(headers=["Host: c.acme.com"]))
    assert ctx.derived[0]["data"] == {"host": "c.acme.com", "n": 0}


@pytest.mark.parametrize("result", ["None", "[]"])
def test_no_entities_is_fine(load, result):
    enrichment = load(py_config({"script": b64(f"def process(event, params):\n    return {result}\n")}))
    _, ctx = run(enrichment, EnrichedEvent())
    assert ctx.derived == []


@pytest.mark.parametrize("result,match", [
    ("'entity'", "must return an array"),
    ("[{'data': {}}]", "index 0"),
    ("[{'schema': 'iglu:com.acme/x/jsonschema/1-0-0'}]", "index 0"),
])
def test_bad_return_values_fail_the_event(load, result, match):
    enrichment = load(py_config({"script": b64(f"def process(event, params):\n    return {result}\n")}))
    with pytest.raises(EnrichmentFailure, match=match):
        run(enrichment, EnrichedEvent())


@pytest.mark.parametrize("parameters,match", [
    ({"script": "!!! not base64"}, r"parameters\.script: not base64"),
    ({"script": b64("def process(event, params)\n  return []")}, r"parameters\.script: the script does not compile"),
    ({"script": b64("raise RuntimeError('at import')")}, r"parameters\.script: the script failed when run"),
    ({"script": b64("def handle(event, params):\n    return []")}, r"parameters\.script: defines no function process"),
    ({"script": b64("def process(event):\n    return []")}, r"parameters\.script: process must take"),
    ({"module": "no_such_module_for_snowmelt_tests"}, r"parameters\.module: cannot import"),
    ({"module": "missing/file.py"}, r"parameters\.module: no file"),
    ({}, "script|module"),
    ({"script": b64("def process(e, p): pass"), "module": "x"}, "script|module"),
    ({"script": b64("def process(e, p): pass"), "extra": 1}, "extra"),
])
def test_invalid_configs_are_refused_naming_the_field(load, parameters, match):
    with pytest.raises(ConfigError, match=match):
        load(py_config(parameters))


def test_only_the_snowmelt_vendor_is_accepted(load):
    with pytest.raises(ConfigError, match="vendor"):
        load(config_doc(NAME, "1-0-0", {"script": b64("def process(e, p): pass")}))


def test_disabled_config_is_skipped(load):
    assert load(py_config({"script": b64("def process(e, p): pass")}, enabled=False)) is None


def test_through_the_stage(load, tmp_path):
    path = tmp_path / "registry" / "com.acme" / "py_entity" / "jsonschema" / "1-0-0"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": "com.acme", "name": "py_entity", "format": "jsonschema", "version": "1-0-0"},
        "type": "object", "properties": {"app": {"type": "string"}, "tier": {"enum": ["gold", "free"]}},
        "required": ["app", "tier"], "additionalProperties": False}))
    resolver = Resolver([EmbeddedRepository("test registry", tmp_path / "registry")], include_builtin=True)
    enrichment = load(py_config({"script": b64(SCRIPT), "config": {"blocked": "spam"}}))
    enricher = Enricher(resolver, enrichments=[enrichment], clock=lambda: 1_764_288_005.0)

    def raw(qs):
        return raw_record(querystring=qs)

    out = enricher.enrich(raw("e=pv&aid=shop&p=web&tv=py-1.0.0&uid=u1&url=https%3A%2F%2Fshop.acme.com%2F"))
    assert out.bad == [] and len(out.good) == 1
    fields = out.good[0].split("\t")
    assert fields[FIELD_INDEX["user_id"]] == "U1"
    derived = json.loads(fields[FIELD_INDEX["derived_contexts"]])["data"]
    assert derived == [{"schema": ENTITY, "data": {"app": "shop", "tier": "gold"}}]
    assert all(resolver.validate(entity).ok for entity in derived)

    out = enricher.enrich(raw("e=pv&aid=spam&p=web&tv=py-1.0.0"))
    assert out.good == [] and len(out.bad) == 1
    bad = json.loads(out.bad[0])
    assert "enrichment_failures" in bad["schema"] and "blocked app spam" in json.dumps(bad["data"]["failure"])
