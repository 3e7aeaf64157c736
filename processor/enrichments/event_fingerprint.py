"""Event fingerprint (``event_fingerprint_config``): a digest of the tracker parameters.

What Snowplow's enrich 3.9.0 does (``EventFingerprintEnrichment``): every
parameter of the event as the tracker sent it (the query string of a GET, one
event object of a POST body; ``ue_px``/``cx`` still base64 and so on) that has
a value is used, key *and* value, except the names listed in
``excludeParameters``.  The pairs are sorted by parameter name and each is
appended as name, U+001F, value, U+001F (``aid\x1fshop\x1fe\x1fpv\x1f...``);
the digest of that string (UTF-8) is written to ``event_fingerprint`` as
lower-case hex.  A parameter without a value (``None``) is left out.

``hashAlgorithm``: config 1-0-0 knows only ``MD5``; 1-0-1 adds ``SHA1``,
``SHA256``, ``SHA384`` and ``SHA512``.  Nothing is excluded unless the config
says so; Snowplow's example config excludes ``eid``, ``nuid``, ``stm`` and
``cv`` (a retried request has a new ``stm``; ``eid`` is deduplicated on
already).

Here the parameters are ``ctx.params`` (the event's tracker-protocol
parameters after the adapter).  Names are sorted by code point where
Snowplow compares UTF-16 code units, which differ only for names outside the
Basic Multilingual Plane.  A query-string name without ``=`` has no value
(``ext.parse_uri_query``), so it is left out, as Snowplow leaves it out.

Per event: the parameters' order looked up (each set of names is sorted
once), their UTF-8 built in one pass (``ext.separated_pairs``) and one
``hashlib`` digest.  The digest of parameters over :data:`DEFER_CHARS` long
is deferred when nothing after this step reads the event
(``EventContext.defer``): the stage computes it when the event is written, so
an event whose bad row is cut to its first 100 KB before the fingerprint does
not pay for hashing a megabyte (2 ms).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from ext import separated_pairs
from processor.enrichments.base import ConfigError, Deferred, Enrichment, EventContext, LoadContext

# config name -> hashlib constructor
ALGORITHMS: dict[str, Callable[..., Any]] = {
    "MD5": hashlib.md5,
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA384": hashlib.sha384,
    "SHA512": hashlib.sha512,
}


#: config name -> the length of its digest in hex
HEX_LENGTHS = {name: 2 * make().digest_size for name, make in ALGORITHMS.items()}

#: parameters longer than this (name, value and separators; UTF-8 bytes) are hashed when the event is
#: written, if they may be (``EventContext.defer``)
DEFER_CHARS = 100_000

#: after each name and each value (Snowplow's ``UnitSeparator``)
_US = "\x1f"

# (parameter names in the order received, excluded names) -> the names to hash, sorted
_ORDERS: dict[tuple[tuple[str, ...], frozenset[str]], list[str]] = {}


@dataclass(frozen=True)
class EventFingerprint(Enrichment):
    name = "event_fingerprint_config"
    criteria = ("1-0-*",)

    algorithm: str
    exclude: frozenset[str]

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "EventFingerprint":
        algorithm = parameters["hashAlgorithm"]
        if algorithm not in ALGORITHMS:  # the schema already says so; a user's own schema may not
            raise ConfigError(f"$.data.parameters.hashAlgorithm: {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        return cls(algorithm=algorithm, exclude=frozenset(parameters.get("excludeParameters") or ()))

    def fingerprint(self, params: dict[str, Any]) -> str:
        """The hex digest of ``params`` minus the excluded names (sorted ``name US value US`` pairs)."""
        return self._digest(self._text(params))

    def _digest(self, text: bytes | str) -> str:
        # a lone surrogate (a JSON escape such as \ud800 in a tp2 body) is "?", as Java's String.getBytes writes it
        return ALGORITHMS[self.algorithm](text if type(text) is bytes else text.encode("utf-8", "replace")).hexdigest()

    def _text(self, params: dict[str, Any]) -> bytes | str:
        """What is hashed: the UTF-8 of the pairs (``ext.separated_pairs``), or the text when a value is not
        text (None, left out, or a number)."""
        names = tuple(params)
        order = _ORDERS.get((names, self.exclude))
        if order is None:  # the same trackers send the same parameter sets: sort each set once
            if len(_ORDERS) >= 4096:
                _ORDERS.clear()
            order = _ORDERS[(names, self.exclude)] = [k for k in sorted(names) if k not in self.exclude]
        data = separated_pairs(params, order)
        if data is None:
            data = "".join(k + _US + str(params[k]) + _US for k in order if params[k] is not None)
        return data

    def enrich(self, event: Any, ctx: EventContext) -> None:
        text = self._text(ctx.params)
        if ctx.defer and len(text) > DEFER_CHARS:
            ctx.deferred["event_fingerprint"] = Deferred(
                lambda: self._digest(text), HEX_LENGTHS[self.algorithm])
        else:
            event.event_fingerprint = self._digest(text)
