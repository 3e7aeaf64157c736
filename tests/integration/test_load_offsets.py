"""A loader whose group coordinator refuses its reads of the committed offsets still loads every record.

After a broker stall, the group coordinator may answer an offset read with
NOT_COORDINATOR for the whole request (no partition in the answer) while it
settles.  librdkafka never starts a partition whose offset it was left to
read when that read is refused so (librdkafka issue 5586): the loader then
stayed in its group, fetched nothing and committed nothing, for good.  CI
caught it once in ``test_faults.py::test_broker_frozen_then_thawed_mid_stream``
("Failed to fetch committed offsets for 0 partition(s) ... Not coordinator").

Here ``tests/services/kafka_fault_proxy.py`` stands between the loader
process and a broker of the test's own (which advertises the proxy), and
answers the loader's offset reads with that refusal:

* every read after the loader's first: the loader reads the offsets itself
  and assigns each partition at its offset, so librdkafka has none to read;
* the loader's first two reads (its own at the assignment, then
  librdkafka's): the partitions go to librdkafka without an offset and stay
  unread until a later poll of the loader reads the offsets and assigns them
  again at them.
"""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from tests.integration.test_load_crash import enriched_line
from tests.services.kafka_fault_proxy import PROXIED_CLIENT_ID
from tests.services.load import LoadProcess, wait_committed
from tests.services.pipeline import CONSUMER

RECORDS = 300


@pytest.mark.parametrize("refuse, refused", [(lambda n: n >= 2, 0), (lambda n: n <= 2, 2)],
                         ids=["every-read-after-the-first", "the-first-two-reads"])
def test_s3_loader_loads_every_record_while_the_coordinator_refuses_offset_reads(
        proxied_kafka_broker, seaweedfs, make_s3_bucket, refuse, refused):
    broker, proxy = proxied_kafka_broker
    proxy.refuse = refuse
    prefix = f"t.offsets.{uuid.uuid4().hex[:8]}"
    enriched, bad = f"{prefix}.enriched", f"{prefix}.bad"
    broker.create_topics([enriched], partitions=2)
    broker.create_topics([bad], partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(enriched, enriched_line(i, str(uuid.uuid4()), late=False), partition=i % 2)
    assert producer.flush(30) == 0
    del producer  # gone before its broker is
    group = f"load-s3-{prefix}"
    values = {"load.s3_group_id": group, "load.batch_size": "100", "load.batch_timeout": "0.5",
              "kafka.client_id": PROXIED_CLIENT_ID, "kafka.consumer": CONSUMER,
              "s3.backend": "s3", "s3.bucket": make_s3_bucket(seaweedfs), "s3.endpoint_url": seaweedfs.endpoint_url,
              "s3.path_style": "true"}
    loader = LoadProcess("s3", broker.bootstrap_servers, enriched, bad, values).start()
    try:
        t0 = time.monotonic()
        wait_committed(broker.bootstrap_servers, group, {enriched: [RECORDS // 2, RECORDS // 2], bad: [0]},
                       timeout=60, process=loader)
        print(f"\n{proxy.offset_fetches} offset reads by the loader, {proxy.refused} refused; "
              f"every record loaded and committed {time.monotonic() - t0:.1f}s after the start")
        assert proxy.refused == refused
        assert loader.terminate() == 0, loader.output()
    finally:
        loader.close()
