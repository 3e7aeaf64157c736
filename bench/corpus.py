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
