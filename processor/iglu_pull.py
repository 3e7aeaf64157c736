"""Pull schemas from an Iglu registry into the local schema cache (``snowmelt schemas pull``).

The shipped ``schemas`` package covers what the official trackers and the
supported webhooks send.  Anything else (a team's own schemas, a vendor's that
we do not ship) is looked up over HTTP at run time, which fails offline.  This
module copies such schemas, while online, into a folder laid out like an
embedded registry (``vendor/name/format/M-R-A``); the resolver reads that folder
after the shipped schemas and before any HTTP registry
(:class:`processor.iglu.Resolver`, ``schema_cache``), so they validate with the
network gone.

A target names what to pull:

* ``iglu:com.acme/event/jsonschema/1-0-2`` -- that one schema;
* ``iglu:com.acme/event/jsonschema/1-*-*`` (or ``com.acme/event``, format
  ``jsonschema``) -- every version of it;
* ``com.acme`` -- every schema of the vendor.

Two registry layouts are spoken: an Iglu Server (its API lists schemas:
``GET /api/schemas/{vendor}[/{name}[/{format}]]``) and a static registry such as
Iglu Central (only ``GET /schemas/{vendor}/{name}/{format}/{version}``).  For a
static registry the versions of a schema are found by asking for them in
SchemaVer order (``1-0-0``, ``1-0-1``, ... ``1-1-0``, ... ``2-0-0``) until one
is missing; a whole vendor cannot be listed there, so it has to be named schema
by schema.

Each schema fetched must be a JSON object whose ``self`` names the key it was
fetched for; it is written atomically (a temporary file renamed), so a resolver
reading the cache meanwhile never sees half a file.
"""
from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from processor.iglu import IGLU_CENTRAL_URI, IgluParseError, SchemaCriterion, SchemaKey, SchemaVer

__all__ = ["PullError", "PullReport", "parse_target", "pull"]

#: Versions asked for at most per schema on a static registry (a guard against a server that answers everything).
MAX_PROBED_VERSIONS = 200


class PullError(Exception):
    """A target or a registry answer that cannot be used; the message says which."""


@dataclass
class PullReport:
    written: list[SchemaKey] = field(default_factory=list)    # new or changed in the cache
    unchanged: list[SchemaKey] = field(default_factory=list)  # already there, byte for byte
    errors: list[str] = field(default_factory=list)


def parse_target(text: str) -> SchemaKey | SchemaCriterion | str:
    """A key, a criterion, or a vendor name (``str``); :class:`PullError` for anything else."""
    body = text.removeprefix("iglu:")
    parts = body.split("/")
    if len(parts) == 1 and parts[0] and all(c.isalnum() or c in "._-" for c in parts[0]):
        return parts[0]
    if len(parts) == 2:
        parts += ["jsonschema", "*-*-*"]
    elif len(parts) == 3:
        parts.append("*-*-*")
    candidate = "iglu:" + "/".join(parts)
    try:
        return SchemaKey.parse(candidate)
    except IgluParseError:
        pass
    try:
        return SchemaCriterion.parse(candidate)
    except IgluParseError:
        raise PullError(f"{text!r} is not a vendor, vendor/name, iglu:vendor/name/format/M-R-A "
                        "or a criterion such as iglu:vendor/name/jsonschema/1-*-*") from None


class _Registry:
    def __init__(self, uri: str, apikey: str | None, timeout: float):
        self.uri = uri.rstrip("/")
        self.apikey = apikey
        self.timeout = timeout

    def _get(self, url: str) -> bytes | None:
        """The body of a 200; ``None`` for a 404; :class:`PullError` for anything else."""
        headers = {"Accept": "application/json"}
        if self.apikey:
            headers["apikey"] = self.apikey
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 404:
                return None
            raise PullError(f"HTTP {e.code} {e.reason} from {url}") from None
        except (urllib.error.URLError, OSError) as e:
            raise PullError(f"cannot reach {url}: {getattr(e, 'reason', e)}") from None

    def schema(self, key: SchemaKey) -> dict | None:
        url = f"{self.uri}/schemas/{key.path}"
        body = self._get(url)
        if body is None:
            return None
        try:
            schema = json.loads(body)
        except ValueError as e:
            raise PullError(f"{url} is not JSON: {e}") from None
        if not isinstance(schema, dict):
            raise PullError(f"{url} is not a JSON object")
        try:
            self_key = SchemaKey.from_self(schema.get("self"))
        except IgluParseError as e:
            raise PullError(f"{url}: not a self-describing schema: {e}") from None
        if self_key != key:
            raise PullError(f"{url} describes itself as {self_key.uri}, not {key.uri}")
        return schema

    def listing(self, *parts: str) -> list[SchemaKey] | None:
        """The keys an Iglu Server lists under ``/api/schemas/...``; ``None`` when this is no Iglu Server."""
        path = "/".join(urllib.parse.quote(p, safe="") for p in parts)
        url = f"{self.uri}/api/schemas/{path}?repr=Uri"
        try:
            body = self._get(url)
        except PullError:
            return None
        if body is None:
            return None
        try:
            items = json.loads(body)
        except ValueError:
            return None  # a static site answering with a page
        if not isinstance(items, list):
            return None
        keys = []
        for item in items:
            try:
                if isinstance(item, str):
                    keys.append(SchemaKey.parse(item))
                elif isinstance(item, dict):  # repr=Canonical/Meta: the schema or {self...}
                    block = item.get("self") or (item.get("schema") or {}).get("self")
                    keys.append(SchemaKey.from_self(block))
            except (IgluParseError, AttributeError):
                continue
        return keys

    def probe_versions(self, criterion: SchemaCriterion) -> list[tuple[SchemaKey, dict]]:
        """Every version of ``criterion``'s schema found by asking in SchemaVer order (static registries)."""
        found: list[tuple[SchemaKey, dict]] = []
        asked = 0
        model = criterion.model or 1
        while asked < MAX_PROBED_VERSIONS:
            revision = 0
            while asked < MAX_PROBED_VERSIONS:
                addition = 0
                while asked < MAX_PROBED_VERSIONS:
                    key = SchemaKey(criterion.vendor, criterion.name, criterion.format,
                                    SchemaVer(model, revision, addition))
                    asked += 1
                    schema = self.schema(key)
                    if schema is None:
                        break
                    if criterion.matches(key):
                        found.append((key, schema))
                    addition += 1
                if addition == 0:
                    break  # M-R-0 missing: no later revision in this model
                revision += 1
            if revision == 0 or criterion.model is not None:
                break  # M-0-0 missing: no later model
            model += 1
        return found


def _write(cache: Path, key: SchemaKey, schema: dict, report: PullReport) -> None:
    path = cache.joinpath(key.vendor, key.name, key.format, str(key.version))
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            report.unchanged.append(key)
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    report.written.append(key)


def pull(targets: list[str], cache: str | Path, repo: str = IGLU_CENTRAL_URI, apikey: str | None = None,
         timeout: float = 10.0) -> PullReport:
    """Copy the schemas ``targets`` name from the registry at ``repo`` into the folder ``cache``.

    A target that finds nothing, or a registry answer that cannot be used, is
    an entry of ``report.errors``; the other targets are still pulled.
    Raises :class:`PullError` for a target that does not parse (before any
    request is made).
    """
    parsed = [(t, parse_target(t)) for t in targets]
    cache = Path(cache)
    registry = _Registry(repo, apikey, timeout)
    report = PullReport()
    for text, target in parsed:
        try:
            if isinstance(target, SchemaKey):
                schema = registry.schema(target)
                if schema is None:
                    report.errors.append(f"{target.uri}: not in {registry.uri}")
                else:
                    _write(cache, target, schema, report)
                continue
            if isinstance(target, str):
                listed = registry.listing(target)
                if listed is None:
                    report.errors.append(f"{text}: {registry.uri} cannot list a vendor's schemas (it is not an "
                                         "Iglu Server); name them: vendor/name or iglu:vendor/name/format/M-R-A")
                    continue
                keys = [k for k in listed if k.vendor == target]
            else:
                listed = registry.listing(target.vendor, target.name, target.format)
                if listed is None:  # a static registry: ask for the versions in order
                    pairs = registry.probe_versions(target)
                    if not pairs:
                        report.errors.append(f"{text}: no version of {target} in {registry.uri}")
                    for key, schema in pairs:
                        _write(cache, key, schema, report)
                    continue
                keys = [k for k in listed if target.matches(k)]
            if not keys:
                report.errors.append(f"{text}: nothing in {registry.uri} matches")
            for key in sorted(keys, key=lambda k: (k.name, k.format, k.version)):
                schema = registry.schema(key)
                if schema is None:
                    report.errors.append(f"{key.uri}: listed by {registry.uri} but not served")
                else:
                    _write(cache, key, schema, report)
        except PullError as e:
            report.errors.append(f"{text}: {e}")
    return report
