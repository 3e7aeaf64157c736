"""A worker killed with -9: its partitions are being processed again by the others within 10 s.

How: the consumers' session timeout is the broker's minimum, 6 s (``enrich.session_timeout``;
the loaders' ``session.timeout.ms``), with heartbeats every 1-2 s from a thread (librdkafka)
or a task (aiokafka) that a long batch does not hold up for that long.  Static membership
would only help a replacement with the same identity, and cooperative rebalancing only the
members that keep their partitions; a member that is gone is noticed by its silence.

Two loaders (S3 layout in a local folder) and two enrich workers, each pair in one group on
a topic of 4 partitions, while records keep arriving: one of each is killed, and the test
measures, per partition, how long after the kill the group's committed offset passed what
was there at the kill.
"""
from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Producer

from tests.integration.test_enrich_kafka import raw_pixel
from tests.integration.test_load_crash import enriched_line
from tests.services.enrich import EnrichProcess
from tests.services.kafka import KafkaTopics
from tests.services.load import LoadProcess, committed_offsets
from tests.services.pipeline import metric_sum
from tests.services.topics import end_offsets
from tests.services.wait import wait_until

PARTITIONS = 4
RESUME_LIMIT = 10.0


class Feed:
    """Produces ``make(i)`` to ``topic``'s partitions, 50 records a second, until stopped."""

    def __init__(self, bootstrap: str, topic: str, make) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic, self.make, self.stop = topic, make, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            for _ in range(5):
                self.producer.produce(self.topic, self.make(i), partition=i % PARTITIONS)
                i += 1
            self.producer.poll(0)
            self.stop.wait(0.1)
        self.producer.flush(10)

    def __enter__(self) -> "Feed":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)


def resume_seconds(bootstrap: str, group: str, topic: str, killed_at: float) -> float:
    """Seconds from ``killed_at`` until every partition's committed offset passed its end at the kill."""
    ends_at_kill = end_offsets(bootstrap, [topic], PARTITIONS)[topic]
    resumed: dict[int, float] = {}

    def all_resumed():
        committed = committed_offsets(bootstrap, group, topic, PARTITIONS)
        now = time.monotonic()
        for partition, (offset, end) in enumerate(zip(committed, ends_at_kill)):
            if partition not in resumed and offset > end:
                resumed[partition] = now - killed_at
        return len(resumed) == PARTITIONS

    wait_until(all_resumed, 60, f"every partition of {topic} processed again", interval=0.1)
    return max(resumed.values())


def topics_for(kafka_broker, name: str) -> KafkaTopics:
    prefix = f"t.resume.{name}.{uuid.uuid4().hex[:6]}"
    topics = KafkaTopics(*(f"{prefix}.{role}" for role in KafkaTopics._fields))
    kafka_broker.create_topics(topics, partitions=PARTITIONS)
    return topics


def both_working(bootstrap: str, group: str, topic: str, processes, owns) -> bool:
    """Every partition committed once, and each process holding some (``owns(process)``)."""
    return all(offset > 0 for offset in committed_offsets(bootstrap, group, topic, PARTITIONS)) and \
        all(owns(process) for process in processes)


def loader_owns(loader) -> bool:
    return metric_sum(loader.metrics(), "snowmelt_load_assigned_partitions") > 0


def worker_owns(worker) -> bool:
    return any(line.startswith("snowmelt_enrich_consumer_lag_records{") for line in worker.metrics().splitlines())


def kill_one_and_time_the_resume(bootstrap: str, group: str, topic: str, processes, owns, make, what: str) -> None:
    """Feed ``topic`` with ``make(i)``, wait until both ``processes`` work, kill the first, assert the resume."""
    try:
        with Feed(bootstrap, topic, make):
            wait_until(lambda: both_working(bootstrap, group, topic, processes, owns), 90, f"both {what}s working")
            processes[0].kill()
            seconds = resume_seconds(bootstrap, group, topic, time.monotonic())
        print(f"\n{what} killed (-9): its partitions resumed after {seconds:.1f} s")
        assert seconds < RESUME_LIMIT
    finally:
        for process in processes:
            process.close()


def test_a_killed_loader_s_partitions_resume_within_10_s(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap_servers
    topics = topics_for(kafka_broker, "load")
    group = f"resume-load-{uuid.uuid4().hex[:6]}"
    settings = {"s3.backend": "local", "s3.local_dir": str(tmp_path / "s3"), "load.s3_group_id": group,
                "load.batch_size": "50", "load.batch_timeout": "0.2"}
    loaders = [LoadProcess("s3", bootstrap, topics.enriched, topics.bad, settings).start() for _ in range(2)]
    kill_one_and_time_the_resume(bootstrap, group, topics.enriched, loaders, loader_owns,
                                 lambda i: enriched_line(i, str(uuid.uuid4()), late=False), "loader")


def test_a_killed_enrich_worker_s_partitions_resume_within_10_s(kafka_broker):
    bootstrap = kafka_broker.bootstrap_servers
    topics = topics_for(kafka_broker, "enrich")
    group = f"resume-enrich-{uuid.uuid4().hex[:6]}"
    settings = {"enrich.batch_size": "50", "enrich.commit_interval": "0.5"}
    workers = [EnrichProcess(bootstrap, topics, settings, group_id=group).start(90) for _ in range(2)]
    kill_one_and_time_the_resume(bootstrap, group, topics.raw, workers, worker_owns,
                                 lambda i: raw_pixel(str(uuid.uuid4())), "enrich worker")
