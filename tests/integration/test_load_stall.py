"""A stalled loader says so and exits 4, and the loader after it loads everything.

Two stalls, each made on purpose by ``tests/services/kafka_fault_proxy.py``,
which stands between the loader and a broker of the test's own:

* the consumer left outside its group (``snowmelt/membership.py``), as CI once
  saw after a broker freeze: the proxy swallows the loader's heartbeats and
  join requests, so its session times out and its joins go nowhere, while the
  broker answers everyone else;
* commits that never return (``loaders/runner.py``, ``watch_progress``): the
  proxy swallows the loader's offset commits, so its first write intent waits
  in a synchronous commit, and after librdkafka gives up (``socket.timeout.ms``)
  the loader tries again, for ever;
* records that wait on a partition the loader holds and never reads
  (``snowmelt/stall.py``): the proxy swallows the loader's fetches, so it is
  a member with its partitions, holds nothing, and reads nothing.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer

from tests.integration.test_load_crash import enriched_line
from tests.services.kafka_fault_proxy import FETCH, HEARTBEAT, JOIN_GROUP, OFFSET_COMMIT, PROXIED_CLIENT_ID
from tests.services.load import LoadProcess, committed_offsets, wait_committed
from tests.services.pipeline import CONSUMER
from tests.services.s3 import s3_enriched_event_ids
from tests.services.wait import wait_until

HALF = 150
STALL_TIMEOUT = 8


@dataclass
class StallCase:
    """Fresh enriched (2 partitions) and bad topics on the proxied broker, their loader's group and settings,
    and the event ids to send."""

    bootstrap: str
    proxy: object
    s3: object
    bucket: str
    enriched: str
    bad: str
    group: str
    values: dict
    sent: list

    def produce(self, event_ids: list[str], start: int = 0) -> None:
        """An enriched event per id, the ``start + i``-th to partition ``(start + i) % 2``, acknowledged."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        for i, eid in enumerate(event_ids, start):
            producer.produce(self.enriched, enriched_line(i, eid, late=False), partition=i % 2)
        assert producer.flush(30) == 0

    def stuck_loader(self) -> LoadProcess:
        """A loader whose requests the proxy may swallow (``proxy.swallow``), started."""
        return LoadProcess("s3", self.bootstrap, self.enriched, self.bad,
                           {**self.values, "kafka.client_id": PROXIED_CLIENT_ID}).start()

    def stuck_from_the_start(self, swallow: frozenset, what: str) -> tuple[float, str]:
        """Every event sent, then a loader whose requests of the kinds in ``swallow`` go nowhere: it exits 4
        committing nothing; the seconds from its assignment and its log."""
        self.produce(self.sent)
        self.proxy.swallow = swallow
        stuck = self.stuck_loader()
        try:
            wait_until(lambda: "assigned " in stuck.output(200_000), 60, "the loader to be given its partitions")
            took, log = stuck.exits_as_stalled(60, what, since=time.monotonic())
        finally:
            stuck.close()
        assert committed_offsets(self.bootstrap, self.group, self.enriched, 2) == [-1001, -1001]
        return took, log

    def load_everything(self) -> None:
        """The proxy lets everything through; a new loader loads every event sent into S3."""
        self.proxy.swallow = frozenset()
        with LoadProcess("s3", self.bootstrap, self.enriched, self.bad, self.values) as loader:
            wait_committed(self.bootstrap, self.group, {self.enriched: [HALF, HALF], self.bad: [0]}, timeout=60,
                           process=loader)
        assert set(s3_enriched_event_ids(self.s3.client(), self.bucket)) == set(self.sent)


@pytest.fixture
def case(proxied_kafka_broker, seaweedfs, make_s3_bucket) -> StallCase:
    broker, proxy = proxied_kafka_broker
    prefix = f"t.stall.{uuid.uuid4().hex[:8]}"
    enriched, bad = f"{prefix}.enriched", f"{prefix}.bad"
    broker.create_topics([enriched], partitions=2)
    broker.create_topics([bad], partitions=1)
    group, bucket = f"load-s3-{prefix}", make_s3_bucket(seaweedfs)
    values = {"load.s3_group_id": group, "load.batch_size": "100", "load.batch_timeout": "0.5",
              "load.stall_timeout": str(STALL_TIMEOUT), "kafka.consumer": CONSUMER, "s3.backend": "s3",
              "s3.bucket": bucket, "s3.endpoint_url": seaweedfs.endpoint_url, "s3.path_style": "true"}
    return StallCase(broker.bootstrap_servers, proxy, seaweedfs, bucket, enriched, bad, group, values,
                     [str(uuid.uuid4()) for _ in range(2 * HALF)])


def test_a_loader_left_outside_its_group_exits_as_stalled_and_the_next_one_loads_every_record(case):
    stuck = case.stuck_loader()
    try:
        case.produce(case.sent[:HALF])
        wait_committed(case.bootstrap, case.group, {case.enriched: [HALF // 2, HALF // 2], case.bad: [0]},
                       timeout=60, process=stuck)
        case.proxy.swallow = frozenset({HEARTBEAT, JOIN_GROUP})
        cut_off = time.monotonic()
        wait_until(lambda: "Consumer group session timed out" in stuck.output(200_000), 30,
                   "the loader's session to time out")
        case.produce(case.sent[HALF:], start=HALF)  # for the next loader: this one is outside its group
        took, log = stuck.exits_as_stalled(60, "the loader outside its group to exit", since=cut_off)
    finally:
        stuck.close()
    committed = committed_offsets(case.bootstrap, case.group, case.enriched, 2)
    print(f"\nloader cut off from its group exited 4 after {took:.1f}s ({case.proxy.swallowed} heartbeats and "
          f"joins swallowed); committed then {committed}")
    assert committed == [HALF // 2, HALF // 2]  # what came after its session ended waited for the next loader
    assert "stalled: the consumer has been outside group " + case.group in log
    assert "this consumer is not one of them" in log
    assert "=== thread MainThread ===" in log  # where it was, for whoever reads the log
    # session timeout (6 s), then outside for the stall timeout, checked every 2 s; not minutes
    assert took < 6 + STALL_TIMEOUT + 20
    case.load_everything()


def test_a_loader_whose_commits_never_return_exits_as_stalled_and_the_next_one_loads_every_record(case):
    took, log = case.stuck_from_the_start(frozenset({OFFSET_COMMIT}), "the loader whose commits never return to exit")
    print(f"\nloader whose commits never return exited 4 {took:.1f}s after its assignment ({case.proxy.swallowed} "
          f"commits swallowed)")
    assert "stalled: records in hand" in log and "nothing committed for" in log
    assert "_commit_intent" in log  # its stacks: held in the write intent's synchronous commit
    assert "outside group" not in log  # a member all along, whose thread sent no statistics meanwhile
    assert took < STALL_TIMEOUT + 0.5 + 20
    case.load_everything()


def test_a_loader_that_never_reads_its_partitions_exits_as_stalled_and_the_next_one_loads_every_record(case):
    took, log = case.stuck_from_the_start(frozenset({FETCH}), "the loader that reads nothing to exit")
    print(f"\nloader whose fetches go nowhere exited 4 {took:.1f}s after its assignment ({case.proxy.swallowed} "
          f"fetches swallowed)")
    assert "records waiting past committed offset 0, none committed for" in log, log[-3000:]
    assert "while the loader holds the partition" in log
    assert "records in hand" not in log and "outside group" not in log  # a member holding nothing all along
    # the stall timeout and a batch's, then checked every 2 s
    assert took < STALL_TIMEOUT + 0.5 + 15
    case.load_everything()


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
