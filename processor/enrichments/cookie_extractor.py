"""Cookie extractor (``cookie_extractor_config``): named cookies become entities.

What Snowplow does (its docs): the ``Cookie`` header(s) of the request to the
collector are read, and every cookie whose name is in ``cookies`` is attached
to the event as one ``iglu:org.ietf/http_cookie/jsonschema/1-0-0`` entity
``{"name", "value"}`` in ``derived_contexts``.  Only cookies the browser
sends to the collector's domain can be seen (a collector on ``t.acme.com``
sees cookies set for ``acme.com``, not those of ``c.acme.com``).

What we do, as Snowplow's enrich 3.9.0 does: a header line whose name is
exactly ``Cookie`` (the colon right after it; ``cookie:`` is not read) is
parsed as Apache HttpCore's ``BasicHeaderValueParser.parseParameters`` parses
a header value: ``name=value`` pairs separated by ``;``, reading stops after
the first ``,``; names and values trimmed, runs of blanks inside them written
as one space; a value may be double-quoted (``\\`` escapes; quotes dropped); a
pair without ``=`` has a ``null`` value, and an empty name is a name like any
other (``=v`` is the cookie ``""``, and ``;;`` gives two empty-named cookies
with no value).  Names match exactly (case-sensitive, the empty name
included).  A cookie sent twice gives two entities, in the order received.
Values longer than the schema's 4096 characters make the entity invalid and
the event fails, as in Snowplow.

Per event: one pass over the header lines; nothing is parsed when no
``Cookie`` header is present.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processor.enrichments.base import Enrichment, EventContext, LoadContext

HTTP_COOKIE_SCHEMA = "iglu:org.ietf/http_cookie/jsonschema/1-0-0"


_BLANKS = " \t\r\n"


def parse_cookie_header(value: str) -> list[tuple[str, str | None]]:
    """``"a=1; b=\\"2\\"; c"`` -> ``[("a", "1"), ("b", "2"), ("c", None)]``, as HttpCore reads parameters."""
    pairs: list[tuple[str, str | None]] = []
    pos, end = 0, len(value)
    while pos < end and value[pos] in _BLANKS:
        pos += 1
    while pos < end:
        # the name: up to "=", ";" or ","
        words, word = [], []
        while pos < end:
            c = value[pos]
            if c in "=;,":
                break
            if c in _BLANKS:
                if word:
                    words.append("".join(word))
                    word = []
            else:
                word.append(c)
            pos += 1
        if word:
            words.append("".join(word))
        name = " ".join(words)
        if pos >= end:
            pairs.append((name, None))
            break
        delimiter = value[pos]
        pos += 1
        if delimiter != "=":
            pairs.append((name, None))
        else:
            # the value: up to ";" or ",", double-quoted parts unquoted
            out: list[str] = []
            blank = False
            while pos < end:
                c = value[pos]
                if c in ";,":
                    break
                if c in _BLANKS:
                    blank = True
                    pos += 1
                    continue
                if blank and any(out):
                    out.append(" ")
                blank = False
                if c == '"':
                    pos += 1
                    escaped = False
                    while pos < end:
                        c = value[pos]
                        pos += 1
                        if escaped:
                            if c != '"' and c != "\\":
                                out.append("\\")
                            out.append(c)
                            escaped = False
                        elif c == '"':
                            break
                        elif c == "\\":
                            escaped = True
                        elif c != "\r" and c != "\n":
                            out.append(c)
                else:
                    start = pos
                    while pos < end and value[pos] not in ';,"' and value[pos] not in _BLANKS:
                        pos += 1
                    out.append(value[start:pos])
            pairs.append((name, "".join(out)))
            if pos < end:
                pos += 1
        if value[pos - 1] == ",":
            break  # the end of the first element
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
            if not line.startswith("Cookie:"):  # the name as written, case-sensitive
                continue
            for name, value in parse_cookie_header(line[7:]):
                if name in wanted:
                    ctx.derived.append({"schema": HTTP_COOKIE_SCHEMA, "data": {"name": name, "value": value}})
