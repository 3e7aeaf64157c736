"""The official browser tracker and its plugins, in headless Chromium, into ``snowmelt up`` offline (issue 18).

``browser/events.js`` (bundled with esbuild from the npm packages in
``browser/package.json``: ``@snowplow/browser-tracker`` and its link click,
form, error, site, Snowplow ecommerce, enhanced ecommerce, media, screen,
element, button click, GA cookies, client hints, privacy sandbox,
performance timing, navigation timing and timezone plugins) tracks one event
of each kind they offer, with the web page, session and browser entities on
every event, and page pings.  ``snowmelt up`` runs with no ``--resolver``
while every HTTP request it makes goes to a proxy on a closed port, so Iglu
Central is out of reach: every event must be good, no bad row.

Skips when Chromium, node or npm is missing, or when ``npm ci`` cannot install
the packages.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.services.npm import npm_install
from tests.services.server import free_port
from tests.services.up import UpProcess
from tests.services.wait import wait_until

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = next((shutil.which(n) for n in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
                                          "google-chrome") if n and shutil.which(n)), None)

pytestmark = pytest.mark.skipif(not (CHROMIUM and shutil.which("node") and shutil.which("npm")),
                                reason="chromium, node and npm are needed for the browser tracker test")


@pytest.fixture(scope="module")
def bundle() -> Path:
    """``browser/bundle.js``, built from the installed packages (``npm ci`` when missing)."""
    npm_install(BROWSER_DIR, BROWSER_DIR / "node_modules" / "@snowplow" / "browser-tracker", "--legacy-peer-deps")
    out = BROWSER_DIR / "bundle.js"
    # the plugins are released on their own; each one's own copy of the tracker cores would keep its own
    # list of trackers, so every import of a core resolves to the browser tracker's
    core = "./node_modules/@snowplow/browser-tracker/node_modules/@snowplow"
    if not (BROWSER_DIR / core).is_dir():
        core = "./node_modules/@snowplow"
    done = subprocess.run([str(BROWSER_DIR / "node_modules" / ".bin" / "esbuild"), "events.js", "--bundle",
                           "--format=iife", "--target=es2020", f"--outfile={out.name}", "--log-level=warning",
                           f"--alias:@snowplow/browser-tracker-core={core}/browser-tracker-core",
                           f"--alias:@snowplow/tracker-core={core}/tracker-core"],
                          cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def page_server(bundle):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(BROWSER_DIR)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_browser_tracker_and_plugins_into_snowmelt_up_offline(tmp_path, page_server):
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there: Iglu Central is out of reach
    up = UpProcess(tmp_path / "data", settings={"iglu.cache_dir": str(tmp_path / "empty-cache")})
    up.env.update({"http_proxy": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "HTTPS_PROXY": proxy,
                   "no_proxy": "", "NO_PROXY": ""})
    up.start(60)
    try:
        url = f"{page_server}/page.html?collector={up.url}"
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=60000", "--dump-dom", url],
            capture_output=True, text=True, timeout=180)
        assert "DONE" in done.stdout, f"page did not finish: {done.stdout[-1500:]}\n{done.stderr[-1500:]}"

        def done_event():
            found = [e for e in up.get("/micro/good") if e["event"].get("se_category") == "done"]
            return found[0] if found else None

        marker = wait_until(done_event, 60, "the page's last event")
        tracked = int(marker["event"]["se_action"])
        counts = wait_until(lambda: up.get("/micro/all"), 60, f"{tracked + 1} events",
                            done=lambda c: c["total"] >= tracked + 1)
        bad = up.get("/micro/bad")
        assert counts["bad"] == 0, json.dumps(bad)[:4000]
        good = up.get("/micro/good")
        schemas = {e["schema"] for e in good} | {c for e in good for c in e["contexts"]}
        expected = {
            "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
            "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
            "iglu:com.snowplowanalytics.snowplow/client_session/jsonschema/1-0-2",
            "iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0",
            "iglu:com.snowplowanalytics.snowplow.ecommerce/snowplow_ecommerce_action/jsonschema/1-0-2",
            "iglu:com.snowplowanalytics.snowplow.media/play_event/jsonschema/1-0-0",
            "iglu:com.snowplowanalytics.snowplow/submit_form/jsonschema/1-0-0",
            "iglu:com.snowplowanalytics.snowplow/application_error/jsonschema/1-0-1",
        }
        assert expected <= schemas, sorted(expected - schemas)
        assert counts["good"] >= 50, counts
    finally:
        up.terminate()
        up.remove_log()
