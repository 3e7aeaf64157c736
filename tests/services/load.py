"""Run ``snowmelt load clickhouse|s3`` as a real process, and read a group's committed offsets."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from tests.services.process import MetricsProcess, SnowmeltProcess


class LoadProcess(MetricsProcess):
    """``snowmelt load STORE`` with config from ``SNOWMELT_*`` variables and metrics on a free port.

    ``settings`` are dotted config keys (``{"clickhouse.backend": "chdb", ...}``).
    ``start()`` returns once the process serves ``/metrics``.
    """

    def __init__(self, store: str, bootstrap_servers: str, enriched_topic: str, bad_topic: str,
                 settings: dict | None = None):
        self.name = f"load-{store}"
        values = {
            "kafka.bootstrap_servers": bootstrap_servers,
            "topics.enriched": enriched_topic,
            "topics.bad": bad_topic,
        }
        super().__init__(["load", store], "load", values, settings)


#: errors of a read of committed offsets while the group's coordinator settles (a broker just started, or the
#: coordinator moving): ``Consumer.committed`` raises them without librdkafka's retriable flag
COORDINATOR_SETTLING = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                  KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError._WAIT_COORD,
                                  KafkaError._TIMED_OUT})


def committed_offsets(bootstrap_servers: str, group_id: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offset of each partition of ``topic`` (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


def wait_committed(bootstrap_servers: str, group_id: str, ends: dict[str, list[int]], timeout: float,
                   process: SnowmeltProcess | None = None) -> None:
    """Poll until the group has committed every partition up to ``ends[topic][partition]``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.proc.poll() is not None:
            # enough of its log for what it said last (a stalled worker's stacks run to tens of kilobytes)
            raise RuntimeError(f"{process.name} exited with {process.proc.returncode}:\n{process.output(60_000)}")
        try:
            last = {topic: committed_offsets(bootstrap_servers, group_id, topic, len(end))
                    for topic, end in ends.items()}
        except KafkaException as exc:  # a broker just started: its group coordinator is not ready yet
            error = exc.args[0]
            if not (error.retriable() or error.code() in COORDINATOR_SETTLING):
                raise
            last = f"not readable yet ({error.str()})"
            time.sleep(0.2)
            continue
        # an empty partition (end 0) has nothing to commit
        if all(all(c >= e or e == 0 for c, e in zip(last[t], ends[t])) for t in ends):
            return
        time.sleep(0.2)
    detail = ""
    if process is not None:  # its log as it was, then what it is doing (which it may write to that log)
        detail = f"\n--- {process.name}'s output ---\n{process.output()}"
        if isinstance(process, MetricsProcess):
            detail += f"\n{process.diagnosis()}"
    raise TimeoutError(f"group {group_id} committed {last}, expected {ends}{detail}")
