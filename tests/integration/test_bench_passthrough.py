"""bench.passthrough, the enrich bench's consume-produce floor, on a real broker: it moves every record even when
its producer's queue fills (150,000 pixels overflowed librdkafka's 100,000 and the loop died of BufferError)."""
from confluent_kafka import Producer

from bench.enrich_kafka_bench import drain
from bench.passthrough import run
from bench.topics import produce_all


def test_every_record_is_moved_when_the_producers_queue_fills(kafka_broker, kafka_topics):
    bootstrap = kafka_broker.bootstrap_servers
    values = [b"record %d" % i for i in range(300)]
    keys = iter(b"key %d" % i for i in range(300))
    produce_all(Producer({"bootstrap.servers": bootstrap}), kafka_topics.raw, values, key=lambda: next(keys))

    # a queue of 20 records where the bench's runs had librdkafka's 100,000
    moved, seconds = run(bootstrap, kafka_topics.raw, kafka_topics.enriched, len(values),
                         producer_settings={"queue.buffering.max.messages": 20})

    assert moved == len(values) and seconds > 0
    count, keys_seen, _, _ = drain(bootstrap, kafka_topics.enriched, len(values), timeout=60)
    assert count == len(values)
    assert keys_seen == {b"key %d" % i for i in range(300)}
