"""The loaders proven by crashing them: kill -9 mid-stream, restart, count every event.

While a producer writes enriched events (and bad rows) to a two-partition
topic, each loader process is killed with SIGKILL several times at random
moments and restarted.  Afterwards every event_id sent must be in the store:
exactly once in ClickHouse (after its deduplication: ``FINAL``), at least once
in S3, where the duplicates left by the crashes are counted and reported.  A
new self-describing schema (and a new minor version of an existing one)
appears mid-stream and must get its column without losing events.

Then the one crash that used to leave duplicates in S3, made deterministic:
the S3 loader killed between a time-cut batch's write and its commit (the
object in the store, its answer held back by tests/services/fault_proxy.py),
restarted with more records behind: its write intent makes it cut that batch
again exactly, so every event is in S3 exactly once.
"""
from __future__ import annotations

import json
import random
import threading
import time
import uuid

import pytest
from confluent_kafka import Producer

from processor.enriched import EnrichedEvent, to_tsv
from tests.services.fault_proxy import S3FaultProxy
from tests.services.load import LoadProcess, wait_committed
from tests.services.pipeline import CONSUMER
from tests.services.wait import wait_until

PARTITIONS = 2
EVENTS = 4000
BAD_ROWS = 40
PRODUCT_1_0 = "iglu:com.acme/product/jsonschema/1-0-0"
PRODUCT_1_1 = "iglu:com.acme/product/jsonschema/1-1-0"
CHECKOUT = "iglu:com.acme/checkout/jsonschema/1-0-0"


def enriched_line(i: int, event_id: str, late: bool) -> bytes:
    """An enriched event; from ``late`` on, a new minor version and a new unstruct schema appear."""
    ms = 1_764_288_000_000 + i
    event = EnrichedEvent(
        app_id="shop", platform="web", etl_tstamp=ms + 5, collector_tstamp=ms, dvce_created_tstamp=ms - 10,
        event="unstruct" if late and i % 2 else "page_view", event_id=event_id, v_collector="snowmelt-test",
        v_etl="snowmelt-test", name_tracker="sp", v_tracker="js-4.1.0", user_ipaddress="203.0.113.9",
        domain_userid=str(uuid.UUID(int=i, version=4)), page_url="https://shop.acme.com/",
        page_urlscheme="https", page_urlhost="shop.acme.com", page_urlport=443, page_urlpath="/",
        contexts=[{"schema": PRODUCT_1_1 if late else PRODUCT_1_0, "data": {"sku": f"SKU-{i}"}}],
        derived_tstamp=ms, event_vendor="com.snowplowanalytics.snowplow", event_name="page_view",
        event_format="jsonschema", event_version="1-0-0")
    if late and i % 2:
        event.unstruct_event = {"schema": CHECKOUT, "data": {"total": i / 100}}
        event.event_vendor, event.event_name = "com.acme", "checkout"
    return to_tsv(event).encode()


def bad_row(i: int) -> bytes:
    return json.dumps({
        "schema": "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0",
        "data": {"processor": {"artifact": "snowmelt-enrich", "version": "0.1.0"},
                 "failure": {"timestamp": "2026-11-28T00:00:00.000Z", "errors": [f"error {i}"]},
                 "payload": ""}}).encode()


class Traffic:
    """Produces EVENTS enriched lines and BAD_ROWS bad rows at a steady pace on a thread."""

    def __init__(self, bootstrap: str, topics, seconds: float = 6.0):
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
        self.topics, self.seconds = topics, seconds
        self.event_ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
        self.sent = 0  # events produced so far
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = self.seconds / EVENTS
        started = time.monotonic()
        for i, event_id in enumerate(self.event_ids):
            self.producer.produce(self.topics.enriched, enriched_line(i, event_id, late=i >= EVENTS // 2),
                                  key=event_id.encode())
            if i % (EVENTS // BAD_ROWS) == 0:
                self.producer.produce(self.topics.bad, bad_row(i))
            self.producer.poll(0)
            self.sent = i + 1
            delay = started + (i + 1) * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the traffic, not waiting for a result
        assert self.producer.flush(30) == 0
        self.done.set()

    def start(self) -> "Traffic":
        self.thread.start()
        return self

    def ends(self) -> dict[str, list[int]]:
        """The end offset of every partition, once everything is produced."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.producer_bootstrap, "group.id": "ends"})
        try:
            out = {}
            for topic, partitions in ((self.topics.enriched, PARTITIONS), (self.topics.bad, PARTITIONS)):
                out[topic] = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                              for p in range(partitions)]
            return out
        finally:
            consumer.close()


def crash_loader(store: str, kafka_broker, topics, settings: dict, kills: int, rng: random.Random,
                 during_traffic=None, traffic_ref: list | None = None) -> tuple[Traffic, LoadProcess, str]:
    """Run the traffic while killing the loader ``kills`` times; returns once all is committed."""
    group = f"load-{store}-{uuid.uuid4().hex[:6]}"
    values = {f"load.{store}_group_id": group, "load.batch_size": "500", "load.batch_timeout": "0.5",
              "load.retry_initial": "0.2", "load.retry_max": "2", "kafka.consumer": CONSUMER, **settings}
    traffic = Traffic(kafka_broker.bootstrap_servers, topics)
    traffic.producer_bootstrap = kafka_broker.bootstrap_servers
    if traffic_ref is not None:
        traffic_ref.append(traffic)
    loader = LoadProcess(store, kafka_broker.bootstrap_servers, topics.enriched, topics.bad, values).start()
    traffic.start()
    if during_traffic is not None:
        during_traffic()
    for n in range(kills):
        time.sleep(rng.uniform(0.5, 1.5))  # a random moment of the stream
        loader.kill()
        print(f"{store} loader killed ({n + 1}/{kills})")
        loader.close()
        loader = LoadProcess(store, kafka_broker.bootstrap_servers, topics.enriched, topics.bad, values).start()
    assert traffic.done.wait(60), "traffic did not finish"
    wait_committed(kafka_broker.bootstrap_servers, group, traffic.ends(), timeout=120, process=loader)
    assert loader.terminate() == 0, loader.output()
    return traffic, loader, group


@pytest.fixture
def topics(make_kafka_topics):
    return make_kafka_topics(partitions=PARTITIONS)


def test_clickhouse_loader_killed_repeatedly_loads_every_event_exactly_once(kafka_broker, topics, tmp_path):
    from chdb import session

    path = tmp_path / "chdb"
    traffic, loader, _ = crash_loader("clickhouse", kafka_broker, topics, {
        "clickhouse.backend": "chdb", "clickhouse.chdb_path": str(path)}, kills=3, rng=random.Random(5))
    loader.close()
    db = session.Session(str(path))
    try:
        def rows(sql):
            return json.loads(db.query(sql, "JSONCompact").bytes())["data"]

        [[stored, distinct]] = rows("SELECT count(), uniqExact(event_id) FROM snowplow.events FINAL")
        [[raw_rows]] = rows("SELECT count() FROM snowplow.events")
        print(f"clickhouse (chdb backend): {len(traffic.event_ids)} events sent, {raw_rows} rows inserted "
              f"before deduplication, {stored} after")
        assert (int(stored), int(distinct)) == (EVENTS, EVENTS)
        loaded = {row[0] for row in rows("SELECT DISTINCT event_id FROM snowplow.events")}
        assert loaded == set(traffic.event_ids)
        # the mid-stream schemas got their columns, filled for the events that carry them
        [[early, late, checkouts]] = rows(
            "SELECT countIf(length(contexts_com_acme_product_1) = 1 AND position(contexts, 'product/jsonschema/1-0-0') > 0), "
            "countIf(length(contexts_com_acme_product_1) = 1 AND position(contexts, 'product/jsonschema/1-1-0') > 0), "
            "countIf(unstruct_event_com_acme_checkout_1 IS NOT NULL) FROM snowplow.events FINAL")
        assert (int(early), int(late), int(checkouts)) == (EVENTS // 2, EVENTS // 2, EVENTS // 4)
        [[bad]] = rows("SELECT uniqExact(line) FROM snowplow.bad_rows")
        assert int(bad) == BAD_ROWS
    finally:
        db.close()


def read_s3(client, bucket: str) -> tuple[list[str], list[bytes]]:
    """Every enriched event_id (with repeats) and every bad row in the bucket."""
    import gzip

    event_ids, bad = [], []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = gzip.decompress(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            lines = body.decode().splitlines()
            if "/enriched/" in obj["Key"]:
                event_ids.extend(line.split("\t")[6] for line in lines)
            else:
                bad.extend(line.encode() for line in lines)
    return event_ids, bad


def test_s3_loader_killed_repeatedly_with_the_store_restarted_loses_nothing(
        kafka_broker, topics, private_seaweedfs, make_s3_bucket):
    bucket = make_s3_bucket(private_seaweedfs)
    store = private_seaweedfs

    traffic_ref: list[Traffic] = []

    def outage():
        # the store is down from a fifth of the stream to a half of it
        def run():
            wait_until(lambda: traffic_ref[0].sent >= EVENTS // 5 or None, 60, "a fifth of the traffic", interval=0.05)
            store.stop()
            print("s3 store stopped")
            wait_until(lambda: traffic_ref[0].sent >= EVENTS // 2 or None, 60, "half of the traffic", interval=0.05)
            store.start()
            print("s3 store restarted")
        threading.Thread(target=run, daemon=True).start()

    traffic, loader, _ = crash_loader("s3", kafka_broker, topics, {
        "s3.backend": "s3", "s3.bucket": bucket, "s3.endpoint_url": store.endpoint_url, "s3.path_style": "true",
        "s3.connect_timeout": "1", "s3.read_timeout": "5", "s3.max_attempts": "1"},
        kills=3, rng=random.Random(11), during_traffic=outage, traffic_ref=traffic_ref)
    loader.close()
    event_ids, bad = read_s3(store.client(), bucket)
    duplicates = len(event_ids) - len(set(event_ids))
    print(f"s3 (SeaweedFS): {len(traffic.event_ids)} events sent, {len(event_ids)} lines stored, "
          f"{duplicates} duplicates left by the crashes")
    assert set(event_ids) == set(traffic.event_ids)
    assert len({row for row in bad}) == BAD_ROWS


def committed_with_metadata(bootstrap: str, group: str, topic: str) -> tuple[int, str]:
    """The group's committed offset of ``topic``'s partition 0 and its metadata."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset, tp.metadata or ""
    finally:
        consumer.close()


def test_s3_loader_killed_between_a_time_cut_write_and_its_commit_stores_every_event_once(
        kafka_broker, make_kafka_topics, seaweedfs, make_s3_bucket):
    topics = make_kafka_topics(partitions=1)
    bucket = make_s3_bucket(seaweedfs)
    bootstrap = kafka_broker.bootstrap_servers
    event_ids = [str(uuid.uuid4()) for _ in range(600)]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})

    def produce(numbers):
        for i in numbers:
            producer.produce(topics.enriched, enriched_line(i, event_ids[i], late=False))
        assert producer.flush(30) == 0

    group = f"load-s3-intent-{uuid.uuid4().hex[:6]}"
    with S3FaultProxy(seaweedfs.endpoint_url) as proxy:
        # batches cut by time only (batch_size far above the traffic); the store's answers may be held a while
        values = {"load.s3_group_id": group, "load.batch_size": "100000", "load.batch_timeout": "0.5",
                  "load.retry_initial": "0.2", "load.retry_max": "2", "kafka.consumer": CONSUMER,
                  "s3.backend": "s3", "s3.bucket": bucket, "s3.endpoint_url": proxy.url, "s3.path_style": "true",
                  "s3.max_attempts": "1", "s3.read_timeout": "120"}
        produce(range(200))
        proxy.hold_writes = True
        loader = LoadProcess("s3", bootstrap, topics.enriched, topics.bad, values).start()
        try:
            [held] = wait_until(proxy.held_paths, 60, "a first batch written to S3, its answer held")
            produce(range(200, len(event_ids)))  # the restarted loader finds these behind the written batch
            loader.kill()  # the object is in S3, its offsets are not committed
        finally:
            producer.close()
            loader.close()
        token = held.rsplit("/", 1)[1].removesuffix(".tsv.gz")
        first, last = (int(n) for n in token.rsplit("-", 2)[1:])
        print(f"loader killed with {token} written and uncommitted")
        # the group holds the write intent of that batch: its first offset, its range as metadata
        assert committed_with_metadata(bootstrap, group, topics.enriched) == (first, f"snowmelt-batch:{first}-{last}")
        proxy.release()
        loader = LoadProcess("s3", bootstrap, topics.enriched, topics.bad, values).start()
        try:
            wait_committed(bootstrap, group, {topics.enriched: [len(event_ids)], topics.bad: [0]}, timeout=90,
                           process=loader)
            assert loader.terminate() == 0, loader.output()
            log = loader.output(200_000)
        finally:
            loader.close()
    assert f"a batch of offsets {first}-{last} was being written" in log, log[-3000:]
    assert committed_with_metadata(bootstrap, group, topics.enriched) == (len(event_ids), "")
    client = seaweedfs.client()
    stored, _ = read_s3(client, bucket)
    keys = [obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])]
    print(f"s3 after the kill: {len(event_ids)} events sent, {len(stored)} rows stored, "
          f"{len(set(stored))} distinct; objects {sorted(k.rsplit('/', 1)[1] for k in keys)}")
    assert held.lstrip("/").split("/", 1)[1] in keys  # the same object, written twice
    assert len(stored) == len(set(stored)) == len(event_ids)
    assert set(stored) == set(event_ids)
