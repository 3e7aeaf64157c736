"""The dashboard's panel SQL on chdb against real enriched rows, and its routes (page, static files, data).

The rows are made by the real enrichment stage from tracker-protocol requests
collected a few minutes ago (the panels are relative to the engine's clock);
a few enriched fields are then set as an enrichment would have set them
(geo_country as the IP lookups enrichment, refr_medium/refr_source as the
referer parser, mkt_* as campaign attribution, the ua_parser_context entity
as the ua_parser enrichment), so both paths of each panel are exercised:
the enrichment's field when present, the fallback from the raw fields when
not.  The models are refreshed over them (the devices panel reads them).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web

from ext import CollectorPayload, encode_collector_payload
from loaders.base import Batch
from loaders.clickhouse import ClickHouseStore, bad_rows_ddl, events_ddl
from loaders.models import Models
from processor.enriched import FIELD_INDEX
from snowmelt.config import ClickHouseConfig, ModelsConfig
from snowmelt.dashboard import DashboardData, add_dashboard_routes, backend_query
from snowmelt.dashboard.queries import PANELS, panel_queries
from tests.unit.loaders.loader_lines import PAYLOAD_DATA, TP2, UNSTRUCT, b64, make_enricher

MINUTE = 60_000
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
SESSION = "6a1e2c3d-0000-4000-8000-{:012d}"
EID = "5a1e2c3d-0000-4000-8000-{:012d}"
PAGE_VIEW = "7a1e2c3d-0000-4000-8000-{:012d}"


def collected(enricher, timestamp_ms: int, events: list[dict], user_agent: str = LINUX_FIREFOX) -> tuple[list, list]:
    """(good lines, bad rows) of one tp2 POST collected at ``timestamp_ms``."""
    body = json.dumps({"schema": PAYLOAD_DATA, "data": events})
    payload = encode_collector_payload(CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
        ip_address="203.0.113.9", timestamp=timestamp_ms, encoding="UTF-8", collector="snowmelt-0.1.0-up",
        user_agent=user_agent, path=TP2, querystring="aid=shop", body=body,
        content_type="application/json; charset=utf-8", headers=["Host: c.acme.com"], hostname="c.acme.com",
        network_user_id="11111111-1111-4111-8111-111111111111"))
    out = enricher.enrich(payload)
    return [line if isinstance(line, str) else line.decode() for line in out.good], list(out.bad)


def with_fields(line: str, **values: str) -> bytes:
    """The enriched line with some fields set, as an enrichment would have set them."""
    fields = line.split("\t")
    for name, value in values.items():
        fields[FIELD_INDEX[name]] = value
    return "\t".join(fields).encode()


WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UA_PARSER = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0"


def page_view(n: int, url: str, user: str, session: int, **extra) -> dict:
    """A page view event (tracker protocol) with its web_page entity (page view id PAGE_VIEW.format(n))."""
    co = json.dumps({"schema": CONTEXTS, "data": [{"schema": WEB_PAGE, "data": {"id": PAGE_VIEW.format(n)}}]})
    return {"e": "pv", "eid": EID.format(n), "tv": "js-3.0.0", "p": "web", "url": url, "duid": user,
            "sid": SESSION.format(session), "co": co, **extra}


def ua_parser_context(browser: str, os: str, device: str) -> str:
    """derived_contexts holding the ua_parser_context entity the ua_parser enrichment attaches."""
    return json.dumps({"schema": CONTEXTS, "data": [{"schema": UA_PARSER, "data": {
        "useragentFamily": browser, "useragentMajor": None, "useragentMinor": None, "useragentPatch": None,
        "useragentVersion": browser, "osFamily": os, "osMajor": None, "osMinor": None, "osPatch": None,
        "osPatchMinor": None, "osVersion": os, "deviceFamily": device}}]})


def fill(store: ClickHouseStore, enricher, models: bool = True) -> dict:
    """Writes the data set (and refreshes the models over it unless ``models`` is false); returns the
    collector timestamps (ms) by event letter."""
    now = int(time.time() * 1000)
    t = {"A": now - MINUTE, "B": now - MINUTE, "C": now - 10 * MINUTE, "D": now - 20 * MINUTE, "E": now - 45 * MINUTE}
    good, _ = collected(enricher, t["A"], [
        page_view(1, "https://x.com/a?utm_source=news&utm_medium=email&utm_campaign=spring%20sale", "u1", 1,
                  page="Page A", refr="https://www.google.com/search?q=x"),
        page_view(2, "https://x.com/b", "u1", 1, refr="https://x.com/a")])
    firefox = ua_parser_context("Firefox", "Linux", "Other")
    lines = [with_fields(good[0], geo_country="FR", derived_contexts=firefox),
             with_fields(good[1], geo_country="FR", mkt_campaign="winter", mkt_source="ads", mkt_medium="cpc",
                         derived_contexts=firefox)]
    good, _ = collected(enricher, t["C"], [
        page_view(3, "https://x.com/a", "u2", 2, refr="https://news.ycombinator.com/item?id=1")], IPHONE_SAFARI)
    lines.append(with_fields(good[0], geo_country="DE", refr_medium="social", refr_source="Hacker News",
                             derived_contexts=ua_parser_context("Mobile Safari", "iOS", "iPhone")))
    good, _ = collected(enricher, t["D"], [
        {"e": "se", "eid": EID.format(4), "tv": "js-3.0.0", "p": "web", "se_ca": "c", "se_ac": "a", "duid": "u3",
         "sid": SESSION.format(3)}], "curl/8.0")
    lines.append(with_fields(good[0], dvce_type="Computer", os_family="Windows", br_family="Chrome"))
    good, _ = collected(enricher, t["E"], [page_view(5, "https://x.com/c", "u4", 4)])
    lines.append(good[0].encode())
    store.write(Batch("enriched", "enriched", 0, 0, len(lines) - 1, tuple(lines), now))
    if models:
        refresh_models(store)

    # two bad rows now (a schema that cannot be resolved, a field that is not a number), one two hours ago
    _, bad = collected(enricher, now, [
        {"e": "ue", "eid": EID.format(6), "tv": "js-3.0.0", "p": "web",
         "ue_px": b64({"schema": UNSTRUCT, "data": {"schema": "iglu:com.acme/nope/jsonschema/1-0-0", "data": {}}})},
        page_view(7, "https://x.com/", "u5", 5, tr_tt="abc")])
    assert len(bad) == 2
    old = datetime.fromtimestamp((now - 120 * MINUTE) / 1000, timezone.utc).isoformat(timespec="milliseconds")
    bad.append(json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0",
                           "data": {"processor": {"artifact": "snowmelt-enrich", "version": "0.1.0"},
                                    "failure": {"timestamp": old.replace("+00:00", "Z"), "errors": ["boom"]},
                                    "payload": "p"}}).encode())
    store.write(Batch("bad", "bad", 0, 0, len(bad) - 1, tuple(bad), now))
    return t


def refresh_models(store: ClickHouseStore, database: str = "snowplow") -> dict:
    models = Models(store.backend, database, ModelsConfig())
    models.create()
    return models.refresh()


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A chdb store with the data set in ``snowplow`` (models refreshed) and in ``nomodels`` (no model
    tables), and empty tables in ``nothing``."""
    root = tmp_path_factory.mktemp("dashboard")
    store = ClickHouseStore(ClickHouseConfig(backend="chdb", chdb_path=str(root / "ch")))
    store.open()
    store.backend.command("CREATE DATABASE IF NOT EXISTS nothing")
    store.backend.command(events_ddl("nothing", 0))
    store.backend.command(bad_rows_ddl("nothing"))
    refresh_models(store, "nothing")
    times = fill(store, make_enricher(root / "registry"))
    # the same events and bad rows where nobody ran the models (snowmelt load clickhouse on a server)
    store.backend.command("CREATE DATABASE IF NOT EXISTS nomodels")
    for table in ("events", "bad_rows"):
        store.backend.command(f"CREATE TABLE nomodels.{table} AS snowplow.{table}")
        store.backend.command(f"INSERT INTO nomodels.{table} SELECT * FROM snowplow.{table}")
    yield store, times
    store.close()


def run(store, panel: str, database: str = "snowplow") -> list[dict]:
    rows = store.backend.query(f"SELECT formatRow('JSONEachRow', *) FROM ({panel_queries(database)[panel]})")
    return [json.loads(row[0]) for row in rows]


def test_every_panel_answers_on_empty_tables(filled):
    store, _ = filled
    assert run(store, "totals", "nothing") == [{"events": 0, "bad_rows": 0, "last_event": ""}]
    assert run(store, "active", "nothing") == [{"users_5m": 0, "users_30m": 0, "sessions_5m": 0, "sessions_30m": 0,
                                                "events_5m": 0, "events_30m": 0}]
    minutes = run(store, "events_per_minute", "nothing")
    assert len(minutes) == 30 and all(m["good"] == m["bad"] == 0 for m in minutes)
    for panel in ("top_pages", "referrers", "campaigns", "countries", "devices", "bad_row_reasons"):
        assert run(store, panel, "nothing") == [], panel


def test_totals_and_active_users_sessions(filled):
    store, _ = filled
    [totals] = run(store, "totals")
    assert (totals["events"], totals["bad_rows"]) == (5, 3)
    assert datetime.strptime(totals["last_event"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() \
        == pytest.approx(time.time() - 60, abs=30)
    # u1/s1 a minute ago (2 events), u2/s2 10 min, u3/s3 20 min, u4/s4 45 min (outside)
    assert run(store, "active") == [{"users_5m": 1, "users_30m": 3, "sessions_5m": 1, "sessions_30m": 3,
                                     "events_5m": 2, "events_30m": 4}]


def test_events_per_minute_good_and_bad(filled):
    store, times = filled
    rows = run(store, "events_per_minute")
    minutes = [datetime.strptime(r["minute"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc) for r in rows]
    assert len(rows) == 30 and all((b - a).total_seconds() == 60 for a, b in zip(minutes, minutes[1:]))
    assert minutes[-1].timestamp() == pytest.approx(time.time() // 60 * 60, abs=60)
    expected = {m: 0 for m in minutes}
    for letter in "ABCDE":
        minute = datetime.fromtimestamp(times[letter] // MINUTE * 60, timezone.utc)
        if minute in expected:
            expected[minute] += 1
    assert {m: r["good"] for m, r in zip(minutes, rows)} == expected
    assert sum(r["good"] for r in rows) == 4 and sum(r["bad"] for r in rows) == 2


def test_top_pages_referrers_campaigns(filled):
    store, _ = filled
    assert run(store, "top_pages") == [
        {"page": "x.com/a", "title": "Page A", "page_views": 2, "users": 2},
        {"page": "x.com/b", "title": "", "page_views": 1, "users": 1}]
    # x.com -> x.com is internal; the referer parser's fields win over the host
    assert run(store, "referrers") == [
        {"medium": "social", "source": "Hacker News", "page_views": 1, "users": 1},
        {"medium": "unknown", "source": "www.google.com", "page_views": 1, "users": 1}]
    # mkt_* from campaign attribution only, as the sessions model's channel: A's utm_* parameters
    # in its URL (no enrichment turned them into mkt_*) are no campaign, and A's session is Direct
    assert run(store, "campaigns") == [
        {"campaign": "winter", "source": "ads", "medium": "cpc", "page_views": 1, "users": 1}]
    [(channel,)] = store.backend.query("SELECT default_channel_group FROM snowplow.sessions FINAL "
                                       f"WHERE domain_sessionid = '{SESSION.format(1)}'")
    assert channel == "Direct"


def test_countries_and_devices(filled):
    store, _ = filled
    assert run(store, "countries") == [
        {"country": "FR", "users": 1, "events": 2},
        {"country": "(unknown)", "users": 1, "events": 1},
        {"country": "DE", "users": 1, "events": 1}]
    got = [(r["facet"], r["name"], r["users"], r["page_views"]) for r in run(store, "devices")]
    # the page views of the last 30 minutes (A, B, C; D is no page view, E is older), their fields
    # from the ua_parser entity as the page_views model holds them
    assert got == [("browser", "Firefox", 1, 2), ("browser", "Mobile Safari", 1, 1),
                   ("device", "Desktop", 1, 2), ("device", "Phone", 1, 1),
                   ("os", "Linux", 1, 2), ("os", "iOS", 1, 1)]
    model = store.backend.query("SELECT br_family, os_family, dvce_type, count() FROM snowplow.page_views FINAL "
                                "WHERE first_collector_tstamp >= now() - toIntervalMinute(30) GROUP BY 1, 2, 3 "
                                "ORDER BY 4 DESC")
    assert model == [("Firefox", "Linux", "Desktop", 2), ("Mobile Safari", "iOS", "Phone", 1)]


async def test_devices_without_the_models_are_counted_from_the_events_as_the_model_counts_them(filled):
    """Where nobody ran the models, the devices panel answers from ``events`` with the model's rules
    (the same rows as over the refreshed models) and says so; the other panels do not change."""
    store, _ = filled
    assert store.backend.query("SELECT count() FROM system.tables WHERE database = 'nomodels' "
                               "AND name IN ('page_views', 'users')") == [(0,)]
    doc = await DashboardData(backend_query(store.backend), database="nomodels").get()
    devices = doc["panels"]["devices"]
    assert "error" not in devices and devices["source"] == "events"
    assert "models are not loaded" in devices["note"] and "loaders.models.Models" in devices["note"]
    assert devices["rows"] == run(store, "devices") != []
    assert all("note" not in panel and "error" not in panel
               for name, panel in doc["panels"].items() if name != "devices")
    assert doc["panels"]["top_pages"]["rows"] == run(store, "top_pages")

    # with the models loaded, the panel reads them
    doc = await DashboardData(backend_query(store.backend), database="snowplow").get()
    assert "source" not in doc["panels"]["devices"] and "note" not in doc["panels"]["devices"]


def test_devices_from_the_events_use_the_models_expressions():
    from loaders.models import BR_FAMILY, DVCE_TYPE, OS_FAMILY, PAGE_VIEW_ID, render_sql
    from snowmelt.dashboard.queries import DEVICES_FROM_EVENTS, FALLBACKS

    assert FALLBACKS["devices"].sql == DEVICES_FROM_EVENTS
    for expression in (BR_FAMILY, DVCE_TYPE, OS_FAMILY, PAGE_VIEW_ID):
        assert expression in DEVICES_FROM_EVENTS
    page_views = render_sql("page_views", db="d", page_view_id=PAGE_VIEW_ID, bound="0", heartbeat=10,
                            min_visit_length=5, br_family=BR_FAMILY, os_family=OS_FAMILY, dvce_type=DVCE_TYPE)
    assert f"{BR_FAMILY} AS br_family" in page_views and f"{DVCE_TYPE} AS dvce_type" in page_views


def test_bad_row_reasons(filled):
    store, _ = filled
    got = run(store, "bad_row_reasons")
    assert [(r["type"], r["reason"], r["last_30m"], r["last_24h"]) for r in got] == [
        ("enrichment_failures", "tr_tt: cannot be converted to java.math.BigDecimal. Error : Character a is neither "
                                "a decimal digit number, decimal point, nor \"e\" notation exponential mark.", 1, 1),
        ("generic_error", "boom", 0, 1),
        ("schema_violations", "ResolutionError iglu:com.acme/nope/jsonschema/1-0-0", 1, 1)]
    assert all(len(r["last_seen"]) == 19 for r in got)


def test_panel_queries_quote_the_database():
    assert "FROM snowplow.events" in panel_queries()["top_pages"]
    assert "FROM `my-db`.events" in panel_queries("my-db")["top_pages"]
    assert all("{database}" not in sql for sql in panel_queries("x").values())
    with pytest.raises(ValueError):
        panel_queries("")


@pytest.fixture
def app(filled):
    app = web.Application()
    add_dashboard_routes(app, backend_query(filled[0].backend), poll_seconds=3)
    return app


async def test_routes_serve_the_page_static_files_and_the_data(filled, app, aiohttp_client):
    client = await aiohttp_client(app)
    for path in ("/", "/dashboard/"):
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
        assert '<script src="/dashboard/dashboard.js">' in page and 'href="/dashboard/dashboard.css"' in page
        assert "http://" not in page and "https://" not in page  # nothing from another origin
    response = await client.get("/dashboard/dashboard.js")
    assert response.status == 200 and response.content_type == "application/javascript"
    assert "/dashboard/data" in await response.text()
    response = await client.get("/dashboard/dashboard.css")
    assert response.status == 200 and response.content_type == "text/css"
    assert (await client.get("/dashboard/other.js")).status == 404

    response = await client.get("/dashboard/data")
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    doc = await response.json()
    assert doc["database"] == "snowplow" and doc["poll_seconds"] == 3
    assert list(doc["panels"]) == list(PANELS)
    assert all("error" not in panel for panel in doc["panels"].values())
    assert doc["panels"]["active"]["rows"] == run(filled[0], "active")
    assert doc["panels"]["top_pages"]["rows"][0] == {"page": "x.com/a", "title": "Page A", "page_views": 2, "users": 2}
    assert len(doc["panels"]["events_per_minute"]["rows"]) == 30


async def test_a_failing_panel_carries_its_error_and_answers_are_shared():
    calls = []

    async def query(sql: str) -> list[dict]:
        calls.append(sql)
        if "bad_rows" in sql and "events" not in sql:
            raise RuntimeError("Code: 60. Unknown table bad_rows")
        return [{"n": 1}]

    clock = [100.0]
    data = DashboardData(query, cache_seconds=1.0, clock=lambda: clock[0])
    doc = await data.get()
    assert doc["panels"]["bad_row_reasons"] == {"rows": [], "error": "Code: 60. Unknown table bad_rows"}
    assert doc["panels"]["top_pages"] == {"rows": [{"n": 1}]}
    per_round = len(PANELS) + 1  # and the look at system.tables (for the panels that read the models)
    assert len(calls) == per_round
    assert await data.get() is doc and len(calls) == per_round  # within cache_seconds: no new queries
    clock[0] += 1.5
    assert await data.get() is not doc and len(calls) == 2 * per_round


def test_grafana_dashboard_file_is_generated_from_the_same_sql():
    from pathlib import Path

    from snowmelt.dashboard.grafana import PLUGIN, grafana_dashboard

    shipped = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/snowmelt-dashboard.json").read_text())
    assert shipped == grafana_dashboard(), "regenerate: python -m snowmelt.dashboard.grafana > deploy/grafana/..."
    variables = {v["name"]: v for v in shipped["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == PLUGIN
    assert variables["database"]["query"] == "snowplow"
    sql = {}
    for panel in shipped["panels"]:
        [target] = panel["targets"]
        assert target["datasource"] == panel["datasource"] == {"type": PLUGIN, "uid": "${datasource}"}
        sql[panel["description"].split("`")[1]] = target["rawSql"]
        assert (target["format"] == 0) == (panel["type"] == "timeseries")
    assert sql == {name: text.replace("{database}", "${database}") for name, text in PANELS.items()}


def test_grafana_sql_runs_once_the_variable_is_substituted(filled):
    from snowmelt.dashboard.grafana import grafana_dashboard

    store, _ = filled
    for panel in grafana_dashboard()["panels"]:
        sql = panel["targets"][0]["rawSql"].replace("${database}", "snowplow")
        assert store.backend.query(f"SELECT count() FROM ({sql})")[0][0] > 0, panel["title"]


def test_active_users_are_the_users_models_people(filled):
    """Stitched identities: the dashboard's active users count what ``snowplow.users`` counts.

    Before, a user was ``domain_userid`` else ``network_userid``: a Node server tracking one
    user_id with a new network_userid per request counted as 70 users, a browser user who logged in
    and the same person on a server as two, and each cookie-less request of a server without ids
    as one more.
    """
    from tests.unit.loaders.test_models import event, load, view

    # a database of its own on the module's engine (chdb opens one folder per process)
    store = ClickHouseStore(ClickHouseConfig(backend="chdb", database="stitch"))
    store.backend = filled[0].backend
    store.open()
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def at(seconds: float) -> datetime:
        return now - timedelta(minutes=3) + timedelta(seconds=seconds)

    def server(t: datetime, nuid: str, **fields):
        return event("page_view", t, None, sid=None, duid=None, nuid=nuid, idx=None, **fields)

    events = [view(at(0), "a1", "s1", "du1"), view(at(10), "a2", "s1", "du1", user_id="alice"),
              view(at(20), "b1", "s2", "du2")]
    events += [server(at(30 + i), f"node-{i}", user_id="carol") for i in range(70)]
    events += [server(at(105 + i), f"anon-{i}") for i in range(5)]
    events += [server(at(115 + 5 * i), "kept-cookie") for i in range(3)]
    events.append(server(at(135), "srv-x", user_id="alice"))
    load(store, *events)
    refresh_models(store, "stitch")
    [active] = run(store, "active", "stitch")
    [(people,)] = store.backend.query("SELECT uniqExact(stitched_user_id) FROM stitch.users FINAL")
    assert active["users_30m"] == active["users_5m"] == people == 4   # alice, bob, carol, the pixel's visitor
    # the servers' page views (one page): carol, the pixel's visitor and alice; the 5 cookie-less
    # requests without ids are page views of nobody
    top = {row["page"]: (row["page_views"], row["users"]) for row in run(store, "top_pages", "stitch")}
    assert top["/None"] == (79, 3)
