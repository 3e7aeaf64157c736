"""The SQL query enrichment (``sql_query_enrichment_config``): rows of a user's database as entities.

What Snowplow does (configs 1-0-0 and 1-0-1, vendor
``com.snowplowanalytics.snowplow.enrichments``)
    Per event, one parameterised query runs against a PostgreSQL or MySQL
    database and its rows become derived entities of one user-given schema.

    ``inputs``
        what is bound to each ``?`` placeholder of ``query.sql`` (numbered
        from 1, in order of appearance): ``pojo.field``, an atomic field of
        the event by its Snowplow name (``user_id``, ``app_id`` ...), or
        ``json`` {``field``: ``unstruct_event`` | ``contexts`` |
        ``derived_contexts``, ``schemaCriterion`` (``iglu:v/n/jsonschema/1-*-*``),
        ``jsonPath`` into the first matching entity's data}.  When any input
        is missing (the field unset, no matching entity, nothing at the path)
        the query is not run and nothing is attached: the event goes on.
    ``database``
        ``postgresql`` or ``mysql``: ``host``, ``port``, ``database``,
        ``username``, ``password``, ``sslMode`` (true: TLS required).
    ``output``
        ``expectedRows``: ``EXACTLY_ONE``, ``AT_MOST_ONE``, ``AT_LEAST_ONE``,
        ``AT_LEAST_ZERO`` (a result outside it fails the event);
        ``json.describes``: ``EVERY_ROW`` (one entity per row) or
        ``ALL_ROWS`` (one entity whose data is the array of rows);
        ``json.propertyNames``: ``AS_IS``, ``CAMEL_CASE``, ``PASCAL_CASE``,
        ``SNAKE_CASE``, ``LOWER_CASE``, ``UPPER_CASE`` applied to column names;
        ``json.schema`` the entities' schema.
    ``cache``
        ``size`` results kept for ``ttl`` seconds, keyed by the bound values.
    ``ignoreOnError`` (1-0-1)
        a failure (database down, bad query, wrong row count) leaves the
        event as it is, without the entity, instead of failing it.

What we do
    The same, with these choices:

    * Values are always bound as query parameters, never formatted into the
      SQL: ``?`` placeholders (outside string literals, quoted identifiers,
      dollar quotes and comments) are rewritten once, at start-up, into the
      driver's ``%s`` style.  PostgreSQL uses ``psycopg`` 3, which sends the
      values apart from the statement (server-side binding; repeated
      statements are prepared); MySQL uses ``pymysql``, which escapes them
      client-side.
    * A placeholder without an input, or an input whose placeholder is not in
      the query, is refused at start-up naming ``$.data.parameters.inputs``
      (Snowplow would fail every event at run time).  So is a ``pojo.field``
      that is not an atomic field, or a ``jsonPath`` that does not parse.
    * ``pojo`` values are bound with their Python type (str, int, float,
      Decimal; timestamps as UTC ``datetime``).  A ``jsonPath`` that finds one
      scalar binds it; an object, an array or several matches bind as a JSON
      string.  JSONPath is ``jsonpath-ng`` (its extended syntax, filters too;
      see ``processor.enrichments.jsonpaths``).
    * Column values become JSON as follows: integers and booleans as is,
      ``numeric``/``Decimal`` as a number (an integer when it has no
      fraction), floats as numbers (NaN/inf as null), timestamps as ISO 8601
      (``2025-11-28T12:00:00Z`` for a ``timestamptz``, no zone for a plain
      ``timestamp``), dates and times ISO, UUIDs as strings, ``bytea`` as
      base64, ``json``/``jsonb`` as the JSON itself, ``NULL`` as null.
    * A query that returns no rows attaches nothing (also with ``ALL_ROWS``).
    * Connections are opened lazily, at the first event, and kept in a small
      pool (:data:`POOL_SIZE` idle connections) in autocommit mode; a
      connection that broke is dropped and the next event opens a new one,
      so a database that comes back is used again without restarting.
      Connecting gives up after :data:`CONNECT_TIMEOUT` seconds.
    * The cache keeps only successful results; ``size`` or ``ttl`` 0 means no
      cache.
    * MySQL is implemented but not tested here (no MySQL server on the test
      machine).
"""
from __future__ import annotations

import base64
import json
import math
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from processor.enriched import FIELD_INDEX, FIELD_KINDS
from processor.enrichments.base import (
    ENRICHMENTS_VENDOR,
    ConfigError,
    Enrichment,
    EnrichmentFailure,
    EventContext,
    LoadContext,
)
from processor.enrichments.jsonpaths import JsonRule

POOL_SIZE = 4
CONNECT_TIMEOUT = 5
_FIELD = "$.data.parameters"

EXPECTED_ROWS = {
    "EXACTLY_ONE": (1, 1),
    "AT_MOST_ONE": (0, 1),
    "AT_LEAST_ONE": (1, None),
    "AT_LEAST_ZERO": (0, None),
}


# --------------------------------------------------------------------------- #
# the query: ? placeholders -> %s, outside literals and comments
# --------------------------------------------------------------------------- #

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def convert_placeholders(sql: str) -> tuple[str, int]:
    """``sql`` with each JDBC ``?`` placeholder as ``%s`` (and ``%`` as ``%%``), and the count of them.

    ``?`` inside '...' and E'...' strings, "..." identifiers, $tag$...$tag$
    dollar quotes, ``--`` and ``/* */`` comments is left alone.
    """
    out: list[str] = []
    count = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # doubled quote
                        end += 2
                        continue
                    break
                if sql[end] == "\\" and c == "'":  # E'..' or MySQL backslash escapes
                    end += 2
                    continue
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "$" and (m := _DOLLAR_TAG.match(sql, i)) and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            tag = m.group(0)
            end = sql.find(tag, m.end())
            end = n if end < 0 else end + len(tag)
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "?":
            out.append("%s")
            count += 1
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), count


# --------------------------------------------------------------------------- #
# inputs
# --------------------------------------------------------------------------- #

_MISSING = object()


def _pojo_input(field_name: str) -> Callable[[Any, EventContext], Any]:
    kind = FIELD_KINDS[field_name]

    def extract(event: Any, ctx: EventContext) -> Any:
        value = getattr(event, field_name)
        if value is None or value == "":
            return _MISSING
        if kind == "timestamp" and isinstance(value, int):
            return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        return value

    return extract


def _json_input(spec: dict[str, Any], where: str) -> Callable[[Any, EventContext], Any]:
    rule = JsonRule.compile(spec, where)

    def extract(event: Any, ctx: EventContext) -> Any:
        for entity in rule.entities(event, ctx):  # the first matching entity decides
            found = rule.select(entity.get("data"))
            if not found:
                return _MISSING
            value = found[0] if len(found) == 1 else found
            if value is None:
                return _MISSING
            if isinstance(value, (dict, list)):
                return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            return value
        return _MISSING

    return extract


# --------------------------------------------------------------------------- #
# output: column names and values
# --------------------------------------------------------------------------- #

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def _words(name: str) -> list[str]:
    return _WORDS.findall(name) or [name]


def _camel(words: list[str]) -> str:
    return words[0].lower() + "".join(x.capitalize() for x in words[1:])


PROPERTY_NAMES: dict[str, Callable[[str], str]] = {
    "AS_IS": lambda name: name,
    "CAMEL_CASE": lambda name: _camel(_words(name)),
    "PASCAL_CASE": lambda name: "".join(x.capitalize() for x in _words(name)),
    "SNAKE_CASE": lambda name: "_".join(x.lower() for x in _words(name)),
    "LOWER_CASE": str.lower,
    "UPPER_CASE": str.upper,
}


def json_value(value: Any) -> Any:
    """A column value -> its JSON value (see the module docstring)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, tuple):
        return [json_value(v) for v in value]
    return str(value)


# --------------------------------------------------------------------------- #
# connections
# --------------------------------------------------------------------------- #

class ConnectionPool:
    """Up to ``size`` idle connections reused LIFO; more are opened when all are busy.

    A connection that failed is closed instead of returned, so a database that
    went away and came back costs one failed event per stale connection.
    """

    def __init__(self, connect: Callable[[], Any], size: int = POOL_SIZE):
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def release(self, conn: Any, broken: bool = False) -> None:
        if not broken:
            with self._lock:
                if len(self._idle) < self._size:
                    self._idle.append(conn)
                    return
        try:
            conn.close()
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except Exception:
                pass


def _postgres_driver(db: dict[str, Any]) -> tuple[Callable[[], Any], tuple[type, ...], tuple[type, ...]]:
    import psycopg

    def connect() -> Any:
        return psycopg.connect(host=db["host"], port=db["port"], dbname=db["database"], user=db["username"],
                               password=db["password"], sslmode="require" if db["sslMode"] else "prefer",
                               connect_timeout=CONNECT_TIMEOUT, autocommit=True,
                               application_name="snowmelt-sql-query-enrichment")

    # (driver errors, errors after which the connection is dropped)
    return connect, (psycopg.Error,), (psycopg.OperationalError, psycopg.InterfaceError)


def _mysql_driver(db: dict[str, Any]) -> tuple[Callable[[], Any], tuple[type, ...], tuple[type, ...]]:
    import pymysql

    def connect() -> Any:
        return pymysql.connect(host=db["host"], port=db["port"], database=db["database"], user=db["username"],
                               password=db["password"], ssl={"ssl": {}} if db["sslMode"] else None,
                               connect_timeout=CONNECT_TIMEOUT, autocommit=True, charset="utf8mb4")

    return connect, (pymysql.Error,), (pymysql.OperationalError, pymysql.InterfaceError)


# --------------------------------------------------------------------------- #
# the enrichment
# --------------------------------------------------------------------------- #

@dataclass(frozen=True)
class SqlQuery(Enrichment):
    """Runs one parameterised SQL query per event; its rows become entities (see the module docstring)."""

    name = "sql_query_enrichment_config"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*",)

    sql: str  # in the driver's %s style
    inputs: tuple[Callable[[Any, EventContext], Any], ...]  # one per placeholder, in order
    engine: str
    schema: str
    describes: str
    min_rows: int
    max_rows: int | None
    rename: Callable[[str], str]
    cache_size: int
    cache_ttl: int
    ignore_on_error: bool
    _pool: Any = field(repr=False, compare=False)
    _errors: tuple = field(repr=False, compare=False)
    _broken_errors: tuple = field(repr=False, compare=False)
    _cache: Any = field(default=None, repr=False, compare=False)
    _cache_lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)
    _names: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> SqlQuery:
        sql, count = convert_placeholders(parameters["query"]["sql"])
        by_placeholder: dict[int, Callable] = {}
        for index, spec in enumerate(parameters["inputs"]):
            where = f"{_FIELD}.inputs[{index}]"
            placeholder = spec["placeholder"]
            if placeholder in by_placeholder:
                raise ConfigError(f"{where}.placeholder: {placeholder} is given twice")
            if placeholder > count:
                raise ConfigError(f"{where}.placeholder: the query has {count} ? placeholder(s), not {placeholder}")
            if "pojo" in spec:
                name = spec["pojo"]["field"]
                if name not in FIELD_INDEX or FIELD_KINDS[name] == "json":
                    raise ConfigError(f"{where}.pojo.field: {name!r} is not an atomic field")
                by_placeholder[placeholder] = _pojo_input(name)
            else:
                by_placeholder[placeholder] = _json_input(spec["json"], f"{where}.json")
        missing = [str(p) for p in range(1, count + 1) if p not in by_placeholder]
        if missing:
            raise ConfigError(f"{_FIELD}.inputs: no input for placeholder(s) {', '.join(missing)} of the query")

        output = parameters["output"]
        out_json = output.get("json")
        if not out_json:
            raise ConfigError(f"{_FIELD}.output.json: required (the schema of the entities)")
        min_rows, max_rows = EXPECTED_ROWS[output.get("expectedRows", "AT_LEAST_ZERO")]

        databases = parameters["database"]
        engine = "postgresql" if "postgresql" in databases else "mysql"
        driver = _postgres_driver if engine == "postgresql" else _mysql_driver
        try:
            connect, errors, broken = driver(databases[engine])
        except ImportError as exc:
            raise ConfigError(f"{_FIELD}.database.{engine}: the driver is not installed ({exc.name}): "
                              f"pip install {'psycopg[binary]' if engine == 'postgresql' else 'pymysql'}") from None

        size, ttl = parameters["cache"]["size"], parameters["cache"]["ttl"]
        cache = None
        if size > 0 and ttl > 0:
            from cachetools import TTLCache
            cache = TTLCache(maxsize=size, ttl=ttl)
        return cls(sql=sql, inputs=tuple(by_placeholder[p] for p in range(1, count + 1)), engine=engine,
                   schema=out_json["schema"], describes=out_json["describes"], min_rows=min_rows,
                   max_rows=max_rows, rename=PROPERTY_NAMES[out_json["propertyNames"]],
                   cache_size=size, cache_ttl=ttl, ignore_on_error=bool(parameters.get("ignoreOnError")),
                   _pool=ConnectionPool(connect), _errors=errors, _broken_errors=broken, _cache=cache)

    # ------------------------------------------------------------------ per event

    def enrich(self, event: Any, ctx: EventContext) -> None:
        values = []
        for extract in self.inputs:
            value = extract(event, ctx)
            if value is _MISSING:
                return  # a missing input: no query, no entity (as Snowplow)
            values.append(value)
        key = tuple(values)
        cache = self._cache
        if cache is not None:
            try:
                with self._cache_lock:
                    entities = cache.get(key)
            except TypeError:  # an unhashable value: no caching for it
                entities, cache = None, None
            if entities is not None:
                ctx.derived.extend(entities)
                return
        try:
            entities = self._entities(values)
        except EnrichmentFailure:
            if self.ignore_on_error:
                return
            raise
        if cache is not None:
            with self._cache_lock:
                cache[key] = entities
        ctx.derived.extend(entities)

    def _entities(self, values: list) -> list[dict[str, Any]]:
        names, rows = self.query(values)
        count = len(rows)
        if count < self.min_rows or (self.max_rows is not None and count > self.max_rows):
            raise EnrichmentFailure.error(f"SQL query enrichment: expected {self._expected()} row(s), got {count}")
        if not rows:
            return []
        keys = self._names.get(names)
        if keys is None:
            keys = self._names[names] = tuple(self.rename(n) for n in names)
        objects = [{k: json_value(v) for k, v in zip(keys, row)} for row in rows]
        if self.describes == "ALL_ROWS":
            return [{"schema": self.schema, "data": objects}]
        return [{"schema": self.schema, "data": obj} for obj in objects]

    def _expected(self) -> str:
        if self.max_rows is None:
            return f"at least {self.min_rows}"
        return "exactly 1" if self.min_rows == 1 else "at most 1"

    def query(self, values: list) -> tuple[tuple[str, ...], list[tuple]]:
        """Run the query with ``values`` bound; (column names, rows). EnrichmentFailure on any DB error."""
        try:
            conn = self._pool.acquire()
        except self._errors as exc:
            raise EnrichmentFailure.error(f"SQL query enrichment: cannot connect to {self.engine}: "
                                          f"{_one_line(exc)}") from None
        broken = False
        try:
            with conn.cursor() as cur:
                cur.execute(self.sql, values)
                if cur.description is None:
                    return (), []
                names = tuple(d[0] for d in cur.description)
                return names, list(cur.fetchall())
        except self._errors as exc:
            broken = isinstance(exc, self._broken_errors) or bool(getattr(conn, "broken", False))
            raise EnrichmentFailure.error(f"SQL query enrichment: query failed: {_one_line(exc)}") from None
        finally:
            self._pool.release(conn, broken or bool(getattr(conn, "closed", False)))

    def close(self) -> None:
        self._pool.close()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:400] or type(exc).__name__
