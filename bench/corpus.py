"""Realistic tracker traffic for benchmarks: what the JavaScript tracker sends."""
from __future__ import annotations

import base64
import json
import random
import time
import uuid
from urllib.parse import urlencode

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
]
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
        "User-Agent": rng.choice(USER_AGENTS),
        "Referer": "https://shop.acme.com/products",
        "Origin": "https://shop.acme.com",
        "Accept": "image/avif,image/webp,*/*",
        "Accept-Language": "de-DE,de;q=0.9,en;q=0.8",
        "Cookie": f"sp={uuid.UUID(int=rng.getrandbits(128), version=4)}; _sp_id.1fff=abc.1732700000.3.1732700500",
        "X-Forwarded-For": f"203.0.113.{rng.randint(1, 254)}",
    }
