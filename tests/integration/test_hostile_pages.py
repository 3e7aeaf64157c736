"""A hostile web page, opened in a real headless Chromium, against a running ``snowmelt up``.

The page is served by a second ("attacker") aiohttp server on another port
and opened as ``http://localhost:PORT/``, so its origin differs from
``snowmelt up``'s (``http://127.0.0.1:PORT``) by host name and port.  Its
script tries what any site the user visits could try against the local
pipeline: read the Micro API and the dashboard's data with ``fetch``, reset
the Micro API with a preflighted JSON POST, a simple ``no-cors`` POST and a
``no-cors`` GET, read a file through the SQL port (also with ClickHouse's
``add_http_cors_header``), and make the SQL port write a file by a blind
``<img>`` GET and a ``no-cors`` POST (a Protobuf schema written to
``output_format_schema``).

The test proves that no answer could be read by the page (every ``fetch``
throws), that the browser did reach the server each time (DevTools Network
events show the statuses the server answered and the CORS errors Chromium
raised: the page was stopped by the missing CORS permission, not by an
unreachable port), that the Micro API's counts and kept events are unchanged
afterwards, and that the file the page asked the SQL port to write does not
exist; the same SQL URL fetched directly is refused with ClickHouse's code.

The browser and the DevTools client are those of ``test_dashboard_browser.py``;
skipped the same way when no Chromium is found.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from aiohttp import web

from tests.integration.test_dashboard_browser import (  # noqa: F401  (browser: a fixture used by name)
    browser, open_page, poll, pytestmark)
from tests.services.server import free_port
from tests.services.up import UpProcess
from tests.services.wait import wait_until

EVENTS = 3
WRITE_QUERY = "SELECT 1 AS x FORMAT Protobuf"

ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>a page the user opened</title></head>
<body><p>Nothing to see here.</p>
<script>
const CONFIG = __CONFIG__;
const UP = CONFIG.up, SQL = CONFIG.sql;
window.results = {origin: location.origin};

async function attempt(name, url, init) {
  try {
    const response = await fetch(url, init);
    if (response.type === "opaque") {  // no-cors: sent, but neither status nor body is visible
      window.results[name] = "blocked";
      return;
    }
    const text = await response.text();
    window.results[name] = "read:" + text.slice(0, 200);
  } catch (error) {
    window.results[name] = "blocked";
    window.results[name + ".error"] = String(error);
  }
}

function image(name, url) {
  return new Promise(resolve => {
    const img = new Image();
    const timer = setTimeout(() => { window.results[name] = "timeout"; resolve(); }, 15000);
    img.onload = () => { clearTimeout(timer); window.results[name] = "loaded"; resolve(); };
    img.onerror = () => { clearTimeout(timer); window.results[name] = "error"; resolve(); };
    img.src = url;
  });
}

(async () => {
  try {
    await attempt("micro_good", UP + "/micro/good", {mode: "cors"});
    await attempt("micro_all", UP + "/micro/all", {mode: "cors"});
    await attempt("reset_json", UP + "/micro/reset",
                  {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    await attempt("reset_simple_post", UP + "/micro/reset", {method: "POST", mode: "no-cors", body: "{}"});
    await attempt("reset_get", UP + "/micro/reset", {mode: "no-cors"});
    await attempt("sql_file", SQL + "/?query=" + encodeURIComponent("SELECT file('/etc/passwd')"));
    await attempt("sql_cors_setting", SQL + "/?add_http_cors_header=1&query=" + encodeURIComponent("SELECT 1"));
    await image("sql_write_image", CONFIG.write_url);
    await attempt("sql_write_post", CONFIG.write_post_url,
                  {method: "POST", mode: "no-cors", body: CONFIG.write_query});
    await attempt("dashboard_data", UP + "/dashboard/data");
  } catch (error) {
    window.results.script_error = String(error);
  }
  window.done = true;
})();
</script>
</body></html>
"""

READS = ("micro_good", "micro_all", "reset_json", "reset_simple_post", "reset_get", "sql_file", "sql_cors_setting",
         "sql_write_post", "dashboard_data")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    process = UpProcess(tmp_path_factory.mktemp("hostile-pages") / "data", settings={"up.store_interval": "0.2"})
    try:
        process.start()
        for i in range(EVENTS):
            assert process.send("/i", query=f"?e=pv&tv=js-3&p=web&uid=alice%40example.com"
                                            f"&url=https%3A%2F%2Fa.com%2F{i}") == 200
        wait_until(lambda: process.get("/micro/all")["good"] >= EVENTS, 30, f"{EVENTS} good events in /micro/all")
        yield process
    finally:
        process.kill()
        process.remove_log()


def write_url(base: str, target, query: str | None) -> str:
    params = {"output_format_schema": str(target), "format_protobuf_use_autogenerated_schema": "1"}
    if query is not None:
        params["query"] = query
    return base + "/?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def direct(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def network_outcomes(events: list[dict]) -> dict[str, list[dict]]:
    """What the browser saw per URL, from DevTools Network events: statuses answered and CORS errors raised."""
    urls: dict[str, str] = {}
    seen: dict[str, list[dict]] = {}
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            seen.setdefault(params["request"]["url"], [])
        elif method == "Network.responseReceived":
            seen.setdefault(params["response"]["url"], []).append({"status": params["response"]["status"]})
        elif method == "Network.loadingFailed" and params["requestId"] in urls:
            seen[urls[params["requestId"]]].append({"failed": params.get("errorText"),
                                                    "cors": (params.get("corsErrorStatus") or {}).get("corsError")})
    return seen


async def test_a_page_of_another_origin_cannot_read_or_change_micro_nor_write_through_sql(browser, up, tmp_path):
    target = tmp_path / "written-by-the-page.proto"
    before_all = up.get("/micro/all")
    before_good = up.get("/micro/good")
    assert before_all["good"] >= EVENTS and len(before_good) == before_all["good"]

    attacker_port = free_port()
    page_url = f"http://localhost:{attacker_port}/"
    config = {"up": up.url, "sql": up.sql_url, "write_query": WRITE_QUERY,
              "write_url": write_url(up.sql_url, target, WRITE_QUERY),
              "write_post_url": write_url(up.sql_url, target, None)}
    html = ATTACK_PAGE.replace("__CONFIG__", json.dumps(config))

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    tools = None
    try:
        await web.TCPSite(runner, "127.0.0.1", attacker_port).start()
        session, debug_port = browser
        tools = await open_page(session, debug_port)
        await tools.send("Network.enable")
        await tools.send("Page.navigate", url=page_url)
        await poll(lambda: tools.evaluate("window.done === true"), "the hostile page's script to finish", timeout=60)
        results = json.loads(await tools.evaluate("JSON.stringify(window.results)"))
        seen = network_outcomes(tools.events)
    finally:
        if tools is not None:
            await tools.close()
        await runner.cleanup()

    # the page really ran on another origin than snowmelt up's
    page_origin = urllib.parse.urlsplit(results["origin"])
    up_origin = urllib.parse.urlsplit(up.url)
    assert (page_origin.hostname, page_origin.port) == ("localhost", attacker_port)
    assert up_origin.hostname == "127.0.0.1" and page_origin.port not in (up.port, up.sql_port)
    assert "script_error" not in results, results

    # nothing the page fetched could be read
    assert {name: results.get(name) for name in READS} == dict.fromkeys(READS, "blocked"), results
    assert results["sql_write_image"] == "error", results

    # ...although each request reached the server: it answered, without CORS permission, so Chromium withheld
    # the answer (an unreachable port fails with a connection error and no CORS error)
    def outcome(url: str) -> list[dict]:
        assert url in seen, (url, sorted(seen))
        return seen[url]

    withheld = {"failed": "net::ERR_FAILED", "cors": "MissingAllowOriginHeader"}
    for url in (up.url + "/micro/good", up.url + "/micro/all", up.url + "/dashboard/data",
                up.sql_url + "/?query=SELECT%20file(%27%2Fetc%2Fpasswd%27)",
                up.sql_url + "/?add_http_cors_header=1&query=SELECT%201"):
        assert outcome(url) == [withheld], (url, seen)
    resets = outcome(up.url + "/micro/reset")
    # the JSON POST's preflight was answered 403 without permission, so the POST itself was never sent...
    assert {"status": 403} in resets and {"failed": "net::ERR_FAILED", "cors": "PreflightMissingAllowOriginHeader"} \
        in resets, resets
    # ...and the simple POST and the GET were sent and refused by the server
    assert {"status": 415} in resets and {"status": 405} in resets, resets
    assert [o for o in resets if o.get("status") == 200] == [], resets

    # nothing was reset or otherwise changed
    assert up.get("/micro/all") == before_all
    assert len(up.get("/micro/good")) == len(before_good)

    # the SQL port wrote no file, and refuses that URL with ClickHouse's code
    assert not target.exists()
    for url in (config["write_url"], config["write_post_url"]):
        assert [o.get("status") for o in outcome(url)] in ([500], [404]), (url, seen[url])
    status, headers = direct(config["write_url"])
    # ClickHouse's HTTP statuses: 500 for READONLY (164), 404 for UNKNOWN_FORMAT (73)
    assert (status, headers.get("X-ClickHouse-Exception-Code")) in ((500, "164"), (404, "73")), (status, headers)
    # and the file read the page tried is refused as well, whoever asks
    status, headers = direct(up.sql_url + "/?query=" + urllib.parse.quote("SELECT file('/etc/passwd')"))
    assert status == 500 and headers.get("X-ClickHouse-Exception-Code") == "446", (status, headers)
    assert not target.exists()
