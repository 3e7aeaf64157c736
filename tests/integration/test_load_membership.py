"""A loader whose consumer is left outside its group exits as stalled, and the next one loads everything.

CI once saw ``snowmelt load s3`` revoke its partitions after a broker freeze
and never get back into its group (``loaders/membership.py``).  Here the
consumer is put in that state on purpose: ``tests/services/kafka_fault_proxy.py``
stands between the loader and a broker of the test's own and swallows the
loader's heartbeats and join requests, so its session times out and its
joins go nowhere, while the broker answers everyone else.
"""
from __future__ import annotations

import time
import uuid

from confluent_kafka import Producer

from tests.integration.test_load_crash import enriched_line
from tests.services.kafka_fault_proxy import HEARTBEAT, JOIN_GROUP, PROXIED_CLIENT_ID
from tests.services.load import LoadProcess, committed_offsets, wait_committed
from tests.services.pipeline import CONSUMER
from tests.services.s3 import s3_enriched_event_ids
from tests.services.wait import wait_until

HALF = 150
STALL_TIMEOUT = 8


def test_a_loader_left_outside_its_group_exits_as_stalled_and_the_next_one_loads_every_record(
        proxied_kafka_broker, seaweedfs, make_s3_bucket):
    broker, proxy = proxied_kafka_broker
    prefix = f"t.member.{uuid.uuid4().hex[:8]}"
    enriched, bad = f"{prefix}.enriched", f"{prefix}.bad"
    broker.create_topics([enriched], partitions=2)
    broker.create_topics([bad], partitions=1)
    bootstrap = broker.bootstrap_servers
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sent = [str(uuid.uuid4()) for _ in range(2 * HALF)]

    def produce(ids, start):
        for i, eid in enumerate(ids, start):
            producer.produce(enriched, enriched_line(i, eid, late=False), partition=i % 2)
        assert producer.flush(30) == 0
    group = f"load-s3-{prefix}"
    bucket = make_s3_bucket(seaweedfs)
    values = {"load.s3_group_id": group, "load.batch_size": "100", "load.batch_timeout": "0.5",
              "load.stall_timeout": str(STALL_TIMEOUT), "kafka.consumer": CONSUMER,
              "s3.backend": "s3", "s3.bucket": bucket, "s3.endpoint_url": seaweedfs.endpoint_url,
              "s3.path_style": "true"}
    stuck = LoadProcess("s3", bootstrap, enriched, bad, {**values, "kafka.client_id": PROXIED_CLIENT_ID}).start()
    try:
        produce(sent[:HALF], 0)
        wait_committed(bootstrap, group, {enriched: [HALF // 2, HALF // 2], bad: [0]}, timeout=60, process=stuck)
        proxy.swallow = frozenset({HEARTBEAT, JOIN_GROUP})
        cut_off = time.monotonic()
        wait_until(lambda: "Consumer group session timed out" in stuck.output(200_000), 30,
                   "the loader's session to time out")
        produce(sent[HALF:], HALF)  # for the loader after it: this one is outside its group
        status, took, log = stuck.wait_exited(60, "the loader outside its group to exit", since=cut_off)
    finally:
        stuck.close()
    assert status == 4, log[-6000:]
    committed = committed_offsets(bootstrap, group, enriched, 2)
    print(f"\nloader cut off from its group exited 4 after {took:.1f}s ({proxy.swallowed} heartbeats and joins "
          f"swallowed); committed then {committed}")
    assert committed == [HALF // 2, HALF // 2]  # what came after its session ended waited for the next loader
    assert "stalled: the consumer has been outside group " + group in log
    assert "this consumer is not one of them" in log
    assert "=== thread MainThread ===" in log  # where it was, for whoever reads the log
    # session timeout (6 s), then outside for the stall timeout, checked every 2 s; not minutes
    assert took < 6 + STALL_TIMEOUT + 20

    proxy.swallow = frozenset()
    with LoadProcess("s3", bootstrap, enriched, bad, values) as loader:
        wait_committed(bootstrap, group, {enriched: [HALF, HALF], bad: [0]}, timeout=60, process=loader)
    assert set(s3_enriched_event_ids(seaweedfs.client(), bucket)) == set(sent)


def test_loaders_in_the_group_without_partitions_are_not_outside_it(kafka_broker, seaweedfs, make_s3_bucket):
    """More loaders than partitions: the spare one holds none, is a member all the same, and stays."""
    broker = kafka_broker
    prefix = f"t.member.{uuid.uuid4().hex[:8]}"
    enriched, bad = f"{prefix}.enriched", f"{prefix}.bad"
    broker.create_topics([enriched, bad], partitions=1)
    values = {"load.s3_group_id": f"load-s3-{prefix}", "load.stall_timeout": "3", "kafka.consumer": CONSUMER,
              "s3.backend": "s3", "s3.bucket": make_s3_bucket(seaweedfs), "s3.endpoint_url": seaweedfs.endpoint_url,
              "s3.path_style": "true"}
    loaders = [LoadProcess("s3", broker.bootstrap_servers, enriched, bad, values).start() for _ in range(3)]
    try:
        # three stall timeouts, checked every 0.75 s: a spare loader counted as outside would be gone
        deadline = time.monotonic() + 3 * 3 + 6
        while time.monotonic() < deadline:
            for loader in loaders:
                assert loader.proc.poll() is None, f"a loader exited:\n{loader.output(20_000)}"
            time.sleep(0.25)
        for loader in loaders:
            assert loader.terminate() == 0, loader.output()
    finally:
        for loader in loaders:
            loader.close()


def test_a_negative_stall_timeout_stops_start_up_with_a_message(kafka_broker, seaweedfs, make_s3_bucket):
    values = {"load.stall_timeout": "-1", "s3.backend": "s3", "s3.bucket": make_s3_bucket(seaweedfs),
              "s3.endpoint_url": seaweedfs.endpoint_url, "s3.path_style": "true"}
    loader = LoadProcess("s3", kafka_broker.bootstrap_servers, "t.member.unused.enriched", "t.member.unused.bad",
                         values)
    try:
        loader.spawn()
        status, _, log = loader.wait_exited(60, "the loader to refuse its settings")
    finally:
        loader.close()
    assert status == 2, log
    assert "load.stall_timeout must be 0 (off) or more seconds, got -1" in log
