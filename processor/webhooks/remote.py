"""Remote adapters: a vendor/version whose webhook is turned into events by an HTTP service you run.

Snowplow's enrich lets a deployment hand a ``/{vendor}/{version}`` path to an
external HTTP service instead of writing an adapter into the pipeline.  For
each request on that path the adapter POSTs, as ``application/json``::

    {"contentType": "application/json" | null,
     "queryString": {"name": "value", ...},       # decoded; a repeated name keeps its last value
     "headers": ["Name: value", ...],             # the request's headers as the collector kept them
     "body": "<the request body>"}

and reads the answer:

* ``{"events": [{...tracker-protocol parameters...}, ...]}`` -- each object is
  one event's parameters, used as they are (``e``, ``tv``, ``p``, ``ue_pr``
  ... are the service's to set).  String values are kept; any other value is
  written as its JSON text (so a service may return ``ue_pr`` as an object);
* ``{"error": "..."}`` -- an ``adapter_failures`` bad row carrying that text.

Everything else becomes an ``adapter_failures`` bad row whose message names the
remote (field ``remote``, value = its URL) and says what went wrong: a request
without a body, the service not answering within the timeout or refusing the
connection, a non-2xx status (with the start of its body), an answer that is not
JSON, that has neither ``events`` nor ``error``, an empty or malformed
``events`` list.

Configuration: :func:`register_remote_adapter` adds one remote adapter to the
registry (replacing any adapter on that vendor/version, built-in or not);
:func:`register_remote_adapters` takes the config's list of
``{"vendor", "version", "url", "timeout_seconds"}`` entries (``timeout`` is
accepted for ``timeout_seconds``; Snowplow's own ``connectionTimeout`` /
``readTimeout`` in milliseconds are accepted too, the larger one used).

The call is a blocking HTTP request from the stage, as in Snowplow's enrich;
keep the timeout short.  Differences from Snowplow: the failure texts are ours.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from ext import CollectorPayload
from processor import jsontext
from processor.adapters import REGISTRY, Adapted, Adapter
from processor.webhooks._common import failed, input_error, qs_dict

DEFAULT_TIMEOUT_SECONDS = 5.0
_MAX_ERROR_BODY = 200


def remote_request(payload: CollectorPayload, querystring: list) -> dict:
    """The JSON document sent to the remote for one collector payload."""
    return {
        "contentType": payload.content_type,
        "queryString": qs_dict(querystring),
        "headers": list(payload.headers or []),
        "body": payload.body,
    }


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else jsontext.dumps(value)


def parse_remote_response(url: str, status: int, text: str) -> Adapted:
    """The events (or failure) for the remote's answer: its HTTP status and body text."""
    def fail(expectation: str) -> Adapted:
        return failed(input_error("remote", url, f"remote adapter at {url}: {expectation}"))

    if not 200 <= status < 300:
        return fail(f"answered HTTP {status}: {text[:_MAX_ERROR_BODY]}")
    try:
        doc = jsontext.loads(text)
    except ValueError as exc:
        return fail(f"answer is not JSON ({exc}): {text[:_MAX_ERROR_BODY]}")
    if not isinstance(doc, dict):
        return fail("answer is not a JSON object with events or error")
    if "error" in doc and doc["error"] not in (None, ""):
        return fail(f"error: {_param_value(doc['error'])}")
    events = doc.get("events")
    if not isinstance(events, list):
        return fail("answer has neither an events array nor an error")
    if not events:
        return fail("answered an empty events list")
    out = []
    for i, event in enumerate(events):
        if not isinstance(event, dict) or not event:
            return fail(f"events[{i}] is not an object of tracker parameters")
        out.append({str(k): _param_value(v) for k, v in event.items()})
    return Adapted(events=out)


def make_remote_adapter(url: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Adapter:
    """An adapter function that delegates to the remote service at ``url``."""

    def adapt_remote(payload: CollectorPayload, querystring: list) -> Adapted:
        if not payload.body:
            return failed(input_error("body", None, f"empty body: not a valid payload for the remote adapter at {url}"))
        data = json.dumps(remote_request(payload, querystring)).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:  # non-2xx: still read what it said
            try:
                raw = exc.read()
            except OSError:
                raw = b""
            status = exc.code
        except (OSError, ValueError) as exc:  # timeouts, refused connections, bad URLs
            reason = getattr(exc, "reason", exc)
            kind = "timed out" if "timed out" in str(reason) else "request failed"
            return failed(input_error("remote", url,
                                      f"remote adapter at {url}: {kind} after at most {timeout_seconds:g}s: {reason}"))
        return parse_remote_response(url, status, raw.decode("utf-8", errors="replace"))

    adapt_remote.__name__ = f"adapt_remote_{url}"
    adapt_remote.remote_url = url  # type: ignore[attr-defined]
    adapt_remote.timeout_seconds = timeout_seconds  # type: ignore[attr-defined]
    return adapt_remote


def register_remote_adapter(vendor: str, version: str, url: str,
                            timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Adapter:
    """Serve ``/{vendor}/{version}`` with the remote at ``url``; the adapter registered."""
    if not vendor or not version or "/" in vendor or "/" in version:
        raise ValueError(f"remote adapter needs a vendor and a version without '/': {vendor!r}/{version!r}")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"remote adapter URL must be http(s): {url!r}")
    if not timeout_seconds or timeout_seconds <= 0:
        raise ValueError(f"remote adapter timeout must be positive: {timeout_seconds!r}")
    adapter = make_remote_adapter(url, float(timeout_seconds))
    REGISTRY[(vendor, version)] = adapter
    return adapter


def _timeout(entry: Mapping[str, Any]) -> float:
    for key in ("timeout_seconds", "timeout"):
        if entry.get(key) is not None:
            return float(entry[key])
    millis = [float(entry[k]) for k in ("connectionTimeout", "readTimeout") if entry.get(k) is not None]
    return max(millis) / 1000.0 if millis else DEFAULT_TIMEOUT_SECONDS


def register_remote_adapters(entries: Iterable[Mapping[str, Any]] | None) -> list[tuple[str, str]]:
    """Register every configured remote adapter; their ``(vendor, version)`` keys.

    Each entry is a mapping (or an object with the same attributes) with
    ``vendor``, ``version``, ``url`` and optionally ``timeout_seconds``.
    ``ValueError`` for an entry that lacks one of the three.
    """
    keys = []
    for entry in entries or ():
        if not isinstance(entry, Mapping):
            entry = {k: getattr(entry, k, None) for k in
                     ("vendor", "version", "url", "timeout_seconds", "timeout", "connectionTimeout", "readTimeout")}
        missing = [k for k in ("vendor", "version", "url") if not entry.get(k)]
        if missing:
            raise ValueError(f"remote adapter entry lacks {', '.join(missing)}: {dict(entry)!r}")
        register_remote_adapter(entry["vendor"], entry["version"], entry["url"], _timeout(entry))
        keys.append((entry["vendor"], entry["version"]))
    return keys
