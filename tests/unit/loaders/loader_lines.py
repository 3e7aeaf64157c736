"""Enriched lines for the loader tests, made by the real enrichment stage from raw payloads."""
from __future__ import annotations

import base64
import json
from pathlib import Path

from ext import CollectorPayload, encode_collector_payload
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from tests.unit.test_stage import (  # the enrichment stage tests' schema writer and constants
    COLLECTED,
    CONTEXTS,
    NOW,
    PAYLOAD_DATA,
    PRODUCT,
    TP2,
    UNSTRUCT,
    write_schema,
)

CHECKOUT = "iglu:com.acme/checkout/jsonschema/1-0-0"
CHECKOUT_1_1 = "iglu:com.acme/checkout/jsonschema/1-1-0"
REFUND = "iglu:com.acme/refundIssued/jsonschema/2-0-0"


def make_enricher(root: Path) -> Enricher:
    write_schema(root, PRODUCT, {"type": "object", "properties": {
        "sku": {"type": "string"}, "price": {"type": "number"}}, "required": ["sku"]})
    write_schema(root, CHECKOUT, {"type": "object", "properties": {"total": {"type": "number"}}})
    write_schema(root, CHECKOUT_1_1, {"type": "object", "properties": {
        "total": {"type": "number"}, "coupon": {"type": "string"}}})
    write_schema(root, REFUND, {"type": "object", "properties": {"amount": {"type": "number"}}})
    return Enricher(Resolver([EmbeddedRepository("test registry", root)]), clock=lambda: NOW)


def raw(path="/i", querystring=None, body=None, content_type=None, timestamp=COLLECTED) -> bytes:
    return encode_collector_payload(CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
        ip_address="203.0.113.9", timestamp=timestamp, encoding="UTF-8", collector="snowmelt-0.1.0-kafka",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox", referer_uri="https://shop.acme.com/ref",
        path=path, querystring=querystring, body=body, content_type=content_type,
        headers=["Host: c.acme.com"], hostname="c.acme.com",
        network_user_id="11111111-1111-4111-8111-111111111111"))


def b64(doc) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def tracker_events(enricher: Enricher, events: list[dict]) -> list[bytes]:
    """Enriched lines (bytes, as on the topic) of tp2 ``events`` sent in one POST."""
    body = json.dumps({"schema": PAYLOAD_DATA, "data": events})
    out = enricher.enrich(raw(TP2, "aid=shop", body, "application/json; charset=utf-8"))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    return [line.encode() if isinstance(line, str) else line for line in out.good]


def checkout(eid: str, schema: str = CHECKOUT, data: dict | None = None, products=(("W-1", 9.5),)) -> dict:
    """A self-describing event with product contexts."""
    cx = {"schema": CONTEXTS, "data": [{"schema": PRODUCT, "data": {"sku": s, "price": p}} for s, p in products]}
    ue = {"schema": UNSTRUCT, "data": {"schema": schema, "data": data if data is not None else {"total": 19.99}}}
    return {"e": "ue", "eid": eid, "ue_px": b64(ue), "cx": b64(cx), "tv": "js-3.0.0", "p": "web",
            "dtm": "1764287999000"}


def page_view(eid: str, **extra) -> dict:
    return {"e": "pv", "eid": eid, "tv": "js-3.0.0", "p": "web", "url": "https://shop.acme.com/p?id=1", "page": "Widget",
            "tr_tt": "12.50", "dtm": "1764287999000", "res": "1920x1080", "cookie": "1", "vid": "3", **extra}
