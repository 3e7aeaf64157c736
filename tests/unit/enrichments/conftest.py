"""Fixtures for the enrichment tests: configs in Snowplow's format, events, payloads."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ext import CollectorPayload, encode_collector_payload
from processor.enriched import EnrichedEvent
from processor.enrichments import EventContext, LoadContext, parse_enrichment
from processor.iglu import Resolver


@pytest.fixture(scope="session")
def resolver() -> Resolver:
    """The shipped schemas only: config and entity schemas must all be in ``schemas/``."""
    return Resolver([], include_builtin=True)


def config_doc(name: str, version: str, parameters: Any = None, *, enabled: bool = True,
               vendor: str = "com.snowplowanalytics.snowplow") -> dict:
    """One enrichment config as Snowplow's ``enrichments/*.json`` files hold it."""
    data: dict[str, Any] = {"name": name, "vendor": vendor, "enabled": enabled}
    if parameters is not None:
        data["parameters"] = parameters
    return {"schema": f"iglu:{vendor}/{name}/jsonschema/{version}", "data": data}


@pytest.fixture
def load(resolver, tmp_path):
    """``load(doc)`` -> the enrichment, with relative paths resolved against ``tmp_path``;
    closed after the test (an unclosed V8 isolate can hang the interpreter's exit)."""
    loaded = []

    def _load(doc: dict, base_dir: Path | None = None):
        enrichment = parse_enrichment(doc, resolver, LoadContext(base_dir=base_dir or tmp_path, source="test.json"))
        if enrichment is not None:
            loaded.append(enrichment)
        return enrichment
    yield _load
    for enrichment in loaded:
        enrichment.close()


def js_config(source: str, version: str = "1-0-0", config: dict | None = None, **extra) -> dict:
    """A ``javascript_script_config`` whose script is ``source``."""
    parameters = {"script": b64(source), **extra}
    if config is not None:
        parameters["config"] = config
    return config_doc("javascript_script_config", version, parameters)


def b64(source: str) -> str:
    return base64.b64encode(source.encode("utf-8")).decode("ascii")


def looping_script(busy_ms: int) -> str:
    """A ``process(event)`` that keeps the CPU busy ``busy_ms`` per event, then loops for good on app_id "loop"."""
    return """function process(event) {
      var until = Date.now() + %d;
      while (Date.now() < until) {}
      if (event.getApp_id() === "loop") { while (true) {} }
      return [];
    }""" % busy_ms


def make_payload(**fields: Any) -> CollectorPayload:
    defaults = dict(schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
                    ip_address="203.0.113.9", timestamp=1_764_288_000_000, encoding="UTF-8",
                    collector="snowmelt-test", path="/com.snowplowanalytics.snowplow/tp2")
    defaults.update(fields)
    return CollectorPayload(**defaults)


def raw_record(**fields: Any) -> bytes:
    """A raw Thrift record as the collector writes it: :func:`make_payload` of a GET ``/i``
    collected at 1_764_288_000_123, with ``fields`` (``querystring``, ``headers`` ...) on top."""
    return encode_collector_payload(make_payload(**{"timestamp": 1_764_288_000_123, "path": "/i", **fields}))


def run(enrichment, event: EnrichedEvent | None = None, payload: CollectorPayload | None = None,
        params: dict[str, str] | None = None) -> tuple[EnrichedEvent, EventContext]:
    """Run one enrichment on one event; returns the event and its context (``ctx.derived``...)."""
    event = event if event is not None else EnrichedEvent()
    ctx = EventContext(payload if payload is not None else make_payload(), params or {})
    enrichment.enrich(event, ctx)
    return event, ctx


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path
