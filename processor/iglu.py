"""Iglu client: schema keys, a resolver over Iglu registries, and validation.

The enrichment stage checks every self-describing JSON it meets (contexts,
unstructured events, enrichment configs) with this module.  It speaks Iglu as
Snowplow defines it, so the same resolver config, the same registries and the
same failure JSON work for snowmelt and for Snowplow:

* :class:`SchemaKey` / :class:`SchemaVer` / :class:`SchemaCriterion` -- the
  ``iglu:vendor/name/format/M-R-A`` coordinates and ``1-*-*`` style criteria.
* :class:`Resolver` -- built from a Snowplow resolver config
  (``iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-0`` to
  ``1-0-3``) with :meth:`Resolver.from_config`, or :meth:`Resolver.default`
  (the schemas shipped in the ``schemas`` package, then Iglu Central over
  HTTP).  The shipped schemas are always the first registry consulted.
* :meth:`Resolver.validate` / :func:`validate` -- validation of a
  self-describing JSON ``{"schema": "iglu:...", "data": ...}``.

Failures are data.  Every call that can fail returns, instead of raising, one
of the :class:`IgluFailure` subclasses (:class:`NotJSON`, :class:`NotIglu`,
:class:`CriterionMismatch`, :class:`ResolutionError`, :class:`ValidationError`,
:class:`InvalidSchema`), whose :meth:`IgluFailure.to_json` is exactly one item
of ``failure.messages`` in a ``schema_violations`` 2-0-0 bad row.  Only
programming errors (a malformed resolver config at start-up, a bad criterion
string written in code) raise.

A schema's ``$supersededBy`` is followed one step, as iglu-scala-client 1.5.0
(Snowplow's enrich 3.9.0) follows it: documents naming the key are validated
against the later version (:meth:`Resolver.validate_data`).  It is resolved
once, with the key's look-up, and cached with it.

JSON Schema validation uses ``jsonschema_rs`` (draft 4, the draft Iglu schemas
are written in); a compiled validator is kept beside its schema in the
resolver cache, so it lives and expires with the schema.  The reports of
invalid data are networknt json-schema-validator 1.0.70's, as Snowplow writes
them (:mod:`processor.jsv_messages`, on the failure path only).
"""
from __future__ import annotations

import abc
import contextlib

import functools
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import jsonschema_rs

import ext

from processor import jsontext, jsv_messages

__all__ = [
    "MAX_JSON_DEPTH",
    "SchemaVer",
    "SchemaKey",
    "SchemaCriterion",
    "IgluParseError",
    "ResolverConfigError",
    "SelfDescribingData",
    "IgluFailure",
    "NotJSON",
    "NotIglu",
    "CriterionMismatch",
    "ResolutionError",
    "ValidationError",
    "InvalidSchema",
    "RepoError",
    "LookupHistory",
    "DataReport",
    "SchemaIssue",
    "EmbeddedRepository",
    "HttpRepository",
    "Resolver",
    "builtin_registry",
    "default_schema_cache",
    "LOCAL_CACHE_NAME",
    "validate",
    "parse_self_describing",
]

#: Self-describing JSON nested deeper than this many containers is refused.
MAX_JSON_DEPTH = 50
#: Iglu Central, the public registry the default resolver falls back to.
IGLU_CENTRAL_URI = "http://iglucentral.com"
RESOLVER_CONFIG_CRITERION = "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-*"
DRAFT4_URI = "http://json-schema.org/draft-04/schema#"
# Longest ``message`` a lookup error may carry in a schema_violations bad row.
_MAX_REPO_MESSAGE = 256

# ``iglu:`` + vendor/name/format/version; version checked separately so that a
# well-formed URI with a bad version is told apart (INVALID_SCHEMAVER).
_URI_RE = re.compile(r"^iglu:([a-zA-Z0-9_.\-]+)/([a-zA-Z0-9_\-]+)/([a-zA-Z0-9_\-]+)/([^/]+)$")
_VER_RE = re.compile(r"^([1-9][0-9]*)-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)$")
_CRIT_VER_RE = re.compile(r"^([1-9][0-9]*|\*)-(0|[1-9][0-9]*|\*)-(0|[1-9][0-9]*|\*)$")


# --------------------------------------------------------------------------- keys


class IgluParseError(ValueError):
    """A string or object is not a valid Iglu URI / SchemaVer / self block.

    ``code`` is the Snowplow parse-error code carried by a ``NotIglu`` failure:
    ``INVALID_IGLUURI``, ``INVALID_SCHEMAVER``, ``INVALID_DATA_PAYLOAD`` or
    ``INVALID_SCHEMA``.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True, order=True)
class SchemaVer:
    """``MODEL-REVISION-ADDITION``; model starts at 1, no leading zeros."""

    model: int
    revision: int
    addition: int

    @classmethod
    def parse(cls, text: str) -> "SchemaVer":
        m = _VER_RE.match(text) if isinstance(text, str) else None
        if m is None:
            raise IgluParseError("INVALID_SCHEMAVER", f"invalid SchemaVer {text!r}, expected MODEL-REVISION-ADDITION")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    def __str__(self) -> str:
        return f"{self.model}-{self.revision}-{self.addition}"


@dataclass(frozen=True, slots=True)
class SchemaKey:
    """The coordinates of one schema: ``iglu:vendor/name/format/M-R-A``.

    ``uri`` is the ``iglu:`` form used in self-describing JSON; ``path`` is
    ``vendor/name/format/M-R-A``, the layout of a registry on disk and the
    tail of an HTTP registry's ``/schemas/...`` URL.
    """

    vendor: str
    name: str
    format: str
    version: SchemaVer

    @classmethod
    def parse(cls, uri: str) -> "SchemaKey":
        """Parse an ``iglu:`` URI; raises :class:`IgluParseError`."""
        m = _URI_RE.match(uri) if isinstance(uri, str) else None
        if m is None:
            raise IgluParseError("INVALID_IGLUURI", f"invalid Iglu URI {uri!r}, expected iglu:vendor/name/format/M-R-A")
        vendor, name, fmt, ver = m.groups()
        return cls(vendor, name, fmt, SchemaVer.parse(ver))

    @classmethod
    def from_self(cls, self_block: Any) -> "SchemaKey":
        """Key from the ``self`` block of a schema (``{vendor, name, format, version}``)."""
        if not isinstance(self_block, Mapping):
            raise IgluParseError("INVALID_SCHEMA", "schema has no 'self' object")
        parts = []
        for part in ("vendor", "name", "format", "version"):
            value = self_block.get(part)
            if not isinstance(value, str):
                raise IgluParseError("INVALID_SCHEMA", f"'self.{part}' must be a string")
            parts.append(value)
        return cls.parse("iglu:" + "/".join(parts))

    @property
    def uri(self) -> str:
        return f"iglu:{self.path}"

    @property
    def path(self) -> str:
        return f"{self.vendor}/{self.name}/{self.format}/{self.version}"

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True, slots=True)
class SchemaCriterion:
    """A pattern over schema keys, e.g. ``iglu:com.acme/event/jsonschema/1-*-*``.

    ``None`` in ``model``/``revision``/``addition`` stands for ``*``.
    """

    vendor: str
    name: str
    format: str
    model: int | None = None
    revision: int | None = None
    addition: int | None = None

    @classmethod
    def parse(cls, text: str) -> "SchemaCriterion":
        m = _URI_RE.match(text) if isinstance(text, str) else None
        v = _CRIT_VER_RE.match(m.group(4)) if m else None
        if v is None:
            raise IgluParseError("INVALID_IGLUURI", f"invalid schema criterion {text!r}, expected iglu:vendor/name/format/M-R-A with * allowed")
        nums = [None if g == "*" else int(g) for g in v.groups()]
        return cls(m.group(1), m.group(2), m.group(3), *nums)

    def matches(self, key: SchemaKey) -> bool:
        ver = key.version
        return (
            key.vendor == self.vendor
            and key.name == self.name
            and key.format == self.format
            and (self.model is None or self.model == ver.model)
            and (self.revision is None or self.revision == ver.revision)
            and (self.addition is None or self.addition == ver.addition)
        )

    def __str__(self) -> str:
        ver = "-".join("*" if n is None else str(n) for n in (self.model, self.revision, self.addition))
        return f"iglu:{self.vendor}/{self.name}/{self.format}/{ver}"


@functools.lru_cache(maxsize=4096)
def parse_schema_key(uri: str) -> SchemaKey:
    """:meth:`SchemaKey.parse`, cached: the same few URIs recur in every event."""
    return SchemaKey.parse(uri)


# ------------------------------------------------------------------- failures


def _iso(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class IgluFailure(abc.ABC):
    """Base of every failure; ``to_json()`` is one ``failure.messages[]`` item."""

    ok = False
    __slots__ = ()

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """This failure as one ``failure.messages[]`` item of a bad row."""


@dataclass(frozen=True, slots=True)
class SelfDescribingData:
    """A validated self-describing JSON: its key and its ``data``.

    When the schema named was superseded (its ``$supersededBy``), the data was
    validated against the superseding version: ``schema_key`` is that version's
    key and ``superseded`` the key the JSON named; otherwise ``superseded`` is None.
    """

    schema_key: SchemaKey
    data: Any
    superseded: SchemaKey | None = None
    ok = True  # class attribute (not a field): success marker


@dataclass(frozen=True, slots=True)
class NotJSON(IgluFailure):
    """The text given for ``field`` is not JSON (or nests too deeply)."""

    field: str
    value: str | None
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "error": self.error}


@dataclass(frozen=True, slots=True)
class NotIglu(IgluFailure):
    """The JSON is not self-describing; ``error`` is an :class:`IgluParseError` code."""

    json: Any
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"json": self.json, "error": self.error}


@dataclass(frozen=True, slots=True)
class CriterionMismatch(IgluFailure):
    """The JSON's schema is not one the caller accepts here."""

    schema_key: SchemaKey
    criterion: SchemaCriterion

    def to_json(self) -> dict[str, Any]:
        return {"schemaKey": self.schema_key.uri, "schemaCriterion": str(self.criterion)}


@dataclass(frozen=True, slots=True)
class RepoError:
    """One error a repository gave: ``NotFound``, ``RepoFailure`` or ``ClientFailure``."""

    error: str
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.message is None:
            return {"error": self.error}
        return {"error": self.error, "message": self.message[:_MAX_REPO_MESSAGE]}


@dataclass(frozen=True, slots=True)
class LookupHistory:
    """What one repository answered for one key: its errors, attempts, last attempt."""

    repository: str
    errors: tuple[RepoError, ...]
    attempts: int
    last_attempt: float  # epoch seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "errors": [e.to_json() for e in self.errors],
            "attempts": self.attempts,
            "lastAttempt": _iso(self.last_attempt),
        }


@dataclass(frozen=True, slots=True)
class ResolutionError(IgluFailure):
    """No repository could give the schema; one history entry per repository tried."""

    schema_key: SchemaKey
    lookup_history: tuple[LookupHistory, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaKey": self.schema_key.uri,
            "error": {"error": "ResolutionError", "lookupHistory": [h.to_json() for h in self.lookup_history]},
        }


@dataclass(frozen=True, slots=True)
class DataReport:
    """One reason the data failed its schema. ``path`` is a JSONPath (``$.a[0]``).

    Written as iglu-scala-client 1.5.0's ``ValidatorReport``: ``path`` and ``keyword``
    null when absent, ``targets`` always a list (``[]`` when there are none).  The
    reports of invalid data are networknt's (see :mod:`processor.jsv_messages`).
    """

    message: str
    path: str | None
    keyword: str | None
    targets: tuple[str, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "path": self.path,
            "keyword": self.keyword,
            "targets": [] if self.targets is None else list(self.targets),
        }


@dataclass(frozen=True, slots=True)
class ValidationError(IgluFailure):
    """The data does not conform to its (resolved, valid) schema."""

    schema_key: SchemaKey
    data_reports: tuple[DataReport, ...]
    superseded_by: SchemaVer | None = None  # the version validated against, when the schema was superseded

    def to_json(self) -> dict[str, Any]:
        error = _superseded_by_json(self.superseded_by)
        error["error"] = "ValidationError"
        error["dataReports"] = [r.to_json() for r in self.data_reports]
        return {"schemaKey": self.schema_key.uri, "error": error}


def _superseded_by_json(version: SchemaVer | None) -> dict[str, Any]:
    # Snowplow's client writes the superseding version ahead of the error's other keys
    return {} if version is None else {"supersededBy": str(version)}


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    path: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class InvalidSchema(IgluFailure):
    """The resolved schema cannot be used: not a draft-4 schema, or not self-describing
    with a ``self`` equal to the key it was fetched for.

    Snowplow's format files this under ``"error": "ValidationError"`` with
    ``schemaIssues`` (instead of ``dataReports``); ``to_json`` does the same.
    """

    schema_key: SchemaKey
    schema_issues: tuple[SchemaIssue, ...]
    superseded_by: SchemaVer | None = None  # the version whose schema it is, when the key's was superseded

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaKey": self.schema_key.uri,
            "error": {**_superseded_by_json(self.superseded_by), "error": "ValidationError",
                      "schemaIssues": [i.to_json() for i in self.schema_issues]},
        }


# --------------------------------------------------------------- JSON helpers


def too_deep(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``obj`` nests more than ``limit`` containers (iterative walk)."""
    stack = [(obj, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list)):
                push((child, depth + 1))
    return False


def nests_deeper(text: str | bytes | None, obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``obj``, parsed from ``text``, nests more than ``limit`` containers.  A document nests no deeper
    than its text has opening brackets, so those are counted first and only a text with more is walked
    (``obj`` given without its text, None: walked)."""
    return (text is None or ext.brackets_over(text, limit)) and too_deep(obj, limit)


def _json_path(parts: Iterable[Any]) -> str:
    out = ["$"]
    for p in parts:
        out.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(out)


def parse_self_describing(
    instance: Any, *, field: str = "json", max_depth: int | None = MAX_JSON_DEPTH
) -> tuple[SchemaKey, Any] | NotJSON | NotIglu:
    """Split a self-describing JSON (text, bytes or already parsed) into key and data.

    ``max_depth=None`` skips the nesting check, for parts of a document whose
    whole depth was already checked.

    ``field`` names where the text came from (``ue_properties``, ``contexts``,
    ...) in a :class:`NotJSON` failure.
    """
    if isinstance(instance, (bytes, bytearray, memoryview)):
        try:
            instance = bytes(instance).decode("utf-8")
        except UnicodeDecodeError as e:
            return NotJSON(field, None, f"invalid UTF-8: {e}")
    if isinstance(instance, str):
        try:
            obj = json.loads(instance)
        except RecursionError:
            return NotJSON(field, instance, f"JSON nests deeper than the allowed {max_depth} levels")
        except ValueError as e:
            return NotJSON(field, instance, str(e))
        text = instance
    else:
        obj, text = instance, None
    if max_depth is not None and nests_deeper(text, obj, max_depth):
        if text is None:
            try:
                text = json.dumps(obj)
            except (TypeError, ValueError, RecursionError):
                text = None
        return NotJSON(field, text, f"JSON nests deeper than the allowed {max_depth} levels")
    if not isinstance(obj, dict):
        return NotIglu(obj, "INVALID_DATA_PAYLOAD")
    schema = obj.get("schema")
    if not isinstance(schema, str) or "data" not in obj:  # no data: so says 3.9.0 before it reads the URI
        return NotIglu(obj, "INVALID_DATA_PAYLOAD")
    try:
        key = parse_schema_key(schema)
    except IgluParseError as e:
        return NotIglu(obj, e.code)
    return key, obj["data"]


# --------------------------------------------------------------- repositories


@dataclass(frozen=True, slots=True)
class _Fetched:
    """Outcome of asking one repository: ``schema`` or ``errors``, and attempts made."""

    schema: dict | None
    errors: tuple[RepoError, ...]
    attempts: int
    cut: bool = False  # stopped by the time budget rather than answered


_NOT_FOUND = RepoError("NotFound")
_BUDGET_SPENT = RepoError("ClientFailure", "not looked up in time: the batch's time budget for schema "
                                           "look-ups is spent (looked up in the background for later events)")


class EmbeddedRepository:
    """A registry in a directory laid out ``vendor/name/format/M-R-A``.

    ``root`` is a filesystem path or an ``importlib.resources`` Traversable (so
    the schemas shipped inside the wheel are readable even from a zip).  As in
    Snowplow's embedded registries (and Iglu Server's static layout), a
    directory with a ``schemas/`` folder is read from that folder.
    """

    kind = "embedded"

    def __init__(self, name: str, root: Any, priority: float = 0, vendor_prefixes: Sequence[str] = ()):
        self.name = name
        root = Path(root) if isinstance(root, (str, Path)) else root
        if isinstance(root, Path) and (root / "schemas").is_dir():
            root = root / "schemas"
        self.root = root
        self.priority = priority
        self.vendor_prefixes = tuple(vendor_prefixes)

    def fetch(self, key: SchemaKey) -> _Fetched:
        parts = (key.vendor, key.name, key.format, str(key.version))
        if any(p in (".", "..") for p in parts):
            return _Fetched(None, (_NOT_FOUND,), 1)
        node = self.root
        for p in parts:
            node = node.joinpath(p)
        try:
            if not node.is_file():
                return _Fetched(None, (_NOT_FOUND,), 1)
            text = node.read_text(encoding="utf-8")
        except OSError as e:
            return _Fetched(None, (RepoError("RepoFailure", f"cannot read {key.path}: {e}"),), 1)
        return _parse_schema_body(text, 1)

    def __repr__(self) -> str:
        return f"EmbeddedRepository({self.name!r}, {str(self.root)!r}, priority={self.priority})"

    def describe(self) -> str:
        """``name (folder)``, for start-up messages."""
        return _described(self.name, str(self.root), self.vendor_prefixes)


def _parse_schema_body(text: str | bytes, attempts: int) -> _Fetched:
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as e:
        return _Fetched(None, (RepoError("RepoFailure", f"schema is not JSON: {e}"),), attempts)
    if not isinstance(schema, dict):
        return _Fetched(None, (RepoError("RepoFailure", "schema is not a JSON object"),), attempts)
    return _Fetched(schema, (), attempts)


class HttpRepository:
    """An Iglu server: ``GET {uri}/schemas/{vendor}/{name}/{format}/{version}``.

    Sends the ``apikey`` header when one is configured.  A 404 means "not in
    this repository" (no retry); 5xx answers, timeouts and connection errors
    are retried up to ``max_attempts`` times in all, waiting ``backoff``,
    ``2*backoff``, ... between attempts.  Other 4xx answers are not retried.
    """

    kind = "http"

    def __init__(
        self,
        name: str,
        uri: str,
        apikey: str | None = None,
        priority: float = 0,
        vendor_prefixes: Sequence[str] = (),
        *,
        timeout: float = 5.0,
        max_attempts: int = 3,
        backoff: float = 0.2,
    ):
        self.name = name
        self.uri = uri.rstrip("/")
        self.apikey = apikey
        self.priority = priority
        self.vendor_prefixes = tuple(vendor_prefixes)
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff

    def schema_url(self, key: SchemaKey) -> str:
        return f"{self.uri}/schemas/{key.path}"

    def fetch(self, key: SchemaKey, deadline: float | None = None) -> _Fetched:
        """Ask this server for ``key``; with ``deadline`` (``time.monotonic()``), give up when it passes."""
        headers = {"Accept": "application/json"}
        if self.apikey:
            headers["apikey"] = self.apikey
        url = self.schema_url(key)
        errors: list[RepoError] = []
        for attempt in range(1, self.max_attempts + 1):
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return _Fetched(None, tuple(errors) + (_BUDGET_SPENT,), attempt - 1, cut=True)
            request = urllib.request.Request(url, headers=headers, method="GET")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    body = response.read()
                return _parse_schema_body(body, attempt)
            except urllib.error.HTTPError as e:
                e.close()
                if e.code == 404:
                    return _Fetched(None, (_NOT_FOUND,), attempt)
                error = RepoError("RepoFailure", f"HTTP {e.code} {e.reason} from {url}")
                retry = e.code >= 500
            except (urllib.error.URLError, OSError) as e:  # refused, DNS, timeout
                reason = getattr(e, "reason", e)
                error = RepoError("ClientFailure", f"cannot reach {url}: {reason}")
                retry = True
            if error not in errors:
                errors.append(error)
            if not retry or attempt == self.max_attempts:
                cut = deadline is not None and time.monotonic() >= deadline
                return _Fetched(None, tuple(errors), attempt, cut=cut)
            pause = self.backoff * (2 ** (attempt - 1))
            if deadline is not None and time.monotonic() + pause >= deadline:
                return _Fetched(None, tuple(errors) + (_BUDGET_SPENT,), attempt, cut=True)
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"HttpRepository({self.name!r}, {self.uri!r}, priority={self.priority})"

    def describe(self) -> str:
        """``name (URI)``, for start-up messages (never the API key, nor a password in the URI)."""
        parts = urllib.parse.urlsplit(self.uri)
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        return _described(self.name, shown, self.vendor_prefixes)


def _described(name: str, where: str, vendor_prefixes: Sequence[str]) -> str:
    vendors = f"; for vendors {', '.join(vendor_prefixes)}" if vendor_prefixes else ""
    return f"{name} ({where}{vendors})"


Repository = Union[EmbeddedRepository, HttpRepository]


def builtin_registry() -> EmbeddedRepository:
    """The schemas shipped with snowmelt (the ``schemas`` package)."""
    # named as iglu-scala-client names its embedded registry, which look-up histories in bad rows show
    return EmbeddedRepository("Iglu Client Embedded", resources.files("schemas"), priority=0)


#: The name of the local schema cache as a repository (not listed in look-up histories: see ``Resolver._lookup``).
LOCAL_CACHE_NAME = "Local schema cache"


def default_schema_cache() -> Path:
    """Where ``snowmelt schemas pull`` puts schemas and the resolver finds them when
    ``iglu.cache_dir`` is empty: ``$XDG_CACHE_HOME/snowmelt/iglu``, else
    ``~/.cache/snowmelt/iglu``."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "snowmelt" / "iglu"


# -------------------------------------------------------------- config parsing


class ResolverConfigError(ValueError):
    """The resolver config is malformed; the message names the offending field."""


def _config_error(path: str, problem: str) -> ResolverConfigError:
    return ResolverConfigError(f"invalid Iglu resolver config: {path}: {problem}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _parse_config(config: Any) -> tuple[int, float | None, list[dict]]:
    if isinstance(config, (bytes, bytearray)):
        config = config.decode("utf-8")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as e:
            raise ResolverConfigError(f"invalid Iglu resolver config: not JSON: {e}") from None
    if not isinstance(config, Mapping):
        raise _config_error("$", "expected a JSON object")
    prefix = "data"
    if "schema" in config:
        crit = SchemaCriterion.parse(RESOLVER_CONFIG_CRITERION)
        try:
            key = SchemaKey.parse(config["schema"])
        except IgluParseError as e:
            raise _config_error("schema", str(e)) from None
        if not crit.matches(key) or key.version.addition > 3:
            raise _config_error("schema", f"{key.uri} is not resolver-config 1-0-0 to 1-0-3")
        if not isinstance(config.get("data"), Mapping):
            raise _config_error("data", "expected a JSON object")
        data = config["data"]
    else:  # the bare data object
        data, prefix = config, "$"
    allowed = {"cacheSize", "cacheTtl", "repositories"}
    for k in data:
        if k not in allowed:
            raise _config_error(f"{prefix}.{k}", "unknown field")
    if "cacheSize" not in data:
        raise _config_error(f"{prefix}.cacheSize", "required field missing")
    size = data["cacheSize"]
    if not _is_number(size) or size < 0:
        raise _config_error(f"{prefix}.cacheSize", f"expected a non-negative number, got {size!r}")
    ttl = data.get("cacheTtl")
    if ttl is not None and (not _is_number(ttl) or ttl < 0 or int(ttl) != ttl):
        raise _config_error(f"{prefix}.cacheTtl", f"expected a non-negative integer (seconds) or null, got {ttl!r}")
    repos = data.get("repositories")
    if "repositories" not in data:
        raise _config_error(f"{prefix}.repositories", "required field missing")
    if not isinstance(repos, list):
        raise _config_error(f"{prefix}.repositories", "expected an array")
    for i, repo in enumerate(repos):
        where = f"{prefix}.repositories[{i}]"
        if not isinstance(repo, Mapping):
            raise _config_error(where, "expected a JSON object")
        for k in repo:
            if k not in ("name", "priority", "vendorPrefixes", "connection"):
                raise _config_error(f"{where}.{k}", "unknown field")
        for k in ("name", "priority", "vendorPrefixes", "connection"):
            if k not in repo:
                raise _config_error(f"{where}.{k}", "required field missing")
        if not isinstance(repo["name"], str):
            raise _config_error(f"{where}.name", "expected a string")
        if not _is_number(repo["priority"]):
            raise _config_error(f"{where}.priority", "expected a number")
        vp = repo["vendorPrefixes"]
        if not isinstance(vp, list) or not all(isinstance(p, str) for p in vp):
            raise _config_error(f"{where}.vendorPrefixes", "expected an array of strings")
        conn = repo["connection"]
        if not isinstance(conn, Mapping) or len(conn) != 1 or next(iter(conn)) not in ("http", "embedded"):
            raise _config_error(f"{where}.connection", "expected exactly one of {\"http\": {...}} or {\"embedded\": {...}}")
        kind, body = next(iter(conn.items()))
        cwhere = f"{where}.connection.{kind}"
        if not isinstance(body, Mapping):
            raise _config_error(cwhere, "expected a JSON object")
        fields = ("uri", "apikey") if kind == "http" else ("path",)
        for k in body:
            if k not in fields:
                raise _config_error(f"{cwhere}.{k}", "unknown field")
        if kind == "http":
            uri = body.get("uri")
            if not isinstance(uri, str) or not re.match(r"^https?://[^/\s]+", uri):
                raise _config_error(f"{cwhere}.uri", f"expected an http(s) URI, got {uri!r}")
            if body.get("apikey") is not None and not isinstance(body["apikey"], str):
                raise _config_error(f"{cwhere}.apikey", "expected a string or null")
        elif not isinstance(body.get("path"), str):
            raise _config_error(f"{cwhere}.path", "expected a string")
    return int(size), (None if ttl is None else float(ttl)), list(repos)


# ------------------------------------------------------------------- resolver


@dataclass(slots=True)
class _Entry:
    expires: float  # monotonic clock; inf = never
    value: dict | ResolutionError  # for a superseded key, the superseding version's schema
    compiled: Any = None  # jsonschema_rs validator or InvalidSchema, compiled on first use
    superseded_by: SchemaVer | None = None  # the key's own schema names this later version ($supersededBy)


@dataclass(frozen=True, slots=True)
class CacheInfo:
    hits: int
    misses: int
    size: int
    max_size: int


class EnvelopeValidator:
    """The validator of an envelope schema of Snowplow's (``contexts``, ``unstruct_event``), which asks only
    for the shape of the entities: each an object of exactly ``schema`` (a string matching an Iglu URI
    pattern) and ``data`` (anything).

    The events of a stream name the same few schemas: once the validator found a document valid, the schema
    URIs of its entities are known to match the pattern, and a document of that shape naming only known URIs
    (:func:`ext.known_entities`, one compiled pass) is valid without asking the validator again -- which,
    asked, walks every entity and runs the pattern on each URI.  Everything else goes to the validator, so
    the result is always the validator's.  At most :attr:`MAX_KNOWN` URIs are kept (the set starts again
    when full: the URIs come from input).  Whatever else the validator offers (``iter_errors``) is its own.
    """

    __slots__ = ("inner", "array", "min_items", "known")
    MAX_KNOWN = 4096

    def __init__(self, inner: Any, array: bool, min_items: int = 0):
        self.inner, self.array, self.min_items = inner, array, min_items
        self.known: set[str] = set()

    def is_valid(self, data: Any) -> bool:
        if self.array:
            if type(data) is list and len(data) >= self.min_items and _known_entities(data, self.known):
                return True
        elif type(data) is dict and _known_entities([data], self.known):
            return True
        if not self.inner.is_valid(data):
            return False
        known = self.known
        if len(known) >= self.MAX_KNOWN:
            known.clear()
        for item in data if self.array else (data,):
            uri = item.get("schema") if type(item) is dict else None
            if type(uri) is str:
                known.add(uri)
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @staticmethod
    def shape(body: Mapping[str, Any]) -> tuple[bool, int] | None:
        """``(array, min_items)`` when ``body`` (a schema, ``$schema``, ``self`` and ``description`` aside) is
        an envelope: an array of such entities (at least ``min_items``), or one (``array`` False); else None."""
        rest = {k: v for k, v in body.items() if k not in ("$schema", "self", "description")}
        if rest.get("type") != "array":
            return (False, 0) if _is_entity_schema(rest) else None
        min_items = rest.get("minItems", 0)
        if (set(rest) - {"type", "items", "minItems"} or type(min_items) is not int or min_items < 0
                or not _is_entity_schema(rest.get("items"))):
            return None
        return True, min_items


def _is_entity_schema(schema: Any) -> bool:
    """Whether ``schema`` asks exactly for an object of a string ``schema`` (with a pattern) and any ``data``."""
    if type(schema) is not dict or set(schema) != {"type", "properties", "required", "additionalProperties"}:
        return False
    properties = schema["properties"]
    return (schema["type"] == "object" and schema["additionalProperties"] is False
            and type(schema["required"]) is list and sorted(schema["required"]) == ["data", "schema"]
            and type(properties) is dict and set(properties) == {"schema", "data"} and properties["data"] == {}
            and type(properties["schema"]) is dict and set(properties["schema"]) == {"type", "pattern"}
            and properties["schema"]["type"] == "string" and type(properties["schema"]["pattern"]) is str)


_known_entities = ext.known_entities


def _refuse_remote_ref(uri: str) -> Any:
    raise ValueError(f"remote $ref {uri} is not allowed; embed the definition")


def _supersededby_decoding_failure(raw: Any) -> str:
    # how circe (0.14.1) shows the failure to read a ``$supersededBy`` as a full SchemaVer
    reason = f"Invalid schema version: {raw}" if isinstance(raw, str) else "String"
    return f"DecodingFailure({reason}, List(DownField($supersededBy)))"


_CUT = object()  # a look-up stopped by a batch's time budget
#: keys waiting to be looked up off the hot path at once; beyond, they are looked up when next named
_MAX_BACKGROUND_LOOKUPS = 64


class Resolver:
    """Finds schemas in an ordered list of repositories and validates against them.

    Lookup order for a key, as Snowplow documents it: the shipped ``schemas``
    registry first, always; then the local schema cache (``schema_cache``, the
    folder ``snowmelt schemas pull`` fills), when one is given; then the configured repositories whose
    ``vendorPrefixes`` include a prefix of the key's vendor, then the others;
    within each group by ``priority`` (lower first), an embedded registry
    before an HTTP one at equal priority, then config order.  The first
    repository to return the schema wins; if none does, the result is a
    :class:`ResolutionError` listing every repository tried.

    Results are kept in an LRU cache of ``cache_size`` keys.  A found schema
    lives ``cache_ttl`` seconds (``None``: until evicted); a miss lives
    ``min(cache_ttl, miss_ttl)`` seconds, so a schema published later is found
    without a restart.  ``cache_size=0`` disables caching.  One lock guards the
    cache; fetches run outside it.

    Inside :meth:`time_budget` (the stage wraps each batch in one), look-ups
    from HTTP repositories share a deadline: once it passes, a key not in the
    cache is not waited for but fails at once (a ``ResolutionError`` saying
    so, not cached), and is looked up on a background thread so that later
    events find it cached.  So a schema nobody can serve costs a batch at
    most its budget, however many events name it, and never stalls the
    events behind it.  Misses found without the budget are cached as above.
    """

    def __init__(
        self,
        repositories: Sequence[Repository] = (),
        *,
        cache_size: int = 500,
        cache_ttl: float | None = None,
        miss_ttl: float = 10.0,
        include_builtin: bool = True,
        schema_cache: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        ordered = sorted(
            enumerate(repositories),
            key=lambda ir: (ir[1].priority, 0 if ir[1].kind == "embedded" else 1, ir[0]),
        )
        self._configured = tuple(r for _, r in ordered)
        self._builtin = builtin_registry() if include_builtin else None
        # schemas pulled from other registries earlier: asked after the shipped ones, before the network
        self._local = (EmbeddedRepository(LOCAL_CACHE_NAME, Path(schema_cache), priority=0)
                       if schema_cache else None)
        self.cache_size = max(0, int(cache_size))
        self.cache_ttl = cache_ttl
        self.miss_ttl = miss_ttl if cache_ttl is None else min(miss_ttl, cache_ttl)
        self._clock = clock
        self._wall = wall_clock
        self._cache: OrderedDict[SchemaKey, _Entry] = OrderedDict()
        # the hot path: schema URI string -> (expires, key, validator or failure, is a validator)
        self._by_uri: dict[str, tuple[float, SchemaKey, Any, bool]] = {}
        self._criteria: dict[str, SchemaCriterion] = {}
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._budget = threading.local()  # .deadline of the current thread's batch, if any
        self._background: Any = None      # the look-ups cut by a budget, finished off the hot path
        self._in_background: set[SchemaKey] = set()

    @contextlib.contextmanager
    def time_budget(self, seconds: float):
        """HTTP look-ups in this block (this thread) end ``seconds`` from now at the latest (see the class)."""
        previous = getattr(self._budget, "deadline", None)
        self._budget.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self._budget.deadline = previous

    def _look_up_later(self, key: SchemaKey) -> None:
        with self._lock:
            if key in self._in_background or len(self._in_background) >= _MAX_BACKGROUND_LOOKUPS:
                return
            self._in_background.add(key)
            if self._background is None:
                from concurrent.futures import ThreadPoolExecutor

                self._background = ThreadPoolExecutor(2, thread_name_prefix="iglu-lookup")

        def run() -> None:
            try:
                self._entry(key)  # no budget on this thread: cached as any look-up
            finally:
                with self._lock:
                    self._in_background.discard(key)

        self._background.submit(run)

    # -- construction ------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Mapping | str | bytes,
        *,
        http_timeout: float = 5.0,
        http_max_attempts: int = 3,
        http_backoff: float = 0.2,
        base_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> "Resolver":
        """Build from a Snowplow resolver config (object, JSON text or bytes).

        Accepts the self-describing form (``{"schema": "iglu:...resolver-config/
        jsonschema/1-0-x", "data": {...}}``) or its bare ``data``.  An
        ``embedded`` connection's ``path`` is a directory, relative to
        ``base_dir`` (default: the working directory).  Raises
        :class:`ResolverConfigError` naming the field at fault.
        """
        size, ttl, repos = _parse_config(config)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        built: list[Repository] = []
        for repo in repos:
            kind, body = next(iter(repo["connection"].items()))
            common = dict(priority=repo["priority"], vendor_prefixes=repo["vendorPrefixes"])
            if kind == "http":
                built.append(
                    HttpRepository(
                        repo["name"], body["uri"], body.get("apikey"), **common,
                        timeout=http_timeout, max_attempts=http_max_attempts, backoff=http_backoff,
                    )
                )
            else:
                built.append(EmbeddedRepository(repo["name"], base / body["path"], **common))
        return cls(built, cache_size=size, cache_ttl=ttl, **kwargs)

    @classmethod
    def default(cls, **kwargs: Any) -> "Resolver":
        """The shipped schemas, then Iglu Central over HTTP."""
        return cls([HttpRepository("Iglu Central", IGLU_CENTRAL_URI, priority=0)], **kwargs)

    def describe(self) -> list[str]:
        """The repositories, each as ``name (where)``, in the order a key of no listed vendor is looked up."""
        head = [f"{self._builtin.name} (the schemas shipped with snowmelt)"] if self._builtin is not None else []
        return head + [repo.describe() for repo in self._configured]

    # -- lookup ------------------------------------------------------------

    def repositories_for(self, key: SchemaKey) -> list[Repository]:
        """The repositories in the order they are asked for ``key``."""
        matched = [r for r in self._configured if any(key.vendor.startswith(p) for p in r.vendor_prefixes)]
        rest = [r for r in self._configured if r not in matched]
        head = [r for r in (self._builtin, self._local) if r is not None]
        return head + matched + rest

    def _entry(self, key: SchemaKey) -> _Entry:
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.expires > now:
                self._cache.move_to_end(key)
                self._hits += 1
                return entry
            self._misses += 1
            previous = entry
        deadline = getattr(self._budget, "deadline", None)
        value = self._lookup(key, previous.value if previous is not None else None, deadline)
        if value is _CUT:
            self._look_up_later(key)
            return _Entry(0.0, self._cut_failure(key))
        superseded_by = None
        if isinstance(value, tuple):  # (the superseding schema, its version)
            value, superseded_by = value
        if isinstance(value, dict):
            ttl = self.cache_ttl
        else:
            ttl = self.miss_ttl
        entry = _Entry(float("inf") if ttl is None else self._clock() + ttl, value, None, superseded_by)
        if self.cache_size:
            with self._lock:
                self._cache[key] = entry
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return entry

    def _superseding(self, repo: Repository, key: SchemaKey, got: _Fetched,
                     deadline: float | None) -> tuple[dict, SchemaVer] | _Fetched:
        """Follow the ``$supersededBy`` of the schema ``repo`` gave for ``key``, as iglu-scala-client 1.5.0
        does when it validates: the value must be a full SchemaVer later than the key's, and the schema of
        that version is fetched from the same repository.  One step only: the superseding schema's own
        ``$supersededBy`` is not followed.  Gives ``(that schema, its version)``, or what this repository
        answered instead: a ``ClientFailure`` for a value that is not a later full version, else the
        failure to fetch the superseding version (``NotFound`` when the repository lacks it).
        """
        raw = got.schema["$supersededBy"]
        try:
            version = SchemaVer.parse(raw)
        except IgluParseError:
            return _Fetched(None, (RepoError("ClientFailure", "Error while trying to decode superseding version: "
                                             + _supersededby_decoding_failure(raw)),), got.attempts)
        if not version > key.version:
            return _Fetched(None, (RepoError("ClientFailure", f"Superseding version {version} isn't greater than "
                                             f"the version of schema {key.path}"),), got.attempts)
        newer = SchemaKey(key.vendor, key.name, key.format, version)
        try:
            found = repo.fetch(newer, deadline) if deadline is not None and repo.kind == "http" else repo.fetch(newer)
        except Exception as e:  # a repository bug must not escape as an exception
            found = _Fetched(None, (RepoError("ClientFailure", f"{type(e).__name__}: {e}"),), 1)
        if found.schema is None:
            return found
        return found.schema, version

    def _cut_failure(self, key: SchemaKey) -> ResolutionError:
        return ResolutionError(key, tuple(LookupHistory(repo.name, (_BUDGET_SPENT,), 0, self._wall())
                                          for repo in self.repositories_for(key) if repo.kind == "http"))

    def _lookup(self, key: SchemaKey, previous: Any, deadline: float | None = None) -> Any:
        """The schema, a :class:`ResolutionError`, or ``_CUT`` when ``deadline`` stopped an HTTP look-up.

        A schema with ``$supersededBy`` gives ``(the superseding schema, its version)`` instead (see
        :meth:`_superseding`)."""
        earlier: dict[str, LookupHistory] = {}
        if isinstance(previous, ResolutionError):  # keep counting attempts across expiries
            earlier = {h.repository: h for h in previous.lookup_history}
        history: list[LookupHistory] = []
        for repo in self.repositories_for(key):
            try:
                got = repo.fetch(key, deadline) if deadline is not None and repo.kind == "http" else repo.fetch(key)
            except Exception as e:  # a repository bug must not escape as an exception
                got = _Fetched(None, (RepoError("ClientFailure", f"{type(e).__name__}: {e}"),), 1)
            if got.schema is not None:
                if "$supersededBy" not in got.schema:
                    return got.schema
                found = self._superseding(repo, key, got, deadline)
                if type(found) is tuple:
                    return found
                got = found
            if got.cut:
                return _CUT
            if repo is self._local:
                # a copy of other registries' schemas, not a registry of the resolver config: Snowplow's
                # look-up histories (bad rows) name only those
                continue
            before = earlier.get(repo.name)
            errors = got.errors
            attempts = got.attempts
            if before is not None:
                errors = before.errors + tuple(e for e in got.errors if e not in before.errors)
                attempts += before.attempts
            history.append(LookupHistory(repo.name, errors, attempts, self._wall()))
        return ResolutionError(key, tuple(history))

    def lookup_schema(self, key: SchemaKey | str) -> dict | ResolutionError | NotIglu:
        """The schema for ``key`` (a dict), or a :class:`ResolutionError`.

        As iglu-scala-client 1.5.0 caches it: for a key whose schema names a later version in
        ``$supersededBy``, the schema of that version (what the key's documents are validated against)."""
        if isinstance(key, str):
            try:
                key = SchemaKey.parse(key)
            except IgluParseError as e:
                return NotIglu(key, e.code)
        return self._entry(key).value

    # -- validation --------------------------------------------------------

    def _compile(self, key: SchemaKey, schema: dict) -> Any:
        issues: list[SchemaIssue] = []
        try:
            self_key = SchemaKey.from_self(schema.get("self"))
        except IgluParseError as e:
            issues.append(SchemaIssue("$.self", f"schema is not self-describing: {e}"))
        else:
            if self_key != key:
                issues.append(SchemaIssue("$.self", f"schema describes itself as {self_key.uri}, not {key.uri}"))
        if issues:
            return InvalidSchema(key, tuple(issues))
        body = dict(schema)
        body["$schema"] = DRAFT4_URI  # Iglu's meta-schema URI is not fetchable offline
        try:
            # formats judged as Snowplow's validator (networknt) judges them, not as jsonschema_rs would
            validator = jsonschema_rs.Draft4Validator(body, retriever=_refuse_remote_ref,
                                                      formats=jsv_messages.FORMAT_CHECKS, validate_formats=True)
        except jsonschema_rs.ValidationError as e:
            return InvalidSchema(key, (SchemaIssue(_json_path(getattr(e, "instance_path", ()) or ()), e.message),))
        except Exception as e:  # ReferencingError, bad regex, ...
            return InvalidSchema(key, (SchemaIssue("$", f"{type(e).__name__}: {e}"),))
        shape = EnvelopeValidator.shape(body)
        return validator if shape is None else EnvelopeValidator(validator, *shape)

    def compiled_validator(self, key: SchemaKey) -> Any:
        """The cached ``jsonschema_rs`` validator for ``key``, or a failure.

        For a key whose schema is superseded, the superseding version's validator."""
        return self._validator(key)[0]

    def _validator(self, key: SchemaKey) -> tuple[Any, SchemaVer | None]:
        """(the validator or a failure, the superseding version or None)."""
        return self._validator_entry(key)[:2]

    def _validator_entry(self, key: SchemaKey) -> tuple[Any, SchemaVer | None, Any]:
        """:meth:`_validator`, and the schema validated against (for the reports of invalid data)."""
        entry = self._entry(key)
        superseded_by = entry.superseded_by
        if not isinstance(entry.value, dict):
            compiled = entry.value
        else:
            compiled = entry.compiled
            if compiled is None:
                if superseded_by is None:
                    compiled = self._compile(key, entry.value)
                else:
                    compiled = self._compile(SchemaKey(key.vendor, key.name, key.format, superseded_by), entry.value)
                    if isinstance(compiled, InvalidSchema):  # reported for the key named, as Snowplow does
                        compiled = InvalidSchema(key, compiled.schema_issues, superseded_by)
                entry.compiled = compiled
        if self.cache_size:
            if len(self._by_uri) >= self.cache_size:
                self._by_uri.clear()
            # the last item lets the per-event paths take a valid document as is; a superseded key's documents
            # go the long way (validate_data), which reports the version they were validated against
            self._by_uri[key.uri] = (entry.expires, key, compiled,
                                     superseded_by is None and not isinstance(compiled, IgluFailure))
        return compiled, superseded_by, entry.value

    def validate(
        self,
        instance: Any,
        expected: SchemaCriterion | str | None = None,
        *,
        field: str = "json",
        check_depth: bool = True,
    ) -> SelfDescribingData | IgluFailure:
        """Validate a self-describing JSON (text, bytes or parsed object).

        Returns :class:`SelfDescribingData` (``.ok`` is True) or an
        :class:`IgluFailure` (``.ok`` is False); never raises for bad input.
        ``expected`` restricts the acceptable schemas (``CriterionMismatch``
        otherwise); ``field`` names the source in a ``NotJSON`` failure;
        ``check_depth=False`` skips the nesting check for a part of a document
        that was already checked whole.
        """
        if expected is not None and type(expected) is str:
            expected = self._criterion(expected)
        if not check_depth and type(instance) is dict:
            # hot path: parsed, depth already checked, schema URI seen before
            uri = instance.get("schema")
            hit = self._by_uri.get(uri) if type(uri) is str else None
            if hit is not None and hit[0] > self._clock() and "data" in instance:
                key, validator = hit[1], hit[2]
                if expected is not None and not expected.matches(key):
                    return CriterionMismatch(key, expected)
                data = instance["data"]
                if hit[3]:
                    try:
                        if validator.is_valid(data):
                            self._hits += 1
                            return SelfDescribingData(key, data)
                    except ValueError:  # what jsonschema_rs does not take (a JsonFloat): validate_data's way
                        pass
                return self.validate_data(key, data)
        parsed = parse_self_describing(instance, field=field,
                                       max_depth=MAX_JSON_DEPTH if check_depth else None)
        if isinstance(parsed, IgluFailure):
            return parsed
        key, data = parsed
        if expected is not None and not expected.matches(key):
            return CriterionMismatch(key, expected)
        return self.validate_data(key, data)

    def check(self, instance: Any, expected: SchemaCriterion | str | None = None, *,
              field: str = "json", superseded: list | None = None) -> IgluFailure | None:
        """``None`` when ``instance`` is valid, else the failure :meth:`validate` reports.

        For the per-event path: ``instance`` is parsed and its nesting already
        checked (text is parsed and checked here); a valid document whose
        schema was seen before costs one dict look-up and the validator.
        When ``instance`` was valid against the version superseding its
        schema, its :class:`SelfDescribingData` is appended to ``superseded``
        (when a list is given).
        """
        if type(instance) is dict:
            uri = instance.get("schema")
            hit = self._by_uri.get(uri) if type(uri) is str else None
            if hit is not None and hit[3] and "data" in instance and hit[0] > self._clock():
                if expected is not None and type(expected) is str:
                    expected = self._criterion(expected)
                if expected is None or expected.matches(hit[1]):
                    try:
                        if hit[2].is_valid(instance["data"]):
                            return None
                    except ValueError:  # what jsonschema_rs does not take (a JsonFloat): validate's way
                        pass
        result = self.validate(instance, expected, field=field, check_depth=type(instance) is not dict)
        if result.ok:
            if superseded is not None and result.superseded is not None:
                superseded.append(result)
            return None
        return result

    def check_each(self, items: Iterable[Any], *, field: str = "json",
                   superseded: list | None = None) -> list[IgluFailure]:
        """:meth:`check` of every item (an entity list), in order: the failures only, ``[]`` when all are valid.

        One call per event instead of one per entity: the cache hit path of
        :meth:`check` without its per-call overhead.  Each item valid against
        the version superseding its schema is appended to ``superseded``
        (when a list is given) as ``(item, its SelfDescribingData)``.
        """
        by_uri = self._by_uri
        now = self._clock()
        failures: list[IgluFailure] = []
        for item in items:
            if type(item) is dict:
                uri = item.get("schema")
                hit = by_uri.get(uri) if type(uri) is str else None
                if hit is not None and hit[3] and hit[0] > now and "data" in item:
                    try:
                        if hit[2].is_valid(item["data"]):
                            continue
                    except ValueError:  # what jsonschema_rs does not take (a JsonFloat): validate's way
                        pass
            result = self.validate(item, None, field=field, check_depth=type(item) is not dict)
            if not result.ok:
                failures.append(result)
            elif superseded is not None and result.superseded is not None:
                superseded.append((item, result))
        return failures

    def _criterion(self, text: str) -> SchemaCriterion:
        criterion = self._criteria.get(text)
        if criterion is None:
            criterion = self._criteria[text] = SchemaCriterion.parse(text)
        return criterion

    def validate_data(self, key: SchemaKey, data: Any) -> SelfDescribingData | IgluFailure:
        """Validate ``data`` against the schema ``key`` (already split out).

        When ``key``'s schema names a later version in ``$supersededBy`` (see :meth:`_superseding`), the data
        is validated against that version: the result is keyed by it and names ``key`` as ``superseded``,
        and a :class:`ValidationError` names the version (``supersededBy``), as iglu-scala-client 1.5.0 does.
        """
        validator, superseded_by, schema = self._validator_entry(key)
        if isinstance(validator, IgluFailure):
            return validator
        try:
            floats = data
            try:
                valid = validator.is_valid(data)
            except ValueError:  # jsonschema_rs takes only plain floats: it refuses a JsonFloat or says invalid
                valid = False
            if not valid and jsontext.holds_number_text(data):
                floats = jsontext.plain(data)
                valid = validator.is_valid(floats)
            if valid:  # the data as it came, the tracker's number text in it
                if superseded_by is None:
                    return SelfDescribingData(key, data)
                return SelfDescribingData(SchemaKey(key.vendor, key.name, key.format, superseded_by), data, key)
            reports = tuple(DataReport(m.message, m.path, m.type, m.arguments)
                            for m in jsv_messages.reports(schema, data))
            if not reports:  # networknt would not have failed it: jsonschema_rs's own account
                reports = tuple(_data_report(e) for e in validator.iter_errors(floats))
        except Exception as e:  # e.g. data that is not JSON-representable
            reports = (DataReport(f"$: cannot validate: {e}", "$", None, ()),)
        return ValidationError(key, reports or (DataReport("$: invalid", "$", None, ()),), superseded_by)

    # -- cache -------------------------------------------------------------

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self.cache_size)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._by_uri.clear()


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object"), (type(None), "null"))


def _json_type(value: Any) -> str:
    for t, name in _JSON_TYPES:
        if isinstance(value, t):
            return name
    return type(value).__name__


def _data_report(e: Any) -> DataReport:
    # jsonschema_rs's own account of an error: only for data networknt would not have failed
    # (see :mod:`processor.jsv_messages`), where there is no networknt report to give
    path = _json_path(e.instance_path)
    kind = e.kind
    keyword = getattr(kind, "name", None)
    if keyword is None and e.schema_path:
        keyword = str(e.schema_path[-1])
    value = getattr(kind, "value", None)
    if keyword == "type":
        targets: list[Any] = [_json_type(e.instance), *(value or [])]
    elif isinstance(value, list):
        targets = value
    elif value is None:
        targets = []
    else:
        targets = [value]
    targets_s = tuple(t if isinstance(t, str) else json.dumps(t) for t in targets)
    return DataReport(f"{path}: {e.message}", path, keyword, targets_s)


_default_resolver: Resolver | None = None
_default_lock = threading.Lock()


def validate(
    instance: Any,
    expected: SchemaCriterion | str | None = None,
    *,
    resolver: Resolver | None = None,
    field: str = "json",
) -> SelfDescribingData | IgluFailure:
    """:meth:`Resolver.validate` on ``resolver`` (default: :meth:`Resolver.default`,
    created on first use and shared by the process)."""
    global _default_resolver
    if resolver is None:
        with _default_lock:
            if _default_resolver is None:
                _default_resolver = Resolver.default()
            resolver = _default_resolver
    return resolver.validate(instance, expected, field=field)
