"""IAB spiders and robots (``iab_spiders_and_robots_enrichment``): is the event from a bot?

What Snowplow does
    With the three files of the IAB/ABC International Spiders and Bots List
    (``ipFile``: ``ip_exclude_current_cidr.txt``, ``excludeUseragentFile``:
    ``exclude_current.txt``, ``includeUseragentFile``: ``include_current.txt``,
    each ``{"database", "uri"}``) it checks ``user_ipaddress`` and
    ``useragent`` (before ``anon_ip`` rewrites the IP) and attaches
    ``iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0``
    ``{spiderOrRobot, category, reason, primaryImpact}`` to ``derived_contexts``.
    The checks, first decisive one wins (Snowplow's documentation):

    1. UA contains an ``includeUseragents`` entry (config 1-0-1) -> browser;
    2. UA contains an ``excludeUseragents`` entry -> ``SPIDER_OR_ROBOT``,
       ``FAILED_UA_EXCLUDE``, ``UNKNOWN``;
    3. IP in the IP file -> ``SPIDER_OR_ROBOT``, ``FAILED_IP_EXCLUDE``, ``UNKNOWN``;
    4. no UA -> browser;
    5. UA matches no active entry of the include (valid browsers) file ->
       ``SPIDER_OR_ROBOT``, ``FAILED_UA_INCLUDE``, ``UNKNOWN``;
    6. UA matches an entry of the exclude (robots) file ->
       ``ACTIVE_SPIDER_OR_ROBOT`` (or ``INACTIVE_SPIDER_OR_ROBOT`` once the
       entry's inactive date is before the event's ``derived_tstamp``),
       ``FAILED_UA_EXCLUDE``, the entry's primary impact;
    7. else browser: ``false``, ``BROWSER``, ``PASSED_ALL``, ``NONE``.

    Matching is case-insensitive substring matching (or prefix matching for
    entries flagged "start of string").  The file formats are the IAB/ABC
    list's: ISO-8859-1 text, ``#`` comments, ``|``-separated fields:

    ``include_current.txt``
        ``pattern|active (1/0)|start-of-string (1/0)|inactive date (MM/DD/YYYY)``;
        an inactive entry still counts before its inactive date.
    ``exclude_current.txt``
        ``pattern|active|exception patterns (comma-separated)|(unused flag)|``
        ``primary impact (0 page, 1 ad, 2 page and ad impressions)|start-of-string|inactive date``;
        an inactive entry without a date is ignored; a UA containing one of
        the exception patterns does not match the entry.
    ``ip_exclude_current_cidr.txt``
        one address or CIDR block a line.

    An event whose ``user_ipaddress`` is not an IP address, whose ``useragent``
    is null, empty or blank, or that has no ``derived_tstamp`` gets no entity:
    Snowplow's enrich 3.9.0 skips the enrichment then
    (``EnrichmentManager.getIabContext``), so check 4 never applies there.

snowmelt's open bot list (a documented difference)
    The IAB list is commercial.  When the config names none of the three files
    (our config schemas make them optional; Snowplow's require all three),
    the enrichment uses an open list instead: the ``crawler-user-agents``
    patterns (PyPI package of https://github.com/monperrus/crawler-user-agents,
    MIT), compiled into one regular expression (case-sensitive, as that
    project intends), and the crawler IP ranges in :data:`OPEN_CRAWLER_NETWORKS`
    (published by the search engines).  Results: a matching UA is
    ``SPIDER_OR_ROBOT``/``FAILED_UA_EXCLUDE``/``UNKNOWN``, a matching IP
    ``SPIDER_OR_ROBOT``/``FAILED_IP_EXCLUDE``/``UNKNOWN``; there is no list of
    valid browsers, so no ``FAILED_UA_INCLUDE``.  The custom lists of 1-0-1
    work the same in both modes.  Naming some but not all three files is
    refused.

Other differences
    * ``uri`` as for ``ip_lookups``: local folder, ``file:`` or ``http(s):``
      (downloaded once into the cache folder); no ``s3:``/``gs:``.
    * An exclude entry with an unknown primary impact flag gives ``UNKNOWN``
      (Snowplow's client fails the event).
    * ``a.b.c.d:port`` is checked without the port; an IPv4-mapped IPv6 address
      is checked as IPv4.

Cost: the user-agent result is cached per UA and the IP result per IP (LRU),
so the per-event cost is two cache hits and one small dict.  A UA not seen
before is matched with one RE2 regular expression over all active include
patterns and one over all exclude patterns (the ``google-re2`` package;
Python's ``re`` if it is missing, much slower); only a UA that matches the
exclude expression (a robot) is then matched entry by entry, in file order,
to find its entry (first match wins, as in the IAB's reference client).
"""
from __future__ import annotations

import ipaddress
import re
import time
import warnings
from calendar import timegm
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from processor.enrichments.base import (
    ENRICHMENTS_VENDOR,
    ConfigError,
    Enrichment,
    EventContext,
    LoadContext,
)
from processor.enrichments.files import locate_file

try:  # linear-time, DFA-based: one pass over the UA for any number of patterns
    import re2 as _re2
except ImportError:  # pragma: no cover - depends on the environment
    _re2 = None

ENTITY_SCHEMA = "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0"
CACHE_SIZE = 65_536
FILE_FIELDS = ("ipFile", "excludeUseragentFile", "includeUseragentFile")

#: Crawler IP ranges used by the open bot list, as published by their operators.
#: Googlebot: https://developers.google.com/search/apis/ipranges/googlebot.json
#: (all its IPv4 /27 blocks lie in 66.249.64.0/19, its IPv6 /64s in 2001:4860:4801::/48).
#: Bingbot: https://www.bing.com/toolbox/bingbot.json (the long-standing blocks).
OPEN_CRAWLER_NETWORKS: tuple[str, ...] = (
    "66.249.64.0/19",          # Googlebot
    "2001:4860:4801::/48",     # Googlebot IPv6
    "157.55.39.0/24",          # Bingbot
    "207.46.13.0/24",          # Bingbot
    "40.77.167.0/24",          # Bingbot
    "13.66.139.0/24",          # Bingbot
    "52.167.144.0/24",         # Bingbot
)

# (spiderOrRobot, category, reason, primaryImpact)
_BROWSER = (False, "BROWSER", "PASSED_ALL", "NONE")
_CUSTOM_EXCLUDE = (True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")
_IP_EXCLUDE = (True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")
_UA_INCLUDE = (True, "SPIDER_OR_ROBOT", "FAILED_UA_INCLUDE", "UNKNOWN")
_IMPACTS = {"0": "PAGE_IMPRESSIONS", "1": "AD_IMPRESSIONS", "2": "PAGE_AND_AD_IMPRESSIONS"}

_NEVER = float("inf")


# ---------------------------------------------------------------- IAB file parsing

def _records(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, trimmed fields) of each non-comment line of an IAB list file."""
    with open(path, encoding="iso-8859-1", newline=None) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield number, [part.strip() for part in line.split("|")]


def _flag(fields: list[str], index: int) -> bool:
    return index < len(fields) and fields[index] == "1"


def _date_ms(fields: list[str], index: int) -> float | None:
    """``MM/DD/YYYY`` (midnight UTC) as epoch ms; None when absent or unparseable."""
    if index >= len(fields) or not fields[index]:
        return None
    try:
        month, day, year = (int(p) for p in fields[index].split("/"))
        return timegm((year, month, day, 0, 0, 0)) * 1000.0 if 1 <= month <= 12 and 1 <= day <= 31 else None
    except ValueError:
        return None


#: what Java's ``String.trim`` strips: every character up to U+0020
_JAVA_TRIM = "".join(map(chr, range(0x21)))


@dataclass(frozen=True)
class _Pattern:
    text: str                 # lower-cased
    start_only: bool          # match at the start of the UA only

    def found_in(self, ua_lower: str) -> bool:
        return ua_lower.startswith(self.text) if self.start_only else self.text in ua_lower


@dataclass(frozen=True)
class _IncludeEntry:
    pattern: _Pattern
    always: bool              # active
    until_ms: float | None    # inactive date: still a browser before it


@dataclass(frozen=True)
class _ExcludeEntry:
    pattern: _Pattern
    exceptions: tuple[str, ...]
    impact: str
    until_ms: float | None    # active robot before this date, inactive after


def parse_include_file(path: Path) -> tuple[_IncludeEntry, ...]:
    entries = []
    for _, f in _records(path):
        if f[0]:
            entries.append(_IncludeEntry(_Pattern(f[0].lower(), _flag(f, 2)), _flag(f, 1), _date_ms(f, 3)))
    return tuple(entries)


def parse_exclude_file(path: Path) -> tuple[_ExcludeEntry, ...]:
    entries = []
    for _, f in _records(path):
        if not f[0]:
            continue
        until = _date_ms(f, 6)
        if not _flag(f, 1) and until is None:
            continue  # inactive and undated: never matches
        exceptions = tuple(p.strip().lower() for p in (f[2] if len(f) > 2 else "").split(",") if p.strip())
        impact = _IMPACTS.get(f[4] if len(f) > 4 else "", "UNKNOWN")
        entries.append(_ExcludeEntry(_Pattern(f[0].lower(), _flag(f, 5)), exceptions, impact, until))
    return tuple(entries)


class IpSet:
    """Addresses and CIDR blocks; membership is one set look-up per distinct prefix length."""

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]):
        # version -> ((prefixlen, shift, {network int >> shift}), ...)
        by_len: dict[tuple[int, int], set[int]] = {}
        for net in networks:
            shift = net.max_prefixlen - net.prefixlen
            by_len.setdefault((net.version, net.prefixlen), set()).add(int(net.network_address) >> shift)
        self._tables: dict[int, tuple[tuple[int, frozenset[int]], ...]] = {}
        for (version, prefixlen), values in sorted(by_len.items()):
            bits = 32 if version == 4 else 128
            self._tables[version] = self._tables.get(version, ()) + ((bits - prefixlen, frozenset(values)),)

    def __contains__(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        value = int(address)
        return any((value >> shift) in values for shift, values in self._tables.get(address.version, ()))

    def __bool__(self) -> bool:
        return bool(self._tables)


def parse_ip_file(path: Path, field_path: str) -> IpSet:
    networks = []
    for number, f in _records(path):
        try:
            networks.append(ipaddress.ip_network(f[0], strict=False))
        except ValueError:
            raise ConfigError(f"{field_path}: {str(path)!r} line {number}: {f[0]!r} is not an IP address "
                              "or CIDR block") from None
    return IpSet(networks)


def parse_address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in a ``user_ipaddress`` value (port and brackets removed); None if it is none."""
    if not ip:
        return None
    ip = ip.strip()
    if ip.startswith("["):
        ip = ip[1:].split("]", 1)[0]
    elif ip.count(":") == 1:
        ip = ip.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# ---------------------------------------------------------------- pattern prefilter

def _compile_any(sources: list[str], ignore_case: bool = False):
    """One regex that matches when any of ``sources`` (regex texts) matches, or None for none."""
    if not sources:
        return None
    joined = "|".join(f"(?:{s})" for s in sources)
    if _re2 is not None:
        options = _re2.Options()
        options.max_mem = 256 << 20
        options.case_sensitive = not ignore_case
        return _re2.compile(joined, options)
    warnings.warn("google-re2 is not installed: the IAB enrichment falls back to Python's re (much slower)",
                  RuntimeWarning, stacklevel=2)
    return re.compile(joined, re.IGNORECASE if ignore_case else 0)


def _literal_sources(patterns: Iterable[_Pattern]) -> list[str]:
    escape = _re2.escape if _re2 is not None else re.escape
    return [("^" if p.start_only else "") + escape(p.text) for p in patterns]


# ---------------------------------------------------------------- the enrichment

@dataclass(frozen=True)
class IabSpidersAndRobots(Enrichment):
    name = "iab_spiders_and_robots_enrichment"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*",)

    open_list: bool
    ip_set: IpSet
    include: tuple[_IncludeEntry, ...] = ()
    exclude: tuple[_ExcludeEntry, ...] = ()
    custom_include: tuple[str, ...] = ()
    custom_exclude: tuple[str, ...] = ()
    cache_size: int = CACHE_SIZE
    _rx: dict = field(init=False, repr=False, compare=False)
    _ua_result: Any = field(init=False, repr=False, compare=False)
    _ip_listed: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rx: dict[str, Any] = {}
        if self.open_list:
            from crawleruseragents import CRAWLER_USER_AGENTS_DATA

            rx["crawlers"] = _compile_any([item["pattern"] for item in CRAWLER_USER_AGENTS_DATA])
        else:
            # active include entries decide alone; dated inactive ones are checked one by one (few)
            rx["include"] = _compile_any(_literal_sources(e.pattern for e in self.include if e.always))
            rx["include_dated"] = tuple(e for e in self.include if not e.always and e.until_ms is not None)
            rx["exclude"] = _compile_any(_literal_sources(e.pattern for e in self.exclude))
        object.__setattr__(self, "_rx", rx)
        object.__setattr__(self, "_ua_result", lru_cache(maxsize=self.cache_size)(self._classify_ua))
        object.__setattr__(self, "_ip_listed", lru_cache(maxsize=self.cache_size)(self._classify_ip))

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> IabSpidersAndRobots:
        custom_include = tuple(s.lower() for s in parameters.get("includeUseragents", ()) if s)
        custom_exclude = tuple(s.lower() for s in parameters.get("excludeUseragents", ()) if s)
        given = [name for name in FILE_FIELDS if parameters.get(name) is not None]
        if not given:
            ip_set = IpSet(ipaddress.ip_network(n) for n in OPEN_CRAWLER_NETWORKS)
            return cls(open_list=True, ip_set=ip_set, custom_include=custom_include, custom_exclude=custom_exclude)
        missing = [name for name in FILE_FIELDS if name not in given]
        if missing:
            raise ConfigError(f"$.data.parameters.{missing[0]}: the IAB list needs all three files "
                              f"({', '.join(FILE_FIELDS)}), or none of them for snowmelt's open bot list")
        paths = {name: locate_file(parameters[name].get("database"), parameters[name].get("uri"), ctx,
                                  f"$.data.parameters.{name}") for name in FILE_FIELDS}
        return cls(open_list=False,
                   ip_set=parse_ip_file(paths["ipFile"], "$.data.parameters.ipFile"),
                   include=parse_include_file(paths["includeUseragentFile"]),
                   exclude=parse_exclude_file(paths["excludeUseragentFile"]),
                   custom_include=custom_include, custom_exclude=custom_exclude)

    # ---- classification (date-independent parts cached)

    def _classify_ip(self, ip: str) -> bool | None:
        """True/False: listed or not; None: not an IP address (no entity)."""
        address = parse_address(ip)
        if address is None:
            return None
        return address in self.ip_set

    def _classify_ua(self, ua: str) -> tuple:
        """What the UA alone decides, as ``(kind, ...)``:

        ``("custom_include",)``, ``("custom_exclude",)``, ``("open_robot",)``,
        ``("include", always, until_ms, exclude_entry_or_None)`` or ``("none",)``.
        """
        lower = ua.lower()
        if any(s in lower for s in self.custom_include):
            return ("custom_include",)
        if any(s in lower for s in self.custom_exclude):
            return ("custom_exclude",)
        rx = self._rx
        if self.open_list:
            crawlers = rx["crawlers"]
            return ("open_robot",) if crawlers is not None and crawlers.search(ua) else ("none",)
        include_rx = rx["include"]
        always = include_rx is not None and include_rx.search(lower) is not None
        until = None
        if not always:
            for entry in rx["include_dated"]:
                if entry.pattern.found_in(lower) and (until is None or entry.until_ms > until):
                    until = entry.until_ms
        robot = None
        exclude_rx = rx["exclude"]
        if exclude_rx is not None and exclude_rx.search(lower):
            for entry in self.exclude:
                if entry.pattern.found_in(lower) and not any(e in lower for e in entry.exceptions):
                    robot = entry
                    break
        return ("include", always, until, robot)

    def check(self, ua: str | None, ip: str | None, at_ms: float) -> tuple | None:
        """``(spiderOrRobot, category, reason, primaryImpact)`` for one event, or None (no valid IP)."""
        listed = self._ip_listed(ip) if ip else None
        if listed is None:
            return None
        ua_result = self._ua_result(ua) if ua else None
        if ua_result is not None:
            kind = ua_result[0]
            if kind == "custom_include":
                return _BROWSER
            if kind == "custom_exclude":
                return _CUSTOM_EXCLUDE
        if listed:
            return _IP_EXCLUDE
        if ua_result is None:
            return _BROWSER
        kind = ua_result[0]
        if kind == "open_robot":
            return _CUSTOM_EXCLUDE
        if kind == "none":
            return _BROWSER
        _, always, until, robot = ua_result
        if not (always or (until is not None and at_ms < until)):
            return _UA_INCLUDE
        if robot is None:
            return _BROWSER
        active = robot.until_ms is None or at_ms < robot.until_ms
        return (True, "ACTIVE_SPIDER_OR_ROBOT" if active else "INACTIVE_SPIDER_OR_ROBOT",
                "FAILED_UA_EXCLUDE", robot.impact)

    def enrich(self, event: Any, ctx: EventContext) -> None:
        at = event.derived_tstamp
        if at is None or event.useragent is None or not event.useragent.strip(_JAVA_TRIM):
            # as Snowplow's getIabContext: no user agent (or only blanks, String.trim) or no derived timestamp,
            # no entity
            return
        if not isinstance(at, (int, float)):
            at = at.timestamp() * 1000 if hasattr(at, "timestamp") else time.time() * 1000
        result = self.check(event.useragent, event.user_ipaddress, at)
        if result is not None:
            ctx.derived.append({"schema": ENTITY_SCHEMA, "data": {
                "spiderOrRobot": result[0], "category": result[1], "reason": result[2], "primaryImpact": result[3]}})
