"""yauaa_enrichment_config: the yauaa_context entity, from YAUAA itself (JPype).

The user agents and the values expected of them are those of Snowplow enrich
3.9.0's ``YauaaEnrichmentSpec`` (Apache-2.0, Copyright (c) 2019-2022 Snowplow
Analytics Ltd.), used here as test data.

The tests that run YAUAA need JPype1, Java and the YAUAA jars (fetched with
``mvn`` once into the cache); without them they are skipped, saying which is
missing.  The first one builds the analyser (a few seconds); the others share it.
"""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import EnrichedEvent
from processor.enrichments import ConfigError
from processor.enrichments.yauaa import DEFAULT_RESULT, FIELDS, SCHEMA, decapitalize, unavailable
from processor.stage import Enricher

from .conftest import config_doc, make_payload, raw_record, run

VENDOR = "com.snowplowanalytics.snowplow.enrichments"
NAME = "yauaa_enrichment_config"

# the user agents of Snowplow's YauaaEnrichmentSpec
IPAD = ("Mozilla/5.0 (iPad; CPU OS 6_1_3 like Mac OS X) AppleWebKit/536.26 (KHTML, like Gecko) Version/6.0 "
        "Mobile/10B329 Safari/8536.25")
IPHONE_X = ("Mozilla/5.0 (iPhone; CPU iPhone OS 11_0 like Mac OS X) AppleWebKit/604.1.38 (KHTML, like Gecko) "
            "Version/11.0 Mobile/15A372 Safari/604.1")
IPHONE_7 = ("Mozilla/5.0 (iPhone9,3; U; CPU iPhone OS 10_0_1 like Mac OS X) AppleWebKit/602.1.50 (KHTML, like Gecko) "
            "Version/10.0 Mobile/14A403 Safari/602.1")
GALAXY_TAB = ("Mozilla/5.0 (Linux; U; Android 2.2; fr-fr; GT-P1000 Build/FROYO) AppleWebKit/533.1 (KHTML, like Gecko) "
              "Version/4.0 Mobile Safari/533.1")
GALAXY_S9 = ("Mozilla/5.0 (Linux; Android 8.0.0; SM-G960F Build/R16NW) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/62.0.3202.84 Mobile Safari/537.36")
GALAXY_S8 = ("Mozilla/5.0 (Linux; Android 7.0; SM-G892A Build/NRD90M; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Version/4.0 Chrome/60.0.3112.107 Mobile Safari/537.36")
XPERIA_XZ = ("Mozilla/5.0 (Linux; Android 7.1.1; G8231 Build/41.2.A.0.219; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Version/4.0 Chrome/59.0.3071.125 Mobile Safari/537.36")
NEXUS_ONE = ("Mozilla/5.0 (Linux; U; Android 2.2; en-us; Nexus One Build/FRF91) AppleWebKit/533.1 (KHTML, like Gecko) "
             "Version/4.0 Mobile Safari/533.1")
NEXUS_S = ("Mozilla/5.0 (Linux; Android 4.1.2; Nexus S Build/JZO54K) AppleWebKit/535.19 (KHTML, like Gecko) "
           "Chrome/18.0.1025.166 Mobile Safari/535.19")
PLAYSTATION_4 = "Mozilla/5.0 (PlayStation 4 1.52) AppleWebKit/536.26 (KHTML, like Gecko)"
CHROME_13 = ("Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/535.1 (KHTML, like Gecko) Chrome/13.0.782.112 "
             "Safari/535.1")
CHROME_106 = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/106.0.0.0 "
              "Safari/537.36")
CHROMIUM = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.22 (KHTML, like Gecko) Ubuntu Chromium/25.0.1364.160 "
            "Chrome/25.0.1364.160 Safari/537.22")
FIREFOX = "Mozilla/5.0 (Windows NT 6.1; rv:2.0b7pre) Gecko/20100921 Firefox/4.0b7pre"
IE = "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.0; Trident/5.0)"
OPERA = "Mozilla/4.0 (compatible; MSIE 6.0; MSIE 5.5; Windows NT 5.0) Opera 7.02 Bork-edition [en]"
SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_8_4) AppleWebKit/536.30.1 (KHTML, like Gecko) Version/6.0.5 "
          "Safari/536.30.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FULL_VERSION_LIST = ('Sec-CH-UA-Full-Version-List: "Chromium";v="106.0.5249.119", '
                     '"Google Chrome";v="106.0.5249.119", "Not;A=Brand";v="99.0.0.0"')

#: Snowplow's expected entity for the Galaxy S9 (its spec's "create a JSON with the schema 1-0-4").
GALAXY_S9_ENTITY = {
    "deviceBrand": "Samsung", "deviceName": "Samsung SM-G960F", "layoutEngineNameVersion": "Blink 62.0",
    "operatingSystemNameVersion": "Android 8.0.0", "agentInformationEmail": "Unknown", "networkType": "Unknown",
    "operatingSystemVersionBuild": "R16NW", "webviewAppNameVersionMajor": "Unknown ??",
    "layoutEngineNameVersionMajor": "Blink 62", "operatingSystemName": "Android", "agentVersionMajor": "62",
    "layoutEngineVersionMajor": "62", "webviewAppName": "Unknown", "deviceClass": "Phone",
    "agentNameVersionMajor": "Chrome 62", "webviewAppVersionMajor": "??", "operatingSystemClass": "Mobile",
    "webviewAppVersion": "??", "layoutEngineName": "Blink", "agentName": "Chrome", "agentVersion": "62.0.3202.84",
    "layoutEngineClass": "Browser", "agentNameVersion": "Chrome 62.0.3202.84", "operatingSystemVersion": "8.0.0",
    "agentClass": "Browser", "layoutEngineVersion": "62.0", "operatingSystemNameVersionMajor": "Android 8",
    "operatingSystemVersionMajor": "8",
}

WHY_NOT = unavailable()
needs_yauaa = pytest.mark.skipif(WHY_NOT is not None, reason=f"YAUAA cannot run here: {WHY_NOT}")


def yauaa_doc(parameters=None, **kwargs) -> dict:
    return config_doc(NAME, "1-0-0", parameters, vendor=VENDOR, **kwargs)


@pytest.fixture(scope="module")
def yauaa(resolver):
    if WHY_NOT is not None:
        pytest.skip(f"YAUAA cannot run here: {WHY_NOT}")
    from processor.enrichments import LoadContext, parse_enrichment

    return parse_enrichment(yauaa_doc(), resolver, LoadContext(source="test.json"))


def entity(enrichment, useragent, headers=()):
    _, ctx = run(enrichment, EnrichedEvent(useragent=useragent), make_payload(headers=list(headers)))
    assert [e["schema"] for e in ctx.derived] == [SCHEMA]
    return ctx.derived[0]["data"]


# --------------------------------------------------------------------------- without Java


def test_importing_the_module_starts_no_jvm():
    code = ("import sys, processor.enrichments, processor.enrichments.yauaa; "
            "assert 'jpype' not in sys.modules, 'jpype imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("name,expected", [
    ("", ""), ("A", "a"), ("b", "b"), ("FooBar", "fooBar"), ("Foo Bar", "foo Bar"), ("fooBar", "fooBar"),
    ("DeviceClass", "deviceClass"), ("GSAInstallationID", "gSAInstallationID"),
])
def test_field_names_lose_their_capital_first_letter(name, expected):
    assert decapitalize(name) == expected


def test_the_kept_fields_are_the_entity_schemas_properties(resolver):
    assert set(resolver.lookup_schema(SCHEMA)["properties"]) == FIELDS
    assert resolver.validate({"schema": SCHEMA, "data": DEFAULT_RESULT}).ok


@pytest.mark.parametrize("data,field", [
    ({"parameters": {"cacheSize": "big"}}, "cacheSize"),
    ({"parameters": {"cacheSize": 10, "other": 1}}, "other"),
    ({"extra": True}, "extra"),
])
def test_an_invalid_config_is_refused_before_anything_starts(load, data, field):
    doc = yauaa_doc()
    doc["data"].update(data)
    with pytest.raises(ConfigError, match=field):
        load(doc)


def test_the_config_must_use_the_enrichments_vendor(load):
    doc = config_doc(NAME, "1-0-0")  # com.snowplowanalytics.snowplow
    with pytest.raises(ConfigError, match="vendor"):
        load(doc)


def test_disabled_it_starts_nothing(load):
    assert load(yauaa_doc(enabled=False)) is None


# --------------------------------------------------------------------------- YAUAA itself


@needs_yauaa
def test_cache_size_from_the_config_or_yauaas_default(load, yauaa):
    assert load(yauaa_doc({"cacheSize": 42})).cache_size == 42
    assert yauaa.cache_size == 10000  # no parameters: YAUAA's default


@needs_yauaa
@pytest.mark.parametrize("useragent", [None, ""])
def test_no_user_agent_gives_device_class_unknown(yauaa, useragent):
    assert entity(yauaa, useragent) == {"deviceClass": "Unknown"}


@needs_yauaa
def test_the_whole_entity_as_snowplow_writes_it(yauaa, resolver):
    data = entity(yauaa, GALAXY_S9)
    assert data == GALAXY_S9_ENTITY
    assert resolver.validate({"schema": SCHEMA, "data": data}).ok


SPEC_CASES = {
    "deviceClass": {CHROMIUM: "Desktop", GALAXY_TAB: "Tablet", IPAD: "Tablet", NEXUS_S: "Phone",
                    PLAYSTATION_4: "Game Console", GOOGLEBOT: "Robot"},
    "deviceName": {GALAXY_S9: "Samsung SM-G960F", GALAXY_S8: "Samsung SM-G892A", XPERIA_XZ: "Sony G8231",
                   IPHONE_7: "Apple iPhone", IPHONE_X: "Apple iPhone", NEXUS_S: "Google Nexus S",
                   NEXUS_ONE: "Google Nexus ONE", PLAYSTATION_4: "Sony PlayStation 4", GOOGLEBOT: "Google"},
    "operatingSystemClass": {CHROMIUM: "Desktop", IE: "Desktop", IPAD: "Mobile", NEXUS_S: "Mobile",
                             PLAYSTATION_4: "Game Console", GOOGLEBOT: "Cloud"},
    "operatingSystemName": {CHROMIUM: "Ubuntu", IE: "Windows NT", NEXUS_ONE: "Android", IPHONE_X: "iOS",
                            IPAD: "iOS", SAFARI: "Mac OS", GOOGLEBOT: "Google Cloud"},
    "layoutEngineClass": {CHROME_13: "Browser", IE: "Browser", NEXUS_ONE: "Browser", IPHONE_X: "Browser",
                          IPAD: "Browser", SAFARI: "Browser", PLAYSTATION_4: "Browser", GOOGLEBOT: "Robot"},
    "agentClass": {CHROMIUM: "Browser", IE: "Browser", NEXUS_ONE: "Browser", IPHONE_X: "Browser", IPAD: "Browser",
                   SAFARI: "Browser", PLAYSTATION_4: "Browser", GOOGLEBOT: "Robot"},
    "agentName": {CHROME_13: "Chrome", CHROMIUM: "Chromium", FIREFOX: "Firefox", IE: "Internet Explorer",
                  NEXUS_ONE: "Stock Android Browser", IPHONE_X: "Safari", IPAD: "Safari", OPERA: "Opera",
                  SAFARI: "Safari", GOOGLEBOT: "Googlebot"},
}


@needs_yauaa
@pytest.mark.parametrize("field", sorted(SPEC_CASES))
def test_snowplows_spec_cases(yauaa, resolver, field):
    for useragent, expected in SPEC_CASES[field].items():
        data = entity(yauaa, useragent)
        assert data[field] == expected, useragent
        assert resolver.validate({"schema": SCHEMA, "data": data}).ok, useragent


@needs_yauaa
def test_client_hint_headers_refine_the_answer(yauaa):
    assert entity(yauaa, CHROME_106)["agentNameVersion"] == "Chrome 106"
    assert entity(yauaa, CHROME_106, [FULL_VERSION_LIST])["agentNameVersion"] == "Chrome 106.0.5249.119"
    # the cache keys on the hints too: without them the answer is the first one again
    assert entity(yauaa, CHROME_106)["agentNameVersion"] == "Chrome 106"


@needs_yauaa
def test_the_events_user_agent_wins_over_the_header(yauaa):
    # Snowplow's spec: a ua parameter (the event's useragent) beats the request's User-Agent header
    assert entity(yauaa, FIREFOX, ["User-Agent: curl/7.54"])["agentName"] == "Firefox"


@needs_yauaa
def test_never_a_syntax_error_field(yauaa):
    ua = ("useragent=Mozilla/5.0 (Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/38.0.2125.122 "
          "Safari/537.36 OPR/25.0.1620.0 OMI/4.3.18.7.Dominik.0 VSTVB MB100 HbbTV/1.2.1 (; PANASONIC; MB100; "
          "0.1.34.28; ;) SmartTvA/3.0.0 UID (00:09:DF:A7:74:6B/MB100/PANASONIC/0.1.34.28)")
    data = entity(yauaa, ua)
    assert "__SyntaxError__" not in data and "__syntaxError__" not in data
    assert set(data) <= FIELDS


@needs_yauaa
def test_each_event_gets_its_own_entity_dict(yauaa):
    first = entity(yauaa, GALAXY_S9)
    first["agentName"] = "changed by a later enrichment"
    assert entity(yauaa, GALAXY_S9)["agentName"] == "Chrome"


@needs_yauaa
def test_a_repeated_user_agent_is_not_analysed_again(load):
    fresh = load(yauaa_doc({"cacheSize": 2}))
    for _ in range(3):
        entity(fresh, IPAD)
    info = fresh.analyse.cache_info()
    assert (info.misses, info.hits, info.maxsize) == (1, 2, 2)


@needs_yauaa
def test_threads_share_the_analyser(load):
    # the Kafka worker enriches on threads: JPype attaches each to the JVM on its first call
    fresh = load(yauaa_doc({"cacheSize": 0}))  # no cache: every call goes to YAUAA
    agents = [GALAXY_S9, IPAD, GOOGLEBOT, CHROMIUM, IE, PLAYSTATION_4] * 5
    with ThreadPoolExecutor(4) as pool:
        names = list(pool.map(lambda ua: entity(fresh, ua)["deviceClass"], agents))
    assert names == ["Phone", "Tablet", "Robot", "Desktop", "Desktop", "Game Console"] * 5


@needs_yauaa
def test_through_the_stage(resolver, yauaa):
    """A raw record in; the entity (client hints used) in the enriched event's derived_contexts."""
    qs = urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0", "url": "https://shop.acme.com/"})
    raw = raw_record(querystring=qs, user_agent=CHROME_106, hostname="c.acme.com",
                     headers=["Host: c.acme.com", f"User-Agent: {CHROME_106}", FULL_VERSION_LIST])
    out = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[yauaa]).enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    event = parse_tsv(out.good[0])
    [data] = event["contexts_nl_basjes_yauaa_context_1"]
    assert data["agentNameVersion"] == "Chrome 106.0.5249.119"
    assert (data["deviceClass"], data["operatingSystemName"]) == ("Desktop", "Windows NT")


@needs_yauaa
def test_through_the_stage_without_a_user_agent(resolver, yauaa):
    qs = urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0"})
    out = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[yauaa]).enrich(
        raw_record(querystring=qs, headers=["Host: c.acme.com"], hostname="c.acme.com"))
    assert out.bad == [] and len(out.good) == 1
    assert parse_tsv(out.good[0])["contexts_nl_basjes_yauaa_context_1"] == [{"deviceClass": "Unknown"}]


@needs_yauaa
async def test_in_the_stage_process_of_snowmelt_up(tmp_path):
    """``snowmelt up`` builds its stage in a spawned process: the JVM starts there, not in the serving process."""
    import json

    from snowmelt.up_stage import StageProcess

    (tmp_path / "yauaa_enrichment_config.json").write_text(json.dumps(yauaa_doc({"cacheSize": 100})))
    stage = StageProcess("", str(tmp_path))
    stage.start()
    try:
        assert stage.info.enrichments == (NAME,)
        qs = urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0"})
        raw = raw_record(querystring=qs, user_agent=IPAD, headers=["Host: c.acme.com", f"User-Agent: {IPAD}"],
                         hostname="c.acme.com")
        batch = await stage.run([("raw", raw, 1)])
        [line] = batch.good_lines
        [data] = parse_tsv(line)["contexts_nl_basjes_yauaa_context_1"]
        assert (data["deviceClass"], data["agentName"]) == ("Tablet", "Safari")
    finally:
        stage.close()
