"""``snowmelt topics create``: the pipeline's Kafka topics, made durable, or checked if they exist.

The roles never create topics (a broker's ``auto.create.topics.enable`` would
make them with its defaults: often one copy, which a broker's death loses).
This command makes the raw, enriched and bad topics of the config (and the
JSON one when ``topics.enriched_json`` is set) with the partitions, replication
factor and ``min.insync.replicas`` given; every producer of snowmelt writes
with ``acks=all``, so a write is acknowledged once that many copies hold it.

A topic that exists is not changed: it is described, and the command fails
(exit status 1) when it has fewer partitions, copies or in-sync replicas than
asked -- the durability the operator asked for is not there, and altering a
live topic is a decision of its own.  Exit status: 0 every topic as asked
(created or found), 1 a topic short of it or an error from the cluster, 2 a
usage error.  Safe to run again (the Helm chart runs it before each install
and upgrade when ``topics.create`` is on).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

from snowmelt.config import Config, consumer_settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int


@dataclass(frozen=True)
class TopicState:
    """What the cluster says of a topic (``None``: absent)."""
    partitions: int
    replication_factor: int
    min_insync_replicas: int | None


def specs(config: Config, raw_partitions: int, enriched_partitions: int, replication_factor: int,
          min_insync_replicas: int) -> list[TopicSpec]:
    """The config's topics: raw with ``raw_partitions``, the others with ``enriched_partitions``."""
    topics = config.topics
    named = [(topics.raw, raw_partitions), (topics.enriched, enriched_partitions), (topics.bad, enriched_partitions)]
    if topics.enriched_json:
        named.append((topics.enriched_json, enriched_partitions))
    return [TopicSpec(name, partitions, replication_factor, min_insync_replicas) for name, partitions in named]


def shortfalls(spec: TopicSpec, state: TopicState) -> list[str]:
    """How an existing topic falls short of ``spec`` (empty: it does not)."""
    problems = []
    if state.partitions < spec.partitions:
        problems.append(f"{state.partitions} partitions, {spec.partitions} asked")
    if state.replication_factor < spec.replication_factor:
        problems.append(f"replication factor {state.replication_factor}, {spec.replication_factor} asked")
    if state.min_insync_replicas is not None and state.min_insync_replicas < spec.min_insync_replicas:
        problems.append(f"min.insync.replicas {state.min_insync_replicas}, {spec.min_insync_replicas} asked")
    return problems


class Cluster:
    """The few admin calls the command needs, on confluent-kafka's AdminClient."""

    def __init__(self, settings: dict[str, Any], timeout: float):
        from confluent_kafka.admin import AdminClient

        from snowmelt.producer import kafka_log

        # librdkafka's own lines (a broker that refuses connections) through logging, once a minute each
        self.admin = AdminClient({**settings, "logger": kafka_log})
        self.timeout = timeout

    def describe(self, names: list[str]) -> dict[str, TopicState | None]:
        from confluent_kafka.admin import ConfigResource

        metadata = self.admin.list_topics(timeout=self.timeout).topics
        states: dict[str, TopicState | None] = {}
        for name in names:
            topic = metadata.get(name)
            if topic is None or topic.error is not None:
                states[name] = None
                continue
            copies = min((len(p.replicas) for p in topic.partitions.values()), default=0)
            states[name] = TopicState(len(topic.partitions), copies, None)
        present = [name for name, state in states.items() if state is not None]
        if present:
            futures = self.admin.describe_configs([ConfigResource("topic", name) for name in present],
                                                  request_timeout=self.timeout)
            for resource, future in futures.items():
                entry = future.result(timeout=self.timeout).get("min.insync.replicas")
                state = states[resource.name]
                if entry is not None and entry.value is not None and state is not None:
                    states[resource.name] = TopicState(state.partitions, state.replication_factor,
                                                       int(entry.value))
        return states

    def create(self, spec: TopicSpec) -> None:
        from confluent_kafka.admin import NewTopic

        topic = NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=spec.replication_factor,
                         config={"min.insync.replicas": str(spec.min_insync_replicas)})
        self.admin.create_topics([topic], request_timeout=self.timeout)[spec.name].result(timeout=self.timeout)


def create_topics(config: Config, wanted: list[TopicSpec], *, timeout: float = 30.0,
                  out: TextIO = sys.stdout, cluster: Cluster | None = None) -> int:
    """Create what is missing, check what exists; one line a topic; the exit status."""
    from confluent_kafka import KafkaException

    status = 0
    try:
        cluster = cluster or Cluster(consumer_settings(config.kafka), timeout)
        states = cluster.describe([spec.name for spec in wanted])
    except KafkaException as exc:
        print(f"snowmelt topics: cannot describe the topics at {config.kafka.bootstrap_servers}: "
              f"{_error_text(exc)}", file=out)
        return 1
    for spec in wanted:
        state = states.get(spec.name)
        if state is None:
            try:
                cluster.create(spec)
            except KafkaException as exc:
                print(f"{spec.name}: not created: {_error_text(exc)}", file=out)
                status = 1
                continue
            print(f"{spec.name}: created ({spec.partitions} partitions, replication factor "
                  f"{spec.replication_factor}, min.insync.replicas {spec.min_insync_replicas})", file=out)
            continue
        problems = shortfalls(spec, state)
        shown = (f"{state.partitions} partitions, replication factor {state.replication_factor}, "
                 f"min.insync.replicas {'broker default' if state.min_insync_replicas is None else state.min_insync_replicas}")
        if problems:
            print(f"{spec.name}: exists, short of what was asked: {'; '.join(problems)} (not changed)", file=out)
            status = 1
        else:
            print(f"{spec.name}: exists ({shown})", file=out)
    return status


def _error_text(exc: Exception) -> str:
    """The broker's or librdkafka's message of a KafkaException (its KafkaError's ``str()``)."""
    error = exc.args[0] if exc.args else None
    return error.str() if hasattr(error, "str") else str(exc)
