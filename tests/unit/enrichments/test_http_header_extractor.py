"""HTTP header extractor enrichment: headers whose name matches headersPattern become http_header entities."""
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enrichments import ConfigError
from processor.enrichments.http_header_extractor import HTTP_HEADER_SCHEMA
from processor.stage import Enricher

from .conftest import config_doc, make_payload, raw_record, run

VENDOR = "com.snowplowanalytics.snowplow.enrichments"
HEADERS = ["Host: c.acme.com", "X-Forwarded-For: 198.51.100.7, 10.0.0.1", "Accept-Language: de-DE,de;q=0.9",
           "X-Host: other", "Cookie: sp=1", "x-request-id:  abc  "]


def header_config(pattern):
    return config_doc("http_header_extractor_config", "1-0-0", {"headersPattern": pattern}, vendor=VENDOR)


def headers_of(ctx):
    assert all(e["schema"] == HTTP_HEADER_SCHEMA for e in ctx.derived)
    return [(e["data"]["name"], e["data"]["value"]) for e in ctx.derived]


def test_dot_star_takes_every_header_in_order(load):
    _, ctx = run(load(header_config(".*")), payload=make_payload(headers=HEADERS))
    assert headers_of(ctx) == [("Host", "c.acme.com"), ("X-Forwarded-For", "198.51.100.7, 10.0.0.1"),
                               ("Accept-Language", "de-DE,de;q=0.9"), ("X-Host", "other"), ("Cookie", "sp=1"),
                               ("x-request-id", "abc")]


def test_pattern_must_match_the_whole_name_case_sensitively(load):
    enrichment = load(header_config("Host"))
    _, ctx = run(enrichment, payload=make_payload(headers=HEADERS + ["host: lower"]))
    assert headers_of(ctx) == [("Host", "c.acme.com")]
    # the cached answer is the same the second time
    _, ctx = run(enrichment, payload=make_payload(headers=HEADERS))
    assert headers_of(ctx) == [("Host", "c.acme.com")]


def test_inline_flags_and_alternation(load):
    _, ctx = run(load(header_config("(?i)x-.*|accept-language")), payload=make_payload(headers=HEADERS))
    assert [n for n, _ in headers_of(ctx)] == ["X-Forwarded-For", "Accept-Language", "X-Host", "x-request-id"]


def test_no_headers_no_entity(load):
    _, ctx = run(load(header_config(".*")), payload=make_payload(headers=None))
    assert ctx.derived == []
    _, ctx = run(load(header_config("Nope")), payload=make_payload(headers=HEADERS))
    assert ctx.derived == []


@pytest.mark.parametrize("parameters,field", [
    ({"headersPattern": "(unclosed"}, "headersPattern"),
    ({"headersPattern": "\\p{Alpha}+"}, "headersPattern"),
    ({"headersPattern": 3}, "headersPattern"),
    ({}, "headersPattern"),
    ({"headersPattern": ".*", "other": 1}, "other"),
])
def test_invalid_config_is_refused_naming_the_field(load, parameters, field):
    with pytest.raises(ConfigError, match=field):
        load(config_doc("http_header_extractor_config", "1-0-0", parameters, vendor=VENDOR))


def test_wrong_vendor_is_refused(load):
    with pytest.raises(ConfigError, match="vendor"):
        load(config_doc("http_header_extractor_config", "1-0-0", {"headersPattern": ".*"}))


def test_through_the_stage(load, resolver):
    enrichment = load(header_config("Host|X-Forwarded-For"))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[enrichment])
    raw = raw_record(
        querystring=urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0", "url": "https://shop.acme.com/"}),
        headers=HEADERS, hostname="c.acme.com")
    out = enricher.enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    row = parse_tsv(out.good[0])
    assert row["contexts_org_ietf_http_header_1"] == [{"name": "Host", "value": "c.acme.com"},
                                                      {"name": "X-Forwarded-For", "value": "198.51.100.7, 10.0.0.1"}]
    for data in row["contexts_org_ietf_http_header_1"]:
        assert resolver.validate({"schema": HTTP_HEADER_SCHEMA, "data": data}, field="derived_contexts").ok
