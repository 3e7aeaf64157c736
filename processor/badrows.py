"""Bad rows: Snowplow's self-describing failure records.

Every bad row is a self-describing JSON document whose schema is one of
``iglu:com.snowplowanalytics.snowplow.badrows/<type>/jsonschema/<version>``
and whose data holds the ``processor`` that produced it, the ``failure`` and
the ``payload`` it failed on.  Any consumer of Snowplow bad rows reads ours.
"""
from __future__ import annotations

import base64
import re
import time
from typing import Any

import orjson

from ext.javanum import YEAR_9999_END_MS, joda_timestamp
from processor import jsontext
from snowmelt import __version__

BADROWS_VENDOR = "com.snowplowanalytics.snowplow.badrows"
SIZE_VIOLATION = f"iglu:{BADROWS_VENDOR}/size_violation/jsonschema/1-0-0"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _java_text(found: re.Match) -> str:
    """What a lone surrogate of a row's text is in Snowplow's row: an undecodable input byte (kept by the Thrift
    decoder as U+DC80-U+DCFF) was U+FFFD when Java read it; any other (a JSON escape such as ``\\ud800``) is a
    Java string's own, which its UTF-8 encoder writes as ``?``.  (A JSON escape in U+DC80-U+DCFF cannot be told
    from a byte: U+FFFD.)"""
    return "\ufffd" if "\udc80" <= found.group() <= "\udcff" else "?"


#: The largest bad row written as it is; a larger one becomes a size_violation bad row holding its
#: beginning, as Snowplow's enrich does with a bad row over its sink's maximum record size.
MAX_BAD_ROW_BYTES = 1_000_000


# The last millisecond formatted and its text, as one tuple (threads swap it whole): a request's rows share both.
_last_iso: tuple[int | None, str] = (None, "")


def iso_timestamp(ms: int | None = None) -> str:
    """``2026-11-27T23:58:43.123Z``: the timestamp format bad rows use (now, or ``ms`` since the epoch)."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    global _last_iso
    last_ms, last_text = _last_iso
    if ms == last_ms:
        return last_text
    if 0 <= ms <= YEAR_9999_END_MS:
        seconds, milli = divmod(ms, 1000)
        t = time.gmtime(seconds)
        text = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
                                                        t.tm_sec, milli)
    else:  # before 1970 or after 9999, as Joda-Time writes it (a collector's clock; 3.9.0 keeps such events)
        text = joda_timestamp(ms).replace(" ", "T") + "Z"
    _last_iso = (ms, text)
    return text


def processor(artifact: str) -> dict[str, str]:
    return {"artifact": artifact, "version": __version__}


def bad_row(schema: str, artifact: str, failure: dict[str, Any], payload: Any) -> bytes:
    """Serialise one bad row as compact UTF-8 JSON."""
    doc = {"schema": schema, "data": {"processor": processor(artifact), "failure": failure, "payload": payload}}
    try:
        # compact UTF-8, ~10x the json module on the 1 MB bodies bad rows may carry; copied once to its size,
        # because orjson hands back its whole buffer (a power of two: up to twice the row) and rows are
        # held by the thousand (a batch's output, the Micro API's store) -- but for a row too large to keep
        data = orjson.dumps(doc, default=jsontext.number_text)  # the tracker's numbers as it wrote them
        if len(data) <= MAX_BAD_ROW_BYTES:
            data = bytes(memoryview(data))
    except TypeError:  # a lone surrogate, or an integer beyond 64 bits
        text = jsontext.dumps(doc)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            data = _LONE_SURROGATE.sub(_java_text, text).encode("utf-8")
    if len(data) > MAX_BAD_ROW_BYTES and schema != SIZE_VIOLATION:
        return size_violation(artifact, MAX_BAD_ROW_BYTES, len(data), data[:MAX_BAD_ROW_BYTES // 10],
                              f"bad row ({schema.split('/')[1]}) larger than the maximum size")
    return data


def size_violation(
    artifact: str,
    maximum_bytes: int,
    actual_bytes: int,
    payload: bytes | str,
    expectation: str,
    keep_chars: int | None = None,
) -> bytes:
    """A ``size_violation`` bad row.

    The payload is kept as text, truncated to ``keep_chars`` characters (by
    default a tenth of the limit) so that the bad row itself fits on the topic.
    """
    if isinstance(payload, (bytes, bytearray)):
        payload = bytes(payload).decode("utf-8", "replace")
    if keep_chars is None:
        keep_chars = max(maximum_bytes // 10, 0)
    failure = {
        "timestamp": iso_timestamp(),
        "maximumAllowedSizeBytes": maximum_bytes,
        "actualSizeBytes": actual_bytes,
        "expectation": expectation[:256],
    }
    return bad_row(SIZE_VIOLATION, artifact, failure, payload[:keep_chars])


COLLECTOR_PAYLOAD_FORMAT_VIOLATION = f"iglu:{BADROWS_VENDOR}/collector_payload_format_violation/jsonschema/1-0-0"
ADAPTER_FAILURES = f"iglu:{BADROWS_VENDOR}/adapter_failures/jsonschema/1-0-0"
TRACKER_PROTOCOL_VIOLATIONS = f"iglu:{BADROWS_VENDOR}/tracker_protocol_violations/jsonschema/1-0-1"
ENRICH_ARTIFACT = "snowmelt-enrich"


def collector_payload_format_violation(raw: bytes, message: dict, loader: str = "thrift") -> bytes:
    """A raw record that is not a usable CollectorPayload; the payload is the record, base64."""
    failure = {"timestamp": iso_timestamp(), "loader": loader, "message": message}
    return bad_row(COLLECTOR_PAYLOAD_FORMAT_VIOLATION, ENRICH_ARTIFACT, failure,
                   base64.b64encode(raw).decode("ascii"))


def request_context(payload) -> dict:
    """What the collector saw of a request, in the field names Snowplow's bad rows use.

    ``userId`` is the network user id (``networkUserId`` in collector payloads).
    """
    return {
        "timestamp": iso_timestamp(payload.timestamp) if payload.timestamp is not None else None,
        "ipAddress": payload.ip_address,
        "useragent": payload.user_agent,
        "refererUri": payload.referer_uri,
        "headers": list(payload.headers or []),
        "userId": payload.network_user_id,
    }


def collector_payload_json(payload, vendor: str, version: str, querystring) -> dict:
    """A CollectorPayload as the ``payload`` object of adapter and protocol bad rows."""
    context = request_context(payload)
    context["networkUserId"] = context.pop("userId")
    return {
        "vendor": vendor,
        "version": version,
        "querystring": [{"name": name, "value": value} for name, value in querystring],
        "contentType": payload.content_type,
        "body": payload.body,
        "collector": payload.collector or "",
        "encoding": payload.encoding or "UTF-8",
        "hostname": payload.hostname,
        **context,
    }


def adapter_bad_row(schema: str, vendor: str, version: str, messages: list, payload_json: dict) -> bytes:
    """An ``adapter_failures`` or ``tracker_protocol_violations`` bad row."""
    failure = {"timestamp": iso_timestamp(), "vendor": vendor, "version": version, "messages": messages}
    return bad_row(schema, ENRICH_ARTIFACT, failure, payload_json)


GENERIC_ERROR = f"iglu:{BADROWS_VENDOR}/generic_error/jsonschema/1-0-0"


def generic_error(raw: bytes, errors: list[str], artifact: str = ENRICH_ARTIFACT) -> bytes:
    """A ``generic_error`` bad row: something failed that no specific bad row describes.

    The enrich worker writes one when the stage raises on a record (a bug, not
    bad input).  The payload is the raw record, base64, so it can be replayed;
    each error message is cut to 1,024 characters.
    """
    failure = {"timestamp": iso_timestamp(), "errors": [str(e)[:1024] for e in errors] or ["unknown error"]}
    return bad_row(GENERIC_ERROR, artifact, failure, base64.b64encode(bytes(raw)).decode("ascii"))
