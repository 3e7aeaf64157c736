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
        network_userid="nu-" + duid, page_url=fields.pop("url", f"https://shop.acme.com/{pv}"),
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
         # buckets floor(epoch / 10): +10.2 -> 1, +20.5 and +24 -> 2, +31 -> 3: three distinct buckets
         ping(at(10.2), "pv1", 500), ping(at(20.5), "pv1", 1200), ping(at(24), "pv1", 900), ping(at(31), "pv1", 1100),
         view(at(40), "pv2"),                      # no pings
         ping(at(50), "orphan", 100))              # pings without their page view make no row
    result = models.refresh()
    assert result["events"] == 7 and result["page_views"] == 2 and result["sessions"] == 1 and result["users"] == 1
    pvs = table(store, "page_views", "page_view_id",
                "page_pings, engaged_time_in_s, vertical_percentage_scrolled, horizontal_percentage_scrolled, "
                "vertical_pixels_scrolled, start_tstamp, end_tstamp, first_ping_tstamp, last_ping_tstamp, "
                "absolute_time_in_s, page_urlpath, domain_sessionid, domain_userid")
    assert set(pvs) == {"pv1", "pv2"}
    pv1, pv2 = pvs["pv1"], pvs["pv2"]
    assert pv1["page_pings"] == 4
    assert int(pv1["engaged_time_in_s"]) == 10 * (3 - 1) + 5
    # round(100 * least(1200 + 1000, 3000) / 3000) = round(73.3); round(100 * least(0 + 800, 1000) / 1000)
    assert pv1["vertical_percentage_scrolled"] == 73 and pv1["horizontal_percentage_scrolled"] == 80
    assert int(pv1["vertical_pixels_scrolled"]) == 1200
    assert ts(pv1["start_tstamp"]) == "2026-03-01 10:00:00.000" and ts(pv1["end_tstamp"]) == "2026-03-01 10:00:31.000"
    assert ts(pv1["first_ping_tstamp"]) == "2026-03-01 10:00:10.200"
    assert ts(pv1["last_ping_tstamp"]) == "2026-03-01 10:00:31.000"
    assert int(pv1["absolute_time_in_s"]) == 31 and pv1["page_urlpath"] == "/pv1"
    assert pv1["domain_sessionid"] == "s1" and pv1["domain_userid"] == "du1"
    # no pings: no engaged time; the page view's own offsets (none) and sizes: round(100 * 1000 / 3000)
    assert pv2["page_pings"] == 0 and int(pv2["engaged_time_in_s"]) == 0 and pv2["first_ping_tstamp"] is None
    assert pv2["vertical_percentage_scrolled"] == 33
    [(sessions_engaged, page_views)] = store.backend.query(
        "SELECT engaged_time_in_s, page_views FROM snowplow.sessions FINAL")
    assert int(sessions_engaged) == 25 and int(page_views) == 2


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
    load(store, ping(at(25), "p1"), view(at(-30), "p0"), view(at(-7200), "ancient", "s9", "du9"))
    second = models.refresh()
    assert second["events"] == 2   # the too-late event is not modelled
    assert (second["page_views"], second["sessions"], second["users"]) == (2, 1, 1)
    assert second["refresh_id"] == first["refresh_id"] + 1
    sessions = table(store, "sessions", "domain_sessionid", "start_tstamp, end_tstamp, page_views, engaged_time_in_s, "
                                                            "first_page_url")
    s1 = sessions["s1"]
    # p1: buckets 1 and 2 -> 10 * (2 - 1) + 5 = 15; p0: 0
    assert (ts(s1["start_tstamp"]), s1["page_views"], int(s1["engaged_time_in_s"])) == \
        ("2026-03-01 09:59:30.000", 2, 15)
    assert s1["first_page_url"] == "https://shop.acme.com/p0" and ts(s1["end_tstamp"]) == "2026-03-01 10:00:25.000"
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
    load(store, ping(at(35, night), "late"), view(at(50, night), "early"))   # after midnight, next partition
    models.refresh()
    [(sid, start, end, page_views, engaged)] = store.backend.query(
        "SELECT domain_sessionid, start_tstamp, end_tstamp, page_views, engaged_time_in_s FROM snowplow.sessions FINAL")
    assert sid == "s1" and page_views == 2
    assert ts(start) == "2026-03-01 23:59:30.000" and ts(end) == "2026-03-02 00:00:20.000"
    # pings at :40, :50, 00:05 -> three buckets -> 10 * 2 + 5
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
