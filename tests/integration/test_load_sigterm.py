"""A loader stopped by SIGTERM writes and commits what it holds, whatever it was doing when the signal came.

A loader turns each batch into an Arrow table with pyarrow's CSV reader
(``loaders.arrow.enriched_table``) on its main thread.  pyarrow, by default,
installs handlers of its own for SIGTERM and SIGINT for the length of such a
read, wherever the process has a handler of its own for them, and cancels
the read when one arrives: the loader's graceful stop became an
``ArrowCancelled`` in the middle of its last batch, and the loader exited 1
with that batch neither written nor committed (CI caught it in
``test_rolling_restart.py``).

Here each loader has a backlog of large batches to write, and gets SIGTERM
again and again, as fast as they can be sent (a supervisor or a user repeating
it), until it exits: it must exit 0, with every record up to its committed
offsets in the store.  A second loader then loads the rest, and every event is
in the store.  Such a storm also lands in the loader's own signal handler: a
Python handler runs between two bytecodes of the main thread, so each signal
started the handler again inside itself, and the loader died of a
RecursionError, exit status 1 (``snowmelt.lifecycle.on_stop_signals``).
"""
from __future__ import annotations

import gzip
import io
import json
import signal
import time
import uuid

import pytest
from confluent_kafka import Producer

from tests.integration.test_load_crash import enriched_line
from tests.services.load import LoadProcess, committed_offsets, wait_committed
from tests.services.pipeline import CONSUMER, metric_sum
from tests.services.wait import wait_until

PARTITIONS = 2
EVENTS = 30_000
BATCH = 5_000  # a read of this many lines takes tens of milliseconds: a repeated SIGTERM lands in one
SIGTERM_EVERY = 0  # a storm: the next signal as soon as the last is sent (the sleep lets other threads run)


def sigterm_until_exit(loader: LoadProcess, timeout: float) -> tuple[int, int]:
    """SIGTERM again and again until the loader exits; returns its exit status and the signals sent."""
    deadline = time.monotonic() + timeout
    sent = 0
    while loader.proc.poll() is None:
        assert time.monotonic() < deadline, f"{loader.name} did not exit within {timeout}s\n{loader.output()}"
        loader.proc.send_signal(signal.SIGTERM)
        sent += 1
        time.sleep(SIGTERM_EVERY)  # the pace of the signals, not a wait for a result
    return loader.proc.returncode, sent


def stored_clickhouse(path) -> list[str]:
    from chdb import session

    db = session.Session(str(path))
    try:
        return [row[0] for row in json.loads(db.query("SELECT event_id FROM snowplow.events FINAL",
                                                      "JSONCompact").bytes())["data"]]
    finally:
        db.close()


def stored_s3(client, bucket: str) -> list[str]:
    import pyarrow.parquet as pq

    event_ids = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if obj["Key"].endswith(".parquet"):
                event_ids.extend(pq.read_table(io.BytesIO(body), columns=["event_id"])["event_id"].to_pylist())
            else:
                assert "/enriched/" not in obj["Key"], obj["Key"]
                gzip.decompress(body)
    return event_ids


@pytest.mark.parametrize("store", ["clickhouse", "s3"])
def test_a_loader_stopped_by_repeated_sigterm_exits_0_with_what_it_committed_stored(
        store, kafka_broker, make_kafka_topics, seaweedfs, make_s3_bucket, tmp_path):
    topics = make_kafka_topics(partitions=PARTITIONS)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "linger.ms": 20})
    event_ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    for i, event_id in enumerate(event_ids):
        producer.produce(topics.enriched, enriched_line(i, event_id, late=False), partition=i % PARTITIONS)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    group = f"load-{store}-{uuid.uuid4().hex[:6]}"
    values = {f"load.{store}_group_id": group, "load.batch_size": str(BATCH), "load.batch_timeout": "5",
              "kafka.consumer": CONSUMER}
    if store == "clickhouse":
        values.update({"clickhouse.backend": "chdb", "clickhouse.chdb_path": str(tmp_path / "chdb")})
    else:
        bucket = make_s3_bucket(seaweedfs)
        values.update({"s3.backend": "s3", "s3.bucket": bucket, "s3.endpoint_url": seaweedfs.endpoint_url,
                       "s3.path_style": "true", "s3.format": "parquet"})

    def loaded(process: LoadProcess) -> float:
        return metric_sum(process.metrics(), "snowmelt_load_records_total")

    loader = LoadProcess(store, kafka_broker.bootstrap_servers, topics.enriched, topics.bad, values).start()
    try:
        wait_until(lambda: loaded(loader) > 0, 60, "the first batch written")
        status, sent = sigterm_until_exit(loader, 60)
        assert status == 0, f"exit status {status} after {sent} SIGTERMs\n{loader.output()}"
        assert "ArrowCancelled" not in loader.output(60_000)
    finally:
        loader.close()
    committed = committed_offsets(kafka_broker.bootstrap_servers, group, topics.enriched, PARTITIONS)
    # what it committed is stored: the events of each partition below its committed offset
    expected = {event_ids[i] for i in range(EVENTS) if i // PARTITIONS < max(committed[i % PARTITIONS], 0)}
    if store == "clickhouse":
        stored = set(stored_clickhouse(tmp_path / "chdb"))
    else:
        stored = set(stored_s3(seaweedfs.client(), bucket))
    print(f"\n{store}: {sent} SIGTERMs, committed {committed}, {len(stored)} events stored at the stop")
    assert expected <= stored

    # the next loader loads the rest
    loader = LoadProcess(store, kafka_broker.bootstrap_servers, topics.enriched, topics.bad, values).start()
    try:
        wait_committed(kafka_broker.bootstrap_servers, group, {topics.enriched: [EVENTS // PARTITIONS] * PARTITIONS},
                       timeout=120, process=loader)
        assert loader.terminate() == 0, loader.output()
    finally:
        loader.close()
    stored = stored_clickhouse(tmp_path / "chdb") if store == "clickhouse" else stored_s3(seaweedfs.client(), bucket)
    assert set(stored) == set(event_ids)
