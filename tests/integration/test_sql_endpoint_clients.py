"""Real clients against the SQL endpoint on a real port: clickhouse-connect with its defaults, and urllib as curl.

The endpoint serves a chdb store (ClickHouse's engine in this process) with
the real ``events`` DDL and enriched rows made by the enrichment stage; it
runs in an aiohttp runner on its own loop in a thread, on a free port.
"""
import asyncio
import base64
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "loaders"))

from loader_lines import checkout, make_enricher, page_view, tracker_events  # noqa: E402

from loaders.base import Batch  # noqa: E402
from loaders.clickhouse import ClickHouseStore  # noqa: E402
from snowmelt.config import ClickHouseConfig  # noqa: E402
from snowmelt.sql_endpoint import make_sql_app  # noqa: E402
from tests.services.server import free_port  # noqa: E402

EID = "5a1e2c3d-0000-4000-8000-{:012d}"
TOKEN = "t0ken"


class Served:
    """An app served by an aiohttp runner on its own event loop in a daemon thread."""

    def __init__(self, app) -> None:
        from aiohttp import web

        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        # no access log, as the product's endpoint: a request logged from this thread after pytest closed the
        # test's captured stream printed a logging error into the run's output
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    enricher = make_enricher(tmp_path_factory.mktemp("registry"))
    store = ClickHouseStore(ClickHouseConfig(backend="chdb", chdb_path=str(tmp_path_factory.mktemp("ch") / "db")))
    store.open()
    lines = tracker_events(enricher, [checkout(EID.format(1)), page_view(EID.format(2)), page_view(EID.format(3))])
    store.write(Batch("enriched", "enriched", 0, 0, len(lines) - 1, tuple(lines), 1_764_288_000_000))
    print("\nSQL endpoint clients: chdb backend (in-process ClickHouse engine)")
    yield store
    store.close()


@pytest.fixture(scope="module")
def served(store):
    served = Served(make_sql_app(store.backend))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def served_with_token(store):
    served = Served(make_sql_app(store.backend, token=TOKEN))
    yield served
    served.stop()


def test_clickhouse_connect_with_its_defaults(served):
    import clickhouse_connect

    client = clickhouse_connect.get_client(host="127.0.0.1", port=served.port)
    try:
        assert client.server_version.startswith("26.")
        result = client.query("SELECT event_id, event, tr_total, collector_tstamp, contexts_com_acme_product_1 "
                              "FROM snowplow.events ORDER BY event_id")
        rows = result.result_rows
        assert [r[0] for r in rows] == [EID.format(i) for i in (1, 2, 3)]
        assert [r[1] for r in rows] == ["unstruct", "page_view", "page_view"]
        assert str(rows[1][2]) == "12.50" and rows[0][3].year == 2025
        assert rows[0][4] == ['{"sku":"W-1","price":9.5}']
        # server-side parameters ({name:Type} placeholders sent as param_*)
        got = client.query("SELECT count() FROM snowplow.events WHERE event = {kind:String} AND app_id = {a:String}",
                           parameters={"kind": "page_view", "a": "shop"}).result_rows
        assert got == [(2,)]
        assert client.query("SELECT {s:String} AS s", parameters={"s": "it's\ta\\b"}).result_rows == [("it's\ta\\b",)]
        assert client.command("SELECT count() FROM snowplow.bad_rows") == 0
        # the endpoint is read-only: the client sees ClickHouse's READONLY error
        with pytest.raises(Exception) as caught:
            client.command("DROP TABLE snowplow.events")
        assert "164" in str(caught.value) and "readonly" in str(caught.value).lower()
        assert client.command("SELECT count() FROM snowplow.events") == 3
    finally:
        client.close()


def test_clickhouse_connect_insert_gets_the_readonly_error(served, store):
    """``insert()`` as clickhouse-connect sends it (the INSERT in the URL, Native data lz4-compressed in the body)
    gets ClickHouse's READONLY error, as do the other writes through ``command()``."""
    import datetime

    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import DatabaseError

    client = clickhouse_connect.get_client(host="127.0.0.1", port=served.port)
    try:
        with pytest.raises(DatabaseError) as caught:
            client.insert("snowplow.bad_rows", [["x", "t", datetime.datetime(2026, 1, 1)]],
                          column_names=["line", "batch_token", "batch_tstamp"])
        assert "Code: 164" in str(caught.value) and "Cannot execute query in readonly mode" in str(caught.value)
        assert "(READONLY)" in str(caught.value), caught.value
        for sql in ("INSERT INTO snowplow.bad_rows (line) VALUES ('x')", "CREATE TABLE snowplow.x (a Int8) ENGINE = Memory",
                    "DROP TABLE snowplow.bad_rows", "ALTER TABLE snowplow.events DELETE WHERE 1",
                    "TRUNCATE TABLE snowplow.bad_rows", "RENAME TABLE snowplow.bad_rows TO snowplow.b",
                    "/* why not */ INSERT INTO snowplow.bad_rows (line) VALUES ('x')"):
            with pytest.raises(DatabaseError) as caught:
                client.command(sql)
            assert "Code: 164" in str(caught.value) and "(READONLY)" in str(caught.value), (sql, caught.value)
        assert client.command("SELECT count() FROM snowplow.bad_rows") == 0
        assert store.backend.query("SELECT count() FROM system.tables WHERE database = 'snowplow'") == [(2,)]
    finally:
        client.close()


def test_clickhouse_connect_with_a_token(served_with_token):
    import clickhouse_connect

    client = clickhouse_connect.get_client(host="127.0.0.1", port=served_with_token.port, password=TOKEN)
    try:
        assert client.command("SELECT count() FROM snowplow.events") == 3
    finally:
        client.close()
    with pytest.raises(Exception):
        clickhouse_connect.get_client(host="127.0.0.1", port=served_with_token.port, password="wrong")


def _http(port: int, path: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_curl_like_requests(served, served_with_token):
    port = served.port
    assert _http(port, "/ping")[::2] == (200, b"Ok.\n")
    query = urllib.parse.quote("SELECT event, count() AS n FROM snowplow.events GROUP BY event ORDER BY event")
    status, headers, body = _http(port, f"/?query={query}")
    assert status == 200 and body == b"page_view\t2\nunstruct\t1\n"
    assert headers["X-ClickHouse-Format"] == "TabSeparated" and "X-ClickHouse-Summary" in headers
    status, headers, body = _http(port, "/?default_format=JSONEachRow&param_id=" + EID.format(2),
                                  b"SELECT event_id, event FROM snowplow.events WHERE event_id = {id:String}")
    assert status == 200 and json.loads(body) == {"event_id": EID.format(2), "event": "page_view"}
    status, headers, body = _http(port, "/", b"SELECT * FROM snowplow.missing")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception:")
    status, headers, body = _http(port, "/", b"INSERT INTO snowplow.bad_rows (line) VALUES ('x')")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "164"
    # with a token: none -> 401, the right one as curl -u default:TOKEN or a bearer -> 200
    token_port = served_with_token.port
    assert _http(token_port, "/", b"SELECT 1")[0] == 401
    basic = "Basic " + base64.b64encode(f"default:{TOKEN}".encode()).decode()
    assert _http(token_port, "/", b"SELECT 1", {"Authorization": basic})[::2] == (200, b"1\n")
    assert _http(token_port, "/", b"SELECT 1", {"Authorization": f"Bearer {TOKEN}"})[::2] == (200, b"1\n")
