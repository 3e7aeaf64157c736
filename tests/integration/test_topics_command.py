"""``snowmelt topics create`` against a real broker: what it creates, what it refuses to call good."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tests.services.wait import wait_until


def topics_create(bootstrap: str, prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SNOWMELT_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
           "SNOWMELT_TOPICS__RAW": f"{prefix}.raw", "SNOWMELT_TOPICS__ENRICHED": f"{prefix}.enriched",
           "SNOWMELT_TOPICS__BAD": f"{prefix}.bad"}
    return subprocess.run([sys.executable, "-m", "snowmelt.cli", "topics", "create", "--timeout", "20", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def described(bootstrap: str, name: str) -> tuple[int, int, str]:
    """(partitions, copies of partition 0, min.insync.replicas) as the broker says."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # a topic just created may take a moment to be in every broker's metadata
    topic = wait_until(lambda: admin.list_topics(timeout=20).topics.get(name), 30, f"{name} in the metadata")
    [future] = admin.describe_configs([ConfigResource("topic", name)]).values()
    return len(topic.partitions), len(topic.partitions[0].replicas), future.result(20)["min.insync.replicas"].value


def test_creates_the_configured_topics_then_finds_them(kafka_broker):
    bootstrap, prefix = kafka_broker.bootstrap_servers, f"t.topics.{uuid.uuid4().hex[:8]}"
    done = topics_create(bootstrap, prefix, "--partitions", "3", "--raw-partitions", "5",
                         "--replication-factor", "1", "--min-insync-replicas", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [f"{prefix}.raw", f"{prefix}.enriched",
                                                                        f"{prefix}.bad"]
    assert all(": created (" in line for line in done.stdout.splitlines()), done.stdout
    assert described(bootstrap, f"{prefix}.raw") == (5, 1, "1")
    assert described(bootstrap, f"{prefix}.bad") == (3, 1, "1")
    # again: found as asked, nothing changed
    again = topics_create(bootstrap, prefix, "--partitions", "3", "--raw-partitions", "5",
                          "--replication-factor", "1", "--min-insync-replicas", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(": exists (" in line for line in again.stdout.splitlines()), again.stdout


def test_a_topic_short_of_what_was_asked_fails_the_command_and_is_left_alone(kafka_broker):
    bootstrap, prefix = kafka_broker.bootstrap_servers, f"t.topics.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(f"{prefix}.enriched", num_partitions=1, replication_factor=1)])[
        f"{prefix}.enriched"].result(20)
    done = topics_create(bootstrap, prefix, "--partitions", "4", "--replication-factor", "1",
                         "--min-insync-replicas", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{prefix}.enriched: exists, short of what was asked: 1 partitions, 4 asked (not changed)" in done.stdout
    assert described(bootstrap, f"{prefix}.enriched")[0] == 1
    assert described(bootstrap, f"{prefix}.raw")[0] == 4  # the others were still made


def test_more_copies_than_brokers_is_an_error_naming_the_topic(kafka_broker):
    bootstrap, prefix = kafka_broker.bootstrap_servers, f"t.topics.{uuid.uuid4().hex[:8]}"
    done = topics_create(bootstrap, prefix, "--replication-factor", "3", "--min-insync-replicas", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{prefix}.raw: not created: " in done.stdout and "replication factor" in done.stdout.lower(), done.stdout


def test_usage_errors_exit_2_before_any_call():
    done = topics_create("127.0.0.1:9", "t.none", "--replication-factor", "2", "--min-insync-replicas", "3")
    assert done.returncode == 2 and "min.insync.replicas at most the replication factor" in done.stderr


def test_an_unreachable_cluster_is_one_line_and_exit_1():
    done = topics_create("127.0.0.1:9", "t.none", "--timeout", "3", "--replication-factor", "1",
                         "--min-insync-replicas", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.strip() == ("snowmelt topics: cannot describe the topics at 127.0.0.1:9: "
                                   "Failed to get metadata: Local: Broker transport failure"), done.stdout
    assert "Connect to ipv4" not in done.stderr  # librdkafka's retries are not poured out
