"""The SQL endpoint (ClickHouse's HTTP dialect) on chdb with the real ``events`` DDL and real enriched rows."""
import asyncio
import base64
import csv
import io
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "loaders"))

from loader_lines import checkout, make_enricher, page_view, tracker_events  # noqa: E402

from loaders.base import Batch  # noqa: E402
from loaders.clickhouse import ClickHouseStore  # noqa: E402
from loaders.models import Models  # noqa: E402
from snowmelt.config import ClickHouseConfig, ModelsConfig  # noqa: E402
from snowmelt.sql_endpoint import make_sql_app  # noqa: E402

EID = "5a1e2c3d-0000-4000-8000-{:012d}"
EVENTS = "SELECT event_id, event, app_id FROM snowplow.events ORDER BY event_id"
#: ClickHouse's HTTP status for the error codes of these tests (its exceptionCodeToHTTPStatus)
CLICKHOUSE_STATUS = {"62": 400, "73": 404, "164": 500, "392": 500, "446": 500, "497": 403}


TABLES = "SELECT name FROM system.tables WHERE database = 'snowplow' ORDER BY name"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    enricher = make_enricher(tmp_path_factory.mktemp("registry"))
    store = ClickHouseStore(ClickHouseConfig(backend="chdb", chdb_path=str(tmp_path_factory.mktemp("ch") / "db")))
    store.open()
    lines = tracker_events(enricher, [checkout(EID.format(1)), page_view(EID.format(2)),
                                      page_view(EID.format(3), page="Tab\there")])
    store.write(Batch("enriched", "enriched", 0, 0, len(lines) - 1, tuple(lines), 1_764_288_000_000))
    Models(store.backend, "snowplow", ModelsConfig()).create()  # the devices panel reads page_views and users
    store.tables = store.backend.query(TABLES)
    yield store
    store.close()


@pytest.fixture
async def client(store, aiohttp_client):
    return await aiohttp_client(make_sql_app(store.backend))


async def test_ping(client):
    response = await client.get("/ping")
    assert response.status == 200 and await response.text() == "Ok.\n"


async def test_default_format_is_tab_separated_with_headers(client):
    response = await client.get("/", params={"query": EVENTS})
    assert response.status == 200, await response.text()
    assert await response.text() == "".join(f"{EID.format(i)}\t{e}\tshop\n" for i, e in
                                            ((1, "unstruct"), (2, "page_view"), (3, "page_view")))
    assert response.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert response.headers["Content-Type"].startswith("text/tab-separated-values")
    summary = json.loads(response.headers["X-ClickHouse-Summary"])
    assert int(summary["read_rows"]) == 3 and response.headers["X-ClickHouse-Query-Id"]
    assert response.headers["X-ClickHouse-Timezone"]


async def test_formats_json_jsoneachrow_tsvwithnames_csv(client):
    response = await client.post("/", data=EVENTS + " FORMAT JSON")
    doc = await response.json()
    assert response.headers["X-ClickHouse-Format"] == "JSON" and doc["rows"] == 3
    assert [m["name"] for m in doc["meta"]] == ["event_id", "event", "app_id"]
    assert doc["data"][0] == {"event_id": EID.format(1), "event": "unstruct", "app_id": "shop"}
    # default_format when the query names none
    response = await client.post("/?default_format=JSONEachRow", data=EVENTS)
    rows = [json.loads(line) for line in (await response.text()).splitlines()]
    assert response.headers["X-ClickHouse-Format"] == "JSONEachRow" and [r["event"] for r in rows] == [
        "unstruct", "page_view", "page_view"]
    # FORMAT in the query wins over default_format
    response = await client.post("/?default_format=JSON", data=EVENTS + " FORMAT TSVWithNames")
    text = await response.text()
    assert response.headers["X-ClickHouse-Format"] == "TSVWithNames"
    assert text.splitlines()[0] == "event_id\tevent\tapp_id" and len(text.splitlines()) == 4
    # escaping is ClickHouse's: a tab inside a value is \t in TSV, itself in CSV
    response = await client.get("/", params={"query": "SELECT page_title, 'a\\tb' FROM snowplow.events "
                                                      f"WHERE event_id = '{EID.format(3)}'"})
    assert await response.text() == "Tab    here\ta\\tb\n"  # a tab in a field: four spaces, as Snowplow
    response = await client.get("/", params={"query": "SELECT event_id, page_title, 'a\\tb' FROM snowplow.events "
                                                      "WHERE page_title != '' ORDER BY event_id FORMAT CSV"})
    assert list(csv.reader(io.StringIO(await response.text()))) == [[EID.format(2), "Widget", "a\tb"],
                                                                    [EID.format(3), "Tab    here", "a\tb"]]


async def test_native_round_trip_through_clickhouse_connect_parser(client):
    from clickhouse_connect.driver.buffer import ResponseBuffer
    from clickhouse_connect.driver.query import QueryContext
    from clickhouse_connect.driver.transform import NativeTransform

    response = await client.post("/", data="SELECT event_id, tr_total, collector_tstamp, "
                                           "contexts_com_acme_product_1 FROM snowplow.events ORDER BY event_id "
                                           "FORMAT Native")
    assert response.status == 200 and response.headers["X-ClickHouse-Format"] == "Native"
    body = await response.read()
    result = NativeTransform().parse_response(ResponseBuffer(_Source(body)), QueryContext())
    rows = result.result_rows
    assert [r[0] for r in rows] == [EID.format(1), EID.format(2), EID.format(3)]
    assert rows[0][3] == ['{"sku":"W-1","price":9.5}'] and rows[1][3] == []
    assert str(rows[1][1]) == "12.50" and rows[0][2].year == 2025


class _Source:
    """The byte source clickhouse-connect's Native parser reads (one chunk)."""

    def __init__(self, data: bytes) -> None:
        self.gen = iter([data])

    def close(self) -> None:
        pass


async def test_params_bound_by_the_engine_not_formatted(client):
    sql = "SELECT count() FROM snowplow.events WHERE event = {kind:String} AND event_id >= {first:String}"
    response = await client.get("/", params={"query": sql, "param_kind": "page_view",
                                             "param_first": EID.format(3)})
    assert await response.text() == "1\n"
    # a value that would break out of a quoted literal is only a value
    response = await client.get("/", params={"query": sql, "param_kind": "x' OR 1=1 --", "param_first": ""})
    assert await response.text() == "0\n"
    response = await client.get("/", params={"query": "SELECT {t:String} AS t, {n:Int32} * 2 AS n FORMAT JSONEachRow",
                                             "param_t": "a\\tb\\\\c'd", "param_n": "21"})
    assert json.loads(await response.text()) == {"t": "a\tb\\c'd", "n": 42}
    # a value of the wrong type is ClickHouse's BAD_QUERY_PARAMETER (500: not among the codes it maps)
    response = await client.get("/", params={"query": "SELECT {n:Int32}", "param_n": "abc"})
    assert response.status == 500 and response.headers["X-ClickHouse-Exception-Code"] == "457"


async def test_query_param_with_body_and_database(client, store):
    response = await client.post("/?query=SELECT%20count()", data="FROM events WHERE event = 'page_view'",
                                 params={"database": "snowplow"})
    assert response.status == 200, await response.text()
    assert await response.text() == "2\n"
    # unqualified names are the store's, with or without the parameter
    response = await client.post("/", data="SELECT currentDatabase(), count() FROM events")
    assert await response.text() == "snowplow\t3\n"
    # and the engine shared with the loader is left with the current database the store gave it
    assert store.backend.query("SELECT currentDatabase()") == [("snowplow",)]
    # no other database is served
    response = await client.post("/", data="SELECT 1", params={"database": "system"})
    assert response.status == 403 and response.headers["X-ClickHouse-Exception-Code"] == "497"


@pytest.mark.parametrize("sql", [
    "INSERT INTO snowplow.bad_rows (line, batch_token, batch_tstamp) VALUES ('x', 't', now())",
    "ALTER TABLE snowplow.events DELETE WHERE 1",
    "DROP TABLE snowplow.events",
    "CREATE TABLE snowplow.x (a Int8) ENGINE = Memory",
    "TRUNCATE TABLE snowplow.bad_rows",
    "SELECT 1 SETTINGS readonly = 0",
])
async def test_readonly_refuses_writes_and_outside_reads(client, store, sql):
    response = await client.post("/", data=sql)
    assert response.status == 500, await response.text()
    assert response.headers["X-ClickHouse-Exception-Code"] == "164"
    assert (await response.text()).startswith("Code: 164. DB::Exception:") and "READONLY" in await response.text()
    assert store.backend.query("SELECT count() FROM snowplow.events") == [(3,)]
    assert store.backend.query(TABLES) == store.tables


@pytest.mark.parametrize("sql, code", [
    ("SELECT 1; DROP TABLE snowplow.events", "62"),  # chdb would run both; ClickHouse's HTTP runs one
    ("SET readonly = 0", "164"),
    ("USE system", "164"),
    ("SELECT 1 INTO OUTFILE '/tmp/snowmelt_sql_endpoint_out.csv'", "392"),
])
async def test_statements_that_would_escape_the_guard(client, store, sql, code):
    # the engine's session as the store left it: writable, the store's database current (ClickHouseStore.open)
    assert store.backend.query("SELECT getSetting('readonly'), currentDatabase()") == [(0, "snowplow")]
    response = await client.post("/", data=sql)
    assert response.status != 200 and response.headers["X-ClickHouse-Exception-Code"] == code
    assert not Path("/tmp/snowmelt_sql_endpoint_out.csv").exists()
    assert store.backend.query("SELECT getSetting('readonly'), currentDatabase()") == [(0, "snowplow")]


async def test_readonly_setting_cannot_be_lifted_from_the_url(client):
    response = await client.post("/?readonly=0", data="SELECT 1")
    assert response.status == 500 and response.headers["X-ClickHouse-Exception-Code"] == "164"


async def test_errors_as_clickhouse(client):
    response = await client.post("/", data="SELEC 1")
    assert response.status == 400 and response.headers["X-ClickHouse-Exception-Code"] == "62"
    assert (await response.text()).startswith("Code: 62. DB::Exception: Syntax error")
    response = await client.post("/", data="SELECT * FROM snowplow.nope")
    assert response.status == 404 and response.headers["X-ClickHouse-Exception-Code"] == "60"
    assert "UNKNOWN_TABLE" in await response.text()
    response = await client.post("/", data="")
    assert response.status == 400 and response.headers["X-ClickHouse-Exception-Code"] == "62"
    response = await client.get("/nowhere")
    assert response.status == 404


async def test_url_and_trailing_settings_apply(client):
    sql = "SELECT toUInt64(7) AS n FORMAT JSONEachRow"
    response = await client.get("/", params={"query": sql, "output_format_json_quote_64bit_integers": "1"})
    assert await response.text() == '{"n":"7"}\n'
    response = await client.get("/", params={"query": sql, "output_format_json_quote_64bit_integers": "0"})
    assert await response.text() == '{"n":7}\n'
    response = await client.get("/", params={"query": sql + " SETTINGS output_format_json_quote_64bit_integers = 1"})
    assert await response.text() == '{"n":"7"}\n'
    response = await client.get("/", params={"query": "SELECT number FROM numbers(10) SETTINGS max_result_rows = 2"})
    assert response.status != 200 and "TOO_MANY_ROWS_OR_BYTES" in await response.text()


async def test_writable_mode_runs_ddl_and_inline_insert(store, aiohttp_client):
    client = await aiohttp_client(make_sql_app(store.backend, readonly=False))
    try:
        response = await client.post("/", data="CREATE TABLE default.sql_endpoint_t (a Int32, b String) "
                                                "ENGINE = MergeTree ORDER BY a")
        assert response.status == 200, await response.text()
        response = await client.post("/?query=INSERT%20INTO%20default.sql_endpoint_t%20FORMAT%20CSV",
                                     data="1,x\n2,\"y\"\n")
        assert response.status == 200, await response.text()
        response = await client.post("/", data="SELECT a, b FROM default.sql_endpoint_t ORDER BY a")
        assert await response.text() == "1\tx\n2\ty\n"
        # GET stays read-only, as in ClickHouse
        response = await client.get("/", params={"query": "DROP TABLE default.sql_endpoint_t"})
        assert response.status == 500 and response.headers["X-ClickHouse-Exception-Code"] == "164"
        assert "method GET implies readonly" in await response.text()
    finally:
        store.backend.command("DROP TABLE IF EXISTS default.sql_endpoint_t")


async def test_token(store, aiohttp_client):
    client = await aiohttp_client(make_sql_app(store.backend, token="s3cret"))
    for path in ("/ping", "/"):  # health checks need no password, as in ClickHouse
        response = await client.get(path)
        assert response.status == 200 and await response.text() == "Ok.\n", path
    response = await client.post("/", data="SELECT 1")
    assert response.status == 401 and response.headers["X-ClickHouse-Exception-Code"] == "194"
    assert (await client.post("/", data="SELECT 1", headers={"Authorization": "Bearer nope"})).status == 403
    basic = "Basic " + base64.b64encode(b"default:s3cret").decode()
    for headers, params in (({"Authorization": "Bearer s3cret"}, {}), ({"X-ClickHouse-Key": "s3cret"}, {}),
                            ({"Authorization": basic}, {}), ({}, {"password": "s3cret"})):
        response = await client.post("/", data="SELECT 1", headers=headers, params=params)
        assert response.status == 200 and await response.text() == "1\n", (headers, params)


async def test_loop_stays_responsive_while_a_query_runs(client):
    # the query's 4 s leave room for a ping on a busy machine (a run of the whole suite failed on 1 s: a ping
    # outlasted the query); a query run on the loop would still answer the first ping only at its end
    slow = asyncio.ensure_future(client.post("/", data="SELECT count() FROM numbers(100000000000)",
                                             params={"max_execution_time": "4"}))
    deadline = time.monotonic() + 0.8
    pings = 0
    while not slow.done() and time.monotonic() < deadline:
        assert (await client.get("/ping")).status == 200
        pings += 1
    assert not slow.done() and pings > 0
    response = await slow
    assert response.headers["X-ClickHouse-Exception-Code"] == "159", await response.text()


# --------------------------------------------------------------------------- hostile queries (issue: security)
# Each was a working attack on the endpoint before the allow-list; each must now be refused with
# ClickHouse's code, and nothing may be read, written or fetched.

OUTSIDE = [
    # files
    ("SELECT file('/etc/passwd')", "446"),
    ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "446"),
    ("SELECT file('/proc/self/environ')", "446"),
    ("SELECT * FROM python(x)", "446"),
    # the network (refused before any connection is tried: nothing listens on port 9)
    ("DESCRIBE url('http://127.0.0.1:9/x', Values)", "446"),
    ("SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')", "446"),
    ("DESCRIBE s3('http://127.0.0.1:9/bucket/key', 'CSV')", "446"),
    ("DESCRIBE remote('127.0.0.1:9', system.one)", "446"),
    ("SELECT * FROM mysql('127.0.0.1:9', 'db', 't', 'u', 'p')", "446"),
    ("SELECT * FROM postgresql('127.0.0.1:9', 'db', 't', 'u', 'p')", "446"),
    ("EXPLAIN PIPELINE SELECT * FROM url('http://127.0.0.1:9/x', Values)", "446"),
    ("WITH t AS (SELECT * FROM url('http://127.0.0.1:9/x', CSV)) SELECT * FROM t", "446"),
    ("SELECT * FROM (SELECT * FROM (SELECT * FROM s3('http://127.0.0.1:9/b/k')))", "446"),
    ("SELECT aiEmbed('x')", "446"),
    # processes, the engine and the host
    ("SELECT * FROM executable('id', 'TSV', 'x String')", "446"),
    ("SELECT hostName(), currentUser()", "446"),
    ("SELECT getSetting('readonly')", "446"),
    ("SELECT filesystemAvailable()", "446"),
    ("SELECT sleep(3)", "446"),
    ("SELECT sleepEachRow(1) FROM numbers(5)", "446"),
    ("SELECT dictGet('d', 'a', 1)", "446"),
    ("SELECT joinGet('snowplow.events', 'app_id', 1)", "446"),
    ("SELECT * FROM merge('system', '.*')", "446"),
    ("SELECT * FROM dictionary('d')", "446"),
    # other databases and the engine's logs
    ("SELECT query FROM system.processes", "497"),
    ("SELECT * FROM system.query_log", "497"),
    ("SELECT * FROM information_schema.tables", "497"),
    ("SELECT 1 IN system.processes", "497"),
    ("SHOW TABLES FROM information_schema", "497"),
    ("SHOW CREATE TABLE system.users", "497"),
    ("SHOW PROCESSLIST", "164"),
    # settings: only formatting and lower limits, and only at the end of the query
    ("SELECT * FROM snowplow.events FORMAT TSV SETTINGS allow_ddl = 1", "164"),
    ("SELECT 1 SETTINGS readonly = 0", "164"),
    ("SELECT 1 SETTINGS output_format_schema = '/tmp/snowmelt_policy_x.proto'", "164"),
    ("SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 100000)", "164"),
    # formats that read or write schema files
    ("SELECT 1 AS `a` FORMAT Protobuf", "73"),
    ("SELECT 1 FORMAT CapnProto", "73"),
    ("SELECT 1 FORMAT Template", "73"),
    # a name whose escape sequence would forge a line of the parsed tree
    ("SELECT 1 AS `a\\n Function file`", "62"),
    ("SELECT 1 AS `a\\n      TableExpression`", "62"),
]


@pytest.mark.parametrize("sql, code", OUTSIDE)
async def test_outside_reach_is_refused_on_the_parse(client, sql, code):
    response = await client.post("/", data=sql)
    text = await response.text()
    assert response.headers["X-ClickHouse-Exception-Code"] == code, text
    assert response.status == CLICKHOUSE_STATUS[code], text
    assert text.startswith(f"Code: {code}. DB::Exception:")
    assert "root:" not in text and "PATH=" not in text


async def test_protobuf_schema_file_write_through_url_settings_is_refused(client, tmp_path):
    target = tmp_path / "evil.pth"
    for params in ({"output_format_schema": str(target), "format_protobuf_use_autogenerated_schema": "1",
                    "query": "SELECT 1 AS `import os; os.system('id')` FORMAT Protobuf"},
                   {"output_format_schema": str(target), "format_protobuf_use_autogenerated_schema": "1",
                    "default_format": "Protobuf", "query": "SELECT 1 AS x"},
                   {"default_format": "Protobuf", "query": "SELECT 1 AS x"}):
        response = await client.get("/", params=params)
        code = response.headers["X-ClickHouse-Exception-Code"]
        assert code in ("164", "73") and response.status == CLICKHOUSE_STATUS[code], await response.text()
    assert not target.exists()


@pytest.mark.parametrize("sql", [
    # Grafana's ClickHouse data source: its schema browser and a time-series panel
    "SELECT name FROM system.databases",
    "SHOW DATABASES",
    "SELECT name, engine FROM system.tables WHERE database = 'snowplow'",
    "SELECT name, type FROM system.columns WHERE database = 'snowplow' AND table = 'events'",
    "DESCRIBE TABLE snowplow.events",
    "SHOW TABLES",
    "SHOW CREATE TABLE snowplow.events",
    "EXISTS TABLE snowplow.events",
    "SELECT toStartOfInterval(collector_tstamp, INTERVAL 60 second) AS time, count() AS events "
    "FROM snowplow.events WHERE collector_tstamp >= toDateTime64(1700000000, 3) AND $__dummy = 0 "
    "GROUP BY time ORDER BY time".replace(" AND $__dummy = 0", ""),
    # analysts' SQL: CTEs, window functions, lambdas, combinators, joins, unions, arrays
    "WITH pv AS (SELECT domain_userid, count() AS n FROM events GROUP BY domain_userid) "
    "SELECT uniqExact(domain_userid), sumIf(n, n > 1), quantiles(0.5, 0.9)(n) FROM pv",
    "SELECT event_id, row_number() OVER (PARTITION BY app_id ORDER BY collector_tstamp) AS r FROM events",
    "SELECT arrayMap(x -> x * 2, [1, 2, 3]), arrayFilter(x -> x > 1, [1, 2]), countIf(1), uniqIfState(1, 1)",
    "SELECT e.event_id FROM events AS e LEFT JOIN (SELECT event_id FROM events) AS f USING (event_id)",
    "SELECT 1 UNION ALL SELECT 2",
    "SELECT domain(page_url), extractURLParameter(page_url, 'utm_source'), JSONExtractString(contexts, 'schema'), "
    "toTypeName(event_id), formatReadableSize(1024), if(isNull(tr_total), 0, 1) FROM events",
    "SELECT number FROM numbers(3) WHERE number IN (SELECT 1)",
    "SELECT count() FROM system.one",
    "EXPLAIN SELECT count() FROM events",
    "SELECT 'a\\n Function file' AS s",
    "SELECT 1::Int32, CAST(2 AS String), COUNT(*) FROM system.one",
])
async def test_reading_sql_still_runs(client, sql):
    response = await client.post("/", data=sql)
    assert response.status == 200, (sql, await response.text())


async def test_a_long_query_stops_at_the_time_limit_and_cannot_raise_it(store, aiohttp_client):
    from snowmelt.sql_endpoint import SqlLimits

    client = await aiohttp_client(make_sql_app(store.backend, limits=SqlLimits(max_execution_time=1)))
    started = time.monotonic()
    response = await client.get("/", params={"query": "SELECT count() FROM numbers(1000000000000)",
                                             "max_execution_time": "100000"})
    assert response.headers["X-ClickHouse-Exception-Code"] == "159", await response.text()
    assert time.monotonic() - started < 5
    response = await client.post("/", data="SELECT count() FROM numbers(1000000000000) "
                                           "SETTINGS max_execution_time = 100000, timeout_overflow_mode = 'break'")
    assert response.headers["X-ClickHouse-Exception-Code"] == "159", await response.text()
    assert time.monotonic() - started < 9


async def test_results_memory_and_query_size_are_bounded(store, aiohttp_client):
    from snowmelt.sql_endpoint import SqlLimits

    client = await aiohttp_client(make_sql_app(store.backend, limits=SqlLimits(
        max_result_bytes=1_000_000, max_memory_usage=100_000_000, max_query_size=10_000)))
    response = await client.get("/", params={"query": "SELECT randomString(100) FROM numbers(10000000)"})
    assert response.headers["X-ClickHouse-Exception-Code"] == "396", await response.text()
    response = await client.get("/", params={"query": "SELECT groupArray(randomString(1000)) FROM numbers(1000000)"})
    assert response.headers["X-ClickHouse-Exception-Code"] == "241", await response.text()
    # a body over the query size is refused before it is read whole
    response = await client.post("/", data=b"SELECT '" + b"x" * 20_000 + b"'")
    assert response.status == 413 and response.headers["X-ClickHouse-Exception-Code"] == "62"

    async def chunks():
        yield b"SELECT '"
        for _ in range(50):
            yield b"x" * 1000
        yield b"'"

    response = await client.post("/", data=chunks())
    assert response.status == 413


async def test_host_names_other_than_local_and_configured_are_refused(store, aiohttp_client):
    client = await aiohttp_client(make_sql_app(store.backend, public_hosts=("sql.example.com",)))
    for host, status in (("evil.example.net", 403), ("evil.example.net:8123", 403), ("127.0.0.1.nip.io", 403),
                         ("localhost:8123", 200), ("127.0.0.1:8123", 200), ("[::1]:8123", 200),
                         ("10.1.2.3", 200), ("sql.example.com", 200), ("SQL.Example.com.:80", 200)):
        response = await client.get("/", params={"query": "SELECT 1"}, headers={"Host": host})
        assert response.status == status, (host, await response.text())
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_bare_get_answers_like_clickhouse_and_inserts_get_the_readonly_error(client):
    response = await client.get("/")
    assert response.status == 200 and await response.text() == "Ok.\n"
    assert response.headers["Content-Type"].startswith("text/plain")
    for path in ("/", "/ping"):
        response = await client.head(path)
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain"), path
    response = await client.post("/?query=INSERT%20INTO%20snowplow.bad_rows%20FORMAT%20Native", data=b"\x01\x02")
    assert response.status == 500 and response.headers["X-ClickHouse-Exception-Code"] == "164"


@pytest.mark.parametrize("query", [
    "INSERT INTO snowplow.bad_rows FORMAT Native",
    "insert into snowplow.bad_rows (line) FORMAT JSONEachRow",
    "/* a comment */ INSERT INTO snowplow.bad_rows FORMAT Native",
    "-- a comment\n  (INSERT INTO snowplow.bad_rows FORMAT Native",
])
async def test_a_write_in_the_url_is_refused_whatever_its_body(client, store, query):
    """ClickHouse's READONLY answer (500, code 164) before the body is read: clickhouse-connect sends an INSERT's
    data compressed (Content-Encoding: lz4), and a GET is read-only as in ClickHouse."""
    for method, headers in (("POST", {"Content-Encoding": "lz4"}), ("POST", {}), ("GET", {})):
        response = await client.request(method, "/", params={"query": query}, headers=headers,
                                        data=b"\x04\x22\x4d\x18 not what it says" if method == "POST" else None)
        text = await response.text()
        assert response.status == 500 and response.headers["X-ClickHouse-Exception-Code"] == "164", (method, text)
        assert text == "Code: 164. DB::Exception: default: Cannot execute query in readonly mode. (READONLY)\n"
    assert store.backend.query("SELECT count() FROM snowplow.bad_rows") == [(0,)]


async def test_an_insert_with_its_data_in_the_body_is_refused_however_long(client, store):
    """As clickhouse-connect's insert() sends it: the statement, then the data, in one lz4 frame; or plain."""
    import lz4.frame

    statement = b"INSERT INTO snowplow.bad_rows (line, batch_token, batch_tstamp) FORMAT Native\n"
    data = bytes(range(256)) * 4096  # 1 MB, over the endpoint's query size
    for body, headers in ((lz4.frame.compress(statement + data), {"Content-Encoding": "lz4"}),
                          (statement + data, {}), (b"  -- a comment\n" + statement + b"\x00\x01", {})):
        response = await client.post("/", data=body, headers=headers)
        text = await response.text()
        assert response.status == 500 and response.headers["X-ClickHouse-Exception-Code"] == "164", text
        assert text == "Code: 164. DB::Exception: default: Cannot execute query in readonly mode. (READONLY)\n"
    assert store.backend.query("SELECT count() FROM snowplow.bad_rows") == [(0,)]
    # a reading statement in an lz4 body runs
    response = await client.post("/", data=lz4.frame.compress(b"SELECT 6 * 7"), headers={"Content-Encoding": "lz4"})
    assert response.status == 200 and await response.text() == "42\n"


async def test_a_body_that_cannot_be_decoded_gets_a_clickhouse_error(client):
    response = await client.post("/", data=b"\x04\x22\x4d\x18 SELECT 1", headers={"Content-Encoding": "lz4"})
    assert response.status == 400 and response.headers["X-ClickHouse-Exception-Code"] == "36", await response.text()
    assert (await response.text()).startswith("Code: 36. DB::Exception: Cannot read the request body")


def test_http_statuses_are_clickhouses():
    from snowmelt.sql_endpoint import _status

    for code, status in ((164, 500), (446, 500), (392, 500), (497, 403), (73, 404), (115, 404), (60, 404),
                         (62, 400), (36, 400), (159, 408), (194, 401), (516, 403), (229, 413), (43, 500)):
        assert _status(code) == status, code


def test_the_function_allow_list_holds_nothing_that_reaches_outside(store):
    from snowmelt.sql_policy import FUNCTIONS, TABLE_FUNCTIONS, function_allowed

    for name in ("file", "url", "s3", "sleep", "sleepEachRow", "getSetting", "getSettingOrDefault", "hostName",
                 "FQDN", "currentUser", "filesystemAvailable", "getMacro", "getServerSetting", "getClientHTTPHeader",
                 "dictGet", "dictGetString", "joinGet", "aiEmbed", "aiGenerateContent", "catboostEvaluate",
                 "addressToLine", "demangle", "getOSKernelVersion", "structureToProtobufSchema", "serverUUID",
                 "uptime", "currentQueryID", "throwIf", "logTrace", "regionToName", "transactionID", "globalVariable",
                 "showCertificate", "fuzzQuery", "hasColumnInTable", "evalMLMethod"):
        assert not function_allowed(name), name
    table_functions = {row[0] for row in store.backend.query("SELECT name FROM system.table_functions")}
    # a scalar function that is also a table function may be read in either place: only harmless ones
    assert (FUNCTIONS & table_functions) - TABLE_FUNCTIONS <= {"format"}
    assert TABLE_FUNCTIONS <= table_functions | {"null"}
    # every listed function exists in this engine (the list is regenerated after an upgrade)
    engine = {row[0] for row in store.backend.query("SELECT name FROM system.functions")}
    assert FUNCTIONS - {"lambda"} <= engine


async def test_every_dashboard_and_grafana_panel_query_passes_the_allow_list(client):
    # deploy/grafana/snowmelt-dashboard.json runs these same queries through a SQL endpoint
    from snowmelt.dashboard.queries import panel_queries

    for name, query in panel_queries("snowplow").items():
        response = await client.post("/", data=query + " FORMAT JSON")
        assert response.status == 200, (name, await response.text())


def _engine_statements(store, monkeypatch) -> list[str]:
    """The statements the store's engine runs from now on, in order."""
    seen: list[str] = []
    session = store.backend._session
    run = session.query

    def recording(sql, *args, **kwargs):
        seen.append(sql)
        return run(sql, *args, **kwargs)

    monkeypatch.setattr(session, "query", recording)
    return seen


async def test_a_read_asked_again_is_not_checked_again_and_needs_no_use(client, store, monkeypatch):
    seen = _engine_statements(store, monkeypatch)
    sql = "SELECT count() FROM events WHERE event = {kind:String}"
    for _ in range(2):
        response = await client.get("/", params={"query": sql, "param_kind": "page_view"})
        assert await response.text() == "2\n"
    seen[:] = [s for s in seen if s != "SELECT timezone()"]  # asked once by the app, for its answers' header
    checks = [s for s in seen if s.startswith(("SELECT formatQuerySingleLine", "EXPLAIN AST"))]
    assert len(checks) == 2, seen  # the first request's canonical text and syntax tree only
    assert len(seen) == 4 and not [s for s in seen if s.startswith(("USE", "SELECT currentDatabase"))], seen
    # another parameter value, or another setting, is another statement to check
    response = await client.get("/", params={"query": sql, "param_kind": "checkout"})
    response = await client.get("/", params={"query": sql, "param_kind": "page_view", "max_threads": "1"})
    assert await response.text() == "2\n"
    assert len([s for s in seen if s.startswith("EXPLAIN AST")]) == 3, seen


async def test_a_refused_read_is_checked_again_each_time_and_a_kept_check_does_not_carry_to_other_values(client):
    for _ in range(2):
        response = await client.post("/", data="SELECT * FROM system.users")
        assert response.status == 403 and response.headers["X-ClickHouse-Exception-Code"] == "497"
    sql = "SELECT count() FROM {t:Identifier}"
    response = await client.get("/", params={"query": sql, "param_t": "events"})
    assert await response.text() == "3\n", await response.text()
    response = await client.get("/", params={"query": sql, "param_t": "system.users"})
    assert response.status != 200, await response.text()


def test_a_statement_for_another_database_runs_there_and_the_current_one_comes_back(store):
    backend = store.backend
    assert backend.query_raw("SELECT currentDatabase()", None, {}, {}, database="system").data == b"system\n"
    assert backend.query("SELECT currentDatabase()") == [("snowplow",)]
    with pytest.raises(Exception, match="UNKNOWN_DATABASE"):
        backend.query_raw("SELECT 1", None, {}, {}, database="no_such_database")
    assert backend.query_raw("SELECT currentDatabase()", None, {}, {}, database="snowplow").data == b"snowplow\n"
    assert backend.query("SELECT currentDatabase()") == [("snowplow",)]
