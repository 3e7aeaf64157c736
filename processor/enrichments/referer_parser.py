"""Referer parsing (``referer_parser``): ``refr_medium``, ``refr_source`` and ``refr_term``.

What Snowplow does
    Its referer-parser library classifies the event's ``page_referrer``
    against a database of known referers (``referers.json``/``.yml``: medium
    -> source -> ``{"domains": [...], "parameters": [...]}``):

    - only ``http``, ``https`` and ``android-app`` referers with a host are
      classified (scala-referer-parser 1.1.0); others set nothing.  The host
      is compared as java.net.URI gives it, case and all;
    - a referer whose host equals the page's host (``page_urlhost``), or is
      one of ``internalDomains`` (exact hosts, no wildcards), is medium
      ``internal``, with no source or term;
    - otherwise the host (with the path: first the whole path, then its first
      segment, then the host alone) is looked up in the database, dropping
      the leftmost label of the host after each miss (``www.google.co.uk`` ->
      ``google.co.uk`` -> ``co.uk`` -> ``uk``); a hit gives the medium (search,
      social, email, unknown ...) and the source (``Google``); for search
      engines the term is the value of the first query parameter, in the
      referer's query order, that is one of the engine's ``parameters``;
    - an external referer not in the database is medium ``unknown`` with no
      source or term.

What we do
    The same, with the lookup written as dict look-ups precomputed at load
    time (hosts that have path entries are known, so the path look-ups are
    only tried for them).  Config versions:

    - ``1-0-0`` (``internalDomains`` only): the database is the
      ``referers.json`` shipped in the PyPI package ``referer-parser`` (2016,
      Snowplow's own format);
    - ``2-0-0`` (``database`` + ``uri``): the file ``uri/database``; ``uri``
      is a local folder (a path or a ``file:`` URI, relative to the
      enrichments folder) or an ``http(s)`` folder, whose file is downloaded
      once into ``LoadContext.cache_dir`` (a temporary folder when none is
      set) and reused from there (see ``processor.enrichments.files``); JSON
      or YAML, by the file's extension;
    - ``2-0-1`` adds ``referrers``, custom referers that take precedence over
      the database.

Differences from Snowplow
    ``s3://`` and ``gs://`` database URIs are refused at start-up (no cloud
    SDK here); download the file and point ``uri`` at its folder.  Enrich
    6.13's classification of ``utm_source`` values (e.g. ``chatgpt.com``) is
    not done.  In a referer query longer than 8,192 characters the search
    parameters are found by their names as written (see
    :mod:`processor.enrichments.querystrings`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.enrichments.base import ConfigError, Enrichment, EventContext, LoadContext
from processor.enrichments.files import locate_file
from processor.enrichments.querystrings import named_values


def default_database() -> Path:
    """``referers.json`` as shipped in the PyPI package ``referer-parser``."""
    try:
        import referer_parser  # the package only carries the data file we use
    except ImportError:
        raise ConfigError("$.data.parameters: no database configured and the referer-parser package "
                          "(which carries the default referers.json) is not installed") from None
    return Path(referer_parser.__file__).resolve().parent / "data" / "referers.json"


def read_referers(path: Path, field: str = "database") -> dict:
    """A referers file (JSON or YAML by extension): medium -> source -> {domains, parameters}."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yml", ".yaml"):
            import yaml
            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as exc:  # unreadable or malformed: a config error at start-up
        raise ConfigError(f"$.data.parameters.{field}: {path}: not a readable referers file: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"$.data.parameters.{field}: {path}: a referers file maps media to sources")
    return doc


def build_index(*databases: dict, field: str = "database") -> dict[str, tuple[str, str, frozenset]]:
    """``domain[/path]`` -> (medium, source, search parameters); later databases override earlier ones."""
    index: dict[str, tuple[str, str, frozenset]] = {}
    for database in databases:
        for medium, sources in database.items():
            if not isinstance(sources, dict):
                raise ConfigError(f"$.data.parameters.{field}: medium {medium!r} must map sources to domains")
            for source, spec in sources.items():
                if not isinstance(spec, dict) or not isinstance(spec.get("domains"), list):
                    raise ConfigError(f"$.data.parameters.{field}: {medium}/{source}: needs a list of domains")
                parameters = frozenset(spec.get("parameters") or ())
                for domain in spec["domains"]:
                    index[str(domain).lower()] = (str(medium), str(source), parameters)
    return index


@dataclass(frozen=True)
class RefererParser(Enrichment):
    name = "referer_parser"
    criteria = ("1-0-*", "2-0-*")

    internal_domains: frozenset
    index: dict            # "host" or "host/path" -> (medium, source, parameters)
    path_hosts: frozenset  # hosts that have "host/path" entries
    max_labels: int = 8    # labels of the longest host in the index

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "RefererParser":
        database = parameters.get("database")
        if database is None and parameters.get("uri") is None:
            path = default_database()
        else:
            path = locate_file(database, parameters.get("uri"), ctx, temp_cache=True)
        databases = [read_referers(path)]
        if parameters.get("referrers"):
            databases.append(parameters["referrers"])
        index = build_index(*databases)
        path_hosts = frozenset(key.split("/", 1)[0] for key in index if "/" in key)
        internal = frozenset(d.strip() for d in parameters.get("internalDomains") or () if d.strip())
        max_labels = max((key.split("/", 1)[0].count(".") + 1 for key in index), default=1)
        return cls(internal_domains=internal, index=index, path_hosts=path_hosts, max_labels=max_labels)

    def lookup(self, host: str, path: str) -> tuple[str, str, frozenset] | None:
        """The database entry for a referer host and path (subdomains stripped one by one).

        Only the last ``max_labels`` labels can match (no key of the index has
        more), so a host of thousands of labels costs one split, not a
        look-up per label of a string as long as the host.
        """
        index = self.index
        if host.count(".") >= self.max_labels:
            host = host.rsplit(".", self.max_labels)[-self.max_labels:]
            host = ".".join(host)
        while True:
            if host in self.path_hosts and path:
                hit = index.get(host + path)
                if hit is None:
                    first = path.split("/", 2)[1] if path.startswith("/") else ""
                    if first:
                        hit = index.get(host + "/" + first)
                if hit is not None:
                    return hit
            hit = index.get(host)
            if hit is not None:
                return hit
            dot = host.find(".")
            if dot < 0:
                return None
            host = host[dot + 1:]

    def enrich(self, event: Any, ctx: EventContext) -> None:
        host = event.refr_urlhost
        if not host or event.refr_urlscheme not in ("http", "https", "android-app"):
            return
        if host == event.page_urlhost or host in self.internal_domains:
            event.refr_medium = "internal"
            return
        hit = self.lookup(host, event.refr_urlpath or "")
        if hit is None:
            event.refr_medium = "unknown"
            return
        medium, source, parameters = hit
        event.refr_medium = medium
        event.refr_source = source
        query = event.refr_urlquery
        if medium == "search" and query and parameters:
            # the first of the search parameters in the query
            for value in named_values(query, parameters, last=False).values():
                if value:
                    event.refr_term = value
                break
