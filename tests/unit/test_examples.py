"""The configuration examples users copy load as they are (and, enabled, each enrichment starts).

``examples/enrichments/`` holds one Snowplow-format config per enrichment
snowmelt supports: a new enrichment without an example fails
:func:`test_the_examples_cover_every_enrichment_the_loader_knows`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from processor.enriched import EnrichedEvent
from processor.enrichments import MODULES, ORDER, EnrichmentFailure, EventContext, LoadContext, parse_enrichment
from processor.enrichments.standard import geolite2_city
from processor.iglu import Resolver
from processor.stage import Enricher

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENRICHMENTS = EXAMPLES / "enrichments"
# synthetic files in the IAB/ABC list's format (the real list is licensed by the IAB)
IAB_TEST_LISTS = Path(__file__).resolve().parent / "enrichments" / "data" / "iab"


def _examples() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(ENRICHMENTS.glob("*.json"))}


def _resolver() -> Resolver:
    return Resolver.from_config(json.loads((EXAMPLES / "resolver.json").read_text()))


def test_the_examples_cover_every_enrichment_the_loader_knows():
    names = [doc["data"]["name"] for doc in _examples().values()]
    assert sorted(names) == sorted(set(names)), "one example file per enrichment"
    assert set(names) == set(MODULES) == set(ORDER)


@pytest.mark.parametrize("filename", sorted(_examples()))
def test_each_example_validates_against_its_schema_as_shipped(filename):
    """Disabled or not, each file is valid against its config schema and named after its enrichment."""
    doc = _examples()[filename]
    name = doc["data"]["name"]
    assert filename == f"{name}.json"
    assert doc["schema"].startswith(f"iglu:{doc['data']['vendor']}/{name}/jsonschema/")
    assert isinstance(doc["data"]["enabled"], bool)
    # parse_enrichment validates before it looks at ``enabled``: a disabled file that does not
    # match its schema is refused too
    enrichment = parse_enrichment(doc, _resolver(), LoadContext(base_dir=ENRICHMENTS, source=filename))
    assert (enrichment is not None) == doc["data"]["enabled"]


def _enabled_copy(doc: dict) -> dict | None:
    """``doc`` with ``enabled: true`` and its external data pointed at what a test has (None: skip it)."""
    doc = json.loads(json.dumps(doc))
    data = doc["data"]
    data["enabled"] = True
    if data["name"] == "ip_lookups":
        city = geolite2_city()
        if city is None:
            return None  # needs a MaxMind file: the geo extra provides one
        data["parameters"]["geo"]["uri"] = str(city.parent)
    if data["name"] == "yauaa_enrichment_config":
        from processor.enrichments.yauaa import unavailable

        if unavailable() is not None:
            return None  # needs JPype, Java and the YAUAA jars (or mvn to fetch them)
    if data["name"] == "iab_spiders_and_robots_enrichment":
        for key in ("ipFile", "excludeUseragentFile", "includeUseragentFile"):
            data["parameters"][key]["uri"] = str(IAB_TEST_LISTS)
    return doc


def test_every_example_enrichment_starts_when_enabled(tmp_path):
    """Enabled, every example starts with the example resolver (no service is called at start-up:
    the HTTP APIs and the database are reached per event)."""
    names = set()
    for filename, doc in _examples().items():
        doc = _enabled_copy(doc)
        if doc is None:
            continue
        names.add(doc["data"]["name"])
        (tmp_path / filename).write_text(json.dumps(doc))
    enricher = Enricher.from_files(str(EXAMPLES / "resolver.json"), str(tmp_path))
    try:
        assert {e.name for e in enricher.enrichments} == names
        from processor.enrichments.yauaa import unavailable

        optional = {"ip_lookups"} | ({"yauaa_enrichment_config"} if unavailable() is not None else set())
        assert set(MODULES) - optional <= names
    finally:
        enricher.close()


@pytest.mark.parametrize("filename", ["javascript_script_config.json", "python_script_config.json"])
def test_the_example_scripts_do_what_the_readme_says(filename):
    """The base64 scripts: test traffic fails (a bad row), user ids are trimmed and lower-cased."""
    enrichment = parse_enrichment(_enabled_copy(_examples()[filename]), _resolver(),
                                  LoadContext(base_dir=ENRICHMENTS, source=filename))
    try:
        event = EnrichedEvent(app_id="shop", user_id="  Ada@Example.COM ")
        ctx = EventContext(None, {})
        enrichment.enrich(event, ctx)
        assert event.user_id == "ada@example.com"
        assert ctx.derived == []
        untouched = EnrichedEvent(app_id="shop")
        enrichment.enrich(untouched, EventContext(None, {}))
        assert untouched.user_id is None
        with pytest.raises(EnrichmentFailure, match="test traffic"):
            enrichment.enrich(EnrichedEvent(app_id="qa", user_id="x"), EventContext(None, {}))
    finally:
        close = getattr(enrichment, "close", None)
        if close is not None:
            close()
