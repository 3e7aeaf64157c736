"""The enrich worker on a real broker: collector -> raw -> ``snowmelt enrich`` -> enriched / bad."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ext import SCHEMA, CollectorPayload, encode_collector_payload
from tests.services.collector import CollectorProcess
from tests.services.enrich import EnrichProcess
from tests.services.kafka import KafkaTopics
from tests.services.kafka_fault_proxy import FETCH, HEARTBEAT, JOIN_GROUP, OFFSET_COMMIT, PROXIED_CLIENT_ID
from tests.services.load import wait_committed
from tests.services.payloads import PAYLOAD_DATA, TP2
from tests.services.topics import consume
from tests.services.wait import metric, wait_until


def event_ids(records) -> list[str]:
    return [m.value().decode().split("\t")[6] for m in records]


def bad_schemas(records) -> list[str]:
    return [json.loads(m.value())["schema"] for m in records]


def raw_pixel(eid: str, ts_ms: int | None = None) -> bytes:
    payload = CollectorPayload(
        schema=SCHEMA, ip_address="10.0.0.1", timestamp=ts_ms or int(time.time() * 1000), encoding="UTF-8",
        collector="test", user_agent="test-agent", path="/i",
        querystring=f"e=pv&eid={eid}&p=web&tv=test-1&url=http%3A%2F%2Facme.com%2F",
        hostname="localhost", network_user_id=str(uuid.uuid4()),
    )
    return encode_collector_payload(payload)


def test_collector_to_enriched_accounts_for_every_event(kafka_broker, kafka_topics):
    bootstrap = kafka_broker.bootstrap_servers
    json_topic = kafka_topics.enriched + ".json"
    kafka_broker.create_topics([json_topic])
    with CollectorProcess(bootstrap, kafka_topics) as collector, \
            EnrichProcess(bootstrap, kafka_topics, {"topics.enriched_json": json_topic}) as worker:
        async def send():
            sent = []
            async with aiohttp.ClientSession() as session:
                for _ in range(30):
                    eid = str(uuid.uuid4())
                    async with session.get(f"{collector.url}/i?e=pv&eid={eid}&p=web&tv=js-3"
                                           "&url=http%3A%2F%2Facme.com%2Fa") as resp:
                        assert resp.status == 200
                    sent.append(eid)
                batch = [{"e": "se", "eid": str(uuid.uuid4()), "p": "srv", "tv": "py-1",
                          "se_ca": "c", "se_ac": "a"} for _ in range(20)]
                body = json.dumps({"schema": PAYLOAD_DATA, "data": batch})
                async with session.post(collector.url + TP2, data=body,
                                        headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 200
                sent.extend(e["eid"] for e in batch)
                # deliberately bad: an unknown vendor path and a tp2 POST that is not JSON
                async with session.get(f"{collector.url}/com.nobody/v1?e=pv") as resp:
                    assert resp.status == 200
                async with session.post(collector.url + TP2, data=b"{not json",
                                        headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 200
            return sent

        sent = asyncio.run(send())
        good = consume(bootstrap, kafka_topics.enriched, min_count=len(sent), timeout=60)
        bad = consume(bootstrap, kafka_topics.bad, min_count=2, timeout=30)
        as_json = consume(bootstrap, json_topic, min_count=len(sent), timeout=60)

        def caught_up():
            text = worker.metrics()
            return text if metric(text, "snowmelt_enrich_events_good_total") >= len(sent) else None

        text = wait_until(caught_up, 30, "metrics to catch up")
        assert worker.terminate() == 0, worker.output()

    assert sorted(event_ids(good)) == sorted(sent)
    docs = [json.loads(m.value()) for m in as_json]
    assert sorted(d["event_id"] for d in docs) == sorted(sent)
    assert all(m.key().decode() == d["event_id"] for m, d in zip(as_json, docs))
    assert {d["event"] for d in docs} == {"page_view", "struct"}
    assert all(m.key().decode() == eid for m, eid in zip(good, event_ids(good)))
    assert all(len(m.value().decode().split("\t")) == 131 for m in good)
    schemas = bad_schemas(bad)
    assert len(bad) == 2, schemas
    assert all(s.startswith("iglu:com.snowplowanalytics.snowplow.badrows/") for s in schemas)
    assert any("/adapter_failures/" in s for s in schemas), schemas
    assert metric(text, "snowmelt_enrich_records_total") == 30 + 1 + 2  # GETs, the batch POST, 2 bad
    assert metric(text, "snowmelt_enrich_events_bad_total") == 2
    assert 'snowmelt_enrich_consumer_lag_records{partition="0"' in text


def test_poison_record_becomes_a_bad_row_and_the_partition_goes_on(kafka_broker, kafka_topics):
    bootstrap = kafka_broker.bootstrap_servers
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    before, after = [str(uuid.uuid4()) for _ in range(5)], [str(uuid.uuid4()) for _ in range(5)]
    for eid in before:
        producer.produce(kafka_topics.raw, raw_pixel(eid))
    producer.produce(kafka_topics.raw, b"\x00\xffthis is not a CollectorPayload")
    for eid in after:
        producer.produce(kafka_topics.raw, raw_pixel(eid))
    assert producer.flush(30) == 0
    group = f"enrich-poison-{uuid.uuid4().hex[:8]}"
    with EnrichProcess(bootstrap, kafka_topics, {"enrich.commit_interval": "3600"}, group_id=group) as worker:
        good = consume(bootstrap, kafka_topics.enriched, min_count=10, timeout=60)
        [bad] = consume(bootstrap, kafka_topics.bad, min_count=1, timeout=30)
        assert worker.terminate() == 0, worker.output()
    # SIGTERM committed the finished batch itself (periodic commits are an hour apart)
    assert committed(bootstrap, group, kafka_topics.raw, 1) == [11]
    assert sorted(event_ids(good)) == sorted(before + after)
    row = json.loads(bad.value())
    assert row["schema"].endswith("/collector_payload_format_violation/jsonschema/1-0-0")


def committed(bootstrap: str, group: str, topic: str, partitions: int, stable: bool = True) -> list[int]:
    """The group's committed offsets; ``stable=False`` does not wait for open transactions to end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "isolation.level": "read_committed" if stable else "read_uncommitted"})
    try:
        return [tp.offset for tp in consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10)]
    finally:
        consumer.close()


def test_kill_9_mid_stream_loses_nothing(kafka_broker, make_kafka_topics):
    bootstrap = kafka_broker.bootstrap_servers
    topics = make_kafka_topics(partitions=3)
    group = f"enrich-kill-{uuid.uuid4().hex[:8]}"
    settings = {"enrich.batch_size": "100", "enrich.commit_interval": "0.2",
                "enrich.session_timeout": "6"}
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    sent = [str(uuid.uuid4()) for _ in range(12000)]  # enough that the kill comes mid-stream
    for eid in sent:
        producer.produce(topics.raw, raw_pixel(eid), key=eid.encode())
    assert producer.flush(60) == 0

    first = EnrichProcess(bootstrap, topics, settings, group_id=group).start()
    try:
        wait_until(lambda: metric(first.metrics(), "snowmelt_enrich_events_good_total") >= 1500
                   and sum(max(o, 0) for o in committed(bootstrap, group, topics.raw, 3)) > 0, 90,
                   "the first worker to be mid-stream with offsets committed")
        first.kill()
    finally:
        first.close()
    mid = committed(bootstrap, group, topics.raw, 3)
    assert 0 < sum(max(o, 0) for o in mid) < len(sent), mid
    second = EnrichProcess(bootstrap, topics, settings, group_id=group).start()
    try:
        # The first worker may have written every output record before its offsets were committed: the
        # second then has its output already on the topic and must still read from the committed
        # offsets, write those records again and commit to the end. A committed offset means its
        # output was acknowledged, so once the group is at the end every event is on the topic.
        wait_until(lambda: sum(committed(bootstrap, group, topics.raw, 3)) == len(sent), 120,
                   "the second worker to commit every raw record")
        good = consume(bootstrap, topics.enriched, min_count=len(sent), timeout=60)
        assert second.terminate() == 0, second.output()
    finally:
        second.close()
    found = event_ids(good)
    missing = set(sent) - set(found)
    print(f"\nkill -9: committed at the kill {mid}; enriched records {len(found)} for {len(sent)} events "
          f"({len(found) - len(set(found))} duplicates)")
    assert not missing, f"{len(missing)} events lost"
    assert set(found) == set(sent)


def test_exactly_once_kill_9_mid_stream_writes_each_event_once(kafka_broker, make_kafka_topics):
    """processing_guarantee exactly_once: killed -9 mid-stream twice, restarted under the same transactional id;
    a read_committed reader sees every event exactly once and the raw offsets end at the end."""
    bootstrap = kafka_broker.bootstrap_servers
    topics = make_kafka_topics(partitions=3)
    group = f"enrich-eos-{uuid.uuid4().hex[:8]}"
    settings = {"enrich.batch_size": "100", "enrich.session_timeout": "6",
                "enrich.processing_guarantee": "exactly_once",
                "enrich.transactional_id": f"{group}-0"}
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    sent = [str(uuid.uuid4()) for _ in range(9000)]
    for eid in sent:
        producer.produce(topics.raw, raw_pixel(eid), key=eid.encode())
    assert producer.flush(60) == 0

    marks = []
    for _ in range(2):
        worker = EnrichProcess(bootstrap, topics, settings, group_id=group).start()
        try:
            wait_until(lambda: metric(worker.metrics(), "snowmelt_enrich_events_good_total") >= 2000, 90,
                       "the worker to be mid-stream")
            worker.kill()
        finally:
            worker.close()
        marks.append(sum(max(o, 0) for o in committed(bootstrap, group, topics.raw, 3, stable=False)))
    assert marks[-1] < len(sent), marks
    last = EnrichProcess(bootstrap, topics, settings, group_id=group).start()
    try:
        wait_until(lambda: sum(committed(bootstrap, group, topics.raw, 3)) == len(sent), 120,
                   "every raw offset committed")
        assert metric(last.metrics(), "snowmelt_enrich_transactions_total") > 0
        good = consume(bootstrap, topics.enriched, min_count=len(sent), timeout=60, idle=2.0)
        assert last.terminate() == 0, last.output()
    finally:
        last.close()
    found = event_ids(good)
    print(f"\nexactly once, two kill -9: raw committed at the kills {marks}; {len(found)} enriched records "
          f"read committed for {len(sent)} events ({len(found) - len(set(found))} duplicates)")
    assert set(found) == set(sent)
    assert len(found) == len(sent), f"{len(found) - len(set(found))} duplicates"


def test_a_full_stream_buffer_costs_no_idle_second(kafka_broker, kafka_topics):
    # Batches of 20 records, one in flight: Faust's stream buffer holds two batches, so it is nearly full
    # every few batches, and Faust stops fetching the partition until the agent has drained it. Faust's
    # consumer loop then slept a whole second while the agent finished those two batches in milliseconds.
    # 150 batches took 40 s that way (4 s now); the loop now waits for the buffer to drain instead.
    bootstrap = kafka_broker.bootstrap_servers
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    sent = [str(uuid.uuid4()) for _ in range(3000)]
    for eid in sent:
        producer.produce(kafka_topics.raw, raw_pixel(eid))
    assert producer.flush(30) == 0
    with EnrichProcess(bootstrap, kafka_topics, {"enrich.batch_size": "20",
                                                 "enrich.max_batches_in_flight": "1"}) as worker:
        started = time.monotonic()
        wait_until(lambda: metric(worker.metrics(), "snowmelt_enrich_events_good_total") >= len(sent), 120,
                   "every event enriched")
        took = time.monotonic() - started
        assert worker.terminate() == 0, worker.output()
    assert took < 20, f"{len(sent)} events in batches of 20 took {took:.1f} s"
    assert sorted(event_ids(consume(bootstrap, kafka_topics.enriched, min_count=len(sent)))) == sorted(sent)


def _trickle_batches(bootstrap: str, topics, settings: dict, records: int = 30, gap: float = 0.03) -> float:
    """How many batches a running worker with ``settings`` cut from ``records`` raw records sent one at a
    time, ``gap`` seconds apart (a steady trickle, as from a quiet site)."""
    with EnrichProcess(bootstrap, topics, settings) as worker:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        sent = [str(uuid.uuid4()) for _ in range(records + 1)]
        producer.produce(topics.raw, raw_pixel(sent[0]))  # the worker is in its group and reading after this
        producer.flush(10)
        wait_until(lambda: metric(worker.metrics(), "snowmelt_enrich_events_good_total") >= 1, 60,
                   "the first event enriched")
        before = metric(worker.metrics(), "snowmelt_enrich_batch_records_count")
        for eid in sent[1:]:
            producer.produce(topics.raw, raw_pixel(eid))
            producer.flush(10)
            time.sleep(gap)  # the pace of the traffic, not a wait for the worker
        wait_until(lambda: metric(worker.metrics(), "snowmelt_enrich_events_good_total") >= len(sent), 60,
                   "every event enriched")
        batches = metric(worker.metrics(), "snowmelt_enrich_batch_records_count") - before
        assert worker.terminate() == 0, worker.output()
    assert sorted(event_ids(consume(bootstrap, topics.enriched, min_count=len(sent)))) == sorted(sent)
    return batches


def test_a_fetch_waits_for_its_bytes_or_its_time_so_a_trickle_comes_in_few_batches(kafka_broker,
                                                                                    make_kafka_topics):
    # Records arriving 30 ms apart: a fetch that returns whatever is there (fetch_min_bytes 1, as Faust's
    # consumer asks) makes a batch of each, a fetch that waits up to 0.5 s for 1 MiB makes a batch of what
    # came in that time. Every event comes out either way.
    bootstrap = kafka_broker.bootstrap_servers
    eager = _trickle_batches(bootstrap, make_kafka_topics(), {"enrich.fetch_min_bytes": "1",
                                                              "enrich.fetch_max_wait": "0.5"})
    waiting = _trickle_batches(bootstrap, make_kafka_topics(), {"enrich.fetch_min_bytes": "1048576",
                                                                "enrich.fetch_max_wait": "0.5"})
    assert eager >= 15, f"{eager:.0f} batches from 30 records sent 30 ms apart without a fetch wait"
    assert waiting <= 8, f"{waiting:.0f} batches from 30 records over about 1 s with fetches waiting 0.5 s"


def test_a_setting_out_of_range_stops_start_up_with_a_message(kafka_broker, kafka_topics):
    for key, value, message in (("enrich.fetch_max_wait", "0", "enrich.fetch_max_wait must be between"),
                                ("enrich.fetch_min_bytes", "0", "enrich.fetch_min_bytes must be at least 1"),
                                ("enrich.stall_timeout", "-1", "enrich.stall_timeout must be 0 (off) or more")):
        worker = EnrichProcess(kafka_broker.bootstrap_servers, kafka_topics, {key: value})
        try:
            worker.spawn()
            assert worker.proc.wait(60) == 2, worker.output()
            assert message in worker.output()
        finally:
            worker.close()


def test_a_wait_for_commits_that_times_out_says_what_the_worker_was_doing(kafka_broker, kafka_topics):
    """A worker that stops committing (a hang seen once in CI after a broker restart) must leave its state in
    the failure: its counters, and the stacks it writes on SIGUSR1, with the tasks of both its loops: the agent's
    on the main one, aiokafka's fetches and group membership on the Kafka consumer thread's."""
    with EnrichProcess(kafka_broker.bootstrap_servers, kafka_topics) as worker:
        wait_until(lambda: metric(worker.metrics(), "snowmelt_enrich_batches_in_flight_limit") > 0, 30,
                   "the worker's gauges")
        with pytest.raises(TimeoutError) as failure:
            wait_committed(kafka_broker.bootstrap_servers, f"enrich-{kafka_topics.raw}",
                           {kafka_topics.raw: [1, 1]}, timeout=0.5, process=worker)
    message = str(failure.value)
    assert "snowmelt_enrich_records_total" in message
    assert "enrich's own stack dump" in message
    assert "tasks of the main loop" in message and "enrich_raw" in message  # the agent's task, with its stack
    consumer_tasks = message.split("tasks of the Kafka consumer thread loop", 1)[-1]
    assert "_fetch_requests_routine" in consumer_tasks and "_coordination_routine" in consumer_tasks


def stall_topics(broker, name: str) -> tuple[KafkaTopics, str]:
    """Fresh raw (2 partitions), bad and enriched topics on ``broker``, and the group of their worker."""
    prefix = f"{name}.{uuid.uuid4().hex[:8]}"
    topics = KafkaTopics(f"{prefix}.raw", f"{prefix}.bad", f"{prefix}.enriched")
    broker.create_topics([topics.raw], partitions=2)
    broker.create_topics([topics.bad, topics.enriched])
    return topics, f"enrich-{prefix}"


def produce_pixels(bootstrap: str, topic: str, event_ids: list[str], start: int = 0) -> None:
    """A pixel request per event id, the ``start + i``-th to partition ``(start + i) % 2``, acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i, eid in enumerate(event_ids, start):
        producer.produce(topic, raw_pixel(eid), partition=i % 2)
    assert producer.flush(30) == 0


def stuck_worker(proxied_kafka_broker, prefix: str, swallow: frozenset, settings: dict) -> tuple[float, str, int]:
    """200 raw pixels on fresh topics, then a worker whose requests of the kinds in ``swallow`` go nowhere
    (the proxy swallows them) from its start: it exits 4 committing nothing (the seconds it took, its log and
    how many requests were swallowed); then, with every request answered, the worker after it commits every
    record and writes every event: nothing is lost."""
    broker, proxy = proxied_kafka_broker
    topics, group = stall_topics(broker, prefix)
    bootstrap = broker.bootstrap_servers
    sent = [str(uuid.uuid4()) for _ in range(200)]
    produce_pixels(bootstrap, topics.raw, sent)
    proxy.swallow = swallow
    stuck = EnrichProcess(bootstrap, topics, {**settings, "kafka.client_id": PROXIED_CLIENT_ID},
                          group_id=group).start()
    try:
        took, log = stuck.exits_as_stalled(90, "the stalled worker to exit")
    finally:
        stuck.close()
    swallowed = proxy.swallowed
    assert swallowed > 0
    assert committed(bootstrap, group, topics.raw, 2) == [-1001, -1001]  # nothing went through

    proxy.swallow = frozenset()
    with EnrichProcess(bootstrap, topics, settings, group_id=group):
        wait_committed(bootstrap, group, {topics.raw: [100, 100]}, timeout=60)
    assert set(event_ids(consume(bootstrap, topics.enriched, min_count=len(sent), timeout=30))) == set(sent)
    return took, log, swallowed


def test_a_worker_whose_commits_never_return_exits_as_stalled_and_a_new_one_commits_everything(
        proxied_kafka_broker):
    """The group coordinator stops answering the worker's commits (the proxy swallows them): the worker enriches
    what is there, then has records past its committed offsets, nothing in hand and no commit going through.
    Within its stall_timeout it says so, with its stacks, and exits 4 without committing; the worker started
    after it (commits answered again) reads the records again and commits them all: nothing is lost."""
    took, log, swallowed = stuck_worker(proxied_kafka_broker, "t.stall", frozenset({OFFSET_COMMIT}),
                                        {"enrich.commit_interval": "0.5", "enrich.stall_timeout": "4"})
    print(f"\nstalled worker exited 4 after {took:.1f}s; {swallowed} commits swallowed")
    assert "stalled:" in log and "records waiting past committed offset" in log
    assert "tasks of the Kafka consumer thread loop" in log  # where it was, for whoever reads the log
    assert took < 4 + 30


def test_a_worker_that_never_reads_its_partitions_exits_as_stalled_and_a_new_one_commits_everything(
        proxied_kafka_broker):
    """The worker's fetches go nowhere (the proxy swallows them): it is a member holding its partitions, has
    nothing in hand, and its consumer never learns what the partitions hold. The broker's committed and end
    offsets, read with the membership check, show records waiting past a commit that never moves: within its
    stall_timeout the worker says so and exits 4; the worker after it commits everything."""
    took, log, swallowed = stuck_worker(proxied_kafka_broker, "t.fetch", frozenset({FETCH}),
                                        {"enrich.commit_interval": "0.5", "enrich.stall_timeout": "4"})
    print(f"\nworker whose fetches go nowhere exited 4 after {took:.1f}s ({swallowed} fetches swallowed)")
    assert "records waiting past committed offset 0, none committed for" in log, log[-3000:]
    assert "outside group" not in log
    assert took < 4 + 30


def test_a_worker_left_outside_its_group_exits_as_stalled(proxied_kafka_broker):
    """The worker's heartbeats and joins go nowhere (the proxy swallows them): the broker drops it from the group
    and it cannot get back in, so it holds no partition the stall watch could see waiting. Its membership watch
    sees the group at rest without it, says so with its stacks and exits 4; the worker started after it enriches
    and commits everything."""
    broker, proxy = proxied_kafka_broker
    topics, group = stall_topics(broker, "t.member")
    bootstrap = broker.bootstrap_servers
    sent = [str(uuid.uuid4()) for _ in range(200)]
    settings = {"enrich.commit_interval": "0.5", "enrich.session_timeout": "6", "enrich.stall_timeout": "8"}
    produce_pixels(bootstrap, topics.raw, sent[:100])
    stuck = EnrichProcess(bootstrap, topics, {**settings, "kafka.client_id": PROXIED_CLIENT_ID},
                          group_id=group).start()
    try:
        wait_committed(bootstrap, group, {topics.raw: [50, 50]}, timeout=60, process=stuck)
        proxy.swallow = frozenset({HEARTBEAT, JOIN_GROUP})
        took, log = stuck.exits_as_stalled(60, "the worker outside its group to exit")
    finally:
        stuck.close()
    print(f"\nworker cut off from its group exited 4 after {took:.1f}s ({proxy.swallowed} heartbeats and joins "
          f"swallowed)")
    assert "stalled: the consumer has been outside group " + group in log
    assert "this consumer is not one of them (its member id: " in log
    assert "tasks of the Kafka consumer thread loop" in log  # where it was, for whoever reads the log
    assert took < 6 + 8 + 30

    proxy.swallow = frozenset()
    produce_pixels(bootstrap, topics.raw, sent[100:], start=100)
    with EnrichProcess(bootstrap, topics, settings, group_id=group):
        wait_committed(bootstrap, group, {topics.raw: [100, 100]}, timeout=60)
    assert set(event_ids(consume(bootstrap, topics.enriched, min_count=len(sent), timeout=30))) == set(sent)
