"""Cross-navigation (``cross_navigation_config``): the ``_sp`` parameter of ``page_url``.

Trackers decorate links to other domains/apps with ``_sp`` in the query.

What Snowplow does
    Always, with or without this enrichment, the short format
    ``_sp={domainUserId}.{timestamp}`` fills ``refr_domain_userid`` and
    ``refr_dvce_tstamp`` (epoch milliseconds) -- :func:`set_cross_domain` is
    that part (3.9.0's ``getCrossDomain``), for the stage to call.  With the enrichment enabled, the extended
    format ``_sp={domainUserId}.{timestamp}.{sessionId}.{subjectUserId}.{sourceId}.{sourcePlatform}.{reason}``
    (trailing fields may be missing, any but the first two may be empty)
    becomes a ``com.snowplowanalytics.snowplow/cross_navigation/jsonschema/1-0-0``
    entity: ``domain_user_id``, ``timestamp`` (ISO 8601 UTC), ``session_id``,
    ``user_id``, ``source_id``, ``source_platform``, ``reason``; the
    tracker base64url-encodes ``subjectUserId``, ``sourceId`` and ``reason``
    (they may hold dots), so those are decoded.  Empty fields are null.  The
    entity is validated with the others: a session id that is not a UUID or
    an unknown platform fails the event.

What we do
    The same.  A timestamp that is not epoch milliseconds, or a field that
    is not base64url/UTF-8, is an enrichment failure naming ``_sp``.  The
    enrichment also sets the two atomic fields itself, so that it is
    complete without the stage's always-on part, with the same function.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import ext
from processor.enrichments.base import ENRICHMENTS_VENDOR, Enrichment, EnrichmentFailure, EventContext, LoadContext
from processor.enrichments.querystrings import LONG_QUERY, named_values

SCHEMA = "iglu:com.snowplowanalytics.snowplow/cross_navigation/jsonschema/1-0-0"
PARAMETER = "_sp"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_sp(value: str) -> tuple[str | None, int | None]:
    """The short format: ``(refr_domain_userid, refr_dvce_tstamp)`` from an ``_sp`` value.

    ``"<duid>.<ms>"`` (anything after a further dot is ignored).  Empty parts
    are ``None``.  Raises :class:`ValueError` when the timestamp is not
    epoch milliseconds.
    """
    parts = value.split(".", 2)
    duid = parts[0] or None
    tstamp = None
    if len(parts) > 1 and parts[1]:
        text = parts[1]
        if not text.isdigit() or not text.isascii() or len(text) > 15:
            raise ValueError(f"timestamp {text!r} is not epoch milliseconds")
        tstamp = int(text)
    return duid, tstamp


_SP_DTM = {"sp_dtm": (ext.PARAM_TSTAMP, "refr_dvce_tstamp", None)}  #: the timestamp read as ``dtm``


def set_cross_domain(value: str, event) -> dict | None:
    """``refr_domain_userid`` and ``refr_dvce_tstamp`` from the page URL's ``_sp`` value (``<duid>.<ms>``), as
    Snowplow's enrich 3.9.0 sets them (``PageEnrichments.parseCrossDomain``, a step every event runs); the
    ``InputData`` message when the timestamp is not one (field ``sp_dtm``), and then neither is set.

    The value is split on dots as Java's ``String.split`` splits (trailing empty parts dropped); the user id is
    made TSV-safe (empty is none); the timestamp is read as the ``dtm`` parameter is."""
    parts = value.split(".")
    while parts and not parts[-1]:
        parts.pop()
    if not parts:  # only dots: 3.9.0 fails the whole event there (an index out of bounds), this sets nothing
        return None
    duid = ext.tsv_safe(parts[0]) or None
    if len(parts) > 1:
        refused = ext.map_params({"sp_dtm": parts[1]}, event, _SP_DTM)
        if refused:
            [(name, text, expectation)] = refused
            return {"field": name, "value": text, "expectation": expectation}
    event.refr_domain_userid = duid
    return None


def sp_from_query(query: str | None) -> str | None:
    """The ``_sp`` value of a query string, if any (the last one when repeated), found by its decoded name as
    Snowplow finds it (``%5Fsp`` is ``_sp``).  A query without ``_sp`` or any ``%`` holds none, and is not parsed."""
    if not query or (len(query) <= LONG_QUERY and PARAMETER not in query and "%" not in query):
        return None  # (a long query: one pass anyway)
    return named_values(query, (PARAMETER,)).get(PARAMETER) or None


def iso_millis(ms: int) -> str:
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def _decoded(text: str) -> str:
    return ext.decode_base64url(text).decode("utf-8")


def parse_sp_extended(value: str) -> dict | None:
    """The extended format as ``cross_navigation`` data (``None`` without a domain user id or timestamp).

    Raises :class:`ValueError` for a bad timestamp or a field that is not
    base64url-encoded UTF-8.
    """
    parts = value.split(".")
    duid, tstamp = parse_sp(value)
    if duid is None or tstamp is None:
        return None
    parts += [""] * (7 - len(parts))
    session, user, source, platform, reason = parts[2:7]
    try:
        return {
            "domain_user_id": duid,
            "timestamp": iso_millis(tstamp),
            "session_id": session or None,
            "user_id": _decoded(user) if user else None,
            "source_id": _decoded(source) if source else None,
            "source_platform": platform or None,
            "reason": _decoded(reason) if reason else None,
        }
    except (ValueError, UnicodeDecodeError) as exc:  # Base64Error is a ValueError
        raise ValueError(f"a field is not base64url-encoded UTF-8: {exc}") from None


@dataclass(frozen=True)
class CrossNavigation(Enrichment):
    name = "cross_navigation_config"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*",)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "CrossNavigation":
        return cls()

    def enrich(self, event: Any, ctx: EventContext) -> None:
        value = sp_from_query(event.page_urlquery)
        if value is None:
            return
        try:
            data = parse_sp_extended(value)
        except ValueError as exc:
            raise EnrichmentFailure.input(PARAMETER, value, f"{{domainUserId}}.{{timestamp}}[...]: {exc}") from None
        set_cross_domain(value, event)
        if data is not None:
            ctx.derived.append({"schema": SCHEMA, "data": data})
