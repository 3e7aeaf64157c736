"""bench.load_kafka_bench's reading rate: a plain consumer of the topic, on the test broker."""
import time
import uuid

from confluent_kafka import Producer

from bench.load_kafka_bench import kafka_read_rate
from bench.topics import produce_all
from loaders.runner import CONSUME_MAX


def test_the_read_rate_counts_every_record_and_does_not_wait_for_records_that_are_not_there(kafka_broker):
    # two and a half consume() calls' worth: the last call asks for what is left, not for CONSUME_MAX, and
    # so does not wait out its timeout (30 s here) for records that never come
    topic = f"bench.read.{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topics([topic])
    records = CONSUME_MAX * 5 // 2
    produce_all(Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "linger.ms": 20}), topic,
                (b"%06d enriched line" % i for i in range(records)))
    started = time.monotonic()
    rate = kafka_read_rate(kafka_broker.bootstrap_servers, topic, records, poll_timeout=30)
    assert time.monotonic() - started < 25
    assert rate > 5_000
