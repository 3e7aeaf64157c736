"""The page_views / sessions / users models on chdb: hand-computed expectations on small event sets.

Events are built with processor.enriched.EnrichedEvent + to_tsv and loaded through
ClickHouseStore.write, exactly as the loader does; the models are refreshed with
Models.refresh (or the ModelsRefresher thread).
"""
import itertools
import time
from datetime import datetime, timedelta, timezone

import pytest

from loaders.base import Batch
from loaders.models import (
    _PAGE_VIEW_ID_JSON,
    _PAGE_VIEW_ID_WIDE,
    Models,
    ModelsRefresher,
)
from processor.enriched import EnrichedEvent, to_tsv
from snowmelt.config import ModelsConfig

WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=timezone.utc)  # a multiple of the heartbeat (10 s)
_ids = itertools.count(1)
_offsets = itertools.count(0, 1000)


def at(seconds: float, base: datetime = T0) -> datetime:
    return base + timedelta(seconds=seconds)


def event(name: str, t: datetime, pv: str | None = None, sid: str = "s1", duid: str = "du1", **fields) -> EnrichedEvent:
    """An enriched web event at ``t`` (collector, derived and device time), in page view ``pv``."""
    fields.setdefault("collector_tstamp", t)
    return EnrichedEvent(
        app_id="shop", platform="web", etl_tstamp=t, dvce_created_tstamp=t, derived_tstamp=t,
        event={"page_view": "page_view", "page_ping": "page_ping"}.get(name, "struct"),
        event_id=f"00000000-0000-4000-8000-{next(_ids):012d}", v_tracker="js-3.0.0", v_collector="c", v_etl="e",
        domain_userid=duid, domain_sessionid=sid, domain_sessionidx=fields.pop("idx", 1),
        network_userid=fields.pop("nuid", f"nu-{duid}"), page_url=fields.pop("url", f"https://shop.acme.com/{pv}"),
        page_urlpath=f"/{pv}", page_title=f"title {pv}",
        contexts=[{"schema": WEB_PAGE, "data": {"id": pv}}] if pv else None,
        event_vendor="com.snowplowanalytics.snowplow", event_name=name, event_format="jsonschema",
        event_version="1-0-0", **fields)


def ping(t: datetime, pv: str, yoff: int = 0, sid: str = "s1", duid: str = "du1", **fields) -> EnrichedEvent:
    return event("page_ping", t, pv, sid, duid, pp_xoffset_min=0, pp_xoffset_max=0, pp_yoffset_min=0,
                 pp_yoffset_max=yoff, doc_width=1000, doc_height=3000, br_viewwidth=800, br_viewheight=1000,
                 **fields)


def view(t: datetime, pv: str, sid: str = "s1", duid: str = "du1", **fields) -> EnrichedEvent:
    sizes = {"doc_width": 1000, "doc_height": 3000, "br_viewwidth": 800, "br_viewheight": 1000}
    return event("page_view", t, pv, sid, duid, **{**sizes, **fields})


@pytest.fixture
def store(chdb_store):
    return chdb_store


@pytest.fixture
def models(store):
    models = Models(store.backend, "snowplow", ModelsConfig(heartbeat=10, min_visit_length=5, engaged_seconds=10,
                                                            late_seconds=3600))
    models.create()
    return models


def load(store, *events: EnrichedEvent) -> None:
    first = next(_offsets)
    lines = tuple(to_tsv(e).encode() for e in events)
    store.write(Batch("enriched", "enriched", 0, first, first + len(lines) - 1, lines, 1_772_000_000_000))


def table(store, name: str, key: str, columns: str) -> dict:
    """``{key: {column: value}}`` of a model table (FINAL)."""
    names = [c.strip() for c in columns.split(",")]
    rows = store.backend.query(f"SELECT {key}, {columns} FROM snowplow.{name} FINAL ORDER BY {key}")
    return {row[0]: dict(zip(names, row[1:])) for row in rows}


def ts(value) -> str:
    return str(value)[:23]


def test_page_pings_give_engaged_time_and_scroll_depth(store, models):
    load(store,
         view(T0, "pv1"),
         # a 10 s heartbeat (the shortest spacing, 10.3 s, rounded), no activity between +30 and +40:
         # heartbeats 0, 1, 3 and 4 after the first ping, four with a ping
         ping(at(10.2), "pv1", 500), ping(at(20.5), "pv1", 1200), ping(at(40.6), "pv1", 900), ping(at(51), "pv1", 1100),
         view(at(60), "pv2"),                      # no pings
         ping(at(70), "orphan", 100))              # pings without their page view make no row
    result = models.refresh()
    assert result["events"] == 7 and result["page_views"] == 2 and result["sessions"] == 1 and result["users"] == 1
    pvs = table(store, "page_views", "page_view_id",
                "page_pings, engaged_time_in_s, vertical_percentage_scrolled, horizontal_percentage_scrolled, "
                "vertical_pixels_scrolled, start_tstamp, end_tstamp, first_ping_tstamp, last_ping_tstamp, "
                "absolute_time_in_s, page_urlpath, domain_sessionid, domain_userid")
    assert set(pvs) == {"pv1", "pv2"}
    pv1, pv2 = pvs["pv1"], pvs["pv2"]
    assert pv1["page_pings"] == 4
    assert int(pv1["engaged_time_in_s"]) == 10 * (4 - 1) + 5
    # round(100 * least(1200 + 1000, 3000) / 3000) = round(73.3); round(100 * least(0 + 800, 1000) / 1000)
    assert pv1["vertical_percentage_scrolled"] == 73 and pv1["horizontal_percentage_scrolled"] == 80
    assert int(pv1["vertical_pixels_scrolled"]) == 1200
    assert ts(pv1["start_tstamp"]) == "2026-03-01 10:00:00.000" and ts(pv1["end_tstamp"]) == "2026-03-01 10:00:51.000"
    assert ts(pv1["first_ping_tstamp"]) == "2026-03-01 10:00:10.200"
    assert ts(pv1["last_ping_tstamp"]) == "2026-03-01 10:00:51.000"
    assert int(pv1["absolute_time_in_s"]) == 51 and pv1["page_urlpath"] == "/pv1"
    assert pv1["domain_sessionid"] == "s1" and pv1["domain_userid"] == "du1"
    # no pings: no engaged time; the page view's own offsets (none) and sizes: round(100 * 1000 / 3000)
    assert pv2["page_pings"] == 0 and int(pv2["engaged_time_in_s"]) == 0 and pv2["first_ping_tstamp"] is None
    assert pv2["vertical_percentage_scrolled"] == 33
    [(sessions_engaged, page_views)] = store.backend.query(
        "SELECT engaged_time_in_s, page_views FROM snowplow.sessions FINAL")
    assert int(sessions_engaged) == 35 and int(page_views) == 2


def test_two_sessions_of_one_user_channels_and_stitching(store, models):
    day2 = T0 + timedelta(days=1)
    load(store,
         view(T0, "a", "s1", idx=1, refr_medium="search", refr_source="Google", refr_urlhost="www.google.com"),
         ping(at(10), "a", 0, "s1"), ping(at(20), "a", 0, "s1"),               # 10 * (2 - 1) + 5 = 15
         view(at(60), "b", "s1", idx=1, user_id="alice"),                       # logs in on the 2nd page
         view(day2, "c", "s2", idx=2, refr_medium="search", refr_source="Google", mkt_medium="cpc",
              mkt_source="google", mkt_campaign="spring"),
         event("struct", at(90, day2), None, "s2", idx=2),
         view(at(5), "d", "s3", "du2"))                                         # another user, direct, anonymous
    models.refresh()
    sessions = table(store, "sessions", "domain_sessionid",
                     "domain_userid, user_id, domain_sessionidx, start_tstamp, end_tstamp, page_views, events, "
                     "engaged_time_in_s, is_engaged, first_page_url, last_page_url, refr_medium, mkt_campaign, "
                     "default_channel_group")
    s1, s2, s3 = sessions["s1"], sessions["s2"], sessions["s3"]
    assert (s1["page_views"], int(s1["engaged_time_in_s"]), s1["is_engaged"], s1["events"]) == (2, 15, True, 4)
    assert s1["first_page_url"] == "https://shop.acme.com/a" and s1["last_page_url"] == "https://shop.acme.com/b"
    assert s1["user_id"] == "alice" and s1["domain_sessionidx"] == 1 and s1["refr_medium"] == "search"
    assert ts(s1["start_tstamp"]) == "2026-03-01 10:00:00.000" and ts(s1["end_tstamp"]) == "2026-03-01 10:01:00.000"
    assert s1["default_channel_group"] == "Organic Search"
    # one page view, no pings: not engaged; its end is the struct event after the page view
    assert (s2["page_views"], int(s2["engaged_time_in_s"]), s2["is_engaged"], s2["events"]) == (1, 0, False, 2)
    assert s2["default_channel_group"] == "Paid Search" and s2["mkt_campaign"] == "spring"
    assert s2["user_id"] is None and s2["domain_sessionidx"] == 2
    assert ts(s2["end_tstamp"]) == "2026-03-02 10:01:30.000"
    assert s3["default_channel_group"] == "Direct" and s3["domain_userid"] == "du2"
    users = table(store, "users", "domain_userid",
                  "user_id, stitched_user_id, sessions, page_views, engaged_time_in_s, start_tstamp, end_tstamp, "
                  "default_channel_group")
    du1, du2 = users["du1"], users["du2"]
    # stitched to the latest known user id, even though the latest session is anonymous
    assert du1["user_id"] == "alice" and du1["stitched_user_id"] == "alice"
    assert (du1["sessions"], du1["page_views"], int(du1["engaged_time_in_s"])) == (2, 3, 15)
    assert ts(du1["start_tstamp"]) == "2026-03-01 10:00:00.000" and ts(du1["end_tstamp"]) == "2026-03-02 10:01:30.000"
    assert du1["default_channel_group"] == "Organic Search"
    assert du2["user_id"] is None and du2["stitched_user_id"] == "du2" and du2["sessions"] == 1

    # a later login under another id: the user follows the latest one
    load(store, view(at(200, day2), "e", "s2", idx=2, user_id="alice@acme"))
    models.refresh()
    users = table(store, "users", "domain_userid", "user_id, stitched_user_id, page_views")
    assert users["du1"] == {"user_id": "alice@acme", "stitched_user_id": "alice@acme", "page_views": 4}


def test_late_event_updates_its_session_and_too_late_is_left_out(store, models):
    load(store, view(T0, "p1"), ping(at(10), "p1"), view(at(100), "other", "s2", "du2"))
    first = models.refresh()
    assert first["sessions"] == 2
    before = table(store, "sessions", "domain_sessionid", "start_tstamp, page_views, engaged_time_in_s")["s1"]
    assert (ts(before["start_tstamp"]), before["page_views"], int(before["engaged_time_in_s"])) == \
        ("2026-03-01 10:00:00.000", 1, 5)
    # arriving after the refresh: a ping of p1 and an earlier page view of the same session
    # (its device buffered it), plus an event 2 hours older than anything modelled (> late_seconds)
    load(store, ping(at(20), "p1"), view(at(-30), "p0"), view(at(-7200), "ancient", "s9", "du9"))
    second = models.refresh()
    assert second["events"] == 2   # the too-late event is not modelled
    assert (second["page_views"], second["sessions"], second["users"]) == (2, 1, 1)
    assert second["refresh_id"] == first["refresh_id"] + 1
    sessions = table(store, "sessions", "domain_sessionid", "start_tstamp, end_tstamp, page_views, engaged_time_in_s, "
                                                            "first_page_url")
    s1 = sessions["s1"]
    # p1: two pings 10 s apart -> 10 * (2 - 1) + 5 = 15; p0: 0
    assert (ts(s1["start_tstamp"]), s1["page_views"], int(s1["engaged_time_in_s"])) == \
        ("2026-03-01 09:59:30.000", 2, 15)
    assert s1["first_page_url"] == "https://shop.acme.com/p0" and ts(s1["end_tstamp"]) == "2026-03-01 10:00:20.000"
    assert "s9" not in sessions
    [(n,)] = store.backend.query("SELECT count() FROM snowplow.sessions FINAL")
    assert n == 2
    # a rebuild models everything, the too-late event included
    models.rebuild()
    assert "s9" in table(store, "sessions", "domain_sessionid", "page_views")


def test_session_spanning_midnight_is_one_session(store, models):
    night = datetime(2026, 3, 1, 23, 59, 30, tzinfo=timezone.utc)
    load(store, view(night, "late"), ping(at(10, night), "late"), ping(at(20, night), "late"))
    models.refresh()
    load(store, ping(at(40, night), "late"), view(at(50, night), "early"))   # after midnight, next partition
    models.refresh()
    [(sid, start, end, page_views, engaged)] = store.backend.query(
        "SELECT domain_sessionid, start_tstamp, end_tstamp, page_views, engaged_time_in_s FROM snowplow.sessions FINAL")
    assert sid == "s1" and page_views == 2
    assert ts(start) == "2026-03-01 23:59:30.000" and ts(end) == "2026-03-02 00:00:20.000"
    # pings at :40, :50, 00:10 -> heartbeats 0, 1 and 3 after the first -> 10 * 2 + 5
    assert int(engaged) == 25
    days = store.backend.query("SELECT DISTINCT toDate(collector_tstamp) FROM snowplow.events ORDER BY 1")
    assert len(days) == 2
    [(users, sessions)] = store.backend.query("SELECT count(), sum(sessions) FROM snowplow.users FINAL")
    assert (users, sessions) == (1, 1)


def test_refresh_is_idempotent_and_survives_a_restart(store, models):
    events = [view(T0, "p1"), ping(at(10), "p1"), ping(at(22), "p1"), view(at(40), "p2", user_id="u")]
    load(store, *events)
    first = models.refresh()
    assert (first["page_views"], first["sessions"], first["users"]) == (2, 1, 1)
    counts = "SELECT (SELECT count() FROM snowplow.page_views), (SELECT count() FROM snowplow.sessions), " \
             "(SELECT count() FROM snowplow.users)"
    rows_before = store.backend.query(counts)
    snapshot = store.backend.query("SELECT * EXCEPT (_version) FROM snowplow.page_views FINAL ORDER BY page_view_id")
    again = models.refresh()
    assert (again["events"], again["page_views"], again["sessions"], again["users"]) == (0, 0, 0, 0)
    assert again["refresh_id"] == first["refresh_id"]
    # a new Models over the same tables (a restart) resumes from the stored watermark
    restarted = Models(store.backend, "snowplow", models.config)
    restarted.create()
    third = restarted.refresh()
    assert (third["events"], third["page_views"], third["sessions"], third["users"]) == (0, 0, 0, 0)
    assert store.backend.query(counts) == rows_before
    assert store.backend.query("SELECT * EXCEPT (_version) FROM snowplow.page_views FINAL "
                               "ORDER BY page_view_id") == snapshot
    assert restarted.watermark()["refresh_id"] == first["refresh_id"]
    # the same events loaded again in another batch (a redelivery, before any merge): no row changes
    load(store, *events)
    fourth = restarted.refresh()
    assert (fourth["events"], fourth["page_views"], fourth["sessions"], fourth["users"]) == (4, 0, 0, 0)
    assert store.backend.query("SELECT * EXCEPT (_version) FROM snowplow.page_views FINAL "
                               "ORDER BY page_view_id") == snapshot


def test_page_view_id_from_contexts_json_matches_the_wide_column(store, models):
    load(store, view(T0, "p1"), ping(at(10), "p1"), event("struct", at(20), None))
    got = store.backend.query(f"SELECT {_PAGE_VIEW_ID_JSON}, {_PAGE_VIEW_ID_WIDE} FROM snowplow.events "
                              f"ORDER BY collector_tstamp")
    assert got == [("p1", "p1"), ("p1", "p1"), (None, None)]


def test_models_before_any_web_page_entity(store, models):
    # no event carried the web_page entity yet: no wide column, the JSON expression is used
    load(store, event("struct", T0, None))
    assert models.refresh()["sessions"] == 1
    load(store, view(at(5), "p1"))
    assert models.refresh()["page_views"] == 1


def test_refresher_thread_models_new_events_until_stopped(store, models):
    results = []
    refresher = ModelsRefresher(models, interval=0.05, on_refresh=results.append).start()
    try:
        load(store, view(T0, "p1"), ping(at(10), "p1"))
        deadline = time.monotonic() + 30
        while not store.backend.query("SELECT 1 FROM snowplow.page_views FINAL WHERE page_view_id = 'p1'"):
            assert time.monotonic() < deadline, refresher.last_error
            refresher.refresh_now()
            time.sleep(0.02)
    finally:
        load(store, view(at(20), "p2"))
        refresher.stop()     # the final refresh models what was loaded before the stop
    assert refresher.last_error is None and any(r["page_views"] for r in results)
    assert len(table(store, "page_views", "page_view_id", "page_pings")) == 2


UA_PARSER = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0"
YAUAA = "iglu:nl.basjes/yauaa_context/jsonschema/1-0-4"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0 Safari/537.36")


def ua_parser(browser: str, os: str, device: str) -> list[dict]:
    return [{"schema": UA_PARSER, "data": {"useragentFamily": browser, "osFamily": os, "deviceFamily": device,
                                           "useragentVersion": browser, "osVersion": os}}]


def test_browser_os_and_device_come_from_the_user_agent_entities(store, models):
    # the ua_parser enrichment fills no atomic field: before, these page views had no browser, OS or device
    load(store,
         view(T0, "linux", "s1", "du1", useragent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
              derived_contexts=ua_parser("Firefox", "Linux", "Other")),
         view(at(1), "iphone", "s2", "du2", useragent=IPHONE,
              derived_contexts=ua_parser("Mobile Safari", "iOS", "iPhone")),
         view(at(2), "tablet", "s3", "du3", useragent=ANDROID_TABLET,
              derived_contexts=ua_parser("Chrome", "Android", "SM-X700")),
         view(at(3), "bot", "s4", "du4", useragent="Googlebot/2.1", derived_contexts=ua_parser("Googlebot", "Other",
                                                                                             "Spider")),
         # YAUAA's entity wins over ua_parser's when both are there
         view(at(4), "yauaa", "s5", "du5", useragent=IPHONE,
              derived_contexts=ua_parser("Mobile Safari", "iOS", "iPhone") + [
                  {"schema": YAUAA, "data": {"deviceClass": "Phone", "agentName": "Safari",
                                             "operatingSystemName": "iOS", "agentClass": "Browser"}}]),
         # no entity: the legacy enrichment's atomic fields, else nothing
         view(at(5), "legacy", "s6", "du6", br_family="Chrome", os_family="Windows", dvce_type="Computer"),
         view(at(6), "bare", "s7", "du7", useragent="curl/8.0"))
    models.refresh()
    got = table(store, "page_views", "page_view_id", "br_family, os_family, dvce_type")
    assert {pv: tuple(row.values()) for pv, row in got.items()} == {
        "linux": ("Firefox", "Linux", "Desktop"),
        "iphone": ("Mobile Safari", "iOS", "Phone"),
        "tablet": ("Chrome", "Android", "Tablet"),
        "bot": ("Googlebot", "Other", "Robot"),
        "yauaa": ("Safari", "iOS", "Phone"),
        "legacy": ("Chrome", "Windows", "Computer"),
        "bare": (None, None, None)}
    sessions = table(store, "sessions", "domain_sessionid", "br_family, os_family, dvce_type")
    assert tuple(sessions["s2"].values()) == ("Mobile Safari", "iOS", "Phone")


def test_engaged_time_follows_the_heartbeat_the_pings_show(store, models):
    # models.heartbeat is 10; the trackers were set to 5 s and to 20 s.  Before, two pings 5 s apart
    # counted 5 or 15 s (one or two 10 s epoch buckets) and two pings 20 s apart 15 s.
    load(store,
         view(T0, "five"), ping(at(5.4), "five"), ping(at(10.45), "five"),
         view(at(100), "twenty", "s2"), ping(at(125), "twenty", sid="s2"), ping(at(145.1), "twenty", sid="s2"),
         ping(at(185.2), "twenty", sid="s2"),                # no activity for one heartbeat: 3 of 4
         view(at(200), "once", "s3"), ping(at(203), "once", sid="s3"),  # one ping: models.heartbeat (unused)
         view(at(300), "dup", "s4"), ping(at(305), "dup", sid="s4"), ping(at(305), "dup", sid="s4"),
         ping(at(310), "dup", sid="s4"))                     # a ping sent at the same time twice
    models.refresh()
    got = {pv: int(row["engaged_time_in_s"]) for pv, row in
           table(store, "page_views", "page_view_id", "engaged_time_in_s").items()}
    assert got == {"five": 5 * (2 - 1) + 5, "twenty": 20 * (3 - 1) + 5, "once": 5, "dup": 5 * (2 - 1) + 5}


def test_users_are_stitched_identities_and_server_side_requests_do_not_multiply_them(store, models):
    def server(t: datetime, nuid: str, **fields) -> EnrichedEvent:
        # a server-side tracker's event: no domain_userid, no session, the collector's cookie only
        return event("page_view", t, None, sid=None, duid=None, nuid=nuid, idx=None, **fields)

    events = [
        # alice in her browser, anonymous then logged in: one person
        view(T0, "a1", "s1", "du1"), view(at(10), "a2", "s1", "du1", user_id="alice"),
        # bob's browser, never logged in
        view(at(20), "b1", "s2", "du2"),
    ]
    # a Node server tracking carol: 70 requests, a new network_userid each, user_id set
    events += [server(at(30 + i), f"node-{i}", user_id="carol") for i in range(70)]
    # a server with no ids at all: a new network_userid per request identifies nobody
    events += [server(at(120 + i), f"anon-{i}") for i in range(5)]
    # a pixel that keeps the collector's cookie: one person over three requests
    events += [server(at(130 + 5 * i), "kept-cookie") for i in range(3)]
    # alice again, from a server, by her user_id
    events.append(server(at(150), "srv-x", user_id="alice"))
    load(store, *events)
    models.refresh()
    users = table(store, "users", "user_key", "domain_userid, user_id, stitched_user_id, network_userid, page_views")
    assert {key: row["stitched_user_id"] for key, row in users.items()} == {
        "du1": "alice", "du2": "du2", "carol": "carol", "alice": "alice", "kept-cookie": "kept-cookie"}
    assert users["carol"]["page_views"] == 70 and users["carol"]["domain_userid"] is None
    assert users["kept-cookie"]["user_id"] is None and users["kept-cookie"]["page_views"] == 3
    [(people,)] = store.backend.query("SELECT uniqExact(stitched_user_id) FROM snowplow.users FINAL")
    assert people == 4   # alice, bob, carol and the pixel's visitor

    # a fourth request of the server without ids, re-using one of its ids: now that id was kept
    load(store, server(at(400), "anon-2"))
    models.refresh()
    assert table(store, "users", "user_key", "stitched_user_id")["anon-2"] == {"stitched_user_id": "anon-2"}


def test_channel_reads_the_campaign_attribution_fields_not_the_url(store, models):
    # Snowplow's web model groups channels on mkt_* (the campaign-attribution enrichment), never on
    # utm_* parameters in the URL; the dashboard's campaigns panel reads the same fields
    load(store,
         view(T0, "utm", "s1", "du1", url="https://shop.acme.com/?utm_medium=cpc&utm_source=google"),
         view(at(5), "mkt", "s2", "du2", url="https://shop.acme.com/?utm_medium=cpc&utm_source=google",
              mkt_medium="cpc", mkt_source="google", refr_medium="search"))
    models.refresh()
    sessions = table(store, "sessions", "domain_sessionid", "mkt_medium, default_channel_group")
    assert sessions["s1"] == {"mkt_medium": None, "default_channel_group": "Direct"}
    assert sessions["s2"] == {"mkt_medium": "cpc", "default_channel_group": "Paid Search"}


def test_tables_of_the_previous_layout_are_rebuilt(store):
    # the layout before users were keyed by user_key: a users table by domain_userid, a scratch
    # table without user_key, the state recording layout 1 (and one made before any refresh)
    run = store.backend.command
    run("CREATE DATABASE IF NOT EXISTS snowplow")
    run("CREATE TABLE snowplow.users (domain_userid String, _hash UInt64, _version UInt64) "
        "ENGINE = ReplacingMergeTree(_version) ORDER BY domain_userid")
    run("CREATE TABLE snowplow._models_new (page_view_id Nullable(String), domain_sessionid Nullable(String), "
        "domain_userid Nullable(String), collector_tstamp DateTime64(3, 'UTC'), load_tstamp DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY tuple()")
    models = Models(store.backend, "snowplow", ModelsConfig())
    models.create()
    load(store, view(T0, "p1"))
    assert models.refresh()["users"] == 1
    assert table(store, "users", "user_key", "stitched_user_id") == {"du1": {"stitched_user_id": "du1"}}
