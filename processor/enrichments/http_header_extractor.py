"""HTTP header extractor (``http_header_extractor_config``): matching headers become entities.

What Snowplow does (its docs): every header of the request to the collector
whose *name* matches the regular expression ``headersPattern`` is attached to
the event as one ``iglu:org.ietf/http_header/jsonschema/1-0-0`` entity
``{"name", "value"}`` in ``derived_contexts``; ``".*"`` attaches them all,
``"Host"`` only the host.  The pattern must match the whole name (Java's
``String.matches``), case-sensitively: ``"Host"`` does not take ``X-Host``
nor ``host``; write ``(?i)host`` for any case.

What we do: the same, with Python's ``re.fullmatch`` (the syntax common to
Java and Python regexes behaves the same; Java-only constructs such as
``\\p{Alpha}`` classes do not compile and are refused at start-up with a
:class:`ConfigError` naming ``headersPattern``).  Names are as the collector recorded them, values
trimmed, headers in the order received, a header sent twice gives two
entities.  A value longer than the schema's 4096 characters fails the event,
as in Snowplow.

Per event: one pass over the header lines; whether a name matches is cached
(header names repeat from event to event).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from processor.enrichments.base import ConfigError, Enrichment, ENRICHMENTS_VENDOR, EventContext, LoadContext

HTTP_HEADER_SCHEMA = "iglu:org.ietf/http_header/jsonschema/1-0-0"
_CACHE_LIMIT = 4096  # distinct header names remembered; past that, matched each time


@dataclass(frozen=True)
class HttpHeaderExtractor(Enrichment):
    name = "http_header_extractor_config"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*",)

    pattern: re.Pattern
    _matches: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "HttpHeaderExtractor":
        source = parameters["headersPattern"]
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise ConfigError(f"$.data.parameters.headersPattern: {source!r} is not a valid regular expression: "
                              f"{exc}") from None
        return cls(pattern=pattern)

    def matches(self, header_name: str) -> bool:
        cache = self._matches
        hit = cache.get(header_name)
        if hit is None:
            hit = self.pattern.fullmatch(header_name) is not None
            if len(cache) < _CACHE_LIMIT:
                cache[header_name] = hit
        return hit

    def enrich(self, event: Any, ctx: EventContext) -> None:
        derived = ctx.derived
        for name, value in ctx.headers:
            if self.matches(name):
                derived.append({"schema": HTTP_HEADER_SCHEMA, "data": {"name": name, "value": value}})
