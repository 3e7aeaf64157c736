"""Shared checks for the tracker conformance tests: raw topic -> what the tracker sent.

A conformance test drives a real Snowplow tracker against a running
``snowmelt collector`` and describes what it asked the tracker to send as a
:class:`TrackerRun` (one :class:`SentEvent` per tracked event, the parameters
every event carries, the HTTP method, the time window, ...).  :func:`check_run`
then reads every raw ``CollectorPayload`` back from Kafka and checks, per
request, the fields Snowplow's collector records (schema, ip, timestamp,
encoding, collector, user agent, referer, path, querystring, body, headers,
content type, hostname, network user id) and, per event, the tracker-protocol
parameters (``e``, ``url``/``page``/``refr``, ``se_*``, ``ue_px``/``ue_pr``,
``cx``/``co``, subject fields, ``eid``/``dtm``/``stm``, ...).  Every event sent
must arrive exactly once and nothing else may be on the topic.

The helpers only decode and compare; they know nothing about a particular
tracker, so the Python and the Node tests share them.
"""
from __future__ import annotations

import base64
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from ext import SCHEMA as THRIFT_SCHEMA_FROM_EXT
from ext import CollectorPayload, decode_collector_payload
from tests.services.topics import consume

# What Snowplow's collector writes (and what snowmelt must write too).
THRIFT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0"
GET_PATH = "/i"
POST_PATH = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA_SCHEMA = re.compile(r"^iglu:com\.snowplowanalytics\.snowplow/payload_data/jsonschema/1-0-\d+$")
UNSTRUCT_SCHEMA = re.compile(r"^iglu:com\.snowplowanalytics\.snowplow/unstruct_event/jsonschema/1-0-\d+$")
CONTEXTS_SCHEMA = re.compile(r"^iglu:com\.snowplowanalytics\.snowplow/contexts/jsonschema/1-0-\d+$")
COOKIE_NAME = "sp"

assert THRIFT_SCHEMA_FROM_EXT == THRIFT_SCHEMA


# --------------------------------------------------------------------------- what was sent


@dataclass
class SentEvent:
    """One event as the test asked the tracker to send it, in tracker-protocol terms.

    ``params`` holds the event's own plain parameters (``url``, ``page``,
    ``refr``, ``se_ca`` ... as strings; ``se_va`` is compared as a number).
    ``ue`` is the self-describing event (``{"schema", "data"}``) the tracker must
    wrap in the ``unstruct_event`` envelope, ``contexts`` the entities it must
    wrap in the ``contexts`` envelope (empty: no ``cx``/``co`` at all).
    """

    eid: str
    e: str
    params: dict[str, str] = field(default_factory=dict)
    ue: dict | None = None
    contexts: list[dict] = field(default_factory=list)


@dataclass
class TrackerRun:
    """Everything one tracker run is expected to have put on the raw topic.

    ``common``: parameters every event carries (``tv``, ``tna``, ``aid``, ``p``
    and the subject's ``uid``/``res``/``ip``/``ua``/``lang``/``tz``...).
    ``requests``: the eids of each HTTP request in order when the test knows how
    the tracker batched them (``None``: only check that every event arrived once).
    ``base64``: True when JSON goes in ``ue_px``/``cx``, False for ``ue_pr``/``co``.
    ``window_ms``: (before the first event, after the final flush), epoch ms.
    ``user_agent``: the HTTP client's User-Agent, or a pattern it must match in full
    when it depends on the runtime's version (Node's fetch).
    """

    method: str
    events: list[SentEvent]
    common: dict[str, str]
    user_agent: str | re.Pattern
    port: int
    window_ms: tuple[int, int]
    base64: bool
    requests: list[list[str]] | None = None


def base64url_json(value: str):
    """Decode a tracker's base64url JSON (padding optional)."""
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8"))


# --------------------------------------------------------------------------- reading the topic


def read_raw_payloads(bootstrap_servers: str, topic: str, min_count: int, timeout: float = 30.0) -> list[CollectorPayload]:
    """Every record of the raw topic, decoded (waits for ``min_count`` with a deadline)."""
    return [decode_collector_payload(m.value()) for m in consume(bootstrap_servers, topic, min_count=min_count,
                                                                   timeout=timeout)]


def header_values(payload: CollectorPayload, name: str) -> list[str]:
    """Values of the header ``name`` (case-insensitive) in the payload's header list."""
    values = []
    for line in payload.headers or []:
        key, sep, value = line.partition(": ")
        assert sep, f"header not in 'Name: value' form: {line!r}"
        if key.lower() == name.lower():
            values.append(value)
    return values


def tracker_events(payload: CollectorPayload) -> list[dict[str, str]]:
    """The tracker-protocol events of one request: the GET querystring or the POST batch."""
    if payload.path == GET_PATH:
        assert payload.querystring, "a GET /i payload carries its event in the querystring"
        parsed = parse_qs(payload.querystring, keep_blank_values=True, strict_parsing=True, errors="strict")
        duplicated = {k: v for k, v in parsed.items() if len(v) != 1}
        assert not duplicated, f"parameters repeated in one GET: {duplicated}"
        return [{k: v[0] for k, v in parsed.items()}]
    assert payload.path == POST_PATH, f"unexpected path {payload.path!r}"
    assert payload.body, "a tp2 POST payload carries its events in the body"
    doc = json.loads(payload.body)
    assert set(doc) == {"schema", "data"}, f"POST body is not a self-describing JSON: {sorted(doc)}"
    assert PAYLOAD_DATA_SCHEMA.match(doc["schema"]), doc["schema"]
    assert isinstance(doc["data"], list) and doc["data"], "payload_data must be a non-empty array"
    for item in doc["data"]:
        assert isinstance(item, dict) and all(isinstance(v, str) for v in item.values()), \
            f"payload_data items must map names to strings: {item!r}"
    return doc["data"]


# --------------------------------------------------------------------------- checks


def check_request(payload: CollectorPayload, run: TrackerRun) -> None:
    """The fields Snowplow's collector records for one tracker request."""
    t0, t1 = run.window_ms
    assert payload.schema == THRIFT_SCHEMA
    assert payload.ip_address == "127.0.0.1"
    assert isinstance(payload.timestamp, int) and t0 <= payload.timestamp <= t1, \
        f"collector timestamp {payload.timestamp} outside the test window {run.window_ms}"
    assert payload.encoding == "UTF-8"
    assert payload.collector and payload.collector.startswith("snowmelt-"), payload.collector
    if isinstance(run.user_agent, re.Pattern):
        assert payload.user_agent and run.user_agent.fullmatch(payload.user_agent), payload.user_agent
    else:
        assert payload.user_agent == run.user_agent
    assert header_values(payload, "User-Agent") == [payload.user_agent]
    assert header_values(payload, "Host") == [f"127.0.0.1:{run.port}"]
    assert payload.referer_uri is None, "trackers send no Referer header"
    assert payload.hostname == "127.0.0.1"
    assert payload.network_user_id and str(uuid.UUID(payload.network_user_id)) == payload.network_user_id.lower()
    if run.method == "get":
        assert payload.path == GET_PATH
        assert payload.body is None
        assert payload.content_type is None
    else:
        assert payload.path == POST_PATH
        assert not payload.querystring, f"tp2 POST without a querystring, got {payload.querystring!r}"
        assert payload.content_type and payload.content_type.lower().startswith("application/json"), \
            payload.content_type
        # recorded lower-cased, as Snowplow's collector does
        assert [v.lower() for v in header_values(payload, "Content-Type")] == [payload.content_type]
        assert header_values(payload, "Content-Length") == [str(len(payload.body.encode("utf-8")))]


def _json_param(got: dict[str, str], encoded: str, plain: str, base64_: bool):
    if base64_:
        assert plain not in got, f"{plain} sent although the tracker encodes base64"
        return base64url_json(got[encoded]) if encoded in got else None
    assert encoded not in got, f"{encoded} sent although the tracker does not encode base64"
    return json.loads(got[plain]) if plain in got else None


def check_event(got: dict[str, str], sent: SentEvent, run: TrackerRun) -> None:
    """One tracker-protocol event against what the test asked the tracker to send."""
    t0, t1 = run.window_ms
    assert got.get("eid") == sent.eid
    assert got.get("e") == sent.e
    for key, value in sent.params.items():
        assert key in got, f"{sent.e} event {sent.eid}: {key} missing"
        if key == "se_va":
            assert math.isclose(float(got[key]), float(value)), (key, got[key], value)
        else:
            assert got[key] == value, (key, got[key], value)
    for key, value in run.common.items():
        assert got.get(key) == value, (key, got.get(key), value)
    # the tracker's own timestamps: device created (ms) and sent (some trackers round stm to seconds)
    assert t0 <= int(got["dtm"]) <= t1, ("dtm", got["dtm"], run.window_ms)
    assert t0 - 1000 <= int(got["stm"]) <= t1, ("stm", got["stm"], run.window_ms)

    ue = _json_param(got, "ue_px", "ue_pr", run.base64)
    if sent.ue is None:
        assert ue is None, f"{sent.e} event carries a self-describing event"
    else:
        assert ue is not None, "self-describing event missing (ue_px/ue_pr)"
        assert UNSTRUCT_SCHEMA.match(ue["schema"]), ue["schema"]
        assert ue["data"] == sent.ue
    contexts = _json_param(got, "cx", "co", run.base64)
    if not sent.contexts:
        assert contexts is None, f"{sent.e} event carries contexts it was not given"
    else:
        assert contexts is not None, "contexts missing (cx/co)"
        assert CONTEXTS_SCHEMA.match(contexts["schema"]), contexts["schema"]
        assert contexts["data"] == sent.contexts

    known = set(sent.params) | set(run.common) | {"e", "eid", "dtm", "stm", "ue_px", "ue_pr", "cx", "co"}
    extra = set(got) - known
    # Trackers may add protocol fields of their own (ttm, tnuid, ...), never ones that contradict ours.
    assert not extra & {"url", "page", "refr", "se_ca", "se_ac", "se_la", "se_pr", "se_va"}, extra


def check_run(payloads: list[CollectorPayload], run: TrackerRun) -> list[CollectorPayload]:
    """Every request and event of ``run`` on the raw topic, exactly once; returns the payloads in topic order."""
    for payload in payloads:
        check_request(payload, run)
    by_eid: dict[str, dict[str, str]] = {}
    groups: list[list[str]] = []
    for payload in payloads:
        events = tracker_events(payload)
        if run.method == "get":
            assert len(events) == 1
        groups.append([e.get("eid") for e in events])
        for event in events:
            eid = event.get("eid")
            assert eid, f"event without eid: {event}"
            assert eid not in by_eid, f"event {eid} recorded twice"
            by_eid[eid] = event
    sent_ids = [s.eid for s in run.events]
    assert len(set(sent_ids)) == len(sent_ids)
    missing = set(sent_ids) - set(by_eid)
    unexpected = set(by_eid) - set(sent_ids)
    assert not missing and not unexpected, f"{len(missing)} events missing, {len(unexpected)} unexpected"
    if run.requests is not None:
        assert sorted(groups) == sorted(run.requests), "requests on the topic differ from the requests sent"
    for sent in run.events:
        check_event(by_eid[sent.eid], sent, run)
    return payloads


def assert_fresh_network_user_ids(payloads: list[CollectorPayload]) -> None:
    """No cookie replayed: the collector gave every request a new random (v4) UUID and saw no Cookie header."""
    nuids = [p.network_user_id for p in payloads]
    assert len(set(nuids)) == len(nuids), "requests without a cookie must each get a new network user id"
    for payload in payloads:
        assert uuid.UUID(payload.network_user_id).version == 4
        assert header_values(payload, "Cookie") == []


def assert_cookie_replayed(payloads: list[CollectorPayload]) -> str:
    """The client kept the collector's cookie: one network user id, sent back from the 2nd request on.

    Returns that network user id.
    """
    assert len(payloads) >= 2, "needs at least two requests to see a cookie replayed"
    first, rest = payloads[0], payloads[1:]
    nuid = first.network_user_id
    assert uuid.UUID(nuid).version == 4
    assert header_values(first, "Cookie") == []
    for payload in rest:
        assert payload.network_user_id == nuid
        cookies = "; ".join(header_values(payload, "Cookie"))
        assert f"{COOKIE_NAME}={nuid}" in [c.strip() for c in cookies.split(";")], cookies
    return nuid


def assert_network_user_id_param(payloads: list[CollectorPayload], nuid: str) -> None:
    """A ``nuid`` query parameter (server-side trackers) is the request's network user id."""
    for payload in payloads:
        assert parse_qs(payload.querystring or "").get("nuid") == [nuid]
        assert payload.network_user_id == nuid


def python_tracker_subject(values: dict[str, str]):
    """A ``snowplow_tracker.Subject`` with ``values``' uid, ip, ua, lang, tz and a 1920x1080 screen."""
    from snowplow_tracker import Subject

    subject = Subject()
    subject.set_user_id(values["uid"])
    subject.set_screen_resolution(1920, 1080)
    subject.set_ip_address(values["ip"])
    subject.set_useragent(values["ua"])
    subject.set_lang(values["lang"])
    subject.set_timezone(values["tz"])
    return subject
