"""Realistic tracker traffic for benchmarks: what the JavaScript tracker sends.

User agents and IP addresses repeat as in real traffic: each is drawn from a
pool of a few thousand with a Zipf-like skew (a few browsers and visitors send
most events), so per-UA and per-IP caches see realistic hit rates rather than
the five strings of a toy corpus.  The IPs are public addresses from
allocated ranges, so geo lookups find most of them.
"""
from __future__ import annotations

import base64
import json
import random
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

_BASE_USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
]
# (template, versions): each template with each version is one user agent of the pool
_UA_FAMILIES = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
     "Safari/537.36", range(100, 132)),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
     "Safari/537.36", range(110, 132)),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
     "Safari/537.36 Edg/{v}.0.{b}.{p}", range(110, 132)),
    ("Mozilla/5.0 (Linux; Android {a}; {d}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Mobile "
     "Safari/537.36", range(115, 132)),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS {i} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/{s} Mobile/15E148 Safari/604.1", range(0, 1)),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", range(100, 134)),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", range(110, 134)),
]
_ANDROID = ["10", "11", "12", "13", "14", "15"]
_DEVICES = ["Pixel 6", "Pixel 7", "Pixel 8", "SM-S918B", "SM-G991B", "SM-A546B", "moto g54 5G", "2201116SG", "K"]
_IOS = ["16_6", "17_0", "17_4_1", "17_6", "18_0", "18_1", "18_2"]
_BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
]
# first octets of busy, allocated public ranges (RIPE, ARIN, APNIC ISPs)
_IP_FIRST_OCTETS = [2, 5, 24, 31, 37, 46, 62, 66, 68, 71, 73, 76, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90,
                    91, 92, 93, 94, 95, 98, 99, 108, 109, 114, 120, 124, 151, 174, 176, 178, 185, 188, 189, 190,
                    201, 212, 213, 217]


def _user_agent_pool(rng: random.Random, size: int = 2000) -> list[str]:
    pool = list(_BASE_USER_AGENTS)
    while len(pool) < size:
        template, versions = rng.choice(_UA_FAMILIES)
        pool.append(template.format(
            v=rng.choice(versions), b=rng.randint(4000, 6800), p=rng.randint(0, 200), a=rng.choice(_ANDROID),
            d=rng.choice(_DEVICES), i=rng.choice(_IOS), s=f"{rng.randint(16, 18)}.{rng.randint(0, 6)}"))
    return pool + _BOTS


def _ip_pool(rng: random.Random, size: int = 5000) -> list[str]:
    return [f"{rng.choice(_IP_FIRST_OCTETS)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            for _ in range(size)]


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank ** s) for rank in range(1, n + 1)]


_POOL_RNG = random.Random(7)
USER_AGENTS = _user_agent_pool(_POOL_RNG)
IPS = _ip_pool(_POOL_RNG)
_UA_WEIGHTS = _zipf_weights(len(USER_AGENTS), 1.1)
_IP_WEIGHTS = _zipf_weights(len(IPS), 0.8)

PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"


def _b64(doc) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def contexts(rng: random.Random) -> dict:
    return {"schema": CONTEXTS, "data": [
        {"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
         "data": {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4))}},
        {"schema": "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0",
         "data": {"navigationStart": 1732700000000, "domComplete": 1732700001234, "loadEventEnd": 1732700001300}},
        {"schema": "iglu:com.acme/product/jsonschema/1-0-0",
         "data": {"sku": f"SKU-{rng.randint(1000, 9999)}", "price": round(rng.uniform(1, 500), 2), "currency": "EUR"}},
    ]}


def tracker_event(rng: random.Random, kind: str | None = None) -> dict:
    """One tp2 event as the JavaScript tracker builds it (string values)."""
    kind = kind or rng.choice(["pv", "pp", "se", "ue"])
    now = int(time.time() * 1000)
    page = rng.choice(["/", "/products", "/products/widget", "/cart", "/checkout", "/blog/why-snowplow"])
    event = {
        "e": kind, "eid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "tv": "js-4.1.0",
        "tna": "sp1", "aid": "shop", "p": "web", "dtm": str(now), "stm": str(now + 5),
        "tz": "Europe/Berlin", "lang": "de-DE", "cs": "UTF-8", "res": "1920x1080", "cd": "24",
        "cookie": "1", "vp": "1280x720", "ds": "1280x3400", "vid": str(rng.randint(1, 20)),
        "sid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "duid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "url": f"https://shop.acme.com{page}?utm_source=newsletter&utm_medium=email",
        "page": "Acme shop", "refr": "https://www.google.com/",
        "cx": _b64(contexts(rng)),
    }
    if kind == "pp":
        event.update({"pp_mix": "0", "pp_max": "120", "pp_miy": "200", "pp_may": "1400"})
    elif kind == "se":
        event.update({"se_ca": "checkout", "se_ac": "add-to-cart", "se_la": "widget", "se_pr": "blue", "se_va": "19.99"})
    elif kind == "ue":
        event["ue_px"] = _b64({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                               "data": {"schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
                                        "data": {"targetUrl": "https://acme.com/out", "elementId": "cta"}}})
    return event


def get_query(rng: random.Random) -> str:
    return urlencode(tracker_event(rng, "pv"))


def post_body(rng: random.Random, size: int) -> bytes:
    return json.dumps({"schema": PAYLOAD_DATA, "data": [tracker_event(rng) for _ in range(size)]},
                      separators=(",", ":")).encode()


def browser_headers(rng: random.Random) -> dict[str, str]:
    return {
        "User-Agent": rng.choices(USER_AGENTS, _UA_WEIGHTS)[0],
        "Referer": "https://shop.acme.com/products",
        "Origin": "https://shop.acme.com",
        "Accept": "image/avif,image/webp,*/*",
        "Accept-Language": "de-DE,de;q=0.9,en;q=0.8",
        "Cookie": f"sp={uuid.UUID(int=rng.getrandbits(128), version=4)}; _sp_id.1fff=abc.1732700000.3.1732700500",
        "X-Forwarded-For": rng.choices(IPS, _IP_WEIGHTS)[0],
    }


# --------------------------------------------------------------------------- a replayable mix with bad events

#: The schemas the corpus's contexts and self-describing events use that the project does not ship,
#: written into a local registry by :func:`write_registry` so enrichment validates them offline.
CORPUS_SCHEMAS = {
    "iglu:com.acme/product/jsonschema/1-0-0": {
        "type": "object", "additionalProperties": False, "required": ["sku"],
        "properties": {"sku": {"type": "string", "maxLength": 64}, "price": {"type": "number", "minimum": 0},
                       "currency": {"type": "string", "minLength": 3, "maxLength": 3}}},
    "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0": {
        "type": "object", "additionalProperties": True,
        "properties": {name: {"type": "integer", "minimum": 0}
                       for name in ("navigationStart", "domComplete", "loadEventEnd")}},
    "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1": {
        "type": "object", "additionalProperties": False, "required": ["targetUrl"],
        "properties": {"elementId": {"type": "string"}, "elementClasses": {"type": "array"},
                       "elementTarget": {"type": "string"}, "elementContent": {"type": "string"},
                       "targetUrl": {"type": "string", "minLength": 1}}},
}

#: The kinds of bad event :func:`bad_event` makes; each becomes one bad row downstream.
BAD_KINDS = ("schema_violation", "unknown_schema", "invalid_event_type")


def write_registry(root) -> Path:
    """Write :data:`CORPUS_SCHEMAS` as an embedded Iglu registry under ``root`` and a resolver config naming
    it (and nothing else: no Iglu Central, so an unknown schema fails at once); returns the config's path."""
    root = Path(root)
    write_schemas(root / "registry", CORPUS_SCHEMAS)
    return write_resolver(root, ["com.acme", "org.w3"])


def write_schemas(registry, schemas: dict) -> None:
    """Each ``{"iglu:vendor/name/format/version": body}`` as a self-describing schema file of an embedded registry."""
    for uri, body in schemas.items():
        vendor, name, fmt, version = uri.removeprefix("iglu:").split("/")
        path = Path(registry) / vendor / name / fmt / version
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": vendor, "name": name, "format": fmt, "version": version}, **body}))


def write_resolver(root, vendor_prefixes: list[str]) -> Path:
    """``root/resolver.json``: a resolver config whose one repository is the embedded ``root/registry``."""
    resolver = Path(root) / "resolver.json"
    resolver.write_text(json.dumps({
        "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
        "data": {"cacheSize": 500, "cacheTtl": 600, "repositories": [
            {"name": "bench corpus", "priority": 0, "vendorPrefixes": vendor_prefixes,
             "connection": {"embedded": {"path": "registry"}}}]}}))
    return resolver


class EventMix:
    """An endless, reproducible stream of tracker events as visitors make them.

    A visit is a page view followed by page pings of the same page view (same
    ``web_page`` context id, url and session), with struct and self-describing
    events (contexts attached) in between.  ``bad_share`` of the events are
    bad on purpose (:func:`bad_event`); their ids are in :attr:`bad_ids`.
    """

    def __init__(self, seed: int | str = 1, bad_share: float = 0.01, pings: tuple[int, int] = (1, 4)):
        self.rng = random.Random(seed)
        self.bad_share = bad_share
        self.pings = pings
        self.bad_ids: set[str] = set()
        self._visit: list[dict] = []

    def _new_visit(self) -> list[dict]:
        rng = self.rng
        pv = tracker_event(rng, "pv")
        # everything after the page view belongs to it: same page, session and web_page context id
        shared = {k: pv[k] for k in ("url", "page", "sid", "duid", "vid", "refr", "cx")}
        visit = [pv]
        for _ in range(rng.randint(*self.pings)):
            kind = rng.choices(["se", "ue", None], [1, 1, 2])[0]
            if kind is not None:
                visit.append({**tracker_event(rng, kind), **shared})
            visit.append({**tracker_event(rng, "pp"), **shared})
        return visit

    def next(self) -> dict:
        """The next event (string values, as the tracker sends them)."""
        if self.rng.random() < self.bad_share:
            event = bad_event(self.rng)
            self.bad_ids.add(event["eid"])
            return event
        if not self._visit:
            self._visit = self._new_visit()
        return self._visit.pop(0)


def bad_event(rng: random.Random, kind: str | None = None) -> dict:
    """An event that enrichment must turn into a bad row: a self-describing event whose data violates its
    schema, one whose schema exists nowhere, or an unknown ``e=`` event type (see :data:`BAD_KINDS`)."""
    kind = kind or rng.choice(BAD_KINDS)
    event = tracker_event(rng, "ue")
    if kind == "schema_violation":
        event["ue_px"] = _b64({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                               "data": {"schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
                                        "data": {"elementId": "cta", "targetUrl": 42}}})
    elif kind == "unknown_schema":
        event["ue_px"] = _b64({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                               "data": {"schema": "iglu:com.acme/no_such_event/jsonschema/1-0-0",
                                        "data": {"x": 1}}})
    elif kind == "invalid_event_type":
        del event["ue_px"]
        event["e"] = "zz"
    else:
        raise ValueError(f"unknown bad event kind {kind!r} ({', '.join(BAD_KINDS)})")
    return event
