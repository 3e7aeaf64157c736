"""User-agent parsing (``ua_parser_config``): the ``ua_parser_context`` entity.

What Snowplow does
    Parses the event's ``useragent`` with ua-parser (uap-core's
    ``regexes.yaml``) and attaches
    ``iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0``:
    ``useragentFamily/Major/Minor/Patch``, ``osFamily/Major/Minor/Patch/PatchMinor``,
    ``deviceFamily``, and two version strings: ``useragentVersion`` is the
    family then a space and the dotted version parts that exist
    (``"Firefox 106.0"``, ``"Chrome 48.0.2564"``, just ``"Other"`` when none),
    ``osVersion`` likewise with up to four parts (``"Mac OS X 10.15"``).  What
    ua-parser cannot recognise is family ``"Other"`` (browser, OS and device)
    with null version parts.  An event without a user agent (none in the
    request, or an empty ``ua`` parameter, which clears it) gets no entity; an
    empty one (the request's ``User-Agent`` header empty) is parsed, so its
    entity says ``"Other"`` for the families and both version strings.
    Config ``1-0-0`` has no parameters; ``1-0-1`` may name a custom
    ``regexes.yaml`` with ``database`` + ``uri``.

What we do
    The same with ua-parser 1.x: the Rust resolver (``ua-parser-rs``) when it
    is installed, else the pure-Python regex one, over the rules of
    ``ua-parser-builtins`` or the configured file (located like the referer
    parser's database: local folder, ``file:`` or ``http(s)`` downloaded once
    into the cache folder).  Parsed results are kept in an LRU cache keyed by
    the user-agent string (real traffic repeats a few thousand strings), so
    the per-event cost is a cache hit and one dict copy.

Differences from Snowplow
    The builtin rules are those of the installed ``ua-parser-builtins``,
    newer than the ones Snowplow's enrich bundles, so some rare agents are
    named differently; pin the rules with ``database``/``uri`` for an exact
    match.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from processor.enrichments.base import ConfigError, Enrichment, EventContext, LoadContext
from processor.enrichments.files import locate_file

SCHEMA = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0"
CACHE_SIZE = 8192


def _resolver_class():
    """The fastest ua-parser resolver available: Rust (ua-parser-rs), else regex-based."""
    try:
        from ua_parser.regex import Resolver  # needs ua-parser-rs
        return Resolver, "rust"
    except ImportError:
        from ua_parser.basic import Resolver
        return Resolver, "python"


def _version(family: str, parts: tuple) -> str:
    """Snowplow's version string: family, then the dotted parts up to the first missing one."""
    dotted = []
    for part in parts:
        if part is None:
            break
        dotted.append(part)
    return family + " " + ".".join(dotted) if dotted else family


def context_data(result) -> dict:
    """A ua-parser ``Result`` as ``ua_parser_context`` data (Snowplow's defaults for what is unknown)."""
    ua, os_, device = result.user_agent, result.os, result.device
    ua_family = ua.family if ua else "Other"
    ua_parts = (ua.major, ua.minor, ua.patch) if ua else (None, None, None)
    os_family = os_.family if os_ else "Other"
    os_parts = (os_.major, os_.minor, os_.patch, os_.patch_minor) if os_ else (None, None, None, None)
    return {
        "useragentFamily": ua_family,
        "useragentMajor": ua_parts[0],
        "useragentMinor": ua_parts[1],
        "useragentPatch": ua_parts[2],
        "useragentVersion": _version(ua_family, ua_parts),
        "osFamily": os_family,
        "osMajor": os_parts[0],
        "osMinor": os_parts[1],
        "osPatch": os_parts[2],
        "osPatchMinor": os_parts[3],
        "osVersion": _version(os_family, os_parts),
        "deviceFamily": device.family if device else "Other",
    }


@dataclass(frozen=True)
class UaParser(Enrichment):
    name = "ua_parser_config"
    criteria = ("1-0-*",)

    parse: Callable[[str], dict] = field(repr=False)
    backend: str = "rust"

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "UaParser":
        import ua_parser
        from ua_parser.core import Domain
        from ua_parser import loaders

        resolver_class, backend = _resolver_class()
        if parameters.get("database") or parameters.get("uri"):
            path = locate_file(parameters.get("database"), parameters.get("uri"), ctx, temp_cache=True)
            try:
                matchers = loaders.load_yaml(str(path))
            except Exception as exc:
                raise ConfigError(f"$.data.parameters.database: {path}: not a usable regexes.yaml: {exc}") from None
        else:
            try:
                matchers = loaders.load_builtins()
            except Exception as exc:
                raise ConfigError(f"$.data.parameters: no ua-parser rules (install ua-parser-builtins): {exc}") \
                    from None
        try:
            resolver = resolver_class(matchers)
        except Exception as exc:  # a regex the engine cannot compile
            raise ConfigError(f"$.data.parameters.database: rules do not compile: {exc}") from None
        parser = ua_parser.Parser(resolver)
        all_domains = Domain.ALL

        @lru_cache(maxsize=CACHE_SIZE)
        def parse(useragent: str) -> dict:
            return context_data(parser(useragent, all_domains).complete())

        return cls(parse=parse, backend=backend)

    def enrich(self, event: Any, ctx: EventContext) -> None:
        useragent = event.useragent
        if useragent is None:
            # as Snowplow's getUaParser: only a null user agent is skipped; an empty one (a request's empty
            # User-Agent header) is parsed, and ua-parser makes it "Other" everywhere
            return
        # a copy: later enrichments (PII) may rewrite entities in place
        ctx.derived.append({"schema": SCHEMA, "data": dict(self.parse(useragent))})
