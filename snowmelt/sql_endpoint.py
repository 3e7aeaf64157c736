"""SQL over HTTP in ClickHouse's HTTP dialect, for the store ``snowmelt up`` embeds.

:func:`make_sql_app` serves a :class:`loaders.clickhouse.Backend` (in
``snowmelt up`` the chdb one the loader writes through) well enough that
clickhouse-connect, Grafana's ClickHouse data source (HTTP protocol) and curl
query it with their defaults:

``GET|HEAD /ping``, ``GET|HEAD /`` without a query
    ``Ok.\\n`` (200, text/plain; no token needed, like ClickHouse: a health check).
``GET /?query=...``, ``POST /`` (query in the body, or ``query`` parameter with the body appended after a newline)
    One statement.  ``default_format`` (else ``TabSeparated``) unless the
    statement has ``FORMAT x``; ``param_<name>`` bound to ``{name:Type}``
    placeholders by the engine itself (values in ClickHouse's escaped text
    form, never formatted into the SQL); ``database``; ``query_id`` (echoed,
    made up when absent); every other URL parameter that is not part of the
    HTTP protocol is a query setting.  Responses carry ``X-ClickHouse-Format``,
    ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Summary``,
    ``X-ClickHouse-Timezone`` and ``X-ClickHouse-Server-Display-Name``.
Errors
    ClickHouse's text (``Code: N. DB::Exception: ... (NAME)``) with
    ``X-ClickHouse-Exception-Code: N`` and ClickHouse's HTTP status for the
    code (ClickHouse's exceptionCodeToHTTPStatus: 400 syntax/bad argument, 403
    access denied, 404 unknown table/column/format, 408 timeout, 500 otherwise,
    READONLY included; 401/403 for a missing/wrong token).

How a statement runs.  The text is first given to ClickHouse's own parser
(``formatQuerySingleLine``, the query passed as a bound parameter): a syntax
error or a second statement is refused there (chdb itself would run several
statements; ClickHouse's HTTP interface does not).

Read-only (the default; and every ``GET``, as in ClickHouse): the canonical
text's trailing ``SETTINGS`` and ``FORMAT`` clauses are taken off, checked
(allowed settings and formats only) and put back as one clause in which the
endpoint's limits (:class:`SqlLimits`: execution time, memory, result bytes,
query size; a client may lower them) follow the client's settings and
``readonly = 1`` comes last.  The syntax tree of exactly that text (``EXPLAIN
AST``) must then pass :mod:`snowmelt.sql_policy` (an allow-list of statements,
tables, functions, table functions and formats), and it runs in the store's
database.  Refused: ``Code: 164 (READONLY)`` for writes and settings (an ``INSERT``
named in the URL before its body is read: clickhouse-connect sends its data
compressed), ``446
(FUNCTION_NOT_ALLOWED)``, ``497 (ACCESS_DENIED)`` for other databases and hosts,
``73 (UNKNOWN_FORMAT)``, ``392 (QUERY_IS_PROHIBITED)`` for ``INTO OUTFILE``.
A statement that outlives ``max_execution_time`` is stopped by the engine
(``159 TIMEOUT_EXCEEDED``); chdb cannot stop a running statement from another
thread, so a client that goes away does not end it sooner.
Writable (``readonly=False``, for trusted clients only): DDL and ``INSERT``
run as sent (an ``INSERT`` runs its original text, inline data included, and
without the URL settings, which cannot be appended after data).

Requests: only those whose ``Host`` is localhost, an IP address or one of
``api.public_hosts`` (:mod:`snowmelt.access`; DNS rebinding), no CORS
headers, a body over the query size refused (413) before it is read whole,
statements run one at a time on a thread of their own with at most
``max_queued`` waiting (more get ``202 TOO_MANY_SIMULTANEOUS_QUERIES``, 503),
so the aiohttp loop stays responsive and the engine is never held longer
than the time limit at once.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import re
import threading
import uuid
from base64 import b64decode
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from snowmelt import sql_policy
from snowmelt.access import host_allowed, is_loopback_host
from snowmelt.http_body import HEAD_BYTES, SERVER_OPTIONS, read_bounded


__all__ = ["make_sql_app", "make_configured_sql_app", "serve_loader_sql", "check_loader_sql_settings", "SqlError",
           "SqlLimits", "run_statement", "split_tail", "SERVER_NAME", "is_loopback_host"]

log = logging.getLogger("snowmelt.sql")

SERVER_NAME = "snowmelt"
BACKEND_KEY = web.AppKey("sql_backend", object)

#: URL parameters that belong to the HTTP protocol, not to the query's settings.
_PROTOCOL_PARAMS = {
    "query", "database", "default_format", "query_id", "user", "password", "quota_key", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query", "role",
    "stacktrace", "enable_http_compression", "http_zlib_compression_level", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "http_response_buffer_size", "add_http_cors_header", "http_wait_end_of_query", "client_protocol_version",
}
_READ_KINDS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}
_WRITE_KINDS = {"INSERT", "ALTER", "CREATE", "DROP", "TRUNCATE", "DELETE", "UPDATE", "RENAME", "OPTIMIZE",
                "ATTACH", "DETACH", "GRANT", "REVOKE", "SYSTEM", "KILL", "BACKUP", "RESTORE", "UNDROP"}
# the statement's first word, after blanks, comments and opening parentheses
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]+)", re.S)
_CONTENT_TYPES = {
    "json": "application/json; charset=UTF-8",
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
    "native": "application/octet-stream",
    "arrow": "application/octet-stream",
    "arrowstream": "application/octet-stream",
    "parquet": "application/octet-stream",
}
# ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp): the codes it maps,
# by number; every other code, READONLY (164) and FUNCTION_NOT_ALLOWED (446) included, is 500
_STATUS = {
    401: {194},  # REQUIRED_PASSWORD
    403: {192, 193, 497, 512, 516},  # UNKNOWN_USER, WRONG_PASSWORD, ACCESS_DENIED, SET_NON_GRANTED_ROLE, AUTH...
    # BAD_ARGUMENTS, CANNOT_PARSE_* (text, escape, quoted string, date, datetime, number, domain value, IPv4,
    # IPv6, input assertion, UUID), CANNOT_COMPILE_REGEXP, DUPLICATE_COLUMN, ILLEGAL_COLUMN, the AST errors,
    # THERE_IS_NO_COLUMN, SYNTAX_ERROR, INCORRECT_DATA, TYPE_MISMATCH, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    400: {36, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 427, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117, 53,
          321},
    # UNKNOWN_TABLE, _FUNCTION, _IDENTIFIER, _TYPE, _STORAGE, _DATABASE, _SETTING, _DIRECTION_OF_SORTING,
    # _AGGREGATE_FUNCTION, _FORMAT, _DATABASE_ENGINE, _TYPE_OF_QUERY, _ROLE
    404: {60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511},
    413: {229},  # QUERY_IS_TOO_LARGE
    501: {48},  # NOT_IMPLEMENTED
    503: {209, 76, 439},  # SOCKET_TIMEOUT, CANNOT_OPEN_FILE, CANNOT_SCHEDULE_TASK
    411: {381},  # HTTP_LENGTH_REQUIRED
    408: {159},  # TIMEOUT_EXCEEDED
    415: {779},  # UNSUPPORTED_MEDIA_TYPE
}
_CODE = re.compile(r"Code: (\d+)\.")
_TRAILING_FORMAT = re.compile(r" FORMAT ([A-Za-z0-9_]+)( SETTINGS [^']*)?$")
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"")


class SqlError(Exception):
    """An error shown to the client as ClickHouse shows it: ``Code: N. DB::Exception: message (NAME)``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def of(cls, code: int, message: str, name: str) -> "SqlError":
        return cls(code, f"Code: {code}. DB::Exception: {message}. ({name})")


def readonly_error(get: bool = False) -> SqlError:
    """ClickHouse's answer to a write in readonly mode (a GET is read-only whatever the server's mode)."""
    reason = ("Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should "
              "use method POST for modifying queries") if get else "Cannot execute query in readonly mode"
    return SqlError.of(164, f"default: {reason}", "READONLY")


def is_write(query: str) -> bool:
    """True when ``query`` starts (after blanks, comments and parentheses) with a writing statement's keyword."""
    first = _FIRST_WORD.match(query)
    return bool(first) and first.group(1).upper() in _WRITE_KINDS


def _status(code: int) -> int:
    for status, codes in _STATUS.items():
        if code in codes:
            return status
    return 500


def _escape_param(text: str) -> str:
    """``text`` in ClickHouse's escaped form, as a ``{q:String}`` parameter value is read."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _as_sql_error(exc: BaseException) -> SqlError:
    if isinstance(exc, SqlError):
        return exc
    text = str(exc).strip()
    match = _CODE.search(text)
    if match:
        # the engine's message, without chdb's own repetition of the code
        return SqlError(int(match.group(1)), text[match.start():])
    return SqlError.of(1001, text or type(exc).__name__, "STD_EXCEPTION")


@dataclass(frozen=True)
class SqlLimits:
    """What one statement may cost (``api.sql_*``); a client may lower these, never raise them."""

    max_execution_time: float = 10.0
    max_memory_usage: int = 1_000_000_000
    max_result_bytes: int = 64 * 1024 * 1024
    max_query_size: int = 262_144
    max_queued: int = 4

    @classmethod
    def from_config(cls, api) -> "SqlLimits":
        """From an :class:`snowmelt.config.ApiConfig`."""
        return cls(api.sql_max_execution_time, api.sql_max_memory_usage, api.sql_max_result_bytes,
                   api.sql_max_query_size, api.sql_max_queued)

    def enforced(self, given: dict[str, str]) -> dict[str, str]:
        """``given`` with the limits set (the lower of the client's value and ours) and ``readonly = 1`` last."""
        out = dict(given)
        for name, ours in (("max_execution_time", self.max_execution_time),
                           ("max_memory_usage", self.max_memory_usage),
                           ("max_result_bytes", self.max_result_bytes)):
            theirs = _number(out.pop(name, None))
            value = ours if theirs is None or theirs <= 0 else min(theirs, ours)
            out[name] = str(int(value)) if float(value).is_integer() else str(value)
        out.pop("readonly", None)
        out.update({"timeout_overflow_mode": "throw", "result_overflow_mode": "throw",
                    "max_query_size": str(self.max_query_size), "readonly": "1"})
        return out


def _number(text) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        raise SqlError.of(27, f"Cannot parse the limit {text!r} as a number", "CANNOT_PARSE_INPUT_ASSERTION_FAILED")


def _canonical(backend, query: str) -> str:
    """ClickHouse's own single-line form of ``query`` (a syntax error or a second statement raised)."""
    try:
        return backend.query_raw("SELECT formatQuerySingleLine({q:String})", "TabSeparatedRaw",
                                 {"q": _escape_param(query)}, {}).data.decode("utf-8").rstrip("\n")
    except Exception as exc:
        error = _as_sql_error(exc)
        # the parser's message, without the wrapper query it was found in
        text = re.sub(r"\.? : In scope SELECT formatQuerySingleLine\(.*\)(?=\. \([A-Z_]+\)$)", "", str(error),
                      flags=re.S)
        raise SqlError(error.code, text) from exc


_VALUE = r"(?:-?[0-9][0-9.eE+-]*|'[^']*'|[A-Za-z_][A-Za-z0-9_]*)"
_PAIR = rf"[A-Za-z_][A-Za-z0-9_]* = {_VALUE}"
_LIST = rf"{_PAIR}(?:, {_PAIR})*"
_TAIL = re.compile(rf"(?: SETTINGS (?P<s1>{_LIST}))?(?: FORMAT (?P<fmt>[A-Za-z0-9_]+))?"
                   rf"(?: SETTINGS (?P<s2>{_LIST}))?$")


def _mask_strings(text: str) -> str:
    """``text`` with the inside of every quoted literal and name blanked (same length), for finding clauses."""
    return _STRINGS.sub(lambda m: m.group(0)[0] + "_" * (len(m.group(0)) - 2) + m.group(0)[-1], text)


def split_tail(canonical: str) -> tuple[str, dict[str, str], str | None]:
    """``(statement, trailing settings, FORMAT)`` of a canonical query: ``SELECT 1 SETTINGS a = 1 FORMAT TSV``.

    The statement is what remains without its trailing ``SETTINGS``/``FORMAT``
    clauses; a ``SETTINGS`` clause anywhere else is left in it (the caller
    refuses it).  Values are returned as their text, quotes removed.
    """
    masked = _mask_strings(canonical)
    match = _TAIL.search(masked)
    settings: dict[str, str] = {}
    for group in ("s1", "s2"):
        if match.group(group):
            start, end = match.span(group)
            for pair in re.finditer(_PAIR, masked[start:end]):
                name, _, value = canonical[start + pair.start():start + pair.end()].partition(" = ")
                if value.startswith("'"):
                    value = value[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
                settings[name] = value
    return canonical[:match.start()], settings, match.group("fmt")


class CheckedStatements:
    """The read-only statements that passed the checks lately: what to run and its format, by everything the
    checks read (the query, its format, parameters and settings, the database asked for, the store's and the
    limits).  The checks ask the engine twice (its canonical text, its syntax tree) and give the same answer
    for the same inputs, so a dashboard or a client polling the same statement pays for them once.  Only
    statements that passed are kept (``functools.lru_cache`` keeps no exception), the last ``size`` of them,
    each of at most ``max_query_chars``."""

    def __init__(self, size: int = 256, max_query_chars: int = 16_384) -> None:
        self.max_query_chars = max_query_chars
        self._kept = functools.lru_cache(maxsize=size)(self._check)

    @staticmethod
    def _check(backend, query: str, default_format: str | None, params: tuple, settings: tuple,
               database: str | None, limits: SqlLimits, store_database: str) -> tuple[str, str]:
        return _checked_read(backend, query, default_format=default_format, params=dict(params),
                             settings=dict(settings), database=database, limits=limits,
                             store_database=store_database)

    def checked_read(self, backend, query: str, *, default_format: str | None, params: dict[str, str],
                     settings: dict[str, str], database: str | None, limits: SqlLimits,
                     store_database: str) -> tuple[str, str]:
        """:func:`_checked_read`, answered from the keep when the same statement passed before."""
        if len(query) > self.max_query_chars:
            return _checked_read(backend, query, default_format=default_format, params=params, settings=settings,
                                 database=database, limits=limits, store_database=store_database)
        return self._kept(backend, query, default_format, tuple(sorted(params.items())),
                          tuple(sorted(settings.items())), database, limits, store_database)


def _canonical_statement(backend, query: str) -> tuple[str, str]:
    """(:func:`_canonical` of ``query``, its kind: the first word, upper case); a ``SET`` or ``USE`` is refused."""
    canonical = _canonical(backend, query)
    kind = canonical.lstrip("(").split(" ", 1)[0].upper()
    if kind in ("SET", "USE"):
        raise SqlError.of(164, f"{kind} would change the engine shared with the loader; pass settings as URL "
                               f"parameters and the database as the database parameter", "READONLY")
    return canonical, kind


def _checked_read(backend, query: str, *, default_format: str | None, params: dict[str, str],
                  settings: dict[str, str], database: str | None, limits: SqlLimits,
                  store_database: str) -> tuple[str, str]:
    """``(text to run, output format)`` of a read-only statement that passes every check; else :class:`SqlError`."""
    canonical, kind = _canonical_statement(backend, query)
    if kind not in _READ_KINDS:
        raise readonly_error()
    if database not in (None, "", "default", store_database):
        raise SqlError.of(497, f"Not enough privileges: database {database} is not served here", "ACCESS_DENIED")
    try:
        sql_policy.refuse_escaped_identifiers(canonical)
        statement, clause, fmt = split_tail(canonical)
        for name in clause:
            sql_policy.check_setting(name)
        fmt = fmt or default_format or "TabSeparated"
        sql_policy.check_format(fmt)
        from loaders.clickhouse import raw_settings_clause

        text = f"{statement} FORMAT {fmt} " + raw_settings_clause(limits.enforced({**settings, **clause}))
        try:
            # the syntax tree only: no name is looked up, so no database is made current for it
            explain = backend.query_raw("EXPLAIN AST " + text, "TabSeparatedRaw", params, {}).data.decode(
                "utf-8", "replace")
        except Exception as exc:
            raise _as_sql_error(exc) from exc
        if sql_policy.check_tree(sql_policy.parse_tree(explain), store_database) != 1:
            raise SqlError.of(164, "SETTINGS inside a subquery is not allowed here; put them at the end of "
                                   "the query or in the URL", "READONLY")
    except sql_policy.PolicyError as exc:
        raise SqlError(exc.code, str(exc)) from exc
    return text, fmt


def run_statement(backend, query: str, *, default_format: str | None, params: dict[str, str],
                  settings: dict[str, str], database: str | None, readonly: bool,
                  limits: SqlLimits | None = None, store_database: str = "snowplow",
                  memo: CheckedStatements | None = None):
    """Check and run one statement on ``backend`` (blocking); return ``(RawResult, output format)``.

    Raises :class:`SqlError` for what the endpoint refuses and for the
    engine's own errors.  Read-only: the statement must pass
    :mod:`snowmelt.sql_policy` and runs in ``store_database`` under ``limits``;
    with ``memo``, a statement that passed before with the same inputs is not
    checked again (:class:`CheckedStatements`).  See the module docstring for
    the rules.
    """
    limits = limits or SqlLimits()
    if not query.strip():
        raise SqlError.of(62, "Empty query", "SYNTAX_ERROR")
    if len(query.encode("utf-8")) > limits.max_query_size:
        raise SqlError.of(62, f"Max query size exceeded ({limits.max_query_size} bytes)", "SYNTAX_ERROR")
    if readonly:
        if is_write(query):
            raise readonly_error()
        try:
            for name in settings:
                sql_policy.check_setting(name)
        except sql_policy.PolicyError as exc:
            raise SqlError(exc.code, str(exc)) from exc
        check = memo.checked_read if memo is not None else _checked_read
        text, fmt = check(backend, query, default_format=default_format, params=params, settings=settings,
                          database=database, limits=limits, store_database=store_database)
        try:
            return backend.query_raw(text, None, params, {}, database=store_database), fmt
        except Exception as exc:
            raise _as_sql_error(exc) from exc
    # writable (up.sql_readonly: false, for trusted clients only): statements run as sent
    canonical, kind = _canonical_statement(backend, query)
    if re.search(r"\bINTO OUTFILE\b", _STRINGS.sub("''", canonical)):
        raise SqlError.of(392, "INTO OUTFILE is not allowed through the snowmelt SQL endpoint", "QUERY_IS_PROHIBITED")
    match = _TRAILING_FORMAT.search(canonical)
    fmt = match.group(1) if match else (default_format or "TabSeparated")
    try:
        if kind == "INSERT":
            # the original text: its inline data follows FORMAT/VALUES and nothing may be appended
            result = backend.query_raw(query, default_format, params, {}, database=database)
        else:
            text = canonical
            if settings:
                from loaders.clickhouse import raw_settings_clause

                setting_text = raw_settings_clause(settings)
                # a SETTINGS clause after FORMAT is extended; otherwise one is appended
                text += (", " + setting_text.removeprefix("SETTINGS ") if match and match.group(2)
                         else " " + setting_text)
            result = backend.query_raw(text, default_format, params, {}, database=database)
    except Exception as exc:
        raise _as_sql_error(exc) from exc
    return result, fmt


def _token_of(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if auth[:6].lower() == "basic ":
        try:
            return b64decode(auth[6:].strip()).decode("utf-8").partition(":")[2]
        except ValueError:
            return None
    return request.headers.get("X-ClickHouse-Key") or request.query.get("password")


def make_sql_app(backend, *, readonly: bool = True, token: str | None = None, limits: SqlLimits | None = None,
                 public_hosts: tuple[str, ...] = (), database: str = "snowplow") -> web.Application:
    """The aiohttp application answering ClickHouse HTTP-dialect SQL on ``backend``.

    ``backend`` is a :class:`loaders.clickhouse.Backend` (``ClickHouseStore.backend``
    once the store is open; with chdb it is the one engine of the process,
    shared with the loader and the models).  ``readonly`` (default True):
    only reading statements that pass :mod:`snowmelt.sql_policy`, in
    ``database``, each under ``limits`` and ClickHouse's ``readonly = 1``.
    ``token``: when set, every request but ``/ping`` must carry it as
    ``Authorization: Bearer <token>``, the password of HTTP basic auth (what
    clickhouse-connect and Grafana send for ``password=<token>``),
    ``X-ClickHouse-Key`` or the ``password`` URL parameter; a request without
    it gets 401, one with another value 403.  Only requests whose ``Host`` is
    localhost, an IP address or in ``public_hosts`` are answered (DNS
    rebinding); no CORS header is ever sent, so no other site's page reads an
    answer.  Bind the runner to localhost unless a token is set.  See the
    module docstring for the dialect.
    """
    limits = limits or SqlLimits()
    app = web.Application(client_max_size=limits.max_query_size)
    app[BACKEND_KEY] = backend
    timezone: list[str] = []
    # one statement at a time on the engine, on a thread of its own (the loop and the default
    # executor stay free); at most max_queued more wait for it
    executor = ThreadPoolExecutor(1, thread_name_prefix="snowmelt-sql")
    in_flight = [0]
    checked = CheckedStatements()

    async def close_executor(_app) -> None:
        executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(close_executor)

    def error_response(error: SqlError, query_id: str, status: int | None = None) -> web.Response:
        return web.Response(status=status or _status(error.code), text=str(error) + "\n",
                            content_type="text/plain", headers={
                                "X-ClickHouse-Exception-Code": str(error.code),
                                "X-ClickHouse-Query-Id": query_id,
                                "X-ClickHouse-Server-Display-Name": SERVER_NAME})

    @web.middleware
    async def host_guard(request: web.Request, handler):
        if not host_allowed(request.headers.get("Host"), public_hosts):
            return error_response(SqlError.of(
                497, f"Host {request.headers.get('Host', '')!r} is not served here; use localhost or an IP "
                     f"address, or add the name to api.public_hosts", "ACCESS_DENIED"),
                request.query.get("query_id") or str(uuid.uuid4()), 403)
        return await handler(request)

    app.middlewares.append(host_guard)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n", content_type="text/plain")

    async def handle(request: web.Request) -> web.Response:
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        if request.method in ("GET", "HEAD") and "query" not in request.query:
            return await ping(request)  # ClickHouse answers a bare GET / like /ping, with no password
        if token is not None:
            given = _token_of(request)
            if not given:
                return error_response(SqlError.of(194, "Password required for user default", "REQUIRED_PASSWORD"),
                                      query_id, 401)
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error_response(SqlError.of(516, "default: Authentication failed: password is incorrect",
                                                  "AUTHENTICATION_FAILED"), query_id, 403)
        query = request.query.get("query", "")
        read_only = readonly or request.method in ("GET", "HEAD")
        if read_only and is_write(query):  # the INSERT's data in the body is not needed to refuse it
            return error_response(readonly_error(get=not readonly), query_id)
        if request.method == "POST":
            # read-only, the body is read until its start shows a write (an INSERT with its data, as
            # clickhouse-connect sends it: lz4-compressed, the statement first), which is refused however long
            writes = (lambda start: is_write(f"{query}\n{start.decode('utf-8', 'replace')}")) if read_only else None
            try:
                body = await read_bounded(request, limits.max_query_size, lz4=True, head=writes)
            except web.RequestPayloadError as exc:
                return error_response(SqlError.of(36, f"Cannot read the request body: {exc}", "BAD_ARGUMENTS"),
                                      query_id)
            if body is not None and writes is not None and writes(body[:HEAD_BYTES]):
                return error_response(readonly_error(), query_id)
            if body is None:
                return error_response(SqlError.of(62, f"Max query size exceeded ({limits.max_query_size} bytes)",
                                                  "SYNTAX_ERROR"), query_id, 413)
            body = body.decode("utf-8", "replace")
            query = f"{query}\n{body}" if query and body else (query or body)
        params = {k[6:]: v for k, v in request.query.items() if k.startswith("param_")}
        settings = {k: v for k, v in request.query.items()
                    if k not in _PROTOCOL_PARAMS and not k.startswith("param_")}
        if in_flight[0] > limits.max_queued:
            return error_response(SqlError.of(202, f"Too many simultaneous queries (the engine is shared: one "
                                                   f"runs, {limits.max_queued} wait)",
                                              "TOO_MANY_SIMULTANEOUS_QUERIES"), query_id, 503)
        loop = asyncio.get_running_loop()
        in_flight[0] += 1
        try:
            if not timezone:
                tz = await loop.run_in_executor(executor, backend.query_raw, "SELECT timezone()", "TabSeparatedRaw",
                                                {}, {})
                timezone.append(tz.data.decode().strip())
            result, fmt = await loop.run_in_executor(executor, lambda: run_statement(
                backend, query, default_format=request.query.get("default_format"), params=params,
                settings=settings, database=request.query.get("database"),
                readonly=read_only, limits=limits, store_database=database, memo=checked))
        except Exception as exc:
            return error_response(_as_sql_error(exc), query_id)
        finally:
            in_flight[0] -= 1
        summary = {"read_rows": str(result.read_rows), "read_bytes": str(result.read_bytes),
                   "written_rows": str(result.written_rows), "written_bytes": str(result.written_bytes),
                   "total_rows_to_read": str(result.read_rows), "result_rows": "0", "result_bytes": "0",
                   "elapsed_ns": str(result.elapsed_ns)}
        content_type = _CONTENT_TYPES.get(fmt.lower(), "application/json; charset=UTF-8" if fmt.lower().startswith(
            "json") else "text/plain; charset=UTF-8")
        return web.Response(body=result.data, headers={
            "Content-Type": content_type,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
            "X-ClickHouse-Timezone": timezone[0] if timezone else "UTC",
            "X-ClickHouse-Server-Display-Name": SERVER_NAME,
        })

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text=f"There is no handle {request.path}\n\nUse / or /ping\n",
                            content_type="text/plain")

    app.router.add_route("GET", "/ping", ping)
    app.router.add_route("HEAD", "/ping", ping)
    app.router.add_route("GET", "/", handle)
    app.router.add_route("HEAD", "/", handle)
    app.router.add_route("POST", "/", handle)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def make_configured_sql_app(backend, config, *, readonly: bool = True, token: str = "") -> web.Application:
    """:func:`make_sql_app` with the ``api`` section's limits and host names and ``clickhouse.database``."""
    return make_sql_app(backend, readonly=readonly, token=token or None, limits=SqlLimits.from_config(config.api),
                        public_hosts=config.api.public_hosts, database=config.clickhouse.database)


# --------------------------------------------------------------------------- the chdb loader's SQL port


def check_loader_sql_settings(ch) -> None:
    """``ValueError`` unless a loader may serve SQL as ``clickhouse.sql_*`` say."""
    if ch.backend != "chdb":
        raise ValueError("clickhouse.sql_port is only for the chdb backend (a ClickHouse server serves SQL itself)")
    if not ch.sql_token and not is_loopback_host(ch.sql_host):
        raise ValueError(f"clickhouse.sql_host {ch.sql_host} is reachable from other machines: "
                         "set clickhouse.sql_token to serve SQL there")


def serve_loader_sql(config, store) -> Callable[..., None]:
    """Read-only SQL (ClickHouse's HTTP dialect) over a chdb store, on its own thread; returns ``stop``.

    A chdb folder is held by one process, so while ``snowmelt load clickhouse``
    runs with ``clickhouse.backend: chdb`` nothing else can read it: with
    ``clickhouse.sql_port`` set, the loader serves
    :func:`snowmelt.sql_endpoint.make_sql_app` (read-only, ``clickhouse.sql_token``
    when set) on ``clickhouse.sql_host:sql_port``.  The aiohttp application runs
    in its own event loop on a daemon thread; the chdb backend serialises the
    queries with the loader's inserts under its lock.  Returns once the port is
    bound (an error binding it is raised here); ``stop()`` closes the site and
    joins the thread (``stop(wait=False)`` only asks it to, for a signal handler).
    """
    import asyncio

    from aiohttp import web

    ch = config.clickhouse
    check_loader_sql_settings(ch)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_configured_sql_app(store.backend, config, readonly=True, token=ch.sql_token),
                           handle_signals=False, access_log=None, **SERVER_OPTIONS)
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, ch.sql_host, ch.sql_port).start())
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=serve, name="sql-endpoint", daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise OSError(f"cannot serve SQL on {ch.sql_host}:{ch.sql_port}: {failure[0]}")
    log.info("SQL (ClickHouse HTTP interface, read-only) on http://%s:%d%s", ch.sql_host, ch.sql_port,
             ", token required" if ch.sql_token else "")

    def stop(wait: bool = True) -> None:
        if thread.is_alive():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # the loop is already closed
                pass
            if wait:
                thread.join(10)

    return stop
