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
from snowmelt.config import ClickHouseConfig  # noqa: E402
from snowmelt.sql_endpoint import make_sql_app  # noqa: E402

EID = "5a1e2c3d-0000-4000-8000-{:012d}"
EVENTS = "SELECT event_id, event, app_id FROM snowplow.events ORDER BY event_id"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    enricher = make_enricher(tmp_path_factory.mktemp("registry"))
    store = ClickHouseStore(ClickHouseConfig(backend="chdb", chdb_path=str(tmp_path_factory.mktemp("ch") / "db")))
    store.open()
    lines = tracker_events(enricher, [checkout(EID.format(1)), page_view(EID.format(2)),
                                      page_view(EID.format(3), page="Tab\there")])
    store.write(Batch("enriched", "enriched", 0, 0, len(lines) - 1, tuple(lines), 1_764_288_000_000))
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
    assert await response.text() == "Tab here\ta\\tb\n"
    response = await client.get("/", params={"query": "SELECT event_id, page_title, 'a\\tb' FROM snowplow.events "
                                                      "WHERE page_title != '' ORDER BY event_id FORMAT CSV"})
    assert list(csv.reader(io.StringIO(await response.text()))) == [[EID.format(2), "Widget", "a\tb"],
                                                                    [EID.format(3), "Tab here", "a\tb"]]


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
    # a value of the wrong type is ClickHouse's BAD_QUERY_PARAMETER
    response = await client.get("/", params={"query": "SELECT {n:Int32}", "param_n": "abc"})
    assert response.status == 400 and response.headers["X-ClickHouse-Exception-Code"] == "457"


async def test_query_param_with_body_and_database(client):
    response = await client.post("/?query=SELECT%20count()", data="FROM events WHERE event = 'page_view'",
                                 params={"database": "snowplow"})
    assert response.status == 200, await response.text()
    assert await response.text() == "2\n"
    # the database parameter did not stick to the shared engine
    response = await client.post("/", data="SELECT currentDatabase()")
    assert await response.text() == "default\n"


@pytest.mark.parametrize("sql", [
    "INSERT INTO snowplow.bad_rows (line, batch_token, batch_tstamp) VALUES ('x', 't', now())",
    "ALTER TABLE snowplow.events DELETE WHERE 1",
    "DROP TABLE snowplow.events",
    "CREATE TABLE snowplow.x (a Int8) ENGINE = Memory",
    "TRUNCATE TABLE snowplow.bad_rows",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "SELECT 1 SETTINGS readonly = 0",
])
async def test_readonly_refuses_writes_and_outside_reads(client, store, sql):
    response = await client.post("/", data=sql)
    assert response.status == 403, await response.text()
    assert response.headers["X-ClickHouse-Exception-Code"] == "164"
    assert (await response.text()).startswith("Code: 164. DB::Exception:") and "READONLY" in await response.text()
    assert store.backend.query("SELECT count() FROM snowplow.events") == [(3,)]
    assert store.backend.query("SELECT count() FROM system.tables WHERE database = 'snowplow'") == [(2,)]


@pytest.mark.parametrize("sql, code", [
    ("SELECT 1; DROP TABLE snowplow.events", "62"),  # chdb would run both; ClickHouse's HTTP runs one
    ("SET readonly = 0", "164"),
    ("USE system", "164"),
    ("SELECT 1 INTO OUTFILE '/tmp/snowmelt_sql_endpoint_out.csv'", "392"),
])
async def test_statements_that_would_escape_the_guard(client, store, sql, code):
    response = await client.post("/", data=sql)
    assert response.status != 200 and response.headers["X-ClickHouse-Exception-Code"] == code
    assert not Path("/tmp/snowmelt_sql_endpoint_out.csv").exists()
    assert store.backend.query("SELECT getSetting('readonly'), currentDatabase()") == [(0, "default")]


async def test_readonly_setting_cannot_be_lifted_from_the_url(client):
    response = await client.post("/?readonly=0", data="SELECT 1")
    assert response.status == 403 and response.headers["X-ClickHouse-Exception-Code"] == "164"


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


async def test_url_settings_apply(client):
    response = await client.get("/", params={"query": "SELECT getSetting('max_block_size')",
                                             "max_block_size": "1234"})
    assert await response.text() == "1234\n"
    response = await client.get("/", params={"query": "SELECT getSetting('max_block_size') FORMAT JSONEachRow "
                                                      "SETTINGS max_threads = 1", "max_block_size": "77"})
    assert json.loads(await response.text()) == {"getSetting('max_block_size')": 77}


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
        assert response.status == 403
    finally:
        store.backend.command("DROP TABLE IF EXISTS default.sql_endpoint_t")


async def test_token(store, aiohttp_client):
    client = await aiohttp_client(make_sql_app(store.backend, token="s3cret"))
    assert (await client.get("/ping")).status == 200
    response = await client.post("/", data="SELECT 1")
    assert response.status == 401 and response.headers["X-ClickHouse-Exception-Code"] == "194"
    assert (await client.post("/", data="SELECT 1", headers={"Authorization": "Bearer nope"})).status == 403
    basic = "Basic " + base64.b64encode(b"default:s3cret").decode()
    for headers, params in (({"Authorization": "Bearer s3cret"}, {}), ({"X-ClickHouse-Key": "s3cret"}, {}),
                            ({"Authorization": basic}, {}), ({}, {"password": "s3cret"})):
        response = await client.post("/", data="SELECT 1", headers=headers, params=params)
        assert response.status == 200 and await response.text() == "1\n", (headers, params)


async def test_loop_stays_responsive_while_a_query_runs(client):
    slow = asyncio.ensure_future(client.post("/", data="SELECT sleepEachRow(0.5) FROM numbers(2)"))
    deadline = time.monotonic() + 0.8
    pings = 0
    while not slow.done() and time.monotonic() < deadline:
        assert (await client.get("/ping")).status == 200
        pings += 1
    assert not slow.done() and pings > 0
    response = await slow
    assert response.status == 200, await response.text()
