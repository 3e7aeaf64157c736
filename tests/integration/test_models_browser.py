"""The official browser tracker in headless Chromium -> a running ``snowmelt up`` -> models and dashboard.

A page on another local port loads ``@snowplow/browser-tracker`` (npm, its UMD
build, from the packages of ``tests/conformance/browser``, installed on
first use) and tracks a page view with activity tracking set to a 5 s
heartbeat and a 5 s minimum visit length, while ``models.heartbeat`` stays at
its default of 10 s.  The page reports activity for 8 s, so the tracker sends
two page pings (at 5 s and 10 s) and no more.  ``snowmelt up`` runs with its
standard enrichments (ua_parser among them).  The page_views model must show
the two pings as 5 * (2 - 1) + 5 = 10 engaged seconds (10 s heartbeat
buckets made that 5 or 15), the browser, OS and device class of the
ua_parser entity, and the dashboard's data endpoint the same browser, OS,
device and number of users as the models.

Chromium is driven with the DevTools client of ``test_dashboard_browser``;
skipped when no Chromium is found or the tracker cannot be installed.
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.test_dashboard_browser import CHROMIUM, browser, open_page, poll, serve_local  # noqa: F401 (fixture)
from tests.services.npm import npm_install
from tests.services.up import UpProcess

TRACKER_DIR = Path(__file__).resolve().parents[1] / "conformance" / "browser"
TRACKER_JS = TRACKER_DIR / "node_modules" / "@snowplow" / "browser-tracker" / "dist" / "index.umd.min.js"
APP_ID = "models-browser"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary found (apt-get install chromium, "
                                                          "or set CHROMIUM to a Chrome/Chromium binary)")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Models page</title><link rel="icon" href="data:,">
<script src="/sp.js"></script></head>
<body><p>A page read for a while.</p>
<script>
  var sp = window.snowplowBrowserTracking;
  sp.newTracker("sp", "COLLECTOR", {appId: "APP_ID", eventMethod: "post", bufferSize: 1,
                                    contexts: {webPage: true}});
  sp.enableActivityTracking({minimumVisitLength: 5, heartbeatDelay: 5});
  sp.trackPageView();
  // a reader active for 8 s: pings at 5 s and 10 s, none at 15 s
  var until = Date.now() + 8000;
  var timer = setInterval(function () {
    if (Date.now() > until) { clearInterval(timer); return; }
    sp.updatePageActivity();
  }, 250);
</script></body></html>"""


def install_tracker() -> Path:
    """The browser tracker's UMD build, from the conformance tests' packages (installed when missing)."""
    npm_install(TRACKER_DIR, TRACKER_JS, "--legacy-peer-deps")
    return TRACKER_JS


def sql(up: UpProcess, query: str) -> list[dict]:
    """Rows of ``query`` through snowmelt up's SQL port (JSONEachRow)."""
    request = urllib.request.Request(up.sql_url + "/", data=(query + " FORMAT JSONEachRow").encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


async def test_browser_tracker_pings_make_engaged_time_and_the_dashboard_shows_the_models(browser, tmp_path):
    tracker_js = install_tracker()
    up = UpProcess(tmp_path / "data", settings={"up.enrichments": "standard", "up.store_interval": "0.2",
                                                "models.refresh_interval": "0.5"}).start()
    app = web.Application()
    page = PAGE.replace("COLLECTOR", up.url).replace("APP_ID", APP_ID)

    async def handle_page(_request):
        return web.Response(text=page, content_type="text/html")

    async def handle_tracker(_request):
        return web.Response(body=tracker_js.read_bytes(), content_type="application/javascript")

    app.router.add_get("/", handle_page)
    app.router.add_get("/sp.js", handle_tracker)
    runner, url = await serve_local(app)
    session, debug_port = browser
    tools = await open_page(session, debug_port)
    try:
        await tools.send("Page.navigate", url=url)

        async def two_pings():
            rows = sql(up, f"SELECT page_pings FROM snowplow.page_views FINAL WHERE app_id = '{APP_ID}'")
            return rows if rows and rows[0]["page_pings"] >= 2 else None

        await poll(two_pings, "the page view's two pings in the page_views model", timeout=60, interval=0.5)
        await tools.send("Page.navigate", url="about:blank")  # the reader leaves: no more pings

        [pv] = sql(up, f"SELECT page_view_id, page_pings, engaged_time_in_s, br_family, os_family, dvce_type, "
                       f"domain_userid FROM snowplow.page_views FINAL WHERE app_id = '{APP_ID}'")
        pings = sql(up, f"SELECT toUnixTimestamp64Milli(dvce_created_tstamp) AS ms FROM snowplow.events "
                        f"WHERE app_id = '{APP_ID}' AND event_name = 'page_ping' ORDER BY ms")
        spacing = (pings[1]["ms"] - pings[0]["ms"]) / 1000
        assert pv["page_pings"] == 2 and abs(spacing - 5) < 1, (pv, pings)
        assert int(pv["engaged_time_in_s"]) == 5 * (2 - 1) + 5, pv
        # from the ua_parser entity: headless Chromium on Linux, a desktop
        assert pv["br_family"] and pv["os_family"] == "Linux" and pv["dvce_type"] == "Desktop", pv
        [user] = sql(up, "SELECT user_key, stitched_user_id FROM snowplow.users FINAL")
        assert user == {"user_key": pv["domain_userid"], "stitched_user_id": pv["domain_userid"]}

        def dashboard() -> dict:
            with urllib.request.urlopen(up.url + "/dashboard/data", timeout=10) as resp:
                return json.loads(resp.read())["panels"]

        panels = dashboard()
        devices = {(row["facet"], row["name"]): (row["users"], row["page_views"])
                   for row in panels["devices"]["rows"]}
        assert devices == {("browser", pv["br_family"]): (1, 1), ("os", pv["os_family"]): (1, 1),
                           ("device", pv["dvce_type"]): (1, 1)}, panels["devices"]
        [active] = panels["active"]["rows"]
        assert active["users_30m"] == 1 and active["sessions_30m"] == 1 and active["events_30m"] == 3, active
        assert tools.errors() == []
        assert up.terminate() == 0, up.output()
    finally:
        await tools.close()
        await runner.cleanup()
        up.kill()
        up.remove_log()
