"""Snowplow's configurable enrichments, configured with Snowplow's own JSON files.

A team moving from Snowplow points ``--enrichments DIR`` at its
``enrichments/`` folder: every ``*.json`` file in it is one self-describing
enrichment config (``iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1``
...) or a bundle of them (``.../enrichments/jsonschema/1-0-0`` with a list of
configs as its data).  Each config is validated against its schema (shipped in
``schemas/``, or resolved from the user's Iglu repositories) and refused at
start-up with a message naming the file and field; ``enabled: false`` skips it.

The enrichments run in Snowplow's fixed order (:data:`ORDER`), whatever the
order of the files.  One module per enrichment (:data:`MODULES`), imported
only when configured, so an optional dependency is needed only by those who
enable its enrichment.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, Iterable

from processor.enrichments.base import (
    ENRICHMENT_VENDOR,
    ENRICHMENTS_VENDOR,
    ConfigError,
    Deferred,
    Enrichment,
    EnrichmentFailure,
    EventContext,
    LoadContext,
)

__all__ = [
    "ORDER", "AFTER_VALIDATION", "MODULES", "ConfigError", "Deferred", "Enrichment", "EnrichmentFailure", "EventContext", "LoadContext",
    "load_enrichments", "parse_enrichment", "enrichment_class",
]

# Snowplow enrich 3.9.0's execution order (``EnrichmentManager.accState``, the default, non-legacy order):
# IAB sees the IP first; ua_parser, currency conversion, the referer, campaign attribution, cross-navigation,
# the fingerprint, the cookie and header extractors; the IP lookups; weather; YAUAA; the scripts; SQL and API
# requests.  anon_ip and PII pseudonymisation run after all of them and after the derived contexts were
# validated (AFTER_VALIDATION), so every other enrichment, the scripts and the SQL/API requests included,
# sees the full address.  One difference, on purpose: 3.9.0 runs weather before the IP lookups, so its
# weather enrichment never has the coordinates they give and fails every event without them; here the IP
# lookups come first (docs/compatibility.md).
ORDER: tuple[str, ...] = (
    "iab_spiders_and_robots_enrichment",
    "ua_parser_config",
    "currency_conversion_config",
    "referer_parser",
    "campaign_attribution",
    "cross_navigation_config",
    "event_fingerprint_config",
    "cookie_extractor_config",
    "http_header_extractor_config",
    "ip_lookups",
    "weather_enrichment_config",
    "yauaa_enrichment_config",
    "javascript_script_config",
    "python_script_config",
    "sql_query_enrichment_config",
    "api_request_enrichment_config",
    "anon_ip",
    "pii_enrichment_config",
)
#: The enrichments that run once the others succeeded and their entities were validated.
AFTER_VALIDATION = frozenset({"anon_ip", "pii_enrichment_config"})

# config schema name -> module under processor/enrichments/
MODULES: dict[str, str] = {
    "iab_spiders_and_robots_enrichment": "iab",
    "ip_lookups": "ip_lookups",
    "anon_ip": "anon_ip",
    "ua_parser_config": "ua_parser",
    "currency_conversion_config": "currency_conversion",
    "referer_parser": "referer_parser",
    "campaign_attribution": "campaign_attribution",
    "cross_navigation_config": "cross_navigation",
    "event_fingerprint_config": "event_fingerprint",
    "cookie_extractor_config": "cookie_extractor",
    "http_header_extractor_config": "http_header_extractor",
    "weather_enrichment_config": "weather",
    "api_request_enrichment_config": "api_request",
    "sql_query_enrichment_config": "sql_query",
    "javascript_script_config": "javascript_script",
    "python_script_config": "python_script",
    "pii_enrichment_config": "pii",
    "yauaa_enrichment_config": "yauaa",
}

BUNDLE_NAME = "enrichments"


def enrichment_class(name: str) -> type[Enrichment]:
    """The :class:`Enrichment` subclass for a config schema name (imports its module)."""
    module_name = MODULES.get(name)
    if module_name is None:
        raise ConfigError(f"unknown enrichment {name!r} (known: {', '.join(sorted(MODULES))})")
    module = importlib.import_module(f"processor.enrichments.{module_name}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Enrichment) and getattr(value, "name", None) == name:
            return value
    raise ConfigError(f"module processor.enrichments.{module_name} declares no enrichment named {name!r}")


def _split_schema(uri: Any, source: str) -> tuple[str, str, str]:
    from processor.iglu import SchemaKey

    if not isinstance(uri, str):
        raise ConfigError(f"{source}: $.schema: must be an iglu: URI")
    try:
        key = SchemaKey.parse(uri)
    except ValueError as exc:
        raise ConfigError(f"{source}: $.schema: {exc}") from None
    return key.vendor, key.name, str(key.version)


def _validate_config(doc: dict, resolver: Any, source: str) -> None:
    from processor.iglu import IgluFailure, ValidationError

    result = resolver.validate(doc, field="enrichment config")
    if isinstance(result, ValidationError):
        report = result.data_reports[0]
        # networknt's message starts with the JSONPath it is about (``$.parameters.x: is missing ...``)
        message = report.message.replace("$", "$.data", 1) if report.message.startswith("$") else report.message
        raise ConfigError(f"{source}: {message} (schema {doc['schema']})")
    if isinstance(result, IgluFailure):
        raise ConfigError(f"{source}: $.schema: cannot validate against {doc.get('schema')!r}: "
                          f"{json.dumps(result.to_json())[:400]}")


def parse_enrichment(doc: Any, resolver: Any, ctx: LoadContext | None = None) -> Enrichment | None:
    """One self-describing enrichment config -> the enrichment (``None`` when ``enabled`` is false).

    Raises :class:`ConfigError` naming the source and the field for any
    config that cannot be used.
    """
    ctx = ctx or LoadContext()
    source = ctx.source
    if not isinstance(doc, dict) or "schema" not in doc or "data" not in doc:
        raise ConfigError(f"{source}: not a self-describing JSON (needs schema and data)")
    vendor, name, version = _split_schema(doc["schema"], source)
    try:
        cls = enrichment_class(name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: $.schema: {exc}") from None
    if vendor not in cls.vendors:
        raise ConfigError(f"{source}: $.schema: vendor {vendor!r} is not one of {', '.join(cls.vendors)}")
    if not any(_matches(criterion, version) for criterion in cls.criteria):
        raise ConfigError(f"{source}: $.schema: version {version} of {name} is not supported "
                          f"(supported: {', '.join(cls.criteria)})")
    _validate_config(doc, resolver, source)
    data = doc["data"]
    if not data.get("enabled", False):
        return None
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    try:
        enrichment = cls.from_parameters(parameters, dataclasses.replace(ctx, config=data))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    object.__setattr__(enrichment, "schema_key", doc["schema"])  # frozen configs too
    return enrichment


def _matches(criterion: str, version: str) -> bool:
    return all(c in ("*", v) for c, v in zip(criterion.split("-"), version.split("-")))


def _documents(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON: {exc}") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if isinstance(schema, str) and f"/{BUNDLE_NAME}/jsonschema/" in schema:
        items = doc.get("data")
        if not isinstance(items, list):
            raise ConfigError(f"{path}: $.data: a bundle of enrichments holds a list of configs")
        for index, item in enumerate(items):
            yield f"{path}[{index}]", item
    else:
        yield str(path), doc


def load_enrichments(folder: str | Path | None, resolver: Any, *,
                     cache_dir: Path | None = None) -> list[Enrichment]:
    """Every enabled enrichment configured in ``folder``'s ``*.json`` files, in :data:`ORDER`.

    ``None`` or an empty string means no enrichments.  Two configs for the same
    enrichment are refused (Snowplow allows one of each).
    """
    if not folder:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: enrichments folder does not exist")
    found: dict[str, tuple[str, Enrichment]] = {}
    for path in sorted(folder.glob("*.json")):
        for source, doc in _documents(path):
            ctx = LoadContext(base_dir=folder, cache_dir=cache_dir, source=source)
            enrichment = parse_enrichment(doc, resolver, ctx)
            if enrichment is None:
                continue
            if enrichment.name in found:
                raise ConfigError(f"{source}: {enrichment.name} is already configured in {found[enrichment.name][0]}")
            found[enrichment.name] = (source, enrichment)
    return [found[name][1] for name in ORDER if name in found]


__all__ += ["ENRICHMENT_VENDOR", "ENRICHMENTS_VENDOR"]
