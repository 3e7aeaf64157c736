"""``snowmelt diff`` on two real Kafka topics, run as the command a user runs."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

from confluent_kafka import Producer

from processor.enriched import to_tsv
from tests.services.process import snowmelt_env
from tests.unit.test_diff import GEO, USER, eid, event


def produce(bootstrap: str, topic: str, rows: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for row in rows:
        fields = row.split("\t")
        producer.produce(topic, row.encode(), key=fields[6].encode() if len(fields) > 6 else None)
    assert producer.flush(30) == 0


def diff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snowmelt.cli", "diff", *args, "--timeout", "30"],
                          env=snowmelt_env({}), capture_output=True, text=True, timeout=90)


def test_diff_reads_two_topics_to_their_end(kafka_broker, make_kafka_topics, tmp_path):
    bootstrap = kafka_broker.bootstrap_servers
    snowplow, snowmelt = make_kafka_topics(partitions=3).enriched, make_kafka_topics(partitions=2).enriched
    geo = {"schema": GEO, "data": {"lat": 1.5, "lon": 2}}
    ids = range(60)
    a = [to_tsv(event(n, contexts=[geo, {"schema": USER, "data": {"id": n}}])) for n in ids]
    # the same events from the other enrich: contexts in another order, v_etl its own,
    # one city different, one event more, and one line that is not an event
    b = [to_tsv(event(n, contexts=[{"schema": USER, "data": {"id": n}}, geo], v_etl="snowplow-enrich-kafka-3.9.0",
                      geo_city="Lyon" if n == 17 else "Paris")) for n in ids]
    b.append(to_tsv(event(99)))
    b.append("not\tan\tevent")
    produce(bootstrap, snowplow, a)
    produce(bootstrap, snowmelt, b)
    url_a, url_b = f"kafka://{bootstrap}/{snowplow}", f"kafka://{bootstrap}/{snowmelt}"

    done = diff(url_a, url_b, "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["a"]["lines"], doc["b"]["lines"]) == (60, 62)
    assert (doc["in_both"], doc["only_in_a"], doc["only_in_b"]) == (60, 0, 1)
    assert doc["only_in_b_examples"] == [eid(99)]
    assert (doc["a"]["malformed_lines"], doc["b"]["malformed_lines"]) == (0, 1)
    assert doc["fields"] == [{"field": "geo_city", "differing": 1,
                              "examples": [{"event_id": eid(17), "a": "Paris", "b": "Lyon"}]}]

    # a topic against the same events in a gzip file: identical, and the table says so
    (tmp_path / "a.tsv.gz").write_bytes(gzip.compress("".join(r + "\n" for r in reversed(a)).encode()))
    done = diff(str(tmp_path / "a.tsv.gz"), url_a)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("identical")

    # a topic that does not exist: one line naming it, exit 2
    done = diff(url_a, f"kafka://{bootstrap}/{snowmelt}.missing")
    assert done.returncode == 2
    assert done.stderr.strip() == f"snowmelt diff: kafka://{bootstrap}/{snowmelt}.missing: no such topic"
