"""iab_spiders_and_robots_enrichment: IAB/ABC list files (our own, in that format) and the open bot list."""
import json
import shutil
from calendar import timegm
from pathlib import Path
from urllib.parse import urlencode

import pytest

from processor.enriched import FIELD_INDEX, EnrichedEvent
from processor.enrichments import ConfigError
from processor.enrichments.iab import IpSet, parse_address
from processor.stage import Enricher
from tests.unit.test_stage import raw

from .conftest import config_doc, run

DATA = Path(__file__).parent / "data" / "iab"
VENDOR = "com.snowplowanalytics.snowplow.enrichments"
NAME = "iab_spiders_and_robots_enrichment"
ENTITY = "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0"
FILES = {
    "ipFile": {"database": "ip_exclude_current_cidr.txt", "uri": str(DATA)},
    "excludeUseragentFile": {"database": "exclude_current.txt", "uri": "file:" + str(DATA)},
    "includeUseragentFile": {"database": "include_current.txt", "uri": str(DATA) + "/"},
}
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BROWSER = (False, "BROWSER", "PASSED_ALL", "NONE")
MAY_2024 = timegm((2024, 5, 1, 12, 0, 0)) * 1000
JAN_2025 = timegm((2025, 1, 1, 12, 0, 0)) * 1000


def iab_doc(parameters, version="1-0-1", **kw):
    return config_doc(NAME, version, parameters, vendor=VENDOR, **kw)


def classify(enrichment, ua, ip="203.0.113.9", at=MAY_2024, collector=None):
    """The entity's four values for one event, or None when no entity was attached."""
    event = EnrichedEvent(useragent=ua, user_ipaddress=ip, derived_tstamp=at, collector_tstamp=collector)
    _, ctx = run(enrichment, event)
    if not ctx.derived:
        return None
    (entity,) = ctx.derived
    assert entity["schema"] == ENTITY
    d = entity["data"]
    return d["spiderOrRobot"], d["category"], d["reason"], d["primaryImpact"]


@pytest.fixture
def iab(load):
    return load(iab_doc({**FILES, "includeUseragents": ["InHouseApp/"], "excludeUseragents": ["uptime-probe"]}))


@pytest.fixture
def open_list(load):
    return load(iab_doc({}, version="1-0-0"))


# ---------------------------------------------------------------- IAB files: Snowplow's checks in order

@pytest.mark.parametrize("ua,ip,expected", [
    (CHROME, "203.0.113.9", BROWSER),
    # IP exclusion list: address, CIDR block, IPv6 block; before any user-agent check
    (CHROME, "198.51.100.7", (True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")),
    (CHROME, "192.0.2.200", (True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")),
    (CHROME, "2001:db8:bad::17", (True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")),
    (CHROME, "198.51.100.8", BROWSER),
    # no user agent (null, empty or blank): no entity at all, the IP unchecked (Snowplow's getIabContext)
    (None, "203.0.113.9", None),
    (None, "192.0.2.1", None),
    ("", "192.0.2.1", None),
    (" \t", "192.0.2.1", None),
    # not a valid browser per the include file
    ("curl/8.4.0", "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_INCLUDE", "UNKNOWN")),
    # include file passed, exclude file matched: its primary impact (2 = page and ad)
    (GOOGLEBOT, "203.0.113.9", (True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_AND_AD_IMPRESSIONS")),
    ("Mozilla/5.0 SomeBot/1.0", "203.0.113.9", (True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE",
                                                 "PAGE_IMPRESSIONS")),
    # exception patterns of the "bot" entry
    ("Mozilla/5.0 (Linux; Android 9; CUBOT X19)", "203.0.113.9", BROWSER),
    ("Mozilla/5.0 Robotics-Lab-Kiosk", "203.0.113.9", BROWSER),
    # unknown impact flag
    ("Mozilla/5.0 AdChecker", "203.0.113.9", (True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")),
    # start-of-string entries
    ("Opera/9.80 (Windows NT 6.1)", "203.0.113.9", BROWSER),
    ("NotOpera/9.80", "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_INCLUDE", "UNKNOWN")),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", "203.0.113.9",
     (True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_IMPRESSIONS")),
    ("x Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", "203.0.113.9", BROWSER),
    # an inactive undated exclude entry never matches; a commented-out include entry is no entry
    ("Mozilla/5.0 deadcrawler", "203.0.113.9", BROWSER),
    ("Commented Browser", "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_INCLUDE", "UNKNOWN")),
    ("GhostBrowser/2", "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_INCLUDE", "UNKNOWN")),
    # custom lists (1-0-1): include first, then exclude, both before the IP check
    ("InHouseApp/3.1 curl", "192.0.2.1", BROWSER),
    ("Mozilla/5.0 uptime-probe", "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")),
    ("InHouseApp/3.1 uptime-probe", "203.0.113.9", BROWSER),
])
def test_checks_follow_snowplows_order(iab, ua, ip, expected):
    assert classify(iab, ua, ip) == expected


def test_matching_is_case_insensitive(iab):
    assert classify(iab, "MOZILLA/5.0 (COMPATIBLE; GOOGLEBOT/2.1)")[2] == "FAILED_UA_EXCLUDE"
    assert classify(iab, "mozilla/5.0 chrome")[2] == "PASSED_ALL"


def test_exclude_entry_is_inactive_after_its_date(iab):
    ua = "Mozilla/5.0 OldSpider/1.0"
    assert classify(iab, ua, at=MAY_2024) == (True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "AD_IMPRESSIONS")
    assert classify(iab, ua, at=JAN_2025) == (True, "INACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "AD_IMPRESSIONS")
    # an inactive entry with a date is still an (inactive) robot after it
    assert classify(iab, "Mozilla/5.0 SleepyCrawler", at=JAN_2025)[1] == "INACTIVE_SPIDER_OR_ROBOT"


def test_inactive_include_entry_counts_until_its_date(iab):
    assert classify(iab, "RetroBrowser/1.0", at=timegm((2024, 2, 29, 23, 0, 0)) * 1000) == BROWSER
    assert classify(iab, "RetroBrowser/1.0", at=timegm((2024, 3, 1, 0, 0, 1)) * 1000)[2] == "FAILED_UA_INCLUDE"


def test_no_entity_without_derived_tstamp(iab):
    # Snowplow enrich 3.9.0's EnrichmentManagerSpec, "getIabContext ... return no context if derived_tstamp is null"
    assert classify(iab, "Mozilla/5.0 OldSpider", at=None, collector=JAN_2025) is None


@pytest.mark.parametrize("ip", [None, "", "unknown", "192.0.x.x", "999.0.0.1"])
def test_no_entity_without_a_valid_ip(iab, ip):
    assert classify(iab, GOOGLEBOT, ip) is None


@pytest.mark.parametrize("ip,listed", [
    ("192.0.2.9:51234", True), ("[2001:db8:bad::1]:443", True), ("::ffff:192.0.2.9", True), ("2001:db8::1", False),
])
def test_ports_brackets_and_mapped_addresses(iab, ip, listed):
    assert (classify(iab, CHROME, ip)[2] == "FAILED_IP_EXCLUDE") is listed


def test_results_are_cached_per_user_agent_and_ip(iab):
    for _ in range(3):
        classify(iab, CHROME, "203.0.113.9")
    assert (iab._ua_result.cache_info().hits, iab._ua_result.cache_info().misses) == (2, 1)
    assert (iab._ip_listed.cache_info().hits, iab._ip_listed.cache_info().misses) == (2, 1)
    # the date is applied after the cache: the same UA changes category with the event's date
    assert classify(iab, "Mozilla/5.0 OldSpider", at=MAY_2024)[1] == "ACTIVE_SPIDER_OR_ROBOT"
    assert classify(iab, "Mozilla/5.0 OldSpider", at=JAN_2025)[1] == "INACTIVE_SPIDER_OR_ROBOT"


def test_ip_set_prefix_tables():
    import ipaddress

    s = IpSet(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32"))
    assert parse_address("10.200.1.1") in s and parse_address("11.0.0.1") not in s
    assert parse_address("2001:db8:ffff::1") in s and parse_address("2001:db9::1") not in s
    assert not IpSet([])


# ---------------------------------------------------------------- the open bot list

@pytest.mark.parametrize("ua,ip,expected", [
    (CHROME, "203.0.113.9", BROWSER),
    (GOOGLEBOT, "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "203.0.113.9",
     (True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")),
    ("curl/8.4.0", "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")),
    ("python-requests/2.31.0", "203.0.113.9", (True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")),
    (None, "203.0.113.9", None),
    # published crawler ranges: Googlebot (IPv4 and IPv6), Bingbot
    (CHROME, "66.249.66.1", (True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")),
    (CHROME, "2001:4860:4801:10::1", (True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")),
    (CHROME, "157.55.39.12", (True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")),
    (CHROME, "66.249.96.1", BROWSER),
])
def test_open_bot_list_without_iab_files(open_list, ua, ip, expected):
    assert open_list.open_list is True
    assert classify(open_list, ua, ip) == expected


def test_open_list_with_custom_lists(load):
    enrichment = load(iab_doc({"includeUseragents": ["curl/"], "excludeUseragents": ["HeadlessChrome"]}))
    assert classify(enrichment, "curl/8.4.0") == BROWSER
    assert classify(enrichment, CHROME.replace("Chrome/", "HeadlessChrome/"))[2] == "FAILED_UA_EXCLUDE"


# ---------------------------------------------------------------- configs

def test_config_1_0_0_with_the_three_files(load):
    enrichment = load(iab_doc(FILES, version="1-0-0"))
    assert enrichment.open_list is False
    assert classify(enrichment, GOOGLEBOT)[1] == "ACTIVE_SPIDER_OR_ROBOT"


def test_relative_uri_is_resolved_against_the_enrichments_folder(load, tmp_path):
    shutil.copytree(DATA, tmp_path / "iab")
    files = {k: {"database": v["database"], "uri": "iab"} for k, v in FILES.items()}
    assert classify(load(iab_doc(files)), "curl/1")[2] == "FAILED_UA_INCLUDE"


@pytest.mark.parametrize("version,parameters,message", [
    ("1-0-1", {"ipFile": FILES["ipFile"]}, r"parameters\.excludeUseragentFile: the IAB list needs all three"),
    ("1-0-1", {**FILES, "ipFile": {"database": "ip_exclude_current.txt", "uri": str(DATA)}},
     r"parameters\.ipFile\.database"),
    ("1-0-1", {**FILES, "includeUseragentFile": {"database": "include_current.txt"}},
     r"parameters\.includeUseragentFile\.uri: is missing but it is required"),
    ("1-0-0", {**FILES, "excludeUseragents": ["x"]}, r"parameters\.excludeUseragents: is not defined in the schema"),
    ("1-0-1", {**FILES, "includeUseragents": "mozilla"}, r"parameters\.includeUseragents"),
    ("1-0-1", {**FILES, "ipFile": {"database": "ip_exclude_current_cidr.txt", "uri": "s3://bucket/iab"}},
     r"parameters\.ipFile\.uri: s3: URIs are not supported"),
    ("1-0-1", {**FILES, "ipFile": {"database": "ip_exclude_current_cidr.txt", "uri": "/nonexistent"}},
     r"parameters\.ipFile\.uri: database file .* does not exist"),
    ("1-0-1", {**FILES, "includeUseragentFile": {"database": "include_current.txt", "uri": "http://127.0.0.1:9/x"}},
     r"parameters\.includeUseragentFile\.uri: .* no cache folder"),
])
def test_invalid_config_is_refused_naming_the_field(load, version, parameters, message):
    with pytest.raises(ConfigError, match=message):
        load(iab_doc(parameters, version=version))


def test_unparseable_ip_file_line_is_refused(load, tmp_path):
    shutil.copytree(DATA, tmp_path / "iab")
    (tmp_path / "iab" / "ip_exclude_current_cidr.txt").write_text("192.0.2.0/24\nnot-an-ip\n")
    files = {k: {"database": v["database"], "uri": str(tmp_path / "iab")} for k, v in FILES.items()}
    with pytest.raises(ConfigError, match=r"parameters\.ipFile: .* line 2: 'not-an-ip'"):
        load(iab_doc(files))


def test_config_under_the_old_vendor_is_refused(load):
    with pytest.raises(ConfigError, match="vendor 'com.snowplowanalytics.snowplow'"):
        load(config_doc(NAME, "1-0-0", FILES))


def test_disabled_config_is_skipped(load):
    assert load(iab_doc(FILES, enabled=False)) is None


# ---------------------------------------------------------------- entity and stage

def test_every_possible_entity_validates_against_the_shipped_schema(resolver, iab, open_list):
    cases = [(CHROME, "203.0.113.9", MAY_2024), (CHROME, "192.0.2.1", MAY_2024), ("curl/1", "203.0.113.9", MAY_2024),
             (GOOGLEBOT, "203.0.113.9", MAY_2024), ("Mozilla OldSpider", "203.0.113.9", JAN_2025),
             ("Mozilla uptime-probe", "203.0.113.9", MAY_2024), ("Mozilla AdChecker", "203.0.113.9", MAY_2024)]
    seen = set()
    for enrichment in (iab, open_list):
        for ua, ip, at in cases:
            _, ctx = run(enrichment, EnrichedEvent(useragent=ua, user_ipaddress=ip, derived_tstamp=at))
            for entity in ctx.derived:
                assert resolver.validate(entity, field="derived_contexts").ok, entity
                seen.add(entity["data"]["category"])
    assert seen == {"BROWSER", "SPIDER_OR_ROBOT", "ACTIVE_SPIDER_OR_ROBOT", "INACTIVE_SPIDER_OR_ROBOT"}


def test_stage_attaches_the_entity_before_anon_ip_rewrites_the_ip(resolver, load, iab):
    anon = load(config_doc("anon_ip", "1-0-1", {"anonOctets": 2, "anonSegments": 2}))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[iab, anon])
    qs = urlencode({"e": "pv", "aid": "shop", "p": "web", "tv": "js-4.1.0", "url": "https://shop.acme.com/"})
    results = {}
    for ip, ua in (("192.0.2.50", CHROME), ("203.0.113.9", GOOGLEBOT), ("203.0.113.9", CHROME)):
        out = enricher.enrich(raw("/i", qs, ip_address=ip, user_agent=ua))
        assert out.bad == [] and len(out.good) == 1
        fields = out.good[0].split("\t")
        derived = json.loads(fields[FIELD_INDEX["derived_contexts"]])
        assert derived["schema"] == "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
        (entity,) = derived["data"]
        assert entity["schema"] == ENTITY and resolver.validate(entity, field="derived_contexts").ok
        assert fields[FIELD_INDEX["user_ipaddress"]] == ip.rsplit(".", 2)[0] + ".x.x"
        results[(ip, ua)] = entity["data"]
    assert results[("192.0.2.50", CHROME)]["reason"] == "FAILED_IP_EXCLUDE"
    assert results[("203.0.113.9", GOOGLEBOT)] == {"spiderOrRobot": True, "category": "ACTIVE_SPIDER_OR_ROBOT",
                                                   "reason": "FAILED_UA_EXCLUDE",
                                                   "primaryImpact": "PAGE_AND_AD_IMPRESSIONS"}
    assert results[("203.0.113.9", CHROME)] == {"spiderOrRobot": False, "category": "BROWSER",
                                                "reason": "PASSED_ALL", "primaryImpact": "NONE"}


def test_same_results_with_pythons_re_when_google_re2_is_missing(load, monkeypatch):
    import processor.enrichments.iab as iab_module

    monkeypatch.setattr(iab_module, "_re2", None)
    with pytest.warns(RuntimeWarning, match="google-re2 is not installed"):
        enrichment = load(iab_doc(FILES))
    assert classify(enrichment, GOOGLEBOT)[3] == "PAGE_AND_AD_IMPRESSIONS"
    assert classify(enrichment, "NotOpera/9.80")[2] == "FAILED_UA_INCLUDE"
    assert classify(enrichment, "Opera/9.80") == BROWSER
