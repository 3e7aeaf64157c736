"""The client address, anon_ip and the cookie extractor as Snowplow's enrich 3.9.0 does them.

The inputs and expected values are the test data of Snowplow enrich 3.9.0
(Apache-2.0), from its test suites:

- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/loaders/IpAddressExtractorSpec.scala``
  (the address read from the recorded headers, the collector's being the fallback);
- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/enrichments/registry/AnonIpEnrichmentSpec.scala``;
- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/enrichments/registry/CookieExtractorEnrichmentSpec.scala``;
- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/enrichments/registry/UaParserEnrichmentSpec.scala``
  (the two user agents parsed with the bundled rules);
- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/enrichments/EnrichmentManagerSpec.scala``
  (``getIabContext``: when the IAB enrichment attaches nothing);
- ``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/enrichments/SchemaEnrichmentSpec.scala``
  (the schema of each event type; an unknown or missing one fails).

Where a case is run through the whole stage (:class:`processor.stage.Enricher`) the
headers are those of a raw ``CollectorPayload`` and the expected value is what
Snowplow's ``ThriftLoader`` then ``EnrichmentManager`` make of them.  No service is needed.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from processor.client_ip import extract_ip_address
from processor.enriched import FIELD_INDEX
from processor.enrichments import EventContext, parse_enrichment
from processor.enrichments.anon_ip import anonymise_ip
from processor.enrichments.cookie_extractor import HTTP_COOKIE_SCHEMA
from processor.iglu import Resolver
from processor.stage import Enricher
from tests.unit.test_stage import raw

DEFAULT = "255.255.255.255"  # the spec's fallback address (the collector's ipAddress)
V6 = "2001:0db8:85a3:0000:0000:8a2e:0370:7334"
PV = urlencode({"e": "pv", "p": "web", "tv": "js-3.0.0", "eid": "5a1e2c3d-0000-4000-8000-000000000001"})


# --------------------------------------------------------------------------- the client address

IP_CASES = [
    ("no headers", [], DEFAULT),
    ("no X-Forwarded-For", ["Accept-Charset: utf-8", "Connection: keep-alive"], DEFAULT),
    ("unreadable X-Forwarded-For", ["X-Forwarded-For: localhost"], DEFAULT),
    ("good X-Forwarded-For",
     ["Accept-Charset: utf-8", "X-Forwarded-For: 129.78.138.66, 129.78.64.103", "Connection: keep-alive"],
     "129.78.138.66"),
    ("X-Forwarded-For in odd case",
     ["Accept-Charset: utf-8", "x-FoRwaRdeD-FOr: 129.78.138.66, 129.78.64.103", "Connection: keep-alive"],
     "129.78.138.66"),
    ("IPv6 in X-Forwarded-For", [f"X-Forwarded-For: {V6}"], V6),
    ("quoted bracketed IPv6 in X-Forwarded-For", [f'X-Forwarded-For: "[{V6}]"'], V6),
    ("IPv4 in Forwarded", ["Forwarded: for=129.78.138.66, 129.78.64.103"], "129.78.138.66"),
    ("unquoted IPv6 in Forwarded", [f"Forwarded: for={V6}, for=129.78.138.56"], V6),
    ("quoted IPv6 in Forwarded", [f'Forwarded: for="[{V6}]", "129.78.128.66"'], V6),
    ("X-Forwarded-For over Forwarded", ["Forwarded: for=2.2.2.2", "X-Forwarded-For: 1.1.1.1"], "1.1.1.1"),
    ("IPv4 with a port", ["X-Forwarded-For: 1.1.1.1:8080"], "1.1.1.1"),
    ("bracketed IPv6 with a port", ["X-Forwarded-For: [1fff:0:a88:85a3::ac1f]:8001"], "1fff:0:a88:85a3::ac1f"),
]


@pytest.mark.parametrize("name,headers,expected", IP_CASES, ids=[c[0] for c in IP_CASES])
def test_the_client_address_is_read_from_the_headers(name, headers, expected):
    assert extract_ip_address(headers, DEFAULT) == expected


@pytest.mark.parametrize("name,headers,expected", IP_CASES, ids=[c[0] for c in IP_CASES])
def test_user_ipaddress_through_the_stage(name, headers, expected):
    out = Enricher().enrich(raw("/i", PV, ip_address=DEFAULT, headers=headers))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    [line] = out.good
    assert line.split("\t")[FIELD_INDEX["user_ipaddress"]] == expected


def test_an_ip_parameter_still_wins_over_the_headers():
    out = Enricher().enrich(raw("/i", PV + "&ip=198.51.100.1", headers=["X-Forwarded-For: 1.1.1.1"]))
    assert out.good[0].split("\t")[FIELD_INDEX["user_ipaddress"]] == "198.51.100.1"


def test_a_bad_row_shows_the_address_read_from_the_headers():
    # ThriftLoader puts the address it read in the payload's context, which bad rows show
    out = Enricher().enrich(raw("/i", "e=pv&p=web&tv=js-3.0.0&eid=nope", ip_address=DEFAULT,
                                headers=["X-Forwarded-For: [1fff:0:a88:85a3::ac1f]:8001"]))
    [row] = [json.loads(b) for b in out.bad]
    assert row["data"]["payload"]["raw"]["ipAddress"] == "1fff:0:a88:85a3::ac1f"


# --------------------------------------------------------------------------- anon_ip

ANON_CASES = [
    ("0.23.0.20", 1, 1, "0.23.0.x"),
    ("168.192.102.4", 2, 2, "168.192.x.x"),
    ("54.242.102.43", 3, 3, "54.x.x.x"),
    ("94.15.213.171", 4, 4, "x.x.x.x"),
    ("777.2", 1, 1, "777.2"),
    ("777.2.23", 4, 4, "x.x.x"),
    ("999.123.777.2", 3, 3, "999.x.x.x"),
    ("999.aaa.bbb.c", 3, 3, "999.x.x.x"),
    ("hello;goodbye", 3, 3, "hello;goodbye"),
    ("", 4, 4, "x"),
    ("4b0c:0:0:0:880c:99a8:4b0:4411", 1, 1, "4b0c:0:0:0:880c:99a8:4b0:x"),
    ("4b0c::880c:99a8:4b0:4411", 2, 2, "4b0c:0:0:0:880c:99a8:x:x"),
    ("2605:2700:0:3:0:0:4713:93e3", 3, 3, "2605:2700:0:3:0:x:x:x"),
    ("2605:2700:0:3::4713:93e3", 4, 4, "2605:2700:0:3:x:x:x:x"),
    ("2605:2700:0:3::4713:93e3", 4, 5, "2605:2700:0:x:x:x:x:x"),
    ("2605:2700:0:3::4713:93e3", 4, 6, "2605:2700:x:x:x:x:x:x"),
    ("2605:2700:0:3::4713:93e3", 4, 7, "2605:x:x:x:x:x:x:x"),
    ("2605:2700:0:3::4713:93e3", 4, 8, "x:x:x:x:x:x:x:x"),
    ("2605:2700::4713:93e3", 4, 8, "x:x:x:x:x:x:x:x"),
    ("2700::4713", 4, 8, "x:x:x:x:x:x:x:x"),
    ("2700:zzzz::gggg", 4, 6, "2700:zzzz:x:x:x:x:x:x"),
    ("f334::40cb:152.16.24.142", 4, 2, "f334:0:0:0:0:40cb:x:x"),
    ("f334::40cb:152.16.24.142", 4, 4, "f334:0:0:0:x:x:x:x"),
    ("::192.168.0.1", 4, 1, "0:0:0:0:0:0:c0a8:x"),
    ("::FFFF:152.16.24.123", 2, 4, "::FFFF:152.16.x.x"),
    ("::FFFF:152.16.24.123", 4, 4, "::FFFF:x.x.x.x"),
]


@pytest.mark.parametrize("ip,octets,segments,expected", ANON_CASES)
def test_anon_ip(ip, octets, segments, expected):
    assert anonymise_ip(ip, octets, segments) == expected


def test_anon_ip_through_the_stage_on_the_address_of_the_headers():
    resolver = Resolver.default()
    anon = parse_enrichment({"schema": "iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1",
                             "data": {"name": "anon_ip", "vendor": "com.snowplowanalytics.snowplow", "enabled": True,
                                      "parameters": {"anonOctets": 2, "anonSegments": 4}}}, resolver)
    enricher = Enricher(resolver, enrichments=[anon])
    out = enricher.enrich(raw("/i", PV, headers=["X-Forwarded-For: [2605:2700:0:3::4713:93e3]:443"]))
    assert out.good[0].split("\t")[FIELD_INDEX["user_ipaddress"]] == "2605:2700:0:3:x:x:x:x"


# --------------------------------------------------------------------------- cookie extractor


def cookie_extractor(names):
    resolver = Resolver.default()
    return parse_enrichment({"schema": "iglu:com.snowplowanalytics.snowplow/cookie_extractor_config/jsonschema/1-0-0",
                             "data": {"name": "cookie_extractor_config", "vendor": "com.snowplowanalytics.snowplow",
                                      "enabled": True, "parameters": {"cookies": names}}}, resolver)


def extracted(names, headers):
    from tests.unit.enrichments.conftest import make_payload
    ctx = EventContext(make_payload(headers=headers), {})
    cookie_extractor(names).enrich(None, ctx)
    assert all(e["schema"] == HTTP_COOKIE_SCHEMA for e in ctx.derived)
    return [e["data"] for e in ctx.derived]


def test_cookie_extractor_without_a_cookie_header():
    assert extracted(["cookieKey1"], ["Content-Length: 348"]) == []


def test_cookie_extractor_without_a_configured_cookie():
    assert extracted(["cookieKey1"], ["Cookie: not-interesting-cookie=1234;"]) == []


def test_cookie_extractor_finds_cookies_the_empty_name_included():
    cookies = ["ck1", "=cv2", "ck3=", "ck4=cv4", 'ck5="cv5"']
    assert extracted(["ck1", "", "ck3", "ck4", "ck5"], ["Cookie: " + ";".join(cookies)]) == [
        {"name": "ck1", "value": None},
        {"name": "", "value": "cv2"},
        {"name": "ck3", "value": ""},
        {"name": "ck4", "value": "cv4"},
        {"name": "ck5", "value": "cv5"},
    ]


# --------------------------------------------------------------------------- the order of the steps
# From enrich 3.9.0's EnrichmentManager.enrichEvent / accState (default order, not legacyEnrichmentOrder):
# each step's entities are prepended to what the earlier steps gave, so derived_contexts holds the last
# step's first; anon_ip runs after every step and after the entities were validated.


def _config(name: str, schema_version: str, parameters: dict, vendor: str = "com.snowplowanalytics.snowplow"):
    return parse_enrichment({"schema": f"iglu:{vendor}/{name}/jsonschema/{schema_version}",
                             "data": {"name": name, "vendor": vendor, "enabled": True,
                                      "parameters": parameters}}, Resolver.default())


def test_derived_contexts_hold_the_last_step_s_entities_first():
    import base64

    ua = _config("ua_parser_config", "1-0-0", {})
    cookies = _config("cookie_extractor_config", "1-0-0", {"cookies": ["sp"]})
    headers = _config("http_header_extractor_config", "1-0-0", {"headersPattern": "^Accept-Language$"},
                      "com.snowplowanalytics.snowplow.enrichments")
    script = base64.b64encode(b'function process(event) { return [{"schema": '
                              b'"iglu:com.snowplowanalytics.snowplow/geolocation_context/jsonschema/1-0-0", '
                              b'"data": {"latitude": 1, "longitude": 2}}]; }').decode()
    js = _config("javascript_script_config", "1-0-0", {"script": script})
    enricher = Enricher(Resolver.default(), enrichments=[ua, cookies, headers, js])  # in ORDER, as loaded
    out = enricher.enrich(raw("/i", PV, headers=["Cookie: sp=abc", "Accept-Language: fr"],
                              user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"))
    derived = json.loads(out.good[0].split("\t")[FIELD_INDEX["derived_contexts"]])["data"]
    assert [d["schema"].split("/")[1] for d in derived] == [
        "geolocation_context", "http_header", "http_cookie", "ua_parser_context"]


def test_anon_ip_runs_after_the_scripts_which_see_the_full_address():
    import base64

    script = base64.b64encode(b'function process(event) { event.setApp_id(event.getUser_ipaddress()); '
                              b'return []; }').decode()
    js = _config("javascript_script_config", "1-0-0", {"script": script})
    anon = _config("anon_ip", "1-0-1", {"anonOctets": 2, "anonSegments": 4})
    out = Enricher(Resolver.default(), enrichments=[js, anon]).enrich(raw("/i", PV, ip_address="203.0.113.9"))
    fields = out.good[0].split("\t")
    assert fields[FIELD_INDEX["app_id"]] == "203.0.113.9"
    assert fields[FIELD_INDEX["user_ipaddress"]] == "203.0.x.x"


# --------------------------------------------------------------------------- UaParserEnrichmentSpec
# "parse useragent according to configured rules", the bundled rules.  The user agent is the request's
# (CollectorPayload.userAgent); an empty one is parsed too (getUaParser skips only a null one), as Other.

MOBILE_SAFARI_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 5_1_1 like Mac OS X) AppleWebKit/534.46 (KHTML, like Gecko) "
                    "Version/5.1 Mobile/9B206 Safari/7534.48.3")
SAFARI_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10) AppleWebKit/600.1.25 (KHTML, like Gecko) Version/8.0 "
             "Safari/600.1.25")
UA_PARSER_CASES = [
    ("mobile safari", MOBILE_SAFARI_UA, {
        "useragentFamily": "Mobile Safari", "useragentMajor": "5", "useragentMinor": "1", "useragentPatch": None,
        "useragentVersion": "Mobile Safari 5.1", "osFamily": "iOS", "osMajor": "5", "osMinor": "1", "osPatch": "1",
        "osPatchMinor": None, "osVersion": "iOS 5.1.1", "deviceFamily": "iPhone"}),
    ("safari", SAFARI_UA, {
        "useragentFamily": "Safari", "useragentMajor": "8", "useragentMinor": "0", "useragentPatch": None,
        "useragentVersion": "Safari 8.0", "osFamily": "Mac OS X", "osMajor": "10", "osMinor": "10", "osPatch": None,
        "osPatchMinor": None, "osVersion": "Mac OS X 10.10", "deviceFamily": "Mac"}),
    # not in the spec: uap-java's parsers give "Other" (and no version) for what no rule matches, "" included
    ("empty", "", {
        "useragentFamily": "Other", "useragentMajor": None, "useragentMinor": None, "useragentPatch": None,
        "useragentVersion": "Other", "osFamily": "Other", "osMajor": None, "osMinor": None, "osPatch": None,
        "osPatchMinor": None, "osVersion": "Other", "deviceFamily": "Other"}),
]


@pytest.mark.parametrize("name,useragent,expected", UA_PARSER_CASES, ids=[c[0] for c in UA_PARSER_CASES])
def test_ua_parser_through_the_stage(name, useragent, expected):
    enricher = Enricher(Resolver.default(), enrichments=[_config("ua_parser_config", "1-0-0", {})])
    out = enricher.enrich(raw("/i", PV, user_agent=useragent))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    derived = json.loads(out.good[0].split("\t")[FIELD_INDEX["derived_contexts"]])["data"]
    assert derived == [{"schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0",
                        "data": expected}]


# --------------------------------------------------------------------------- EnrichmentManagerSpec: getIabContext
# No context (and no failure) when the user agent, the address or derived_tstamp is null, or the address is not
# an IP address (a host name is not resolved); a context when all are valid.  The spec's IAB files are not ours:
# the open list (no files) decides the same here, the enrichment being skipped before any list is read.

IAB_CASES = [
    ("useragent is null", None, "127.0.0.1", 1277860801000, False),
    ("user_ipaddress is null", "Firefox", None, 1277860801000, False),
    ("derived_tstamp is null", "Firefox", "127.0.0.1", None, False),
    ("user_ipaddress is invalid", "Firefox", "invalid", 1277860801000, False),
    ("user_ipaddress is hostname", "Firefox", "localhost", 1277860801000, False),
    ("all arguments are valid", "Firefox", "127.0.0.1", 1277860801000, True),
    # not in the spec: getIabContext drops a blank user agent too (Option(useragent).filter(_.trim.nonEmpty))
    ("useragent is empty", "", "127.0.0.1", 1277860801000, False),
    ("useragent is blank", " \t", "127.0.0.1", 1277860801000, False),
]


@pytest.mark.parametrize("name,useragent,ip,derived_tstamp,attached", IAB_CASES, ids=[c[0] for c in IAB_CASES])
def test_get_iab_context(name, useragent, ip, derived_tstamp, attached):
    from processor.enriched import EnrichedEvent
    from tests.unit.enrichments.conftest import make_payload

    iab = _config("iab_spiders_and_robots_enrichment", "1-0-0", {}, "com.snowplowanalytics.snowplow.enrichments")
    ctx = EventContext(make_payload(), {})
    iab.enrich(EnrichedEvent(useragent=useragent, user_ipaddress=ip, derived_tstamp=derived_tstamp), ctx)
    assert bool(ctx.derived) is attached


@pytest.mark.parametrize("user_agent", ["", " "], ids=["empty", "blank"])
def test_no_iab_context_for_an_empty_user_agent_through_the_stage(user_agent):
    iab = _config("iab_spiders_and_robots_enrichment", "1-0-0", {}, "com.snowplowanalytics.snowplow.enrichments")
    out = Enricher(Resolver.default(), enrichments=[iab]).enrich(raw("/i", PV, user_agent=user_agent))
    assert out.bad == [] and out.good[0].split("\t")[FIELD_INDEX["derived_contexts"]] == ""
    out = Enricher(Resolver.default(), enrichments=[iab]).enrich(raw("/i", PV, user_agent="Firefox"))
    assert json.loads(out.good[0].split("\t")[FIELD_INDEX["derived_contexts"]])["data"][0]["data"]["category"] == \
        "BROWSER"


# --------------------------------------------------------------------------- SchemaEnrichmentSpec
# extractSchema: each event type's schema (event_vendor/name/format/version); an unknown or missing event type
# fails (an enrichment_failures row: processor.stage).  ``e=zz`` cannot give an unknown type through the stage
# (Transform refuses it first); ``e=ad`` gives ad_impression, which has no schema there.

SCHEMA_CASES = [
    ("page view", "pv", ("com.snowplowanalytics.snowplow", "page_view", "jsonschema", "1-0-0")),
    ("page ping", "pp", ("com.snowplowanalytics.snowplow", "page_ping", "jsonschema", "1-0-0")),
    ("transaction", "tr", ("com.snowplowanalytics.snowplow", "transaction", "jsonschema", "1-0-0")),
    ("transaction item", "ti", ("com.snowplowanalytics.snowplow", "transaction_item", "jsonschema", "1-0-0")),
    ("struct event", "se", ("com.google.analytics", "event", "jsonschema", "1-0-0")),
]


@pytest.mark.parametrize("name,e,expected", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_the_schema_of_each_event_type(name, e, expected):
    out = Enricher().enrich(raw("/i", urlencode({"e": e, "p": "web", "tv": "js-3.0.0"})))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    fields = out.good[0].split("\t")
    assert tuple(fields[FIELD_INDEX[f]] for f in ("event_vendor", "event_name", "event_format", "event_version")) \
        == expected


@pytest.mark.parametrize("name,params,event_type", [
    ("missing event", {"p": "web", "tv": "js-3.0.0"}, None),
    ("unknown event (ad_impression)", {"e": "ad", "p": "web", "tv": "js-3.0.0"}, "ad_impression"),
], ids=["missing event", "ad_impression"])
def test_an_event_type_without_a_schema_fails(name, params, event_type):
    out = Enricher().enrich(raw("/i", urlencode(params)))
    assert out.good == []
    [row] = [json.loads(b) for b in out.bad]
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    [failure] = row["data"]["failure"]["messages"]
    assert failure["enrichment"] is None
    assert (failure["message"]["field"], failure["message"]["value"]) == ("event", event_type)
    assert failure["message"]["expectation"].startswith(
        f"trying to extract the schema of the enriched event but event type [{event_type or 'null'}] doesn't match")
