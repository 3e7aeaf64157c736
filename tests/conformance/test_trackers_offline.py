"""Every schema the official trackers send validates with the network unreachable (issue 18).

The stage runs with :meth:`Resolver.default` -- what ``snowmelt up`` and
``snowmelt enrich`` use without ``--resolver``: the shipped schemas, then Iglu
Central over HTTP -- while every socket ``connect`` fails with ENETUNREACH
(counted).  So a schema that is not shipped becomes a ``ResolutionError`` bad
row here, as it did offline before the schemas were shipped.

* the Python tracker (``snowplow-tracker``, real): one event of each
  ``track_*`` method and event class, through a POST body as its emitter sends it;
* the Node tracker (``@snowplow/node-tracker``, real, ``node/events.mjs``):
  one event of each ``build*`` function, base64 and plain;
* the browser tracker and its official plugins, and the iOS/Android trackers:
  events as they send them (the core entities and the events of the issue:
  ``link_click`` 1-0-1, ``mobile/screen_view``), and every version of every
  schema in their sets resolved and compiled offline.

Each test asserts no bad row at all and no connection attempted.
"""
from __future__ import annotations

import base64
import errno
import json
import shutil
import socket
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from ext import CollectorPayload, encode_collector_payload
from processor.iglu import IgluFailure, Resolver, SchemaKey
from processor.stage import Enricher
from tests.conformance.test_node_tracker import node_tracker  # noqa: F401  (a fixture: installs it with npm)

NODE_DIR = Path(__file__).resolve().parent / "node"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
SP = "com.snowplowanalytics.snowplow"
MOBILE = "com.snowplowanalytics.mobile"

# What the browser tracker (v3/v4) and its official plugins send: vendor/name, every shipped version.
BROWSER = [f"{SP}/{n}" for n in (
    "payload_data contexts unstruct_event web_page client_session browser_context link_click submit_form "
    "change_form focus_form site_search timing ad_impression ad_click ad_conversion add_to_cart remove_from_cart "
    "social_interaction consent_document consent_granted consent_withdrawn consent_preferences cmp_visible gdpr "
    "geolocation_context application_error button_click web_vitals media_player media_player_event element "
    "element_content element_statistics create_element destroy_element expose_element obscure_element "
    "component_parents client_side_bot_detection activity_metrics event_specification diagnostic_error identify"
).split()] + [
    "org.w3/PerformanceTiming", "org.w3/PerformanceNavigationTiming", "org.ietf/http_client_hints",
    "com.google.analytics/cookies", "com.google.ga4/cookies", "com.google.privacysandbox/topics",
    "com.optimizely.optimizelyx/summary", "com.optimizely/experiment", "com.optimizely/state",
    "com.optimizely/variation", "com.optimizely/visitor", "com.optimizely/visitor_audience",
    "com.optimizely/visitor_dimension", "com.optimizely.snowplow/optimizely_summary",
    "com.youtube/youtube", "org.whatwg/media_element", "org.whatwg/video_element",
] + [f"com.vimeo/{n}" for n in ("meta interaction cue_point_event chapter_change_event text_track_change_event "
                                "interactive_hotspot_click_event interactive_overlay_panel_click_event").split()] + [
    f"com.google.analytics.enhanced-ecommerce/{n}" for n in
    "action actionFieldObject impressionFieldObject productFieldObject promoFieldObject".split()] + [
    f"{SP}.ecommerce/{n}" for n in ("snowplow_ecommerce_action product cart transaction transaction_error refund "
                                    "checkout_step promotion user page").split()] + [
    f"{SP}.media/{n}" for n in ("session ad ad_break ad_break_end_event ad_break_start_event ad_click_event "
                                "ad_complete_event ad_pause_event ad_quartile_event ad_resume_event ad_skip_event "
                                "ad_start_event buffer_end_event buffer_start_event end_event error_event "
                                "fullscreen_change_event pause_event percent_progress_event "
                                "picture_in_picture_change_event ping_event play_event playback_rate_change_event "
                                "quality_change_event ready_event seek_end_event seek_start_event "
                                "volume_change_event").split()] + [
    f"{MOBILE}/{n}" for n in "screen_view screen screen_end screen_summary list_item_view scroll_changed".split()] + [
    f"com.snowplowanalytics.signals/{n}" for n in
    "intervention_instance intervention_receive intervention_handle intervention_handle_error".split()]

# What the iOS and Android trackers (v1 to v6) send.
MOBILE_TRACKERS = [f"{SP}/{n}" for n in (
    "payload_data contexts unstruct_event mobile_context client_session application screen_view "
    "application_background application_foreground application_error geolocation_context gdpr timing "
    "consent_document consent_granted consent_withdrawn diagnostic_error media_player desktop_context"
).split()] + [f"{MOBILE}/{n}" for n in (
    "application application_install application_lifecycle screen_view screen screen_end screen_summary "
    "list_item_view scroll_changed deep_link deep_link_received message_notification").split()] + [
    "com.apple/notification_event", "com.android.installreferrer.api/referrer_details",
] + [f"com.apple.swiftui/{n}" for n in ("open_window dismiss_window window_group open_immersive_space "
                                        "dismiss_immersive_space immersive_space").split()] + [
    f"{SP}.ecommerce/{n}" for n in ("snowplow_ecommerce_action product cart transaction transaction_error refund "
                                    "checkout_step promotion user page").split()] + [
    f"{SP}.media/{n}" for n in "session ad ad_break play_event pause_event end_event ping_event".split()]


@pytest.fixture
def unreachable(monkeypatch):
    """Every socket connect fails with ENETUNREACH; the list holds the addresses tried."""
    tried: list = []

    def refuse(self, address, *args):
        tried.append(address)
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried


@pytest.fixture
def enricher(unreachable):
    return Enricher(Resolver.default())


def raw_post(events: list[dict]) -> bytes:
    body = json.dumps({"schema": PAYLOAD_DATA, "data": events})
    return encode_collector_payload(CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0", ip_address="203.0.113.9",
        timestamp=1_764_288_000_123, encoding="UTF-8", collector="snowmelt-test", path="/com.snowplowanalytics.snowplow/tp2",
        body=body, content_type="application/json; charset=utf-8", hostname="c.example.org",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) offline-test"))


def enrich_all(enricher: Enricher, events: list[dict]) -> tuple[list[str], list[dict]]:
    out = enricher.enrich(raw_post(events))
    return out.good, [json.loads(b) for b in out.bad]


def schemas_named(events: list[dict]) -> set[str]:
    """The Iglu URIs ``events`` carry (events and entities), read back from tracker-protocol parameters."""
    named = set()
    for e in events:
        for plain, b64 in (("ue_pr", "ue_px"), ("co", "cx")):
            text = e.get(plain)
            if text is None and e.get(b64):
                text = base64.urlsafe_b64decode(e[b64] + "=" * (-len(e[b64]) % 4)).decode()
            if text:
                doc = json.loads(text)
                inner = doc["data"]
                for item in (inner if isinstance(inner, list) else [inner]):
                    named.add(item["schema"])
    return named


def assert_all_good(enricher, events, tried):
    good, bad = enrich_all(enricher, events)
    messages = [m for row in bad for m in row["data"]["failure"].get("messages", [row["data"]["failure"]])]
    assert bad == [], json.dumps(messages, indent=1)[:4000]
    assert len(good) == len(events)
    assert tried == [], f"the stage tried the network: {tried}"


# ------------------------------------------------------------------ Python tracker


# The Python tracker deprecates its classic track_* methods in favour of its event classes; deployed code
# still calls them, so the set covers both on purpose, without the tracker's deprecation warnings.
CLASSIC_METHODS_DEPRECATED = r"ignore:track_\w+ will be (removed|deprecated) in future versions:DeprecationWarning"


def python_tracker_events() -> list[dict]:
    pytest.importorskip("snowplow_tracker")
    from snowplow_tracker import (Emitter, PagePing, PageView, ScreenView, SelfDescribing, SelfDescribingJson,
                                  StructuredEvent, Subject, Tracker)

    sent: list[dict] = []

    class KeepingEmitter(Emitter):
        def http_post(self, data: str) -> int:
            doc = json.loads(data)
            assert doc["schema"].startswith("iglu:com.snowplowanalytics.snowplow/payload_data/")
            sent.extend(doc["data"])
            return 200

    tracker_events = []
    for base64_on in (True, False):
        emitter = KeepingEmitter("c.example.org", method="post", batch_size=1)
        t = Tracker("offline-py", emitter, subject=Subject().set_platform("pc").set_user_id("u1"),
                    app_id="snowmelt-offline", encode_base64=base64_on)
        timing = SelfDescribingJson(f"iglu:{SP}/timing/jsonschema/1-0-0",
                                    {"category": "load", "variable": "map", "timing": 125})
        t.track(PageView(page_url="https://shop.example.org/p/1", page_title="Widget"))
        t.track(PagePing(page_url="https://shop.example.org/p/1", min_x=0, max_x=10, min_y=0, max_y=300))
        t.track(StructuredEvent(category="shop", action="add", label="W-1", value=2))
        t.track(ScreenView(id_="5a1e2c3d-0000-4000-8000-00000000000a", name="Home", type="feed",
                           previous_name="Launch", transition_type="push"))
        t.track(SelfDescribing(timing, context=[SelfDescribingJson(
            f"iglu:{MOBILE}/screen/jsonschema/1-0-0", {"id": "5a1e2c3d-0000-4000-8000-00000000000b", "name": "Home"})]))
        t.track_link_click("https://example.org/out", element_id="a1", element_classes=["x"],
                           element_target="_blank", element_content="Out")
        t.track_add_to_cart("W-1", 2, name="Widget", category="tools", unit_price=9.5, currency="EUR")
        t.track_remove_from_cart("W-1", 1, name="Widget", category="tools", unit_price=9.5, currency="EUR")
        t.track_form_change("f1", "email", "INPUT", "a@example.org", type_="email", element_classes=["c"])
        t.track_form_submit("f1", form_classes=["signup"],
                            elements=[{"name": "email", "value": "a@example.org", "nodeName": "INPUT",
                                       "type": "email"}])
        t.track_site_search(["snow", "melt"], filters={"in_stock": True}, total_results=12, page_results=10)
        t.track_screen_view(name="Home", id_="home-1")
        t.track_mobile_screen_view(name="Settings", id_="5a1e2c3d-0000-4000-8000-00000000000c", type="modal",
                                   previous_name="Home", previous_id="5a1e2c3d-0000-4000-8000-00000000000a",
                                   transition_type="push")
        t.track_ecommerce_transaction("o1", 19.0, affiliation="web", tax_value=1.0, shipping=2.0, city="Bern",
                                      country="CH", currency="CHF",
                                      items=[{"sku": "W-1", "price": 9.5, "quantity": 2, "name": "Widget"}])
        t.track_self_describing_event(SelfDescribingJson(f"iglu:{SP}/link_click/jsonschema/1-0-0",
                                                         {"targetUrl": "https://example.org/"}))
        t.flush()
        tracker_events.append(len(sent))
    return sent


@pytest.mark.filterwarnings(CLASSIC_METHODS_DEPRECATED)
def test_python_tracker_event_set_validates_offline(enricher, unreachable):
    events = python_tracker_events()
    named = schemas_named(events)
    # the events of issue 18 are among them
    assert f"iglu:{MOBILE}/screen_view/jsonschema/1-0-0" in named
    assert f"iglu:{SP}/link_click/jsonschema/1-0-1" in named
    assert len(events) >= 30
    assert_all_good(enricher, events, unreachable)


# -------------------------------------------------------------------- Node tracker


def node_tracker_events(*args: str) -> list[dict]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "@snowplow" / "node-tracker").is_dir():
        pytest.skip("@snowplow/node-tracker is not installed (the node_tracker fixture runs `npm ci`)")
    done = subprocess.run(["node", "events.mjs", *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("encoding", ["base64", "plain"])
def test_node_tracker_event_set_validates_offline(node_tracker, enricher, unreachable, encoding):
    events = node_tracker_events(*(["--no-base64"] if encoding == "plain" else []))
    named = schemas_named(events)
    assert f"iglu:{SP}/link_click/jsonschema/1-0-1" in named and len(named) >= 15
    assert_all_good(enricher, events, unreachable)


# ------------------------------------------------- browser and mobile trackers


def ctx(*entities: dict) -> str:
    return json.dumps({"schema": CONTEXTS, "data": list(entities)})


def ue(schema: str, data: dict) -> str:
    return json.dumps({"schema": UNSTRUCT, "data": {"schema": schema, "data": data}})


SESSION = {"userId": "0b6a6c1e-5d7b-4b8c-9b1a-2a3b4c5d6e7f", "sessionId": "5a1e2c3d-0000-4000-8000-00000000000a",
           "sessionIndex": 3, "previousSessionId": "5a1e2c3d-0000-4000-8000-000000000009",
           "storageMechanism": "COOKIE_1", "firstEventId": "0c9e1f6a-2b3c-4d5e-8f90-123456789abc",
           "firstEventTimestamp": "2026-12-02T08:00:00.000Z", "eventIndex": 4}
WEB_PAGE = {"schema": f"iglu:{SP}/web_page/jsonschema/1-0-0", "data": {"id": "0c9e1f6a-2b3c-4d5e-8f90-123456789abd"}}
CLIENT_SESSION = {"schema": f"iglu:{SP}/client_session/jsonschema/1-0-2", "data": SESSION}


def browser_events() -> list[dict]:
    """Events as the browser tracker v4 and its link click, form, error, timing and web vitals plugins send them."""
    base = {"p": "web", "tv": "js-4.1.0", "aid": "shop", "url": "https://shop.example.org/p/1"}
    return [
        {**base, "e": "pv", "co": ctx(WEB_PAGE, CLIENT_SESSION, {
            "schema": f"iglu:{SP}/browser_context/jsonschema/2-0-0",
            "data": {"viewport": "1280x720", "documentSize": "1280x3400", "resolution": "1920x1080",
                     "colorDepth": 24, "devicePixelRatio": 2, "cookiesEnabled": True, "online": True,
                     "browserLanguage": "de-CH", "documentLanguage": "de", "webdriver": False,
                     "hardwareConcurrency": 8, "tabId": "5a1e2c3d-0000-4000-8000-00000000000d"}}, {
            "schema": "iglu:org.ietf/http_client_hints/jsonschema/1-0-0",
            "data": {"isMobile": False, "brands": [{"brand": "Chromium", "version": "131"}]}}, {
            "schema": "iglu:com.google.ga4/cookies/jsonschema/1-0-0", "data": {"_ga": "GA1.1.123.456"}})},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/link_click/jsonschema/1-0-1", {
            "targetUrl": "https://example.org/out", "elementId": "a1", "elementClasses": ["x"],
            "elementTarget": "_blank", "elementContent": "Out"}), "co": ctx(WEB_PAGE, CLIENT_SESSION)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/focus_form/jsonschema/1-0-0", {
            "formId": "f1", "elementId": "email", "nodeName": "INPUT", "elementClasses": [], "value": None,
            "elementType": "email"}), "co": ctx(WEB_PAGE)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/application_error/jsonschema/1-0-1", {
            "programmingLanguage": "JAVASCRIPT", "message": "x is undefined", "fileName": "app.js",
            "lineNumber": 12, "lineColumn": 4, "stackTrace": "at f (app.js:12:4)"}), "co": ctx(WEB_PAGE)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/web_vitals/jsonschema/1-0-0", {
            "cls": 0.01, "lcp": 1200.5, "fcp": 800, "ttfb": 120, "inp": 40, "navigationType": "navigate"}),
         "co": ctx(WEB_PAGE)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/button_click/jsonschema/1-0-0", {
            "label": "Buy", "id": "buy", "classes": ["btn"], "name": "buy"}), "co": ctx(WEB_PAGE)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}.ecommerce/snowplow_ecommerce_action/jsonschema/1-0-2", {
            "type": "add_to_cart"}), "co": ctx(WEB_PAGE, {
                "schema": f"iglu:{SP}.ecommerce/product/jsonschema/1-0-0",
                "data": {"id": "W-1", "category": "tools", "currency": "EUR", "price": 9.5}}, {
                "schema": f"iglu:{SP}.ecommerce/cart/jsonschema/1-0-0",
                "data": {"total_value": 19, "currency": "EUR"}})},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}.media/play_event/jsonschema/1-0-0", {}), "co": ctx(WEB_PAGE, {
            "schema": f"iglu:{SP}/media_player/jsonschema/2-0-0",
            "data": {"currentTime": 12.5, "paused": False, "ended": False, "duration": 300}}, {
            "schema": f"iglu:{SP}.media/session/jsonschema/1-0-0",
            "data": {"mediaSessionId": "5a1e2c3d-0000-4000-8000-00000000000e", "startedAt": "2026-12-02T08:00:00Z"}})},
    ]


MOBILE_CONTEXT = {"schema": f"iglu:{SP}/mobile_context/jsonschema/1-0-3", "data": {
    "osType": "ios", "osVersion": "17.5", "deviceManufacturer": "Apple Inc.", "deviceModel": "iPhone15,2",
    "carrier": "Swisscom", "networkType": "wifi", "batteryLevel": 80, "batteryState": "unplugged",
    "lowPowerMode": False, "availableStorage": 1000, "totalStorage": 2000, "isPortrait": True,
    "resolution": "1179x2556", "scale": 3, "language": "de", "appSetId": "5a1e2c3d-0000-4000-8000-00000000000f",
    "appSetIdScope": "app"}}


def mobile_events() -> list[dict]:
    """Events as the iOS and Android trackers (v5/v6) send them, with their default entities."""
    screen_id = "5a1e2c3d-0000-4000-8000-000000000010"
    base = {"p": "mob", "tv": "ios-6.0.0", "aid": "app"}
    entities = [MOBILE_CONTEXT, {**CLIENT_SESSION, "data": {**SESSION, "storageMechanism": "LOCAL_STORAGE"}}, {
        "schema": f"iglu:{MOBILE}/application/jsonschema/1-0-0", "data": {"version": "1.2.0", "build": "42"}}, {
        "schema": f"iglu:{MOBILE}/screen/jsonschema/1-0-0", "data": {"name": "Home", "id": screen_id}}, {
        "schema": f"iglu:{MOBILE}/application_lifecycle/jsonschema/1-0-0", "data": {"isVisible": True, "index": 1}}, {
        "schema": f"iglu:{SP}/geolocation_context/jsonschema/1-1-0", "data": {"latitude": 46.9, "longitude": 7.4}}]
    return [
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{MOBILE}/screen_view/jsonschema/1-0-0", {
            "name": "Home", "id": screen_id, "type": "feed", "previousName": "Launch",
            "transitionType": "push"}), "co": ctx(*entities)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{MOBILE}/application_install/jsonschema/1-0-0", {}),
         "co": ctx(*entities)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/application_foreground/jsonschema/1-0-0", {"foregroundIndex": 2}),
         "co": ctx(*entities)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/application_background/jsonschema/1-0-0", {"backgroundIndex": 2}),
         "co": ctx(*entities)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{MOBILE}/screen_end/jsonschema/1-0-0", {}), "co": ctx(*entities, {
            "schema": f"iglu:{MOBILE}/screen_summary/jsonschema/1-0-0",
            "data": {"foreground_sec": 12.5, "background_sec": 0}})},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{MOBILE}/deep_link_received/jsonschema/1-0-0", {
            "url": "app://home?x=1", "referrer": "https://example.org/"}), "co": ctx(*entities)},
        {**base, "e": "ue", "ue_pr": ue(f"iglu:{SP}/screen_view/jsonschema/1-0-0", {"name": "Old", "id": "old-1"}),
         "tv": "andr-1.7.1", "co": ctx({**MOBILE_CONTEXT, "schema": f"iglu:{SP}/mobile_context/jsonschema/1-0-1",
                                        "data": {"osType": "android", "osVersion": "9", "deviceManufacturer": "G",
                                                 "deviceModel": "P"}},
                                       {**CLIENT_SESSION, "schema": f"iglu:{SP}/client_session/jsonschema/1-0-1",
                                        "data": {k: v for k, v in SESSION.items()
                                                 if k not in ("eventIndex", "firstEventTimestamp")} | {"storageMechanism": "SQLITE"}})},
    ]


def test_browser_tracker_events_validate_offline(enricher, unreachable):
    assert_all_good(enricher, browser_events(), unreachable)


def test_mobile_tracker_events_validate_offline(enricher, unreachable):
    assert_all_good(enricher, mobile_events(), unreachable)


def shipped_versions(vendor_name: str) -> list[SchemaKey]:
    vendor, name = vendor_name.split("/")
    folder = resources.files("schemas").joinpath(vendor, name, "jsonschema")
    assert folder.is_dir(), f"{vendor_name} is not shipped"
    return [SchemaKey.parse(f"iglu:{vendor_name}/jsonschema/{v.name}") for v in folder.iterdir()]


@pytest.mark.parametrize("tracker", ["browser", "mobile"])
def test_every_schema_of_the_tracker_sets_resolves_and_compiles_offline(unreachable, tracker):
    resolver = Resolver.default()
    names = BROWSER if tracker == "browser" else MOBILE_TRACKERS
    checked = 0
    for vendor_name in names:
        for key in shipped_versions(vendor_name):
            validator = resolver.compiled_validator(key)
            assert not isinstance(validator, IgluFailure), validator.to_json()
            checked += 1
    assert checked >= len(names)
    assert unreachable == []


# ------------------------------------------------- a running `snowmelt up`, no --resolver


@pytest.mark.filterwarnings(CLASSIC_METHODS_DEPRECATED)
def test_snowmelt_up_without_resolver_validates_every_tracker_set_offline(tmp_path):
    """``snowmelt up`` with no ``--resolver`` and Iglu Central out of reach (every HTTP request of the
    process goes to a proxy on a closed port): each tracker's event set arrives good, 0 bad rows."""
    from tests.services.server import free_port
    from tests.services.up import UpProcess
    from tests.services.wait import wait_until

    sets = {"python": python_tracker_events(), "browser": browser_events(), "mobile": mobile_events()}
    try:
        sets["node"] = node_tracker_events()
    except pytest.skip.Exception:
        pass
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    up = UpProcess(tmp_path / "data", settings={"iglu.cache_dir": str(tmp_path / "empty-cache")})
    up.env.update({"http_proxy": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "HTTPS_PROXY": proxy,
                   "no_proxy": "", "NO_PROXY": ""})
    up.start(60)
    try:
        total = 0
        for name, events in sets.items():
            assert up.send("/com.snowplowanalytics.snowplow/tp2", json.dumps({"schema": PAYLOAD_DATA, "data": events}),
                           "application/json; charset=utf-8") == 200, name
            total += len(events)
        # the control: a schema nobody ships is looked up over HTTP, and that fails here
        unknown = {"e": "ue", "p": "web", "tv": "js-4.1.0", "ue_pr": ue("iglu:com.acme/not_shipped/jsonschema/1-0-0", {})}
        assert up.send("/com.snowplowanalytics.snowplow/tp2", json.dumps({"schema": PAYLOAD_DATA, "data": [unknown]}),
                       "application/json; charset=utf-8") == 200
        counts = wait_until(lambda: up.get("/micro/all"), 60, f"{total + 1} events",
                            done=lambda c: c["total"] >= total + 1)
        bad = up.get("/micro/bad")
        assert counts == {"total": total + 1, "good": total, "bad": 1}, json.dumps(bad)[:3000]
        text = json.dumps(bad)
        assert "ResolutionError" in text and "com.acme/not_shipped" in text and "Iglu Central" in text
    finally:
        up.terminate()
        up.remove_log()
