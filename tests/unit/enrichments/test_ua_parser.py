"""ua_parser_config: the ua_parser_context entity from the event's useragent."""
import shutil
from pathlib import Path
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import EnrichedEvent
from processor.enrichments import ConfigError
from processor.enrichments.ua_parser import SCHEMA
from processor.stage import Enricher

from .conftest import config_doc, raw_record, run

DATA = Path(__file__).parent / "data"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.6099.109 Safari/537.36")
FIREFOX = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:106.0) Gecko/20100101 Firefox/106.0"
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1")
EDGE = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def ua(load):
    return load(config_doc("ua_parser_config", "1-0-0", {}))


def context(enrichment, useragent):
    _, ctx = run(enrichment, EnrichedEvent(useragent=useragent))
    assert [e["schema"] for e in ctx.derived] == [SCHEMA]
    return ctx.derived[0]["data"]


@pytest.mark.parametrize("useragent,expected", [
    (CHROME, {"useragentFamily": "Chrome", "useragentMajor": "120", "useragentMinor": "0",
              "useragentPatch": "6099", "useragentVersion": "Chrome 120.0.6099",
              "osFamily": "Windows", "osMajor": "10", "osMinor": None, "osPatch": None, "osPatchMinor": None,
              "osVersion": "Windows 10", "deviceFamily": "Other"}),
    (FIREFOX, {"useragentFamily": "Firefox", "useragentMajor": "106", "useragentMinor": "0",
               "useragentPatch": None, "useragentVersion": "Firefox 106.0",
               "osFamily": "Mac OS X", "osMajor": "10", "osMinor": "15", "osPatch": None, "osPatchMinor": None,
               "osVersion": "Mac OS X 10.15", "deviceFamily": "Mac"}),
    (SAFARI_IOS, {"useragentFamily": "Mobile Safari", "useragentMajor": "17", "useragentMinor": "1",
                  "useragentPatch": "2", "useragentVersion": "Mobile Safari 17.1.2",
                  "osFamily": "iOS", "osMajor": "17", "osMinor": "1", "osPatch": "2", "osPatchMinor": None,
                  "osVersion": "iOS 17.1.2", "deviceFamily": "iPhone"}),
    (EDGE, {"useragentFamily": "Edge", "useragentMajor": "120", "useragentMinor": "0",
            "useragentPatch": "2210", "useragentVersion": "Edge 120.0.2210",
            "osFamily": "Windows", "osMajor": "10", "osMinor": None, "osPatch": None, "osPatchMinor": None,
            "osVersion": "Windows 10", "deviceFamily": "Other"}),
    (GOOGLEBOT, {"useragentFamily": "Googlebot", "useragentMajor": "2", "useragentMinor": "1",
                 "useragentPatch": None, "useragentVersion": "Googlebot 2.1",
                 "osFamily": "Other", "osMajor": None, "osMinor": None, "osPatch": None, "osPatchMinor": None,
                 "osVersion": "Other", "deviceFamily": "Spider"}),
])
def test_real_browsers(ua, useragent, expected):
    assert context(ua, useragent) == expected


def test_unrecognised_agent_is_other_everywhere(ua):
    data = context(ua, "totally unknown thing")
    assert data["useragentFamily"] == data["osFamily"] == data["deviceFamily"] == "Other"
    assert data["useragentVersion"] == data["osVersion"] == "Other"
    assert data["useragentMajor"] is None and data["osMajor"] is None


def test_no_useragent_no_entity(ua):
    _, ctx = run(ua, EnrichedEvent(useragent=None))
    assert ctx.derived == []


OTHER = {"useragentFamily": "Other", "useragentMajor": None, "useragentMinor": None, "useragentPatch": None,
         "useragentVersion": "Other", "osFamily": "Other", "osMajor": None, "osMinor": None, "osPatch": None,
         "osPatchMinor": None, "osVersion": "Other", "deviceFamily": "Other"}


def test_an_empty_useragent_is_parsed_as_other(ua):
    # Snowplow's getUaParser skips only a null user agent; ua-parser makes "" Other everywhere
    assert context(ua, "") == OTHER


def _through_the_stage(resolver, ua, **fields):
    default = urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0", "url": "https://shop.acme.com/"})
    qs = fields.pop("querystring", default)
    raw = raw_record(querystring=qs, headers=["Host: c.acme.com"], hostname="c.acme.com", **fields)
    out = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[ua]).enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    return parse_tsv(out.good[0])


def test_an_empty_user_agent_header_gets_the_other_entity(resolver, ua):
    # the collector recorded an empty User-Agent: Snowplow's ThriftLoader keeps Some(""), setUseragent sets it
    event = _through_the_stage(resolver, ua, user_agent="")
    assert event["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"] == [OTHER]
    assert resolver.validate({"schema": SCHEMA, "data": OTHER}).ok


@pytest.mark.parametrize("fields", [
    {},  # no User-Agent recorded: the event's useragent stays null
    # an empty ua parameter clears the header's (Snowplow's makeTsvSafe makes "" null), and so do control characters
    {"user_agent": FIREFOX, "querystring": "e=pv&p=web&tv=js-4.1.0&ua="},
    {"user_agent": "", "querystring": "e=pv&p=web&tv=js-4.1.0&ua=%01"},
], ids=["no header", "empty ua parameter", "ua parameter of a control character"])
def test_no_user_agent_no_entity_through_the_stage(resolver, ua, fields):
    event = _through_the_stage(resolver, ua, **fields)
    assert "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1" not in event


def test_each_event_gets_its_own_entity_dict(ua):
    first = context(ua, CHROME)
    first["useragentFamily"] = "changed by a later enrichment"
    assert context(ua, CHROME)["useragentFamily"] == "Chrome"


def test_custom_rules_from_local_folder(load, tmp_path):
    shutil.copy(DATA / "ua_regexes.yaml", tmp_path / "regexes.yaml")
    enrichment = load(config_doc("ua_parser_config", "1-0-1",
                                 {"database": "regexes.yaml", "uri": tmp_path.as_uri()}))
    data = context(enrichment, "AcmeBrowser/3.4 (AcmeOS 9; AcmePhone)")
    assert data["useragentVersion"] == "AcmeBrowser 3.4" and data["osVersion"] == "AcmeOS 9"
    assert data["deviceFamily"] == "AcmePhone"
    # the builtin rules are not used any more
    assert context(enrichment, CHROME)["useragentFamily"] == "Other"


@pytest.mark.parametrize("version,parameters,field", [
    ("1-0-0", {"database": "regexes.yaml"}, r"parameters: may only have a maximum of 0 properties"),  # none in 1-0-0
    ("1-0-1", {"file": "regexes.yaml"}, "file"),
    ("1-0-1", {"database": "missing.yaml", "uri": "file:///nonexistent/folder"}, "uri"),
    ("1-0-1", {"database": "regexes.yaml", "uri": "s3://bucket/ua"}, "uri"),
])
def test_invalid_config_is_refused_naming_the_field(load, version, parameters, field):
    with pytest.raises(ConfigError, match=field):
        load(config_doc("ua_parser_config", version, parameters))


def test_bad_rules_file_is_refused(load, tmp_path):
    (tmp_path / "regexes.yaml").write_text("user_agent_parsers:\n  - regex: '(unclosed'\n")
    with pytest.raises(ConfigError, match="database"):
        load(config_doc("ua_parser_config", "1-0-1", {"database": "regexes.yaml", "uri": tmp_path.as_uri()}))


def test_disabled_config_is_skipped(load):
    assert load(config_doc("ua_parser_config", "1-0-0", {}, enabled=False)) is None


def test_through_the_stage(resolver, ua):
    qs = urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0", "url": "https://shop.acme.com/"})
    raw = raw_record(user_agent=SAFARI_IOS, querystring=qs, headers=["Host: c.acme.com"], hostname="c.acme.com")
    out = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[ua]).enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    event = parse_tsv(out.good[0])
    [data] = event["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"]
    assert data["useragentFamily"] == "Mobile Safari" and data["deviceFamily"] == "iPhone"
    assert resolver.validate({"schema": SCHEMA, "data": data}).ok
