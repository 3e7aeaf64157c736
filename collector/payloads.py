"""From one accepted request to the records it becomes.

A request is one Thrift ``CollectorPayload``.  When its encoding is larger
than the record limit and its body is a self-describing JSON whose ``data`` is
an array (a tp2 batch, an Iglu webhook batch), the array is split into as few
payloads as fit, each carrying the same schema and request metadata; only an
item that is too large on its own, or a payload that cannot be split, becomes
a ``size_violation`` bad row.  Nothing accepted is silently dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ext import CollectorPayload, encode_collector_payload
from processor.badrows import size_violation

ARTIFACT = "snowmelt-collector"


@dataclass
class Fitted:
    """What a request becomes: encoded payloads for the raw topic and bad rows."""

    payloads: list[bytes] = field(default_factory=list)
    bad_rows: list[bytes] = field(default_factory=list)
    split: bool = False


def _dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _body_bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8", "surrogateescape")
    return bytes(body)


def fit_payload(payload: CollectorPayload, limit: int) -> Fitted:
    """Encode ``payload``; split or turn into bad rows what exceeds ``limit`` bytes."""
    encoded = encode_collector_payload(payload)
    if len(encoded) <= limit:
        return Fitted(payloads=[encoded])
    body = _body_bytes(payload.body)
    doc = None
    if body:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse
            doc = None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list) and doc["data"]:
        try:
            return _split(payload, doc, limit, len(encoded) - len(body))
        except RecursionError:  # an item nested too deeply to re-encode
            pass
    what = body if body else (payload.querystring or "")
    return Fitted(bad_rows=[size_violation(
        ARTIFACT, limit, len(encoded), what,
        f"A collector payload must not exceed {limit} bytes and this one could not be split",
    )])


def _split(payload: CollectorPayload, doc: dict, limit: int, overhead: int) -> Fitted:
    # overhead: encoded size of the payload without its body bytes (exact:
    # a Thrift string's length prefix has a fixed width).
    schema = doc.get("schema")
    empty = _dumps({"schema": schema, "data": []}) if schema is not None else _dumps({"data": []})
    head, tail = empty[:-2], empty[-2:]  # b'{..."data":['  and  b']}'
    room = limit - overhead - len(head) - len(tail)
    fitted = Fitted(split=True)
    group: list[bytes] = []
    group_size = 0

    def flush():
        nonlocal group, group_size
        if group:
            payload.body = head + b",".join(group) + tail
            fitted.payloads.append(encode_collector_payload(payload))
            group, group_size = [], 0

    original_body = payload.body
    try:
        for item in doc["data"]:
            item_bytes = _dumps(item)
            if len(item_bytes) > room:
                fitted.bad_rows.append(size_violation(
                    ARTIFACT, limit, overhead + len(head) + len(item_bytes) + len(tail), item_bytes,
                    f"A single event must fit in a collector payload of {limit} bytes",
                ))
                continue
            extra = len(item_bytes) + (1 if group else 0)
            if group_size + extra > room:
                flush()
                extra = len(item_bytes)
            group.append(item_bytes)
            group_size += extra
        flush()
    finally:
        payload.body = original_body
    return fitted
