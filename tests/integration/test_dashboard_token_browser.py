"""The dashboard of a real ``snowmelt up``, opened in headless Chromium as if from another machine.

Two ways of being another machine, each test run both:

* ``own address``: ``snowmelt up`` listens on a non-loopback address of this
  machine (:func:`~tests.services.server.non_loopback_address`) and Chromium
  opens the page there, so every request arrives from that address, as one
  from another machine on that network would;
* ``forwarded``: ``snowmelt up`` on 127.0.0.1, and Chromium sends
  ``X-Forwarded-For: 203.0.113.7`` with every request (DevTools
  ``Network.setExtraHTTPHeaders``), as a proxy on the same host would: a
  loopback peer forwarding someone else is not a local client.

Either way ``snowmelt up`` refuses ``/dashboard/data`` unless the request
carries ``up.api_token``.  With ``up.api_token`` set, the page asks for the
token, says when a wrong one is refused, shows the panels once the right one
is entered and keeps them live, keeps the token for the tab across a reload,
and forgets it on request; the token travels only in the ``Authorization``
header of the data requests, never in a URL nor in the console.  Without
``up.api_token``, the page says that the server answers local clients only
and both ways in (set ``up.api_token``, or an SSH tunnel to the loopback
port, its command written out).  A local Chromium (no proxy header, on
127.0.0.1) sees the panels of a server with a token without entering it.

The browser, the DevTools client and the page reader are those of
``test_dashboard_browser.py``; skipped the same way when no Chromium is found.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from tests.integration.test_dashboard_browser import (  # noqa: F401  (browser: a fixture used by name)
    READ_PAGE, DevTools, browser, open_page, poll, pytestmark)
from tests.services.server import non_loopback_address
from tests.services.up import UpProcess

TOKEN = "s3cret-" + uuid.uuid4().hex
WRONG = "wrong-" + uuid.uuid4().hex
TOKEN_KEY = "snowmelt.dashboard.token"
ELSEWHERE = {"X-Forwarded-For": "203.0.113.7"}
PAGES = ("https://shop.example.com/a", "https://shop.example.com/b", "https://shop.example.com/a")
OWN_ADDRESS = non_loopback_address()

# null until the page is parsed whole: read during a reload's parse, an element after #access may not be there yet
READ_ACCESS = f"""document.readyState !== "loading" && document.getElementById("access") && JSON.stringify({{
  form: document.getElementById("token-form").checkVisibility(),
  problem: document.getElementById("token-problem").textContent,
  refusal: document.getElementById("refusal").checkVisibility()
             ? document.getElementById("refusal").innerText : "",
  forget: document.getElementById("forget-token").checkVisibility(),
  status: document.getElementById("status").textContent,
  stored: sessionStorage.getItem({json.dumps(TOKEN_KEY)}),
  reloaded: !window.__beforeReload
}})"""


@dataclass(frozen=True)
class Elsewhere:
    """How the test's Chromium looks to ``snowmelt up`` like another machine (see the module docstring)."""

    host: str  # where snowmelt up listens and the page is opened
    headers: dict = field(default_factory=dict)  # sent with every request the page makes


@pytest.fixture(params=["own address", "forwarded"])
def elsewhere(request) -> Elsewhere:
    if request.param == "forwarded":
        return Elsewhere("127.0.0.1", ELSEWHERE)
    if OWN_ADDRESS is None:
        pytest.skip("this machine has no IPv4 address besides loopback to be reached at")
    return Elsewhere(OWN_ADDRESS)


@pytest.fixture
def start_up(tmp_path):
    """``start_up(settings, host)``: a running ``snowmelt up`` with those settings, killed after the test."""
    started: list[UpProcess] = []

    def start(settings: dict, host: str = "127.0.0.1") -> UpProcess:
        up = UpProcess(tmp_path / f"data{len(started)}", settings={"up.store_interval": "0.2", **settings},
                       host=host)
        started.append(up)
        return up.start()

    yield start
    for up in started:
        up.kill()
        up.remove_log()


def send_page_views(up: UpProcess, pages=PAGES) -> None:
    now = int(time.time() * 1000)
    for i, url in enumerate(pages):
        query = (f"?e=pv&url={quote(url, safe='')}&page=Page+{i}&aid=site&tv=js-3.0.0&p=web"
                 f"&eid={uuid.uuid4()}&duid=user-{i}&sid={uuid.uuid4()}&vid=1&dtm={now}&stm={now}")
        assert up.send("/i", query=query) == 200


async def read(tools: DevTools, expression: str) -> dict | None:
    text = await tools.evaluate(expression)  # null until the page is there
    return json.loads(text) if text else None


async def until(tools: DevTools, expression: str, ready, what: str, timeout: float = 30.0) -> dict:
    """Poll ``expression`` (JSON text) until ``ready(state)``; the state (the last one seen in the failure)."""
    seen = []

    async def check():
        state = await read(tools, expression)
        seen[:] = [state]
        return state if state and ready(state) else None
    try:
        return await poll(check, what, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the page: {seen[0] if seen else None!r}") from None


async def submit_token(tools: DevTools, token: str) -> None:
    await tools.evaluate(f"""document.getElementById("token").value = {json.dumps(token)};
        document.querySelector("#token-form button[type=submit]").click(); true""")


async def open_elsewhere(session, debug_port: int, elsewhere: Elsewhere) -> DevTools:
    """A page whose requests all carry ``elsewhere.headers`` (and whose network events are recorded)."""
    tools = await open_page(session, debug_port)
    await tools.send("Network.enable")
    if elsewhere.headers:
        await tools.send("Network.setExtraHTTPHeaders", headers=elsewhere.headers)
    return tools


def requests_sent(tools: DevTools) -> list[dict]:
    return [e["params"] for e in tools.events if e["method"] == "Network.requestWillBeSent"]


def authorization(request: dict) -> str | None:
    return next((v for k, v in request["request"]["headers"].items() if k.lower() == "authorization"), None)


def page_errors(tools: DevTools) -> list:
    """Console errors and exceptions; the browser's own log lines for the refused requests (401/403) excepted."""
    return [e for e in tools.errors() if e.get("source") != "network"]


async def test_another_machine_enters_the_token_and_sees_the_panels(browser, start_up, elsewhere):
    up = start_up({"up.api_token": TOKEN}, elsewhere.host)
    send_page_views(up)
    session, debug_port = browser
    tools = await open_elsewhere(session, debug_port, elsewhere)
    try:
        await tools.send("Page.navigate", url=up.url + "/")
        state = await until(tools, READ_ACCESS, lambda s: s["form"], "the token form")
        assert state["status"] == "access token needed" and state["problem"] == "" and state["stored"] is None
        assert not state["forget"] and (await read(tools, READ_PAGE))["values"]["events"] == "–"

        await submit_token(tools, WRONG)
        state = await until(tools, READ_ACCESS, lambda s: s["form"] and "refused" in s["problem"],
                            "the page to say the token was refused")
        assert state["status"] == "access token refused" and state["stored"] is None

        await submit_token(tools, TOKEN)
        page = await until(tools, READ_PAGE, lambda s: s["values"].get("events") == str(len(PAGES)),
                           "the panels to show the page views")
        assert ["shop.example.com/a", "2", "2"] in page["tables"]["top_pages"] and page["errors"] == []
        assert page["status"].startswith("updated")
        state = await read(tools, READ_ACCESS)
        assert not state["form"] and not state["refusal"] and state["forget"] and state["stored"] == TOKEN

        # live: a page view sent now shows up without reloading the page
        send_page_views(up, ["https://shop.example.com/c"])
        page = await until(tools, READ_PAGE, lambda s: s["values"].get("events") == str(len(PAGES) + 1),
                           "the panels to show the new page view", timeout=60)
        assert ["shop.example.com/c", "1", "1"] in page["tables"]["top_pages"]

        # the tab keeps the token across a reload: the panels come back without the form
        await tools.evaluate("window.__beforeReload = true")
        await tools.send("Page.reload")
        await until(tools, READ_ACCESS, lambda s: s["reloaded"] and s["status"].startswith("updated"),
                    "the reloaded page to show the panels")
        assert (await read(tools, READ_PAGE))["values"]["events"] == str(len(PAGES) + 1)
        assert not (await read(tools, READ_ACCESS))["form"]

        # forgetting it asks again
        await tools.evaluate('document.getElementById("forget-token").click(); true')
        state = await until(tools, READ_ACCESS, lambda s: s["form"], "the token form after forgetting the token")
        assert state["stored"] is None and not state["forget"]

        requests = requests_sent(tools)
        for request in requests:
            for url in (request["request"]["url"], request.get("documentURL", "")):
                assert TOKEN not in url and WRONG not in url, url
        data = [authorization(r) for r in requests if r["request"]["url"] == up.url + "/dashboard/data"]
        assert data[0] is None and f"Bearer {WRONG}" in data and f"Bearer {TOKEN}" in data, data
        assert data[-1] is None  # the request after "forget token"
        assert set(data) == {None, f"Bearer {WRONG}", f"Bearer {TOKEN}"}
        assert all(TOKEN not in json.dumps(e) for e in tools.events if e["method"].startswith(("Runtime.", "Log.")))
        assert page_errors(tools) == []
        assert up.terminate() == 0, up.output()
    finally:
        await tools.close()


async def test_another_machine_is_told_why_and_how_to_get_in(browser, start_up, elsewhere):
    up = start_up({}, elsewhere.host)
    session, debug_port = browser
    tools = await open_elsewhere(session, debug_port, elsewhere)
    try:
        await tools.send("Page.navigate", url=up.url + "/")
        state = await until(tools, READ_ACCESS, lambda s: s["refusal"], "the page to say it is refused")
        refusal = state["refusal"]
        assert "only to browsers on its own machine" in refusal and "up.api_token" in refusal, refusal
        # the tunnel's command as it is to be typed on the other machine: this server's port, the name used
        assert f"ssh -L {up.port}:127.0.0.1:{up.port} {elsewhere.host}" in refusal, refusal
        assert f"http://localhost:{up.port}/" in refusal and "HTTP 403" not in refusal, refusal
        assert not state["form"] and state["status"] == "refused: local clients only"
        assert (await read(tools, READ_PAGE))["values"]["events"] == "–"
        assert page_errors(tools) == []
        assert up.terminate() == 0, up.output()
    finally:
        await tools.close()


async def test_a_local_browser_needs_no_token(browser, start_up):
    up = start_up({"up.api_token": TOKEN})
    send_page_views(up)
    session, debug_port = browser
    tools = await open_page(session, debug_port)
    try:
        await tools.send("Page.navigate", url=up.url + "/")
        page = await until(tools, READ_PAGE, lambda s: s["values"].get("events") == str(len(PAGES)),
                           "the panels to show the page views")
        assert page["errors"] == [] and page["status"].startswith("updated")
        state = await read(tools, READ_ACCESS)
        assert not state["form"] and not state["refusal"] and not state["forget"] and state["stored"] is None
        assert tools.errors() == []
        assert up.terminate() == 0, up.output()
    finally:
        await tools.close()
