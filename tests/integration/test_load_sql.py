"""``snowmelt load clickhouse`` with chdb serves read-only SQL while it loads (``clickhouse.sql_port``).

A chdb folder is held by one process, so the loader itself answers ClickHouse's
HTTP dialect: the events it loaded are counted over HTTP while it runs, writes
are refused, the token is required when set, and the key is refused with the
server backend.
"""
from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

from confluent_kafka import Producer

from tests.integration.test_load_crash import enriched_line
from tests.services.load import LoadProcess
from tests.services.process import snowmelt_env
from tests.services.server import free_port
from tests.services.wait import wait_until

TOKEN = "s3cret-token"


def sql(port: int, query: str, token: str | None = TOKEN, method: str = "GET") -> tuple[int, str]:
    url = f"http://127.0.0.1:{port}/"
    data = None
    if method == "GET":
        url += "?" + urllib.parse.urlencode({"query": query})
    else:
        data = query.encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_chdb_loader_answers_sql_while_loading(kafka_broker, kafka_topics, tmp_path):
    port = free_port()
    loader = LoadProcess("clickhouse", kafka_broker.bootstrap_servers, kafka_topics.enriched, kafka_topics.bad, {
        "clickhouse.backend": "chdb", "clickhouse.chdb_path": str(tmp_path / "ch"),
        "clickhouse.sql_port": str(port), "clickhouse.sql_token": TOKEN,
        "load.clickhouse_group_id": f"load-sql-{uuid.uuid4().hex[:6]}",
        "load.batch_size": "100", "load.batch_timeout": "0.2"}).start()
    try:
        assert sql(port, "SELECT 1") == (200, "1\n")
        ids = [str(uuid.uuid4()) for _ in range(250)]
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
        for i, event_id in enumerate(ids):
            producer.produce(kafka_topics.enriched, enriched_line(i, event_id, late=False))
        assert producer.flush(30) == 0

        count = wait_until(lambda: int(sql(port, "SELECT uniqExact(event_id) FROM snowplow.events")[1] or 0),
                           60, "250 events queryable over HTTP", interval=0.2, done=lambda n: n >= len(ids))
        assert count == len(ids)
        status, body = sql(port, f"SELECT event_id FROM snowplow.events WHERE event_id = '{ids[7]}'")
        assert (status, body) == (200, ids[7] + "\n")

        # read-only: no write through the endpoint, even by POST; the token is required
        status, body = sql(port, "INSERT INTO snowplow.bad_rows (line) VALUES ('x')", method="POST")
        assert status == 403 and "READONLY" in body
        assert sql(port, "SELECT 1", token=None)[0] == 401
        assert sql(port, "SELECT 1", token="wrong")[0] == 403
        # the loader keeps loading while the endpoint serves
        assert loader.proc.poll() is None
    finally:
        assert loader.terminate() == 0, loader.output()
        loader.close()


def test_sql_port_is_refused_with_the_server_backend(kafka_broker, kafka_topics):
    env = snowmelt_env({"kafka.bootstrap_servers": kafka_broker.bootstrap_servers,
                        "topics.enriched": kafka_topics.enriched, "topics.bad": kafka_topics.bad,
                        "clickhouse.backend": "server", "clickhouse.url": "http://127.0.0.1:9",
                        "clickhouse.sql_port": str(free_port())})
    done = subprocess.run([sys.executable, "-m", "snowmelt.cli", "load", "clickhouse"], env=env,
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "clickhouse.sql_port is only for the chdb backend" in done.stderr
