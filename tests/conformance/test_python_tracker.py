"""The official Python tracker (``snowplow-tracker`` on PyPI) -> snowmelt collector -> Kafka.

Each test starts a collector on fresh topics, tracks page views, structured
events and self-describing events (with two contexts) through a real
``snowplow_tracker.Tracker`` with a GET or POST ``Emitter``, flushes, then
decodes every raw ``CollectorPayload`` on the topic and checks it with
:mod:`tests.conformance.helpers`: every request field the collector records and
every event the tracker sent, exactly once.
"""
from __future__ import annotations

import time

import pytest
import requests

snowplow_tracker = pytest.importorskip("snowplow_tracker", reason="pip install snowplow-tracker (the test extra)")
from snowplow_tracker import (
    Emitter,
    PageView,
    SelfDescribing,
    SelfDescribingJson,
    StructuredEvent,
    Tracker,
)
from snowplow_tracker.constants import VERSION as TRACKER_VERSION

from tests.conformance.helpers import (
    SentEvent,
    TrackerRun,
    assert_cookie_replayed,
    assert_fresh_network_user_ids,
    check_run,
    python_tracker_subject,
    read_raw_payloads,
)

NAMESPACE = "conformance-py"
APP_ID = "snowmelt-conformance"
CUSTOM_UA = "snowmelt-conformance/1.0 (python requests session)"

SUBJECT = {
    "uid": "user-ü@example.com",
    "res": "1920x1080",
    "ip": "203.0.113.7",
    "ua": "Mozilla/5.0 (X11; Linux x86_64; conformance) Gecko/20100101 Firefox/128.0",
    "lang": "de-CH",
    "tz": "Europe/Zurich",
}

CONTEXTS = [
    {"schema": "iglu:com.acme/user_context/jsonschema/1-0-0",
     "data": {"tier": "gold", "tags": ["a", "ü", "&=?"], "score": 0.5}},
    {"schema": "iglu:com.acme/page_context/jsonschema/1-0-2",
     "data": {"section": "shoes & boots/ünïcode ✓", "index": 3, "flag": None}},
]




def common_params() -> dict[str, str]:
    return {"tv": TRACKER_VERSION, "tna": NAMESPACE, "aid": APP_ID, "p": "pc", **SUBJECT}


def event_plan(count: int):
    """``count`` events cycling page view, structured, self-describing: (tracker event, expectation)."""
    plan = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            url = f"https://shop.example.com/p/{i}?q=café&x=1 2#top"
            title = f"Page {i} — “quotes” & ampersands"
            refr = "https://www.google.com/search?q=snow+melt&hl=de"
            event = PageView(page_url=url, page_title=title, referrer=refr)
            expected = SentEvent("", "pv", {"url": url, "page": title, "refr": refr})
        elif kind == 1:
            params = {"se_ca": "shop", "se_ac": "add-to-basket", "se_la": f"sku-{i} x&y=z",
                      "se_pr": "size=XL/ü", "se_va": str(i + 0.5)}
            event = StructuredEvent(category=params["se_ca"], action=params["se_ac"], label=params["se_la"],
                                    property_=params["se_pr"], value=i + 0.5)
            expected = SentEvent("", "se", params)
        else:
            ue = {"schema": "iglu:com.acme/button_click/jsonschema/1-0-0",
                  "data": {"id": f"b{i}", "label": "Buy ✓ now", "count": i, "nested": {"ok": True}}}
            event = SelfDescribing(
                SelfDescribingJson(ue["schema"], ue["data"]),
                context=[SelfDescribingJson(c["schema"], c["data"]) for c in CONTEXTS],
            )
            expected = SentEvent("", "ue", {}, ue=ue, contexts=CONTEXTS)
        plan.append((event, expected))
    return plan


class Outcome:
    """Collects the emitter's success / failure callbacks."""

    def __init__(self):
        self.sent: list[str] = []
        self.failed: list = []

    def on_success(self, events):
        self.sent.extend(e["eid"] for e in events)

    def on_failure(self, sent_count, events):
        self.failed.extend(events)


def track_all(collector, method: str, count: int, *, batch_size: int, base64: bool,
              session: requests.Session | None = None) -> tuple[list[SentEvent], tuple[int, int]]:
    """Send ``count`` events through a real tracker and flush; returns expectations and the time window."""
    outcome = Outcome()
    t0 = int(time.time() * 1000)
    emitter = Emitter("127.0.0.1", protocol="http", port=collector.port, method=method, batch_size=batch_size,
                      on_success=outcome.on_success, on_failure=outcome.on_failure, request_timeout=10,
                      session=session)
    tracker = Tracker(NAMESPACE, emitters=emitter, subject=python_tracker_subject(SUBJECT), app_id=APP_ID, encode_base64=base64)
    sent = []
    for event, expected in event_plan(count):
        expected.eid = tracker.track(event)
        sent.append(expected)
    tracker.flush()
    t1 = int(time.time() * 1000) + 1
    assert outcome.failed == [], f"{len(outcome.failed)} events failed to send"
    assert sorted(outcome.sent) == sorted(s.eid for s in sent)
    return sent, (t0, t1)


def batches(sent: list[SentEvent], size: int) -> list[list[str]]:
    return [[s.eid for s in sent[i:i + size]] for i in range(0, len(sent), size)]


@pytest.mark.parametrize("base64", [True, False], ids=["base64", "plain-json"])
def test_get_emitter(collector, kafka_broker, kafka_topics, base64):
    """GET /i, one event per request; the requests library keeps no cookies, so every request gets a new nuid."""
    sent, window = track_all(collector, "get", 9, batch_size=1, base64=base64)
    run = TrackerRun(method="get", events=sent, common=common_params(), user_agent=requests.utils.default_user_agent(),
                     port=collector.port, window_ms=window, base64=base64, requests=batches(sent, 1))
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(sent))
    check_run(payloads, run)
    assert_fresh_network_user_ids(payloads)


@pytest.mark.parametrize("batch_size,base64", [(1, True), (4, False), (4, True)],
                         ids=["batch1-base64", "batch4-plain-json", "batch4-base64"])
def test_post_emitter(collector, kafka_broker, kafka_topics, batch_size, base64):
    """POST tp2 batches (payload_data) of ``batch_size`` events, the last one partial, sent by the final flush."""
    sent, window = track_all(collector, "post", 10, batch_size=batch_size, base64=base64)
    expected_requests = batches(sent, batch_size)
    run = TrackerRun(method="post", events=sent, common=common_params(), user_agent=requests.utils.default_user_agent(),
                     port=collector.port, window_ms=window, base64=base64, requests=expected_requests)
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(expected_requests))
    check_run(payloads, run)
    assert_fresh_network_user_ids(payloads)


@pytest.mark.parametrize("method", ["get", "post"])
def test_session_replays_collector_cookie(make_collector, kafka_broker, kafka_topics, method):
    """With a ``requests.Session`` (and a non-Secure cookie over plain http) the tracker sends the collector's
    ``sp`` cookie back: every request after the first carries it and keeps the same network user id.
    The session's own User-Agent is what the collector records."""
    collector = make_collector({"collector.cookie.secure": "false"})
    session = requests.Session()
    session.headers["User-Agent"] = CUSTOM_UA
    batch_size = 1 if method == "get" else 3
    sent, window = track_all(collector, method, 7, batch_size=batch_size, base64=True, session=session)
    expected_requests = batches(sent, batch_size)
    run = TrackerRun(method=method, events=sent, common=common_params(), user_agent=CUSTOM_UA,
                     port=collector.port, window_ms=window, base64=True, requests=expected_requests)
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(expected_requests))
    check_run(payloads, run)
    nuid = assert_cookie_replayed(payloads)
    assert session.cookies.get("sp") == nuid


def test_secure_cookie_not_replayed_over_plain_http(collector, kafka_broker, kafka_topics):
    """The default cookie is ``Secure``: a session talking plain http does not send it back (as a browser
    would not), so each request gets its own network user id."""
    session = requests.Session()
    sent, window = track_all(collector, "get", 4, batch_size=1, base64=True, session=session)
    run = TrackerRun(method="get", events=sent, common=common_params(), user_agent=requests.utils.default_user_agent(),
                     port=collector.port, window_ms=window, base64=True, requests=batches(sent, 1))
    payloads = read_raw_payloads(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(sent))
    check_run(payloads, run)
    assert_fresh_network_user_ids(payloads)
    [cookie] = list(session.cookies)
    assert cookie.name == "sp" and cookie.secure
