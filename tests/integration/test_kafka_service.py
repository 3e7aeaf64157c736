"""The Kafka test service itself: produce/consume, restart durability, a stopped broker.

These run against whichever broker ``broker_from_env()`` picked (Apache Kafka,
Tansu or an external one) and say so in the output.
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

import tests.services.kafka as kafka
from tests.services.kafka import KafkaBroker, class_archive, fetch, java_executable


@pytest.fixture
def make_producer():
    """Producers closed at teardown, before the broker fixture stops its broker
    (otherwise they log reconnect failures until garbage-collected)."""
    producers: list[Producer] = []

    def make(broker, **overrides) -> Producer:
        # librdkafka's connection errors go to logging (shown by pytest on failure), not stderr.
        config = broker.client_config(**{"acks": "all", "linger.ms": 0, **overrides})
        producers.append(Producer(config, logger=logging.getLogger("rdkafka")))
        return producers[-1]

    yield make
    for producer in producers:
        producer.flush(5)
        close = getattr(producer, "close", None)  # confluent-kafka >= 2.x
        if close is not None:
            close()


def _produce(producer: Producer, topic: str, messages: list[tuple[bytes, bytes]], timeout: float = 30.0):
    """Produce and flush; return the delivery reports as (error, key, value, offset)."""
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.key(), msg.value(), msg.offset()))

    for key, value in messages:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
    left = producer.flush(timeout)
    assert left == 0, f"{left} message(s) still queued after {timeout}s"
    return reports


def _consume(broker, topic: str, count: int, timeout: float = 30.0) -> list[tuple[bytes, bytes]]:
    """Read ``count`` messages of partition 0 from the beginning, polling until a deadline."""
    consumer = Consumer(
        broker.client_config(
            **{
                "group.id": f"test-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
    )
    # assign(), not subscribe(): no group join (slow on Tansu), just a fetch.
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consume error: {msg.error()}")
            out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def test_produce_then_consume(kafka_broker, kafka_topics, make_producer):
    print(f"\nbroker: {kafka_broker.describe()}")
    assert kafka_broker.kind in ("apache-kafka", "tansu", "external")
    producer = make_producer(kafka_broker)
    messages = [(b"k%d" % i, b"value-%d" % i) for i in range(5)]
    reports = _produce(producer, kafka_topics.raw, messages)
    assert [r[0] for r in reports] == [None] * 5
    assert _consume(kafka_broker, kafka_topics.raw, 5) == messages
    # the other fresh topics exist and are empty of this test's data
    md = kafka_broker.admin().list_topics(timeout=10)
    assert {kafka_topics.bad, kafka_topics.enriched} <= set(md.topics)


def test_topics_are_unique_per_test(kafka_topics, make_kafka_topics):
    other = make_kafka_topics(partitions=3)
    assert len(set(kafka_topics) | set(other)) == 6


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_data_survives_broker_restart(private_kafka_broker, make_producer, how):
    broker = private_kafka_broker
    if not broker.supports_restart:
        pytest.skip(f"{broker.kind} keeps data in memory only: a restart loses it")
    topic = f"survive-{how}-{uuid.uuid4().hex[:8]}"
    broker.create_topics([topic])
    before = [(b"before", b"written before the %s" % how.encode())]
    assert [r[0] for r in _produce(make_producer(broker), topic, before)] == [None]

    port = broker.bootstrap_servers
    if how == "restart":
        broker.restart()
    else:
        broker.kill()
        broker.start()
    assert broker.bootstrap_servers == port
    print(f"\n{how}: ready again in {broker.start_seconds:.1f}s")

    after = [(b"after", b"written after the %s" % how.encode())]
    assert [r[0] for r in _produce(make_producer(broker), topic, after)] == [None]
    assert _consume(broker, topic, 2) == before + after


def test_produce_fails_while_broker_stopped(private_kafka_broker, make_producer):
    broker = private_kafka_broker
    topic = f"stopped-{uuid.uuid4().hex[:8]}"
    broker.create_topics([topic])
    producer = make_producer(broker, **{"message.timeout.ms": 3000, "retry.backoff.ms": 100})
    assert [r[0] for r in _produce(producer, topic, [(b"1", b"up")])] == [None]

    broker.stop()
    assert not broker.running
    reports = _produce(producer, topic, [(b"2", b"down")], timeout=20)
    assert len(reports) == 1
    err = reports[0][0]
    assert err is not None, "a produce to a stopped broker was acknowledged"
    assert err.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT), err

    # the same producer recovers once the broker is back (Tansu: as an empty broker)
    broker.start()
    broker.create_topics([topic])
    deadline = time.monotonic() + 30
    while True:
        (report,) = _produce(producer, topic, [(b"3", b"back")], timeout=20)
        if report[0] is None:
            break
        assert time.monotonic() < deadline, f"produce after start still failing: {report[0]}"
    if broker.supports_restart:
        assert _consume(broker, topic, 2) == [(b"1", b"up"), (b"3", b"back")]


def _apache_kafka(broker) -> None:
    if broker.kind != "apache-kafka":
        pytest.skip(f"the class archive is Apache Kafka's JVM's; the tests run {broker.kind}")


def test_the_class_archive_is_one_the_jvm_accepts(kafka_broker):
    # -Xshare:on: the JVM refuses to start rather than start without the archive
    _apache_kafka(kafka_broker)
    archive = class_archive(kafka_broker.version)
    assert archive is not None and archive.stat().st_size > 1_000_000, archive
    assert f"-XX:SharedArchiveFile={archive}" in kafka_broker._java_cmd("kafka.Kafka")
    proc = subprocess.run([java_executable(), "-Xshare:on", f"-XX:SharedArchiveFile={archive}",
                           "-cp", f"{fetch(kafka_broker.version)}/*", "kafka.Kafka", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and kafka_broker.version in proc.stdout, proc.stdout + proc.stderr


def test_a_broker_given_an_archive_that_no_longer_matches_starts_without_it(kafka_broker, tmp_path):
    _apache_kafka(kafka_broker)
    stale = tmp_path / "stale.jsa"
    stale.write_bytes(b"\0" * 4096)
    broker = KafkaBroker(version=kafka_broker.version)
    broker._class_archive = stale  # as a cache left by other jars or another Java would be
    try:
        broker.start()
        broker.create_topics(["after-a-stale-archive"])  # raises unless the topic gets a leader
        assert f"-XX:SharedArchiveFile={stale}" in open(f"/proc/{broker.pid}/cmdline").read().replace("\0", " ")
    finally:
        broker.close()


def test_a_class_archive_that_cannot_be_made_is_tried_once_and_leaves_nothing(kafka_broker, tmp_path, monkeypatch):
    _apache_kafka(kafka_broker)
    libs = kafka.fetch(kafka_broker.version)
    monkeypatch.setattr(kafka, "fetch", lambda version=None, **_: libs)
    monkeypatch.setattr(kafka, "kafka_home", lambda version=None: tmp_path)  # a cache holding no archive yet
    monkeypatch.setattr(kafka, "_CLASS_ARCHIVES", {})
    starts = []

    def refuse(broker):
        starts.append(broker)
        raise kafka.BrokerStartError("refused on purpose")

    monkeypatch.setattr(kafka.KafkaBroker, "start", refuse)
    assert kafka.class_archive(kafka_broker.version) is None
    assert kafka.class_archive(kafka_broker.version) is None
    assert len(starts) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".class-archive.lock"]
