"""The ClickHouse store: enriched events and bad rows into ClickHouse tables.

Two backends behind one small interface (:class:`Backend`: run a statement,
query rows, insert an Arrow table with settings), chosen by
``clickhouse.backend``:

``server``
    clickhouse-connect over HTTP(S) to ``clickhouse.url``; inserts are
    ``insert_arrow`` (Arrow IPC, compressed with ``clickhouse.compression``).
``chdb``
    ClickHouse's engine in-process (``chdb.session.Session(chdb_path)``), for
    ``snowmelt up`` and the tests; inserts are written to a file in Arrow's
    format (bad rows: one line each) that the engine reads with ``file()``, so
    that no insert holds the interpreter's lock while the engine works.

The DDL and every SQL statement are the same text for both.

Tables (created and migrated by :meth:`ClickHouseStore.open`, in
``clickhouse.database``):

``events``
    The 131 atomic fields in their ClickHouse types (derived from
    ``processor.enriched.FIELD_KINDS`` and :mod:`loaders.arrow`):
    ``DateTime64(3, 'UTC')``, ``Int32``, ``Float64``, ``Decimal(18, 2)``,
    ``Bool``, ``LowCardinality(String)`` for low-cardinality strings, all
    ``Nullable`` except ``event_id`` and ``collector_tstamp``; ``contexts``,
    ``derived_contexts`` and ``unstruct_event`` as the TSV's JSON text (a
    String queried with ``JSONExtract*``; the JSON type was left out because
    it cannot be Nullable and its dynamic paths multiply with every schema);
    ``load_tstamp`` (when the row was inserted), like Snowplow's loaders.
    ``ReplacingMergeTree`` partitioned by ``toDate(collector_tstamp)``,
    ordered by ``(app_id, event_name, collector_tstamp, event_id)`` (nullable
    keys allowed), so merges and ``FINAL`` drop a row repeated with the same
    event id; ``TTL`` from ``clickhouse.ttl_days``.  An insert does not merge
    its own rows first (``optimize_on_insert = 0``, :data:`EVENTS_INSERT_SETTINGS`):
    two rows with the same key in one batch are one row after the next merge
    or with ``FINAL``, as two in different batches always were.  Parts under 1 GiB
    (uncompressed) are Compact: merging the small parts of a streaming load
    costs half the CPU it costs in Wide parts (:data:`COMPACT_PART_BYTES`).
    A table made by an older version is given this setting when the store
    opens, unless it sets its own.

    Wide-row columns like Snowplow's: one per self-describing schema's vendor,
    name and major version, ``unstruct_event_com_acme_checkout_1`` (String:
    the event's data object as JSON, NULL for other events) and
    ``contexts_com_acme_product_1`` / ``derived_contexts_..._1``
    (Array(String): the data objects of the entities of that schema).  They
    are ``DEFAULT`` expressions over the JSON columns, so ClickHouse computes
    them on insert (and on read for parts written before the column existed);
    a new schema's column is added with ``ALTER TABLE ... ADD COLUMN IF NOT
    EXISTS`` before the batch that first carries it is inserted, which is
    harmless when several loaders race.  The schemas of a batch are found
    by one compiled pass over each JSON column's Arrow buffer
    (:func:`batch_schemas`), before the insert.  Names follow Snowplow's: the vendor's dots
    and dashes become underscores, a camelCase name becomes snake_case.

``bad_rows``
    One row per bad row: the document as received (``line``), and, computed
    from it by ClickHouse, ``schema``, ``processor_artifact``,
    ``processor_version``, ``failure`` and ``payload`` (JSON text), and
    ``failure_tstamp`` (the failure's timestamp, the batch's Kafka time when
    it has none); the ``batch_token``.  MergeTree partitioned by
    ``toDate(failure_tstamp)`` (a time that is the same on every retry, so the
    retry lands in the same partition and is deduplicated).

Exactly once: each insert carries ``insert_deduplication_token`` =
:attr:`Batch.token`, and the tables keep the last
``non_replicated_deduplication_window`` tokens, so a retried batch (after a
crash before the commit) is dropped by ClickHouse; the ReplacingMergeTree is
the second line of defence for an event that arrives twice in different
batches.  A line of the enriched topic that is not an enriched event goes
to ``bad_rows`` as Snowplow's ``loader_parsing_error`` in the same
:meth:`write`, with the batch's token suffixed ``:bad``.

Failures: a connection error, a timeout, or the server refusing for load
(too many parts, memory, ...) raise :class:`StoreUnavailable` so the runner
backs off and retries; anything else (bad SQL, bad config) is raised as is.
"""
from __future__ import annotations

import abc
import contextlib
import json
import logging
import re
import threading
from dataclasses import replace
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.ipc

from ext import iglu_uris
from loaders.arrow import LOW_CARDINALITY, REQUIRED, enriched_table
from loaders.base import BAD, ENRICHED, Batch, Lines, Store, StoreUnavailable, is_utf8
from processor.enriched import FIELD_KINDS, FIELDS
from snowmelt.config import ClickHouseConfig
from snowmelt.crash import fatal_signals_kept
from snowmelt.residency import release_package_pages

log = logging.getLogger("snowmelt.load.clickhouse")

__all__ = ["ClickHouseStore", "Backend", "ChdbBackend", "ServerBackend", "RawResult", "events_ddl", "wide_column",
           "DEDUPLICATION_WINDOW", "EVENTS_INSERT_SETTINGS"]

ARTIFACT = "snowmelt-load-clickhouse"
#: Insert tokens each table remembers (a batch retried after more inserts than this is not deduplicated).
DEDUPLICATION_WINDOW = 10_000
#: ``events`` parts smaller than this (uncompressed bytes, ~700,000 rows of tracker traffic) are written in
#: ClickHouse's Compact format (one file for every column) instead of Wide (two files a column).  With the
#: engine's default (10 MiB, ~7,000 rows), the merges of the small parts a streaming loader writes cost
#: more CPU than the inserts: 160 inserts of 1,250 rows in 20 s took 12-19 CPU-seconds of merges, and
#: 7 with this (``python -m bench.chdb_parts merges``; ``bench/RESULTS.md``, "5 December 2026").
COMPACT_PART_BYTES = 1 << 30
#: the table setting that says so, in the DDL and in the ALTER that gives it to an older table
COMPACT_PARTS = f"min_bytes_for_wide_part = {COMPACT_PART_BYTES}"
#: the settings of every insert into ``events``, besides its token.  The engine merged each inserted block as a
#: ReplacingMergeTree merge would before writing it, which only drops a row whose key repeats within the batch
#: (the merges and ``FINAL`` drop it anyway); without that merge a 1,250-row insert costs 0.76x the
#: instructions and a 250-row one 0.91x (``python -m bench.chdb_parts insert-settings``)
EVENTS_INSERT_SETTINGS = {"optimize_on_insert": 0}
_JSON_COLUMNS = ("unstruct_event", "contexts", "derived_contexts")
_CH_TYPES = {
    "timestamp": "DateTime64(3, 'UTC')",
    "int": "Int32",
    "float": "Float64",
    "decimal": "Decimal(18, 2)",
    "bool": "Bool",
    "json": "String",
    "string": "String",
}
_IGLU = re.compile(r"^iglu:([a-zA-Z0-9_.-]+)/([a-zA-Z0-9_-]+)/jsonschema/([1-9][0-9]*|0)-[0-9]+-[0-9]+$")


def column_type(name: str) -> str:
    """The ClickHouse type of atomic field ``name``."""
    base = _CH_TYPES[FIELD_KINDS[name]]
    if name in REQUIRED:
        return base
    if FIELD_KINDS[name] == "string" and name in LOW_CARDINALITY:
        return "LowCardinality(Nullable(String))"
    return f"Nullable({base})"


def _q(name: str) -> str:
    return f"`{name}`"


def events_ddl(database: str, ttl_days: int) -> str:
    """``CREATE TABLE IF NOT EXISTS {database}.events``: see the module docstring."""
    columns = ",\n  ".join(f"{_q(name)} {column_type(name)}" for name in FIELDS)
    ttl = f"\nTTL toDateTime(collector_tstamp) + INTERVAL {int(ttl_days)} DAY" if ttl_days > 0 else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {_q(database)}.events (\n  {columns},\n"
        f"  load_tstamp DateTime64(3, 'UTC') DEFAULT now64(3)\n)\n"
        f"ENGINE = ReplacingMergeTree\nPARTITION BY toDate(collector_tstamp)\n"
        f"ORDER BY (app_id, event_name, collector_tstamp, event_id){ttl}\n"
        f"SETTINGS allow_nullable_key = 1, non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}, "
        f"{COMPACT_PARTS}"
    )


def bad_rows_ddl(database: str) -> str:
    """``CREATE TABLE IF NOT EXISTS {database}.bad_rows``: the other columns are computed from ``line``."""
    return f"""CREATE TABLE IF NOT EXISTS {_q(database)}.bad_rows (
  line String,
  batch_token String,
  batch_tstamp DateTime64(3, 'UTC'),
  schema LowCardinality(String) DEFAULT JSONExtractString(line, 'schema'),
  processor_artifact LowCardinality(String) DEFAULT JSONExtractString(line, 'data', 'processor', 'artifact'),
  processor_version LowCardinality(String) DEFAULT JSONExtractString(line, 'data', 'processor', 'version'),
  failure String DEFAULT JSONExtractRaw(line, 'data', 'failure'),
  payload String DEFAULT JSONExtractRaw(line, 'data', 'payload'),
  failure_tstamp DateTime64(3, 'UTC') DEFAULT ifNull(
    parseDateTime64BestEffortOrNull(JSONExtractString(line, 'data', 'failure', 'timestamp'), 3, 'UTC'), batch_tstamp),
  load_tstamp DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toDate(failure_tstamp)
ORDER BY (schema, failure_tstamp)
SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}"""


def _snake(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).replace("-", "_").lower()


def wide_column(kind: str, schema: str) -> tuple[str, str] | None:
    """(column name, its definition) for schema ``schema`` in JSON column ``kind``; None if not an Iglu URI.

    ``wide_column("unstruct_event", "iglu:com.acme/checkout/jsonschema/1-0-2")``
    is ``unstruct_event_com_acme_checkout_1``.
    """
    match = _IGLU.match(schema)
    if match is None:
        return None
    vendor, name, major = match.groups()
    column = f"{kind}_{re.sub(r'[.-]', '_', vendor).lower()}_{_snake(name)}_{major}"
    prefix = f"iglu:{vendor}/{name}/jsonschema/{major}-"
    if kind == "unstruct_event":
        expr = (f"if(startsWith(JSONExtractString(ifNull(unstruct_event, ''), 'data', 'schema'), '{prefix}'), "
                f"JSONExtractRaw(ifNull(unstruct_event, ''), 'data', 'data'), NULL)")
        return column, f"{_q(column)} Nullable(String) DEFAULT {expr}"
    expr = (f"arrayMap(c -> JSONExtractRaw(c, 'data'), arrayFilter(c -> startsWith(JSONExtractString(c, 'schema'), "
            f"'{prefix}'), JSONExtractArrayRaw(ifNull({kind}, ''), 'data')))")
    return column, f"{_q(column)} Array(String) DEFAULT {expr}"


# the envelopes' own schemas, not columns
_ENVELOPES = (b"iglu:com.snowplowanalytics.snowplow/contexts/", b"iglu:com.snowplowanalytics.snowplow/unstruct_event/")


def batch_schemas(table: pa.Table) -> list[tuple[str, str]]:
    """The distinct (JSON column, schema URI) pairs of a batch, read off the columns' bytes.

    One pass over each JSON column's Arrow buffer (:func:`ext.iglu_uris`: no
    per-row Python, no JSON parsing).  A ``"schema": "iglu:..."`` nested
    inside an entity's own data is found too; its column is created and stays
    empty, which costs nothing but a column.
    """
    found: set[tuple[str, str]] = set()
    for kind in _JSON_COLUMNS:
        column = table.column(kind)
        if column.null_count == len(column):
            continue
        for chunk in column.chunks:
            if chunk.null_count == len(chunk):
                continue
            if pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary
            data = chunk.buffers()[2]
            if data is None:
                continue
            width = 8 if pa.types.is_large_string(chunk.type) else 4
            offsets = memoryview(chunk.buffers()[1]).cast("q" if width == 8 else "i")
            start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
            for uri in iglu_uris(memoryview(data)[start:end]):
                if not uri.startswith(_ENVELOPES):
                    found.add((kind, uri.decode()))
    return sorted(found)


class _Prepared(NamedTuple):
    """An enriched batch ready to insert: its rows, the (JSON column, schema) pairs they carry, and its lines
    that are not rows as ``loader_parsing_error`` bad rows."""

    table: pa.Table
    schemas: list[tuple[str, str]]
    bad_rows: list[bytes]


def _prepare_enriched(values: Sequence[bytes]) -> _Prepared:
    parsed = enriched_table(values)
    schemas = batch_schemas(parsed.table) if parsed.table.num_rows else []
    return _Prepared(parsed.table, schemas, [m.bad_row(ARTIFACT) for m in parsed.malformed])


class Backend(abc.ABC):
    """What the store needs of ClickHouse: statements, small queries, Arrow inserts."""

    @abc.abstractmethod
    def command(self, sql: str) -> None:
        """Run a statement (DDL, ALTER, OPTIMIZE)."""

    @abc.abstractmethod
    def query(self, sql: str) -> list[tuple]:
        """Rows of a (small) query."""

    @abc.abstractmethod
    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        """Insert ``data`` into ``table`` (qualified name), its columns by name, with query ``settings``."""

    def insert_lines(self, table: str, lines: list[bytes], token: str, timestamp_ms: int,
                     settings: dict[str, Any]) -> None:
        """Insert ``lines`` (UTF-8 text) into ``table``'s ``line`` column, each row with ``batch_token`` ``token``
        and ``batch_tstamp`` ``timestamp_ms``."""
        self.insert_arrow(table, pa.table({
            "line": pa.array([line.decode("utf-8", "replace") for line in lines], pa.string()),
            "batch_token": pa.array([token] * len(lines), pa.string()),
            "batch_tstamp": pa.array([timestamp_ms] * len(lines), pa.timestamp("ms", tz="UTC")),
        }), settings)

    @abc.abstractmethod
    def query_raw(self, sql: str, fmt: str | None, params: dict[str, str], settings: dict[str, Any],
                  database: str | None = None) -> "RawResult":
        """Run one statement and return its output as ClickHouse writes it, for the SQL endpoint.

        ``fmt`` is the output format when the statement has no ``FORMAT``
        clause (ClickHouse's ``default_format``; ``None`` means
        ``TabSeparated``).  ``params`` are the values of ``{name:Type}``
        placeholders as ClickHouse's HTTP ``param_<name>`` arguments carry
        them (text in the escaped TSV form, bound by the engine, never
        formatted into the SQL).  ``settings`` are query settings: appended to
        ``sql`` as a trailing ``SETTINGS`` clause, so the caller must pass a
        statement whose end is a place a ``SETTINGS`` clause may go (the SQL
        endpoint passes ClickHouse's own ``formatQuerySingleLine`` of the
        query).  ``database`` is the current database for the statement
        (with chdb, ``USE``-d and restored around it under the engine lock
        unless it is already the current one: see :meth:`use_database`).
        Errors are raised as the engine raises them (their text starts with
        ``Code: N. DB::Exception:``).
        """

    def use_database(self, database: str) -> None:
        """Make ``database`` the one a statement runs in when it names none and no ``database`` is given to
        :meth:`query_raw`: the store's, so that the SQL endpoint's statements need no ``USE`` each.  Nothing
        to do for a server, which is given the database with each statement."""

    def release_startup_memory(self) -> int | None:
        """Give back the memory opening the engine took and the store will not use again; the KiB released,
        or None when there is nothing of the kind to give back (the default)."""
        return None

    def close(self) -> None:
        """Release the connection or the engine."""


class RawResult:
    """The bytes a statement wrote in its output format, and its counters for ``X-ClickHouse-Summary``."""

    __slots__ = ("data", "read_rows", "read_bytes", "written_rows", "written_bytes", "elapsed_ns")

    def __init__(self, data: bytes, read_rows: int = 0, read_bytes: int = 0, written_rows: int = 0,
                 written_bytes: int = 0, elapsed_ns: int = 0) -> None:
        self.data = data
        self.read_rows = read_rows
        self.read_bytes = read_bytes
        self.written_rows = written_rows
        self.written_bytes = written_bytes
        self.elapsed_ns = elapsed_ns


def _write_arrow_file(path: str, data: pa.Table) -> None:
    # A table read in several CSV blocks has a dictionary per block in each low-cardinality column; the
    # Arrow file format takes one per column, so the chunks are made to share one (no copy of the rows).
    data = data.unify_dictionaries()
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
        writer.write_table(data)


def _literal(text: str) -> str:
    """``text`` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _settings_clause(settings: dict[str, Any]) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if not re.fullmatch(r"[a-z_]+", key):
            raise ValueError(f"not a setting name: {key!r}")
        parts.append(f"{key} = " + (str(int(value)) if isinstance(value, (bool, int))
                                     else _literal(str(value))))
    return " SETTINGS " + ", ".join(parts)


def raw_settings_clause(settings: dict[str, Any]) -> str:
    """``SETTINGS a = 1, b = 'x'`` for the SQL endpoint: names checked, values as literals (never raw SQL)."""
    parts = []
    for key, value in settings.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"Code: 115. DB::Exception: Unknown setting '{key}'. (UNKNOWN_SETTING)")
        if isinstance(value, bool):
            value = int(value)
        text = str(value)
        parts.append(f"{key} = " + (text if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text)
                                     else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"))
    return "SETTINGS " + ", ".join(parts)


@contextlib.contextmanager
def _unavailable_when_retryable():
    """chdb raises plain errors: one that passes with time (a full disk) becomes :class:`StoreUnavailable`."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if _retryable(exc):
            raise StoreUnavailable(str(exc)) from exc
        raise


class ChdbBackend(Backend):
    """ClickHouse's engine in this process, its data under ``path`` (one process per folder)."""

    _lock = threading.Lock()
    #: every insert's settings besides the caller's.  One thread: the engine planned a pipeline for as many
    #: threads as the machine has cores, for batches of a few hundred rows, and a pipeline for one costs
    #: 0.86x the instructions of a 250-row insert into ``events``, 0.90x of a 1,250-row one and 0.74x of 20
    #: bad rows (``python -m bench.chdb_parts insert-settings``), where a 15,000- or 50,000-row insert took the
    #: same time either way (it reads one file, one block at a time: ``bench/RESULTS.md``, "an insert on one
    #: thread, without merging its own rows")
    INSERT_SETTINGS = {"max_threads": 1}

    def __init__(self, path: str) -> None:
        with fatal_signals_kept():  # chdb's handlers would hang a process that crashed (snowmelt.crash)
            from chdb import session

            self._session = session.Session(path)
        self._insert_file = Path(path) / "insert.tmp"  # what is being inserted (under the lock)
        # the session's current database, None until read: only use_database and query_raw (USE, then back)
        # change it, so a statement for the database already current costs no USE and no look-up
        self._current: str | None = None
        self._released = False  # whether the start-up pages were given back

    def release_startup_memory(self) -> int | None:
        """The pages of chdb's library that its start-up read (``snowmelt.residency``): about 100 of the
        200 MB it keeps resident once a session is open and the store's tables are made, fewer when another
        process maps the library too (the kernel keeps the pages they share).  Once: a store opened again
        (after an outage) keeps the pages its statements have used since, and this is None."""
        with self._lock:
            if self._released:
                return None
            self._released = True
            return release_package_pages("chdb")

    def command(self, sql: str) -> None:
        with self._lock, _unavailable_when_retryable():
            self._session.query(sql)

    def query(self, sql: str) -> list[tuple]:
        with self._lock:
            result = self._session.query(sql, "JSONCompact")
        data = result.bytes() if hasattr(result, "bytes") else str(result).encode()
        return [tuple(row) for row in json.loads(data)["data"]] if data.strip() else []

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        """See :meth:`Backend.insert_arrow`: written to a file in Arrow's format, which the engine reads.

        chdb's ``Python()`` table function reads a table through the interpreter,
        holding its lock: an insert of 7,000 enriched events held it up to 100 ms
        at a stretch, and 23,000 bad rows 110 ms, stalling the event loop that
        answers trackers.  Writing the file takes 10 ms and lets go of the lock.  The engine reads it with
        ``INSERT ... FROM INFILE``, not ``INSERT ... SELECT * FROM file(...)``, which planned a 135-column
        SELECT on every insert: 8 ms of CPU less an insert, 1.17 times the rows a second with batches of
        1,250 (``bench/RESULTS.md``)."""
        columns = ", ".join(_q(name) for name in data.column_names)
        with self._lock:
            self._insert_from_file(
                lambda path: _write_arrow_file(path, data),
                f"INSERT INTO {table} ({columns}) FROM INFILE {{path}}"
                f"{_settings_clause({**self.INSERT_SETTINGS, **settings})} FORMAT Arrow")

    def _insert_from_file(self, write: Callable[[str], None], sql: str) -> None:
        """Run ``sql`` (``{path}`` standing for the file's name as a literal) on what ``write`` put in the
        file, then remove it."""
        path = str(self._insert_file)
        try:
            write(path)
            with _unavailable_when_retryable():
                self._session.query(sql.replace("{path}", _literal(path)))
        except OSError as exc:
            raise StoreUnavailable(f"cannot write {path}: {exc}") from exc
        finally:
            self._insert_file.unlink(missing_ok=True)

    def insert_lines(self, table: str, lines: list[bytes], token: str, timestamp_ms: int,
                     settings: dict[str, Any]) -> None:
        """See :meth:`Backend.insert_lines`: the engine reads the lines from a file, one row a line (no
        Arrow table built in the interpreter).  Lines that are not UTF-8 or hold a line break go the Arrow
        way."""
        if isinstance(lines, Lines):  # one value a line by construction: written as read, without the last break
            data, body, whole = lines.data, memoryview(lines.data)[:-1], True
        else:
            data = body = b"\n".join(lines)
            whole = data.count(b"\n") == len(lines) - 1
        plain = whole and b"\r" not in data and (data.isascii() or is_utf8(data))
        if not plain or not lines:
            super().insert_lines(table, lines, token, timestamp_ms, settings)
            return
        with self._lock:
            self._insert_from_file(
                lambda path: Path(path).write_bytes(body),
                f"INSERT INTO {table} (line, batch_token, batch_tstamp)"
                f"{_settings_clause({**self.INSERT_SETTINGS, **settings})} "
                f"SELECT line, {_literal(token)}, fromUnixTimestamp64Milli(toInt64({int(timestamp_ms)}), 'UTC') "
                f"FROM file({{path}}, 'LineAsString', 'line String')")

    def query_raw(self, sql: str, fmt: str | None, params: dict[str, str], settings: dict[str, Any],
                  database: str | None = None) -> RawResult:
        """See :meth:`Backend.query_raw`; chdb's own ``params`` binding, output format names as ClickHouse's."""
        if fmt is not None and fmt.lower() in ("dataframe", "arrowtable", "debug"):
            raise ValueError(f"Code: 73. DB::Exception: Unknown format {fmt}. (UNKNOWN_FORMAT)")
        text = sql + ("\n" + raw_settings_clause(settings) if settings else "")
        with self._lock:
            restore = None
            if database:
                wanted, current = database.replace("`", ""), self._current_database()
                if wanted != current:
                    self._use(wanted)
                    restore = current
            try:
                result = self._session.query(text, fmt or "TabSeparated", params=dict(params) if params else None)
            finally:
                if restore is not None:
                    self._use(restore)
        data = result.bytes() if hasattr(result, "bytes") else str(result).encode()
        return RawResult(data, result.rows_read(), result.bytes_read(), result.rows_written(),
                         result.bytes_written(), int(result.elapsed() * 1e9))

    def use_database(self, database: str) -> None:
        with self._lock:
            self._use(database.replace("`", ""))

    def _current_database(self) -> str:
        """The session's current database (under the lock): read once, then kept as :meth:`_use` changes it."""
        if self._current is None:
            self._current = self._session.query("SELECT currentDatabase()", "TabSeparatedRaw").bytes().decode().strip()
        return self._current

    def _use(self, database: str) -> None:
        """``USE database`` (under the lock); after a failure the current database is read again when needed."""
        self._current = None
        self._session.query(f"USE {_q(database)}")
        self._current = database

    def close(self) -> None:
        with self._lock:
            self._session.close()


# Server errors that mean "not now" rather than "never": too many parts, memory, timeouts,
# shutting down, readonly replica, disk full (243), network inside the cluster.
_RETRYABLE_CODES = {159, 164, 202, 203, 209, 210, 241, 242, 243, 252, 285, 319, 394, 425, 999}


def _error_code(exc: BaseException) -> int | None:
    """ClickHouse's error code of ``exc``: its ``code`` attribute, else the ``Code: N`` of its text."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = re.search(r"Code: (\d+)", str(exc))
    return int(match.group(1)) if match else None


def _retryable(exc: BaseException) -> bool:
    """A full disk, too many parts, memory...: the same write can succeed later."""
    return _error_code(exc) in _RETRYABLE_CODES or "No space left on device" in str(exc)


def tls_options(config: ClickHouseConfig) -> dict[str, Any]:
    """clickhouse-connect's TLS arguments: ``verify`` and, when set, ``ca_cert`` (a PEM file)."""
    options: dict[str, Any] = {"verify": config.verify}
    if config.ca_cert:
        options["ca_cert"] = config.ca_cert
    return options


class ServerBackend(Backend):
    """clickhouse-connect to a ClickHouse server over HTTP(S)."""

    def __init__(self, config: ClickHouseConfig) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver import exceptions

        self._exceptions = exceptions
        parts = urlsplit(config.url)
        compression = None if config.compression in ("", "none") else config.compression
        try:
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost", port=parts.port or (8443 if parts.scheme == "https" else 8123),
                secure=parts.scheme == "https", username=parts.username or config.username,
                password=parts.password or config.password, compress=compression or False,
                autogenerate_session_id=False, **tls_options(config))
        except Exception as exc:
            self._raise(exc)

    def _raise(self, exc: Exception):
        exceptions = self._exceptions
        if isinstance(exc, exceptions.OperationalError):
            raise StoreUnavailable(str(exc)) from exc
        if isinstance(exc, exceptions.DatabaseError) and _retryable(exc):
            raise StoreUnavailable(str(exc)) from exc
        if isinstance(exc, (ConnectionError, TimeoutError)):
            raise StoreUnavailable(str(exc)) from exc
        raise exc

    def command(self, sql: str) -> None:
        try:
            self._client.command(sql)
        except Exception as exc:
            self._raise(exc)

    def query(self, sql: str) -> list[tuple]:
        try:
            return [tuple(row) for row in self._client.query(sql).result_rows]
        except Exception as exc:
            self._raise(exc)

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        database, _, name = table.partition(".")
        try:
            self._client.insert_arrow(name.strip("`"), data, database=database.strip("`"), settings=settings)
        except Exception as exc:
            self._raise(exc)

    def query_raw(self, sql: str, fmt: str | None, params: dict[str, str], settings: dict[str, Any],
                  database: str | None = None) -> RawResult:
        """See :meth:`Backend.query_raw`; clickhouse-connect's ``raw_query`` (server-side parameter binding)."""
        if database and database != self._client.database:
            raise ValueError(f"this client is bound to database {self._client.database!r}, not {database!r}")
        values = {name: _unescape_tsv(value) for name, value in params.items()}
        text = sql + ("\n" + raw_settings_clause(settings) if settings else "")
        try:
            return RawResult(self._client.raw_query(text, parameters=values or None, fmt=fmt or "TabSeparated"))
        except Exception as exc:
            self._raise(exc)

    def close(self) -> None:
        self._client.close()


_TSV_ESCAPES = {"b": "\b", "f": "\f", "r": "\r", "n": "\n", "t": "\t", "0": "\0", "'": "'", "\\": "\\"}


_conversion_released = False
_conversion_lock = threading.Lock()


def _release_conversion_pages() -> int | None:
    """The pages of pyarrow's and numpy's libraries that importing them read (about 30 MB, ``snowmelt.residency``):
    the batches' conversion reads a tenth of them again.  Once a process: the KiB released, then None."""
    global _conversion_released
    with _conversion_lock:
        if _conversion_released:
            return None
        _conversion_released = True
        return release_package_pages("pyarrow", "numpy")


def _unescape_tsv(value: str) -> str:
    """A ``param_`` value as ClickHouse reads it (escaped TSV) -> the Python string it stands for."""
    return re.sub(r"\\(.)", lambda m: _TSV_ESCAPES.get(m.group(1), m.group(1)), value)


class ClickHouseStore(Store):
    """:class:`~loaders.base.Store` into ClickHouse (server or chdb): see the module docstring."""

    name = "clickhouse"

    def __init__(self, config: ClickHouseConfig) -> None:
        if config.backend not in ("server", "chdb"):
            raise ValueError(f"clickhouse.backend must be server or chdb, not {config.backend!r}")
        self.config = config
        self.backend: Backend | None = None
        self._db = _q(config.database)
        self._columns: set[str] = set()

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect, create the database and tables, add missing columns, apply the TTL."""
        if self.backend is None:
            self.backend = (ChdbBackend(self.config.chdb_path) if self.config.backend == "chdb"
                            else ServerBackend(self.config))
        backend = self.backend
        backend.command(f"CREATE DATABASE IF NOT EXISTS {self._db}")
        backend.use_database(self.config.database)
        backend.command(events_ddl(self.config.database, self.config.ttl_days))
        backend.command(bad_rows_ddl(self.config.database))
        self._columns = self._existing_columns()
        # tables made by an older version: add the atomic columns they lack
        for name in FIELDS:
            if name not in self._columns:
                backend.command(f"ALTER TABLE {self._db}.events ADD COLUMN IF NOT EXISTS {_q(name)} "
                                f"{column_type(name)}")
        self._apply_table_settings()
        self._columns = self._existing_columns()
        released = {"the ClickHouse engine": backend.release_startup_memory(),
                    "pyarrow": _release_conversion_pages()}
        released = {name: kib for name, kib in released.items() if kib is not None}
        if released:
            log.info("released %d MB of start-up pages (%s)", sum(released.values()) // 1024, ", ".join(released))

    def _existing_columns(self) -> set[str]:
        rows = self.backend.query(
            f"SELECT name FROM system.columns WHERE database = '{self._escaped_db()}' AND table = 'events'")
        return {row[0] for row in rows}

    def _escaped_db(self) -> str:
        return self.config.database.replace("\\", "\\\\").replace("'", "\\'")

    def _apply_table_settings(self) -> None:
        """Bring a table made earlier or by an older version in line: the configured TTL, and the size
        below which parts are Compact unless the table sets its own."""
        rows = self.backend.query(f"SELECT create_table_query FROM system.tables "
                                  f"WHERE database = '{self._escaped_db()}' AND name = 'events'")
        create = rows[0][0] if rows else ""
        if "min_bytes_for_wide_part" not in create:
            self.backend.command(f"ALTER TABLE {self._db}.events MODIFY SETTING {COMPACT_PARTS}")
        has_ttl = " TTL " in create
        days = self.config.ttl_days
        if days > 0:
            wanted = f"INTERVAL {int(days)} DAY"
            if not has_ttl or wanted not in create:
                self.backend.command(f"ALTER TABLE {self._db}.events MODIFY TTL toDateTime(collector_tstamp) + "
                                     f"{wanted} SETTINGS materialize_ttl_after_modify = 0")
        elif has_ttl:
            self.backend.command(f"ALTER TABLE {self._db}.events REMOVE TTL")

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    # -- writing ----------------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """Insert ``batch`` (enriched -> ``events``, bad -> ``bad_rows``) with its token; idempotent."""
        if self.backend is None:
            raise StoreUnavailable("the ClickHouse store is not open")
        if not batch.values:
            return
        if batch.kind == ENRICHED:
            self._write_enriched(batch)
        elif batch.kind == BAD:
            self._write_bad(batch.values, batch.token, batch.first_timestamp_ms)
        else:
            raise ValueError(f"unknown batch kind {batch.kind!r}")

    def prepare(self, batch: Batch) -> Batch:
        """An enriched ``batch`` with its lines parsed into rows, its schemas found and its malformed lines
        made bad rows (:class:`_Prepared`): that work runs while the batch before is inserted."""
        if batch.kind != ENRICHED or not batch.values:
            return batch
        return replace(batch, prepared=_prepare_enriched(batch.values))

    def _write_enriched(self, batch: Batch) -> None:
        prepared = batch.prepared if batch.prepared is not None else _prepare_enriched(batch.values)
        if prepared.table.num_rows:
            self._add_wide_columns(prepared.schemas)
            self.backend.insert_arrow(f"{self._db}.events", prepared.table,
                                      {**EVENTS_INSERT_SETTINGS, "insert_deduplication_token": batch.token})
        if prepared.bad_rows:
            self._write_bad(prepared.bad_rows, batch.token + ":bad", batch.first_timestamp_ms)

    def _add_wide_columns(self, schemas: list[tuple[str, str]]) -> None:
        for kind, schema in schemas:
            wide = wide_column(kind, schema)
            if wide is None or wide[0] in self._columns:
                continue
            self.backend.command(f"ALTER TABLE {self._db}.events ADD COLUMN IF NOT EXISTS {wide[1]}")
            self._columns.add(wide[0])

    def _write_bad(self, lines: Sequence[bytes], token: str, timestamp_ms: int) -> None:
        self.backend.insert_lines(f"{self._db}.bad_rows", lines, token, timestamp_ms,
                                  {"insert_deduplication_token": token})
