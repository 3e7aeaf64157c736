"""Cookie extractor (``cookie_extractor_config``): named cookies become entities.

What Snowplow does (its docs): the ``Cookie`` header(s) of the request to the
collector are read, and every cookie whose name is in ``cookies`` is attached
to the event as one ``iglu:org.ietf/http_cookie/jsonschema/1-0-0`` entity
``{"name", "value"}`` in ``derived_contexts``.  Only cookies the browser
sends to the collector's domain can be seen (a collector on ``t.acme.com``
sees cookies set for ``acme.com``, not those of ``c.acme.com``).

What we do: the ``Cookie`` header is found by name case-insensitively (HTTP
header names are), and may appear more than once; its value is split on
``;`` into ``name=value`` pairs (RFC 6265), names and values trimmed, a value
in double quotes unquoted (as the HTTP parser Snowplow relies on does), a pair
without ``=`` kept with a ``null`` value (the schema allows it).  Names
match exactly (case-sensitive, as cookie names are).  A cookie sent twice
gives two entities, in the order received.  Values longer than the schema's
4096 characters make the entity invalid and the event fails, as in Snowplow.

Per event: one pass over the header lines; nothing is parsed when no
``Cookie`` header is present.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processor.enrichments.base import Enrichment, EventContext, LoadContext

HTTP_COOKIE_SCHEMA = "iglu:org.ietf/http_cookie/jsonschema/1-0-0"


def parse_cookie_header(value: str) -> list[tuple[str, str | None]]:
    """``"a=1; b=\\"2\\"; c"`` -> ``[("a", "1"), ("b", "2"), ("c", None)]``."""
    pairs: list[tuple[str, str | None]] = []
    for part in value.split(";"):
        name, sep, val = part.partition("=")
        name = name.strip()
        if not name:
            continue
        if not sep:
            pairs.append((name, None))
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        pairs.append((name, val))
    return pairs


@dataclass(frozen=True)
class CookieExtractor(Enrichment):
    name = "cookie_extractor_config"
    criteria = ("1-0-*",)

    cookies: frozenset[str]

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "CookieExtractor":
        return cls(cookies=frozenset(parameters["cookies"]))

    def enrich(self, event: Any, ctx: EventContext) -> None:
        wanted = self.cookies
        if not wanted:
            return
        for line in (getattr(ctx.payload, "headers", None) or ()):
            # cheap prefix test before splitting: "cookie:" in any case
            if line[:7].lower() != "cookie:":
                continue
            for name, value in parse_cookie_header(line[7:]):
                if name in wanted:
                    ctx.derived.append({"schema": HTTP_COOKIE_SCHEMA, "data": {"name": name, "value": value}})
