"""bench.produce_cost on a real broker: every way it times delivers every record it is given (a way that lost
records would time less than the work it names)."""
import time

from bench.enrich_kafka_bench import drain
from bench.produce_cost import SETTINGS, WAYS


def test_every_way_delivers_every_record_and_reads_both_sides_cpu(kafka_broker, kafka_topics):
    bootstrap = kafka_broker.bootstrap_servers
    records = [(b"key %d" % i, b"value %d " % i * 40) for i in range(300)]
    settings = {**SETTINGS, "bootstrap.servers": bootstrap}

    for name, run in WAYS.items():
        before = time.process_time()
        thread, others = run(settings, kafka_topics.enriched, records)
        assert 0 < thread and 0 <= others and thread + others <= time.process_time() - before + 0.01, name

    count, keys, _, _ = drain(bootstrap, kafka_topics.enriched, len(WAYS) * len(records), timeout=60)
    assert count == len(WAYS) * len(records)
    assert keys == {key for key, _ in records}
