"""SQL over HTTP in ClickHouse's HTTP dialect, for the store ``snowmelt up`` embeds.

:func:`make_sql_app` serves a :class:`loaders.clickhouse.Backend` (in
``snowmelt up`` the chdb one the loader writes through) well enough that
clickhouse-connect, Grafana's ClickHouse data source (HTTP protocol) and curl
query it with their defaults:

``GET|HEAD /ping``
    ``Ok.\\n`` (no token needed, like ClickHouse: a health check).
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
    code (400 syntax/bad parameter, 403 readonly, 404 unknown table/column,
    500 otherwise; 401/403 for a missing/wrong token).

How a statement runs.  The text is first given to ClickHouse's own parser
(``formatQuerySingleLine``, the query passed as a bound parameter): a syntax
error or a second statement is refused there (chdb itself would run several
statements; ClickHouse's HTTP interface does not).  The canonical text it
returns is what runs, with a trailing ``SETTINGS`` clause carrying the URL
settings and, when read-only, ``readonly = 1`` -- the canonical text has no
trailing comment and no inline data, so the clause cannot be swallowed.

Read-only (the default; and every ``GET``, as in ClickHouse): only
``SELECT``/``WITH``/``SHOW``/``DESCRIBE``/``EXISTS``/``EXPLAIN`` are let through
and each runs with ClickHouse's ``readonly = 1`` (the engine then also refuses
``file()``, ``url()`` and the other table functions that reach outside).
Anything else gets ClickHouse's ``Code: 164 ... (READONLY)``.  Always refused,
because the engine is shared with the loader and the models: ``SET`` and
``USE`` (they would change the shared session), ``INTO OUTFILE`` (a file
written by this process), and the settings ``readonly``/``allow_ddl``.
Writable (``readonly=False``): DDL and ``INSERT`` run as sent (an ``INSERT``
runs its original text, inline data included, and without the URL
settings, which cannot be appended after data).

Blocking engine calls run in the default thread executor; the chdb backend
serialises them with its lock, so the aiohttp loop stays responsive.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import re
import uuid
from base64 import b64decode

from aiohttp import web


def is_loopback_host(host: str) -> bool:
    """True for an address that only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``).

    The endpoint may be bound anywhere else only with a token.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

__all__ = ["make_sql_app", "SqlError", "run_statement", "SERVER_NAME", "is_loopback_host"]

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
#: Settings a client may not change through this endpoint (they would lift the read-only guard).
_REFUSED_SETTINGS = {"readonly", "allow_ddl", "allow_introspection_functions"}
_READ_KINDS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}
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
# ClickHouse's exceptionCodeToHTTPStatus, for the codes a query here can raise
_STATUS = {
    400: {6, 25, 26, 27, 36, 38, 41, 43, 44, 53, 62, 69, 70, 72, 73, 115, 130, 184, 395, 456, 457},
    403: {164, 392},
    404: {16, 46, 47, 60, 81, 83},
    401: {194, 516},
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


def run_statement(backend, query: str, *, default_format: str | None, params: dict[str, str],
                  settings: dict[str, str], database: str | None, readonly: bool):
    """Check and run one statement on ``backend`` (blocking); return ``(RawResult, output format)``.

    Raises :class:`SqlError` for what the endpoint refuses and for the
    engine's own errors.  See the module docstring for the rules.
    """
    if not query.strip():
        raise SqlError.of(62, "Empty query", "SYNTAX_ERROR")
    for name in settings:
        if name in _REFUSED_SETTINGS:
            raise SqlError.of(164, f"Cannot modify '{name}' setting through the snowmelt SQL endpoint", "READONLY")
    try:
        canonical = backend.query_raw("SELECT formatQuerySingleLine({q:String})", "TabSeparatedRaw",
                                      {"q": _escape_param(query)}, {}).data.decode("utf-8").rstrip("\n")
    except Exception as exc:
        error = _as_sql_error(exc)
        # the parser's message, without the wrapper query it was found in
        text = re.sub(r"\.? : In scope SELECT formatQuerySingleLine\(.*\)(?=\. \([A-Z_]+\)$)", "", str(error),
                      flags=re.S)
        raise SqlError(error.code, text) from exc
    kind = canonical.lstrip("(").split(" ", 1)[0].upper()
    if kind in ("SET", "USE"):
        raise SqlError.of(164, f"{kind} would change the engine shared with the loader; pass settings as URL "
                               f"parameters and the database as the database parameter", "READONLY")
    if re.search(r"\bINTO OUTFILE\b", _STRINGS.sub("''", canonical)):
        raise SqlError.of(392, "INTO OUTFILE is not allowed through the snowmelt SQL endpoint", "QUERY_IS_PROHIBITED")
    if readonly and kind not in _READ_KINDS:
        raise SqlError.of(164, "Cannot execute query in readonly mode", "READONLY")
    match = _TRAILING_FORMAT.search(canonical)
    fmt = match.group(1) if match else (default_format or "TabSeparated")
    try:
        if kind == "INSERT":
            # the original text: its inline data follows FORMAT/VALUES and nothing may be appended
            result = backend.query_raw(query, default_format, params, {}, database=database)
        else:
            clause = dict(settings)
            if readonly:
                clause["readonly"] = "1"
            text = canonical
            if clause:
                from loaders.clickhouse import raw_settings_clause

                setting_text = raw_settings_clause(clause)
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


def make_sql_app(backend, *, readonly: bool = True, token: str | None = None) -> web.Application:
    """The aiohttp application answering ClickHouse HTTP-dialect SQL on ``backend``.

    ``backend`` is a :class:`loaders.clickhouse.Backend` (``ClickHouseStore.backend``
    once the store is open; with chdb it is the one engine of the process,
    shared with the loader and the models).  ``readonly`` (default True):
    only reading statements, each under ClickHouse's ``readonly = 1``.
    ``token``: when set, every request but ``/ping`` must carry it as
    ``Authorization: Bearer <token>``, the password of HTTP basic auth (what
    clickhouse-connect and Grafana send for ``password=<token>``),
    ``X-ClickHouse-Key`` or the ``password`` URL parameter; a request without
    it gets 401, one with another value 403.  Bind the runner to localhost
    unless a token is set.  See the module docstring for the dialect.
    """
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[BACKEND_KEY] = backend
    timezone: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n", content_type="text/plain")

    def error_response(error: SqlError, query_id: str, status: int | None = None) -> web.Response:
        return web.Response(status=status or _status(error.code), text=str(error) + "\n",
                            content_type="text/plain", headers={
                                "X-ClickHouse-Exception-Code": str(error.code),
                                "X-ClickHouse-Query-Id": query_id,
                                "X-ClickHouse-Server-Display-Name": SERVER_NAME})

    async def handle(request: web.Request) -> web.Response:
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        if token is not None:
            given = _token_of(request)
            if not given:
                return error_response(SqlError.of(194, "Password required for user default", "REQUIRED_PASSWORD"),
                                      query_id, 401)
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error_response(SqlError.of(516, "default: Authentication failed: password is incorrect",
                                                  "AUTHENTICATION_FAILED"), query_id, 403)
        query = request.query.get("query", "")
        if request.method == "POST":
            body = (await request.read()).decode("utf-8", "replace")
            query = f"{query}\n{body}" if query and body else (query or body)
        params = {k[6:]: v for k, v in request.query.items() if k.startswith("param_")}
        settings = {k: v for k, v in request.query.items()
                    if k not in _PROTOCOL_PARAMS and not k.startswith("param_")}
        loop = asyncio.get_running_loop()
        try:
            if not timezone:
                tz = await loop.run_in_executor(None, backend.query_raw, "SELECT timezone()", "TabSeparatedRaw",
                                                {}, {})
                timezone.append(tz.data.decode().strip())
            result, fmt = await loop.run_in_executor(None, lambda: run_statement(
                backend, query, default_format=request.query.get("default_format"), params=params,
                settings=settings, database=request.query.get("database"),
                readonly=readonly or request.method in ("GET", "HEAD")))
        except Exception as exc:
            return error_response(_as_sql_error(exc), query_id)
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
    app.router.add_route("GET", "/", handle)
    app.router.add_route("POST", "/", handle)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
