"""``/ready`` follows the dependencies: a worker is ready only while it can do work now.

An enrich worker and an S3 loader run against a broker (and a SeaweedFS store)
that the test stops and starts: ``/ready`` answers 503 while a dependency is
down, naming it, and 200 again once it is back, without restarting the worker.
``/metrics`` keeps answering throughout (a not-ready worker is still scraped).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from snowmelt.metrics import METRIC_NAMES
from tests.services.enrich import EnrichProcess
from tests.services.kafka import KafkaTopics
from tests.services.load import LoadProcess
from tests.services.wait import wait_until


def ready_url(process) -> str:
    return process.metrics_url.rsplit("/", 1)[0] + "/ready"


def readiness(process) -> tuple[int, dict]:
    """(HTTP status, JSON body) of the process's ``/ready``; fails if the process has exited."""
    if process.proc.poll() is not None:
        raise AssertionError(f"{process.name} exited with {process.proc.returncode}:\n{process.output()}")
    try:
        with urllib.request.urlopen(ready_url(process), timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_status(process, status: int, timeout: float, what: str) -> dict:
    seen: list = []

    def probe():
        answer = readiness(process)
        seen[:] = [answer]
        return answer if answer[0] == status else None

    try:
        return wait_until(probe, timeout, what, interval=0.25)[1]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer {seen}\n{process.output()}") from None


def undeclared_metrics(process) -> list[str]:
    """snowmelt_* families the running process exposes that METRIC_NAMES does not declare."""
    out = []
    for family in text_string_to_metric_families(process.metrics()):
        name = family.name + "_total" if family.type == "counter" else family.name
        if name.startswith("snowmelt") and name not in METRIC_NAMES:
            out.append(name)
    return out


def private_topics(broker) -> KafkaTopics:
    prefix = f"t.ready.{uuid.uuid4().hex[:8]}"
    topics = KafkaTopics(*(f"{prefix}.{role}" for role in KafkaTopics._fields))
    broker.create_topics(topics, partitions=2)
    return topics


def test_enrich_worker_is_not_ready_while_the_broker_is_down(private_kafka_broker):
    broker = private_kafka_broker
    topics = private_topics(broker)
    worker = EnrichProcess(broker.bootstrap_servers, topics, settings={"enrich.session_timeout": "10"})
    with worker:
        body = wait_status(worker, 200, 60, "the enrich worker ready with the broker up")
        assert body == {"ready": True, "checks": {"kafka": "ok", "stopping": "ok"}}
        assert undeclared_metrics(worker) == []

        broker.stop()
        body = wait_status(worker, 503, 30, "the enrich worker not ready with the broker down")
        assert body["ready"] is False
        assert "broker unreachable" in body["checks"]["kafka"], body
        assert body["checks"]["stopping"] == "ok"
        assert "snowmelt_enrich_records_total" in worker.metrics()  # still scraped while not ready

        broker.start()
        wait_status(worker, 200, 60, "the enrich worker ready again once the broker is back")
        assert worker.proc.poll() is None
    assert worker.proc.returncode == 0, worker.output()


def test_enrich_worker_is_not_ready_when_its_topics_do_not_exist(private_kafka_broker):
    broker = private_kafka_broker
    prefix = f"t.ready.missing.{uuid.uuid4().hex[:8]}"
    topics = KafkaTopics(*(f"{prefix}.{role}" for role in KafkaTopics._fields))
    # only the raw topic exists: the worker could read but not write
    broker.create_topics([topics.raw], partitions=1)
    with EnrichProcess(broker.bootstrap_servers, topics, settings={"enrich.session_timeout": "10"}) as worker:
        body = wait_status(worker, 503, 30, "the enrich worker not ready without its output topics")
        assert topics.enriched in body["checks"]["kafka"] and topics.bad in body["checks"]["kafka"], body
        broker.create_topics([topics.enriched, topics.bad], partitions=1)
        wait_status(worker, 200, 30, "the enrich worker ready once its topics exist")


def test_s3_loader_is_not_ready_while_the_broker_or_the_store_is_down(
        private_kafka_broker, private_seaweedfs, make_s3_bucket):
    broker, store = private_kafka_broker, private_seaweedfs
    topics = private_topics(broker)
    bucket = make_s3_bucket(store)
    loader = LoadProcess("s3", broker.bootstrap_servers, topics.enriched, topics.bad, {
        "s3.backend": "s3", "s3.bucket": bucket, "s3.endpoint_url": store.endpoint_url, "s3.path_style": "true",
        "s3.connect_timeout": "1", "s3.read_timeout": "5", "s3.max_attempts": "1",
        "load.batch_timeout": "0.5"}).start()
    try:
        body = wait_status(loader, 200, 60, "the loader ready with the broker and the store up")
        assert body["checks"] == {"kafka": "ok", "store": "ok", "stopping": "ok"}
        assert undeclared_metrics(loader) == []

        store.stop()
        body = wait_status(loader, 503, 30, "the loader not ready with the store down")
        assert body["checks"]["kafka"] == "ok"
        assert "unreachable" in body["checks"]["store"] and bucket in body["checks"]["store"], body
        store.start()
        wait_status(loader, 200, 60, "the loader ready again once the store is back")

        broker.stop()
        body = wait_status(loader, 503, 30, "the loader not ready with the broker down")
        assert "broker unreachable" in body["checks"]["kafka"], body
        assert body["checks"]["store"] == "ok"
        broker.start()
        wait_status(loader, 200, 60, "the loader ready again once the broker is back")

        assert loader.terminate(60) == 0, loader.output()
    finally:
        loader.close()
