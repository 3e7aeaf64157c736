"""The dashboard page in headless Chromium (Debian's ``chromium``), driven over the DevTools protocol.

An aiohttp app with :func:`snowmelt.dashboard.add_dashboard_routes` serves the
page and its data from a chdb store holding real enriched rows (the data set
of ``tests/unit/test_dashboard.py``).  Chromium loads the page; the test polls
the DOM (``Runtime.evaluate``) until every panel shows the numbers the data
set implies, then writes one more batch and polls until the page shows it
(the page updates itself), asserts that nothing was logged as an error
(console errors, uncaught exceptions, failed loads), and takes a screenshot
(kept as ``docs/dashboard.png`` when ``SNOWMELT_UPDATE_SCREENSHOT=1``, so an
ordinary run leaves the checkout as it was).

The DevTools client is aiohttp's websocket client: no Selenium, no driver.
Skipped, with the reason, only when no Chromium binary is found
(``apt-get install chromium``; ``CHROMIUM`` names another binary).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from loaders.base import Batch
from snowmelt.dashboard import add_dashboard_routes, backend_query
from tests.unit.loaders.loader_lines import make_enricher
from tests.unit.test_dashboard import collected, fill, page_view, refresh_models

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "dashboard.png"


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary found (apt-get install chromium, "
                                                          "or set CHROMIUM to a Chrome/Chromium binary)")


async def poll(check, what: str, timeout: float = 20.0, interval: float = 0.1):
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` seconds saying ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class DevTools:
    """A minimal Chrome DevTools protocol client on one page target: commands and collected events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            doc = json.loads(message.data)
            if "id" in doc and doc["id"] in self._pending:
                self._pending.pop(doc["id"]).set_result(doc)
            elif "method" in doc:
                self.events.append(doc)

    async def send(self, method: str, **params) -> dict:
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        doc = await asyncio.wait_for(future, 30)
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        return doc.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def errors(self) -> list:
        """Console errors, uncaught exceptions and browser log errors (failed loads) seen so far."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(params)
            elif method == "Runtime.exceptionThrown":
                found.append(params)
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"])
        return found

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


@pytest.fixture
async def browser(tmp_path):
    """A headless Chromium with remote debugging on a free port; yields an aiohttp session and the port."""
    profile = tmp_path / "profile"
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-dev-shm-usage", "--disable-extensions", "--remote-debugging-port=0",
                             "--remote-allow-origins=*", f"--user-data-dir={profile}", "--window-size=1400,1100",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port_file = profile / "DevToolsActivePort"

        async def port():
            if proc.poll() is not None:
                raise AssertionError(f"chromium exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            text = port_file.read_text() if port_file.exists() else ""
            return int(text.split()[0]) if text.strip() else None

        debug_port = await poll(port, "Chromium's DevToolsActivePort")
        async with aiohttp.ClientSession() as session:
            yield session, debug_port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def open_page(session: aiohttp.ClientSession, debug_port: int) -> DevTools:
    async def targets():
        async with session.get(f"http://127.0.0.1:{debug_port}/json/list") as response:
            return [t for t in await response.json() if t.get("type") == "page"]

    [target, *_] = await poll(targets, "a page target")
    ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
    tools = DevTools(ws)
    for domain in ("Runtime", "Log", "Page"):
        await tools.send(f"{domain}.enable")
    await tools.send("Emulation.setDeviceMetricsOverride", width=1400, height=1100, deviceScaleFactor=1, mobile=False)
    return tools


READ_PAGE = """document.getElementById("status") && JSON.stringify({
  values: Object.fromEntries(Array.from(document.querySelectorAll('[data-value]'))
            .map(e => [e.getAttribute('data-value'), e.textContent])),
  tables: Object.fromEntries(Array.from(document.querySelectorAll('[data-panel]'))
            .filter(p => p.querySelector('table'))
            .map(p => [p.getAttribute('data-panel'),
                       Array.from(p.querySelectorAll('tbody tr'))
                         .map(tr => Array.from(tr.children).map(td => td.textContent))])),
  bars: Array.from(document.querySelectorAll('[data-panel=events_per_minute] g[data-minute]'))
            .map(g => [Number(g.getAttribute('data-good')), Number(g.getAttribute('data-bad'))]),
  errors: Array.from(document.querySelectorAll('.error')).map(e => e.textContent).filter(t => t),
  notes: Object.fromEntries(Array.from(document.querySelectorAll('[data-panel] .note'))
            .filter(e => e.textContent)
            .map(e => [e.closest('[data-panel]').getAttribute('data-panel'), e.textContent])),
  status: document.getElementById('status').textContent
})"""


@pytest.fixture
def store(chdb_store):
    return chdb_store



async def serve_local(app: web.Application) -> tuple[web.AppRunner, str]:
    """``app`` served on a free port of 127.0.0.1: its runner (to clean up) and its root URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/"


@contextlib.asynccontextmanager
async def dashboard_page(browser, store):
    """The dashboard over ``store`` served locally and opened in Chromium: the page's DevTools."""
    app = web.Application()
    add_dashboard_routes(app, backend_query(store.backend), poll_seconds=1, cache_seconds=0.2)
    runner, url = await serve_local(app)
    session, debug_port = browser
    tools = await open_page(session, debug_port)
    try:
        await tools.send("Page.navigate", url=url)
        yield tools
    finally:
        await tools.close()
        await runner.cleanup()


async def page_state(tools: "DevTools", ready):
    """What the page shows (``READ_PAGE``) once ``ready(state)`` holds, else None (null until the page is there)."""
    text = await tools.evaluate(READ_PAGE)
    state = json.loads(text) if text else None
    return state if state and ready(state) else None


async def test_page_shows_the_panels_updates_live_and_logs_no_errors(browser, store, tmp_path):
    enricher = make_enricher(tmp_path / "registry")
    fill(store, enricher)
    async with dashboard_page(browser, store) as tools:
        def first_render(state):
            v = state["values"]
            return v.get("users_30m") == "3" and v.get("events") == "5" and "top_pages" in state["tables"]

        state = await poll(lambda: page_state(tools, first_render), "the page to show the data set")
        v = state["values"]
        assert (v["users_5m"], v["users_30m"], v["sessions_5m"], v["sessions_30m"]) == ("1", "3", "1", "3")
        assert (v["events_5m"], v["events_30m"], v["bad_rows"]) == ("2", "4", "3")
        tables = state["tables"]
        assert tables["top_pages"] == [["x.com/a", "2", "2"], ["x.com/b", "1", "1"]]
        assert tables["referrers"] == [["Hacker News", "social", "1", "1"], ["www.google.com", "unknown", "1", "1"]]
        assert tables["campaigns"] == [["winter", "ads", "cpc", "1", "1"]]
        assert tables["countries"] == [["FR", "1", "2"], ["(unknown)", "1", "1"], ["DE", "1", "1"]]
        assert ["Firefox", "1", "2"] in tables["devices"] and ["iOS", "1", "1"] in tables["devices"]
        assert [row[:2] for row in tables["bad_row_reasons"]] == [
            ["enrichment_failures", "tr_tt: cannot be converted to java.math.BigDecimal. Error : Character a is "
                                    "neither a decimal digit number, decimal point, nor \"e\" notation exponential "
                                    "mark."],
            ["generic_error", "boom"],
            ["schema_violations", "ResolutionError iglu:com.acme/nope/jsonschema/1-0-0"]]
        assert len(state["bars"]) == 30 and sum(g for g, _ in state["bars"]) == 4 \
            and sum(b for _, b in state["bars"]) == 2
        assert state["errors"] == [] and state["status"].startswith("updated")

        # live: a new user's page view appears without reloading the page
        now = int(time.time() * 1000)
        good, _ = collected(enricher, now, [page_view(20, "https://x.com/new", "u9", 9)])
        store.write(Batch("enriched", "enriched", 0, 100, 100, (good[0].encode(),), now))
        state = await poll(lambda: page_state(tools, lambda s: s["values"].get("users_5m") == "2"),
                           "the page to show the new page view")
        assert state["values"]["events"] == "6" and ["x.com/new", "1", "1"] in state["tables"]["top_pages"]

        assert tools.errors() == []
        shot = await tools.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        target = SCREENSHOT if os.environ.get("SNOWMELT_UPDATE_SCREENSHOT") == "1" else tmp_path / "dashboard.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(shot["data"]))
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_page_where_the_models_never_ran_shows_devices_from_the_events_and_says_so(browser, store, tmp_path):
    fill(store, make_enricher(tmp_path / "registry"), models=False)  # snowmelt load clickhouse alone
    async with dashboard_page(browser, store) as tools:
        state = await poll(lambda: page_state(tools, lambda s: "devices" in s["tables"]),
                           "the page to show the devices panel")
        assert ["Firefox", "1", "2"] in state["tables"]["devices"] and ["iOS", "1", "1"] in state["tables"]["devices"]
        assert list(state["notes"]) == ["devices"] and "models are not loaded" in state["notes"]["devices"]
        assert state["errors"] == [] and tools.errors() == []


async def test_page_on_an_empty_store_shows_zeros_and_logs_no_errors(browser, store):
    refresh_models(store)  # the model tables, empty
    async with dashboard_page(browser, store) as tools:
        state = await poll(lambda: page_state(tools, lambda s: s["status"].startswith("updated")),
                           "the page to render the empty store")
        values = state["values"]
        assert values["events"] == values["users_30m"] == values["sessions_5m"] == "0"
        assert values["last_event"] == "–" and state["tables"] == {} and state["errors"] == []
        assert state["bars"] == [[0, 0]] * 30
        empty = await tools.evaluate("document.querySelectorAll('.empty').length")
        assert empty == 6  # top pages, referrers, campaigns, countries, devices, bad-row reasons
        assert tools.errors() == []


async def test_page_says_what_a_refusal_without_a_reason_and_a_server_error_are(browser, store):
    """A proxy's bare 403 and a 502 in front of the data: the page says which, not that it cannot reach anything."""
    answer = {"status": 403}

    @web.middleware
    async def in_front(request, handler):  # what a proxy between the browser and snowmelt would answer
        if request.path == "/dashboard/data" and answer["status"]:
            return web.Response(status=answer["status"], text="<html><body>Forbidden</body></html>",
                                content_type="text/html")
        return await handler(request)

    app = web.Application(middlewares=[in_front])
    add_dashboard_routes(app, backend_query(store.backend), poll_seconds=1, cache_seconds=0.2)
    runner, url = await serve_local(app)
    session, debug_port = browser
    tools = await open_page(session, debug_port)
    read_state = """document.getElementById("refusal") && JSON.stringify({
      status: document.getElementById("status").textContent,
      refusal: document.getElementById("refusal").checkVisibility() ? document.getElementById("refusal").innerText : "",
      form: document.getElementById("token-form").checkVisibility()})"""

    async def state(ready):
        text = await tools.evaluate(read_state)
        doc = json.loads(text) if text else None
        return doc if doc and ready(doc) else None
    try:
        await tools.send("Page.navigate", url=url)
        seen = await poll(lambda: state(lambda s: s["refusal"]), "the page to say the data was refused")
        assert seen["status"] == "refused (HTTP 403)" and not seen["form"], seen
        assert "refused (HTTP 403)" in seen["refusal"] and "proxy" in seen["refusal"], seen

        answer["status"] = 502
        seen = await poll(lambda: state(lambda s: "502" in s["status"]), "the page to say the server failed")
        assert seen["status"] == "the server answered HTTP 502, retrying" and not seen["refusal"], seen

        answer["status"] = 0
        seen = await poll(lambda: state(lambda s: s["status"].startswith("updated")), "the page to show the data")
        assert not seen["refusal"] and not seen["form"]
        assert [e for e in tools.errors() if e.get("source") != "network"] == []  # the refused loads aside
    finally:
        await tools.close()
        await runner.cleanup()


async def test_snowmelt_up_dashboard_shows_a_real_trackers_events_within_seconds(browser, tmp_path):
    """The official Python tracker sends to a running ``snowmelt up``; its page at / shows them live."""
    from snowplow_tracker import Emitter, PageView, Tracker

    from tests.services.up import UpProcess

    up = UpProcess(tmp_path / "data", settings={"up.store_interval": "0.2"}).start()
    session, debug_port = browser
    tools = await open_page(session, debug_port)
    try:
        await tools.send("Page.navigate", url=up.url + "/")
        host = up.url.removeprefix("http://")
        tracker = Tracker(namespace="dashboard", emitters=Emitter(host, protocol="http", method="get"),
                          app_id="dashboard-test")
        sent_at = time.monotonic()
        for i in range(5):
            tracker.track(PageView(page_url=f"https://shop.example.com/page/{i}", page_title=f"Page {i}"))
        tracker.flush()

        async def shows_them():
            text = await tools.evaluate(READ_PAGE)
            state = json.loads(text) if text else None
            return state if state and state["values"].get("events") == "5" else None

        state = await poll(shows_them, "the page to show the tracker's five page views", timeout=30)
        print(f"dashboard showed the tracker's events {time.monotonic() - sent_at:.1f}s after they were sent")
        assert any(row[0].startswith("shop.example.com/page/") for row in state["tables"]["top_pages"])
        assert state["errors"] == [] and tools.errors() == []
        assert up.terminate() == 0, up.output()
    finally:
        await tools.close()
        up.kill()
        up.remove_log()
