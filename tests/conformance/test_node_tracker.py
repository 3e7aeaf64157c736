"""The official Node tracker (``@snowplow/node-tracker`` on npm) -> snowmelt collector -> Kafka.

``tests/conformance/node/send.mjs`` drives the tracker (page views, structured
events, self-describing events with two contexts, a subject), flushes, exits 0
only when every request got a 2xx answer, and prints a JSON report of what it
asked the tracker to send and how the tracker batched it into requests.  The
test turns that report into a :class:`~tests.conformance.helpers.TrackerRun`
and checks the raw topic with the same helpers as the Python tracker test.

Skips when ``node``/``npm`` are missing, or when ``npm ci`` cannot install the
package into ``tests/conformance/node/node_modules`` (e.g. offline); a machine
with the package already installed never touches the network.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conformance.helpers import (
    SentEvent,
    TrackerRun,
    assert_cookie_replayed,
    assert_fresh_network_user_ids,
    assert_network_user_id_param,
    check_run,
    read_raw_payloads,
)
from tests.services.npm import npm_install

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "send.mjs"
PACKAGE = NODE_DIR / "node_modules" / "@snowplow" / "node-tracker" / "package.json"
# Node's built-in fetch (undici) identifies itself as "node" (older releases: "undici").
NODE_FETCH_UA = re.compile(r"node|undici(/[\w.]+)?")

pytestmark = pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")),
                                reason="node and npm are needed for the @snowplow/node-tracker conformance tests")


@pytest.fixture(scope="module")
def node_tracker() -> str:
    """The installed ``@snowplow/node-tracker`` version; installs it with npm when missing."""
    node = shutil.which("node")
    major = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    if int(major.strip().lstrip("v").split(".")[0]) < 18:
        pytest.skip(f"@snowplow/node-tracker 4 needs Node >= 18 (fetch), found {major.strip()}")
    npm_install(NODE_DIR, PACKAGE)
    return json.loads(PACKAGE.read_text())["version"]


def send(collector, method: str, count: int, *options: str) -> tuple[dict, tuple[int, int]]:
    """Run send.mjs against ``collector``; returns its report and the time window around it."""
    t0 = int(time.time() * 1000)
    proc = subprocess.run(["node", str(SCRIPT), collector.url, method, str(count), *options], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "NODE_NO_WARNINGS": "1"})
    t1 = int(time.time() * 1000) + 1
    assert proc.returncode == 0, f"send.mjs exited with {proc.returncode}\nstdout: {proc.stdout[-2000:]}\n" \
                                 f"stderr: {proc.stderr[-2000:]}\ncollector log:\n{collector.output()}"
    report = json.loads(proc.stdout)
    assert report["failures"] == []
    assert all(200 <= r["status"] < 300 for r in report["requests"])
    assert [e["e"] for e in report["events"]] == [("pv", "se", "ue")[i % 3] for i in range(count)]
    return report, (t0, t1)


def tracker_run(report: dict, version: str, port: int, window: tuple[int, int]) -> TrackerRun:
    assert report["tracker"] == f"node-{version}"
    common = {"tv": report["tracker"], "tna": report["namespace"], "aid": report["appId"], "p": report["platform"],
              **report["subject"]}
    events = [SentEvent(e["eid"], e["e"], e["params"], e["ue"], e["contexts"]) for e in report["events"]]
    return TrackerRun(method=report["method"], events=events, common=common, user_agent=NODE_FETCH_UA, port=port,
                      window_ms=window, base64=True, requests=[r["eids"] for r in report["requests"]])


def test_get(node_tracker, collector, kafka_broker, kafka_topics):
    """GET /i, one event per request; Node's fetch keeps no cookies: a new network user id each time."""
    report, window = send(collector, "get", 9)
    run = tracker_run(report, node_tracker, collector.port, window)
    assert len(run.requests) == 9
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(run.requests))
    check_run(payloads, run)
    assert_fresh_network_user_ids(payloads)


def test_post(node_tracker, collector, kafka_broker, kafka_topics):
    """POST tp2 with the default emitter (bufferSize 10, maxPostBytes 40000): payload_data batches."""
    report, window = send(collector, "post", 25)
    run = tracker_run(report, node_tracker, collector.port, window)
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(run.requests))
    check_run(payloads, run)
    assert_fresh_network_user_ids(payloads)


def test_post_small_batches_replaying_cookie(node_tracker, make_collector, kafka_broker, kafka_topics):
    """maxPostBytes splits the batch into several requests; a fetch that keeps cookies sends the
    collector's ``sp`` cookie back, so every request after the first has the same network user id."""
    collector = make_collector({"collector.cookie.secure": "false"})
    report, window = send(collector, "post", 12, "--buffer-size", "4", "--max-post-bytes", "2500", "--keep-cookies")
    run = tracker_run(report, node_tracker, collector.port, window)
    assert len(run.requests) >= 3, run.requests
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(run.requests))
    check_run(payloads, run)
    nuid = assert_cookie_replayed(payloads)
    assert report["cookies"] == {"sp": nuid}


def test_get_with_network_user_id(node_tracker, collector, kafka_broker, kafka_topics):
    """``setNetworkUserId`` sends ``nuid`` on the querystring, which the collector takes as the network user id."""
    nuid = str(uuid.uuid4())
    report, window = send(collector, "get", 4, "--nuid", nuid)
    run = tracker_run(report, node_tracker, collector.port, window)
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(run.requests))
    check_run(payloads, run)
    assert_network_user_id_param(payloads, nuid)
