"""cross_navigation_config: the _sp parameter (short format always, extended -> cross_navigation entity)."""
import base64
from urllib.parse import quote, urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import EnrichedEvent
from processor.enrichments import ConfigError, EnrichmentFailure
from processor.enrichments.cross_navigation import SCHEMA, parse_sp
from processor.stage import Enricher, set_url_parts

from .conftest import config_doc, raw_record, run

DUID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"
SID = "987abc12-3456-7890-abcd-ef1234567890"
TS = 1680681134458
TS_ISO = "2023-04-05T07:52:14.458Z"


def b64(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def page(sp):
    url = f"https://partner.example/landing?a=1&_sp={quote(sp, safe='')}" if sp is not None else "https://x.example/"
    event = EnrichedEvent(page_url=url)
    set_url_parts(event)
    return event


@pytest.fixture
def crossnav(load):
    return load(config_doc("cross_navigation_config", "1-0-0",
                           vendor="com.snowplowanalytics.snowplow.enrichments"))


def test_parse_sp_short_format():
    assert parse_sp(f"{DUID}.{TS}") == (DUID, TS)
    assert parse_sp(f"{DUID}.{TS}.{SID}..bXktYXBw.web.") == (DUID, TS)
    assert parse_sp(DUID) == (DUID, None)
    with pytest.raises(ValueError, match="epoch milliseconds"):
        parse_sp(f"{DUID}.yesterday")


def test_extended_format_full(crossnav):
    sp = f"{DUID}.{TS}.{SID}.{b64('user.42@acme.com')}.{b64('my-app')}.mob.{b64('Cross-domain link')}"
    event, ctx = run(crossnav, page(sp))
    assert (event.refr_domain_userid, event.refr_dvce_tstamp) == (DUID, TS)
    assert ctx.derived == [{"schema": SCHEMA, "data": {
        "domain_user_id": DUID, "timestamp": TS_ISO, "session_id": SID, "user_id": "user.42@acme.com",
        "source_id": "my-app", "source_platform": "mob", "reason": "Cross-domain link"}}]


def test_extended_format_with_empty_and_missing_fields(crossnav):
    # what the JS tracker writes with the default extended options: no user id, no platform/reason
    event, ctx = run(crossnav, page(f"{DUID}.{TS}.{SID}..{b64('my-app')}"))
    assert ctx.derived[0]["data"] == {"domain_user_id": DUID, "timestamp": TS_ISO, "session_id": SID,
                                      "user_id": None, "source_id": "my-app", "source_platform": None,
                                      "reason": None}


def test_short_format_gives_entity_with_nulls(crossnav):
    event, ctx = run(crossnav, page(f"{DUID}.{TS}"))
    assert ctx.derived[0]["data"]["session_id"] is None and ctx.derived[0]["data"]["timestamp"] == TS_ISO


@pytest.mark.parametrize("sp", [None, ""])
def test_no_sp_nothing(crossnav, sp):
    event, ctx = run(crossnav, page(sp))
    assert ctx.derived == [] and event.refr_domain_userid is None


def test_without_timestamp_sets_duid_only(crossnav):
    event, ctx = run(crossnav, page(DUID))
    assert (event.refr_domain_userid, event.refr_dvce_tstamp, ctx.derived) == (DUID, None, [])


@pytest.mark.parametrize("sp", [f"{DUID}.notatime", f"{DUID}.{TS}.{SID}.%%%.x.web.y", f"{DUID}.{TS}.{SID}.{b64('abc')}Z"])
def test_bad_values_fail_naming_sp(crossnav, sp):
    with pytest.raises(EnrichmentFailure) as info:
        run(crossnav, page(sp))
    assert info.value.messages[0]["field"] == "_sp" and info.value.messages[0]["value"] == sp


def test_invalid_config_is_refused_naming_the_field(load):
    doc = config_doc("cross_navigation_config", "1-0-0", vendor="com.snowplowanalytics.snowplow.enrichments")
    doc["data"]["parameters"] = {}
    with pytest.raises(ConfigError, match="parameters"):
        load(doc)
    with pytest.raises(ConfigError, match="vendor"):
        load(config_doc("cross_navigation_config", "1-0-0"))


def raw_page_view(url):
    qs = urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0", "url": url})
    return raw_record(user_agent="curl/8", querystring=qs, headers=["Host: c.acme.com"], hostname="c.acme.com")


def test_through_the_stage(resolver, crossnav):
    sp = f"{DUID}.{TS}.{SID}.{b64('u1')}.{b64('shop')}.web.{b64('Buy now')}"
    out = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[crossnav]).enrich(
        raw_page_view(f"https://partner.example/?_sp={sp}"))
    assert out.bad == [] and len(out.good) == 1
    event = parse_tsv(out.good[0])
    assert event["refr_domain_userid"] == DUID and event["refr_dvce_tstamp"] == TS_ISO
    [data] = event["contexts_com_snowplowanalytics_snowplow_cross_navigation_1"]
    assert data["user_id"] == "u1" and data["reason"] == "Buy now" and data["source_platform"] == "web"


def test_through_the_stage_invalid_entity_is_a_bad_row(resolver, crossnav):
    # a platform outside the schema's enum: the entity does not validate, as in Snowplow
    out = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[crossnav]).enrich(
        raw_page_view(f"https://partner.example/?_sp={DUID}.{TS}.{SID}...phone"))
    assert out.good == [] and len(out.bad) == 1
    assert b"enrichment_failures" in out.bad[0]
