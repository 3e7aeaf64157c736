"""Remote adapters: a vendor/version whose webhook is turned into events by an HTTP service you run.

Snowplow's enrich lets a deployment hand a ``/{vendor}/{version}`` path to an
external HTTP service instead of writing an adapter into the pipeline.  As its
3.9.0 ``RemoteAdapter`` does, for each request on that path with a body the
adapter POSTs (``content-type: application/json``, ``accept: */*``)::

    {"contentType":"application/json"|null,
     "queryString":{"name":"value"|null,...},   # a repeated name keeps its last value; Scala Map order
     "headers":["Name: value",...],              # the request's headers as the collector kept them
     "body":"<the request body>"}

and reads the answer's ``events``: a list of objects of string values, each one
event's parameters, used as they are (``e``, ``tv``, ``p``, ``ue_pr`` ... are
the service's to set).  Nothing else in the answer is read (an ``error`` is not).

Everything else is an ``adapter_failures`` bad row with 3.9.0's messages, on the
field ``body``: no body or an empty one (``empty body: not a valid remote
adapter <url> payload``); no answer or a status that is not 2xx (``[REMOTE_ADAPTER]
could not get response from remote adapter <url>: Request failed with status
500``, or the connection's error); an answer that is not JSON (a NotJson
message, ``[REMOTE_ADAPTER] invalid json: ...``); ``events`` missing or not a
list of objects of strings (``[REMOTE_ADAPTER] could not be decoded as a list
of json objects: <circe's message>``, e.g. ``C[A]: DownField(events)``); an
empty list (``[REMOTE_ADAPTER] empty list of events``).

Configuration: :func:`register_remote_adapter` adds one remote adapter to the
registry (replacing any adapter on that vendor/version, built-in or not);
:func:`register_remote_adapters` takes the config's list of
``{"vendor", "version", "url", "timeout_seconds"}`` entries (``timeout`` is
accepted for ``timeout_seconds``; Snowplow's own ``connectionTimeout`` /
``readTimeout`` in milliseconds are accepted too, the larger one used).

The call is a blocking HTTP request from the stage, as in Snowplow's enrich;
keep the timeout short.  Differences from 3.9.0: the text of a connection error
is Python's (``Connection refused``, ``timed out``), not the JVM client's.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from ext import CollectorPayload
from processor.adapters import REGISTRY, Adapted, Adapter
from processor.webhooks._common import circe_json, failed, input_error, json_text, query_map

DEFAULT_TIMEOUT_SECONDS = 5.0
PREFIX = "[REMOTE_ADAPTER]"


def remote_request(payload: CollectorPayload, querystring: list) -> str:
    """The JSON text sent to the remote for one collector payload."""
    return json_text({
        "contentType": payload.content_type,
        "queryString": query_map(querystring),
        "headers": list(payload.headers or []),
        "body": payload.body,
    })


def _events_decoding_failure(doc: Any) -> str | None:
    """circe 0.14.1's message for ``downField("events").as[List[Map[String, String]]]``, or None when it decodes."""
    if not isinstance(doc, dict) or "events" not in doc:
        return "Attempt to decode value on failed cursor: DownField(events)"
    events = doc["events"]
    if not isinstance(events, list):
        return "C[A]: DownField(events)"
    for index, item in enumerate(events):
        history = ["MoveRight"] * index + ["DownArray", "DownField(events)"]
        if not isinstance(item, dict):
            return "[K, V]Map[K, V]: " + ",".join(history)
        for key, value in item.items():
            if not isinstance(value, str):
                return "String: " + ",".join([f"DownField({key})", *history])
    return None


def parse_remote_response(url: str, status: int | None, text: str, error: str | None = None) -> Adapted:
    """The events (or failure) for the remote's answer: its HTTP status and body text, or the connection's error."""
    if error is None and status is not None and not 200 <= status < 300:
        error = f"Request failed with status {status}"
    if error is not None:
        return failed(input_error("body", None, f"{PREFIX} could not get response from remote adapter {url}: {error}"))
    doc, problem = circe_json(text, prefix=f"{PREFIX} ")
    if problem:
        return failed(problem)
    problem = _events_decoding_failure(doc)
    if problem is not None:
        return failed(input_error("body", text, f"{PREFIX} could not be decoded as a list of json objects: {problem}"))
    if not doc["events"]:
        return failed(input_error("body", text, f"{PREFIX} empty list of events"))
    return Adapted(events=[dict(event) for event in doc["events"]])


def make_remote_adapter(url: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Adapter:
    """An adapter function that delegates to the remote service at ``url``."""

    def adapt_remote(payload: CollectorPayload, querystring: list) -> Adapted:
        if not payload.body:
            return failed(input_error("body", None, f"empty body: not a valid remote adapter {url} payload"))
        request = urllib.request.Request(url, data=remote_request(payload, querystring).encode("utf-8"),
                                         method="POST", headers={"Content-Type": "application/json", "Accept": "*/*"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:  # non-2xx
            return parse_remote_response(url, exc.code, "")
        except (OSError, ValueError) as exc:  # timeouts, refused connections, bad URLs
            return parse_remote_response(url, None, "", str(getattr(exc, "reason", exc)))
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
