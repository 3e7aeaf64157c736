"""Cookie extractor enrichment: named cookies of the Cookie header become http_cookie entities."""
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from processor.enrichments import ConfigError
from processor.enrichments.cookie_extractor import HTTP_COOKIE_SCHEMA, parse_cookie_header
from processor.stage import Enricher

from .conftest import config_doc, make_payload, raw_record, run


def cookie_config(*names):
    return config_doc("cookie_extractor_config", "1-0-0", {"cookies": list(names)})


def cookies_of(ctx):
    return [(e["data"]["name"], e["data"]["value"]) for e in ctx.derived if e["schema"] == HTTP_COOKIE_SCHEMA]


def test_named_cookies_become_entities_in_order(load):
    enrichment = load(cookie_config("sp", "_ga", "missing"))
    payload = make_payload(headers=["Host: c.acme.com",
                                    "Cookie: _ga=GA1.2.3.4; sp=11111111-1111-4111-8111-111111111111; other=x"])
    _, ctx = run(enrichment, payload=payload)
    assert cookies_of(ctx) == [("_ga", "GA1.2.3.4"), ("sp", "11111111-1111-4111-8111-111111111111")]
    assert all(set(e) == {"schema", "data"} for e in ctx.derived)


def test_repeated_headers_and_the_header_name_as_written(load):
    # only a header named exactly "Cookie" is read, as Snowplow's enrich 3.9.0 matches the name
    enrichment = load(cookie_config("a", "b"))
    payload = make_payload(headers=["Cookie: a=1", "cookie: a=2", "COOKIE: a=3", "Cookie : a=4", "Cookie: b=2; a=5"])
    _, ctx = run(enrichment, payload=payload)
    assert cookies_of(ctx) == [("a", "1"), ("b", "2"), ("a", "5")]


def test_cookie_names_are_case_sensitive(load):
    enrichment = load(cookie_config("SP"))
    _, ctx = run(enrichment, payload=make_payload(headers=["Cookie: sp=1"]))
    assert ctx.derived == []


def test_no_cookie_header_no_entity(load):
    enrichment = load(cookie_config("sp"))
    _, ctx = run(enrichment, payload=make_payload(headers=["Host: c.acme.com", "Set-Cookie: sp=1"]))
    assert ctx.derived == []
    _, ctx = run(enrichment, payload=make_payload(headers=None))
    assert ctx.derived == []


@pytest.mark.parametrize("header,expected", [
    ("a=1; b=2", [("a", "1"), ("b", "2")]),
    (' a = "quoted value" ;b=', [("a", "quoted value"), ("b", "")]),
    ("flag; c=x=y", [("flag", None), ("c", "x=y")]),
    (";;", [("", None), ("", None)]),  # empty names are names (HttpCore's parameter parser)
    ("a=1, b=2", [("a", "1")]),  # a comma ends the element
    (" a  b = x   y ; c", [("a b", "x y"), ("c", None)]),
    ('a="q\\"z" ;b=x"y z"w', [("a", 'q"z'), ("b", "xy zw")]),
    ("", []),
])
def test_parse_cookie_header(header, expected):
    assert parse_cookie_header(header) == expected


def test_empty_cookie_list_is_accepted(load):
    enrichment = load(cookie_config())
    _, ctx = run(enrichment, payload=make_payload(headers=["Cookie: sp=1"]))
    assert ctx.derived == []


@pytest.mark.parametrize("parameters,field", [
    ({}, "cookies"),
    ({"cookies": "sp"}, "cookies"),
    ({"cookies": [1]}, "cookies"),
    ({"cookies": ["sp"], "names": []}, "names"),
])
def test_invalid_config_is_refused_naming_the_field(load, parameters, field):
    with pytest.raises(ConfigError, match=field):
        load(config_doc("cookie_extractor_config", "1-0-0", parameters))


def test_through_the_stage(load, resolver):
    enrichment = load(cookie_config("sp", "flag"))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[enrichment])
    raw = raw_record(
        querystring=urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0", "url": "https://shop.acme.com/"}),
        headers=["Host: c.acme.com", "Cookie: sp=abc; theme=dark; flag"], hostname="c.acme.com")
    out = enricher.enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    assert out.good[0].split("\t")[FIELD_INDEX["derived_contexts"]].startswith(
        '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"')
    row = parse_tsv(out.good[0])
    assert row["contexts_org_ietf_http_cookie_1"] == [{"name": "sp", "value": "abc"},
                                                      {"name": "flag", "value": None}]
    for entity in [{"schema": HTTP_COOKIE_SCHEMA, "data": {"name": "sp", "value": "abc"}},
                   {"schema": HTTP_COOKIE_SCHEMA, "data": {"name": "flag", "value": None}}]:
        assert resolver.validate(entity, field="derived_contexts").ok


def test_too_long_cookie_fails_the_event_in_the_stage(load, resolver):
    enrichment = load(cookie_config("big"))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[enrichment])
    raw = raw_record(
        querystring=urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0"}), headers=["Cookie: big=" + "x" * 5000])
    out = enricher.enrich(raw)
    assert out.good == [] and len(out.bad) == 1
    assert b"enrichment_failures" in out.bad[0]
