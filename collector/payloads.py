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
import re
from dataclasses import dataclass, field
from typing import Callable

import orjson

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
    """Compact JSON, UTF-8; a lone surrogate (from an escape in the request) stays an escape."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def _fast_dumps(value) -> bytes:
    """:func:`_dumps` with orjson (about ten times faster): the same bytes but for the spelling of some
    floats (``1e16`` for ``1e+16``); what orjson cannot write (an integer beyond 64 bits, a lone
    surrogate) goes to :func:`_dumps`."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _dumps(value)


#: Literals only Python's parser accepts; orjson would write them as null.
_NOT_STRICT = re.compile(rb"NaN|Infinity")


def _loads(body: bytes) -> tuple[object, Callable[[object], bytes]]:
    """The parsed body and the encoder that writes its parts back: orjson's (ten times faster) unless the body
    may hold NaN or Infinity.  (orjson does not parse it: it reads integers beyond 64 bits as floats.)"""
    return json.loads(body), (_dumps if _NOT_STRICT.search(body) else _fast_dumps)


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
    return refit(payload, encoded, limit)


def refit(payload: CollectorPayload, encoded: bytes, limit: int) -> Fitted:
    """``payload``, whose encoding ``encoded`` exceeds ``limit`` bytes, split or turned into a bad row
    (parsing and re-encoding: tens of milliseconds for a megabyte of small events)."""
    body = _body_bytes(payload.body)
    doc, dumps = None, _dumps
    if body:
        try:
            doc, dumps = _loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse
            doc = None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list) and doc["data"]:
        try:
            return _split(payload, doc, limit, len(encoded) - len(body), dumps)
        except RecursionError:  # an item nested too deeply to re-encode
            pass
    what = body if body else (payload.querystring or "")
    return Fitted(bad_rows=[size_violation(
        ARTIFACT, limit, len(encoded), what,
        f"A collector payload must not exceed {limit} bytes and this one could not be split",
    )])


def _split(payload: CollectorPayload, doc: dict, limit: int, overhead: int,
           dumps: Callable[[object], bytes] = _dumps) -> Fitted:
    # overhead: encoded size of the payload without its body bytes (exact:
    # a Thrift string's length prefix has a fixed width).
    schema = doc.get("schema")
    empty = dumps({"schema": schema, "data": []}) if schema is not None else dumps({"data": []})
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
            item_bytes = dumps(item)
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
