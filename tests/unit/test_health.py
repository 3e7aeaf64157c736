"""snowmelt.health: readiness checks, their caching and the /ready, /metrics, /health server."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily

from snowmelt import health
from snowmelt.config import ClickHouseConfig, KafkaConfig, S3Config


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_readiness_is_ready_only_when_every_check_passes_and_says_why_not():
    broker_up = {"value": True}

    def kafka():
        if not broker_up["value"]:
            raise health.NotReady("broker unreachable (_TRANSPORT)")

    clock = Clock()
    ready = health.Readiness({"kafka": kafka, "store": lambda: None}, ttl=1.0, clock=clock)
    assert ready.check() == (True, {"kafka": "ok", "store": "ok"})
    broker_up["value"] = False
    clock.now += 1.5
    assert ready.check() == (False, {"kafka": "broker unreachable (_TRANSPORT)", "store": "ok"})


def test_readiness_caches_results_for_ttl_so_probes_do_not_hammer_dependencies():
    calls = []
    clock = Clock()
    ready = health.Readiness({"kafka": lambda: calls.append(1)}, ttl=2.0, clock=clock)
    for _ in range(5):
        ready.check()
    assert len(calls) == 1
    clock.now += 2.5
    ready.check()
    assert len(calls) == 2


def test_a_check_raising_any_exception_is_a_reason_not_a_crash():
    def broken():
        raise ConnectionRefusedError("connection refused")

    ok, checks = health.Readiness({"store": broken}, ttl=0).check()
    assert not ok and checks["store"] == "connection refused"


def test_flag_check_fails_once_the_flag_is_set():
    stopping = {"value": False}
    ready = health.Readiness({"stopping": health.flag_check(lambda: stopping["value"], "stopping")}, ttl=0)
    assert ready.check()[0] is True
    stopping["value"] = True
    assert ready.check() == (False, {"stopping": "stopping"})


def test_redact_url_drops_credentials_path_and_query():
    assert health.redact_url("https://admin:s3cret@ch.example:8443/db?password=x") == "https://ch.example:8443"
    assert health.redact_url("http://localhost:8123") == "http://localhost:8123"


class FakeAdmin:
    def __init__(self, topics=None, error=None):
        self.topics, self.error = topics or {}, error
        self.conf = None

    def list_topics(self, timeout):
        if self.error is not None:
            raise self.error
        return SimpleNamespace(brokers={1: "b"}, topics={t: SimpleNamespace(error=None) for t in self.topics})


def test_kafka_check_needs_a_broker_and_every_topic():
    from confluent_kafka import KafkaError, KafkaException

    admin = FakeAdmin(topics=["raw", "enriched"])

    def factory(conf):
        admin.conf = conf
        return admin

    check = health.kafka_check({"bootstrap.servers": "b:9092"}, ["raw", "enriched", "bad"], admin_factory=factory)
    with pytest.raises(health.NotReady, match="topic.*missing: bad"):
        check()
    assert admin.conf["bootstrap.servers"] == "b:9092"
    admin.topics = ["raw", "enriched", "bad"]
    check()
    admin.error = KafkaException(KafkaError(KafkaError._TRANSPORT))
    with pytest.raises(health.NotReady, match="broker unreachable"):
        check()


def test_kafka_check_against_a_closed_port_fails_within_its_timeout():
    from tests.services.server import free_port

    check = health.kafka_check({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, timeout=0.5)
    with pytest.raises(health.NotReady, match="broker unreachable"):
        check()


def test_kafka_client_settings_carry_security_but_not_consumer_or_producer_keys():
    kafka = KafkaConfig(bootstrap_servers="k:9093", common={"security.protocol": "SASL_SSL"},
                        consumer={"fetch.min.bytes": 1}, producer={"linger.ms": 5})
    settings = health.kafka_client_settings(kafka)
    assert settings["bootstrap.servers"] == "k:9093" and settings["security.protocol"] == "SASL_SSL"
    assert "fetch.min.bytes" not in settings and "linger.ms" not in settings


def test_s3_check_heads_the_bucket_and_names_it_without_credentials():
    class Client:
        fail = False

        def head_bucket(self, Bucket):
            if self.fail:
                raise ConnectionError("Could not connect")

    client = Client()
    config = S3Config(bucket="events", endpoint_url="http://key:secret@127.0.0.1:9000")
    check = health.s3_check(config, client_factory=lambda: client)
    check()
    client.fail = True
    with pytest.raises(health.NotReady) as info:
        check()
    assert "s3://events at http://127.0.0.1:9000 unreachable" in str(info.value)
    assert "secret" not in str(info.value)


def test_s3_check_local_backend_needs_a_writable_folder(tmp_path):
    health.s3_check(S3Config(backend="local", local_dir=str(tmp_path)))()
    with pytest.raises(health.NotReady, match="not a writable folder"):
        health.s3_check(S3Config(backend="local", local_dir=str(tmp_path / "missing")))()


def test_clickhouse_check_pings_the_server_without_credentials_and_chdb_needs_none():
    asked = []

    def opener(url, timeout):
        asked.append(url)
        raise urllib.error.URLError("refused")

    config = ClickHouseConfig(backend="server", url="http://default:pw@127.0.0.1:8123")
    with pytest.raises(health.NotReady) as info:
        health.clickhouse_check(config, opener=opener)()
    assert asked == ["http://127.0.0.1:8123/ping"]
    assert "pw" not in str(info.value)
    health.clickhouse_check(ClickHouseConfig(backend="chdb"))()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def test_server_serves_ready_metrics_and_health():
    registry = CollectorRegistry()

    class Stats:
        def collect(self):
            yield CounterMetricFamily("snowmelt_load_batches", "batches", value=3)

    registry.register(Stats())
    state = {"up": False}

    def broker():
        if not state["up"]:
            raise health.NotReady("broker unreachable")

    server = health.serve("127.0.0.1", 0, health.Readiness({"kafka": broker}, ttl=0), registry)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        status, ctype, body = get(base + "/ready")
        assert status == 503 and ctype == "application/json"
        assert json.loads(body) == {"ready": False, "checks": {"kafka": "broker unreachable"}}
        state["up"] = True
        status, _, body = get(base + "/ready")
        assert status == 200 and json.loads(body)["ready"] is True
        status, ctype, body = get(base + "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        assert b"snowmelt_load_batches_total 3.0" in body
        assert get(base + "/health")[0] == 200
        assert get(base + "/nothing")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
