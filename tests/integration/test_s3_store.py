"""The S3 store against a real S3 server (SeaweedFS, or the store named by S3_ENDPOINT_URL).

Upload and read back, multipart above the threshold, a retried batch that
stays one object, the errors of ``open()``, and the store stopped, frozen and
restarted under a writing store: ``StoreUnavailable`` while it is away, the
same write succeeding once it is back, nothing lost or doubled.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders.base import BAD, ENRICHED, Batch, StoreUnavailable
from loaders.s3 import MIN_PART_SIZE, S3Store, S3StoreError
from snowmelt.config import S3Config
from tests.services.wait import wait_until
from tests.unit.loaders.test_s3_local import TS, bad_row, enriched_line


def config(server, bucket, **overrides) -> S3Config:
    return S3Config(backend="s3", bucket=bucket, endpoint_url=server.endpoint_url, region=server.region,
                    path_style=True, **overrides)


def batch(values, kind=ENRICHED, topic="enriched", partition=0, first=0) -> Batch:
    values = tuple(values)
    return Batch(kind=kind, topic=topic, partition=partition, first_offset=first,
                 last_offset=first + len(values) - 1, values=values, first_timestamp_ms=TS)


def objects(server, bucket) -> dict[str, dict]:
    """Key -> head of every object in ``bucket``."""
    client = server.client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj
    return out


def body(server, bucket, key) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_upload_and_read_back(seaweedfs, s3_bucket):
    store = S3Store(config(seaweedfs, s3_bucket))
    store.open()
    lines = [enriched_line(i) for i in range(1000)]
    rows = [bad_row(i) for i in range(10)]
    store.write(batch(lines, first=1200))
    store.write(batch(rows, kind=BAD, topic="bad", partition=1, first=40))
    store.close()
    keys = sorted(objects(seaweedfs, s3_bucket))
    assert keys == ["snowplow/bad/date=2026-11-28/hour=09/bad-1-40-49.ndjson.gz",
                    "snowplow/enriched/date=2026-11-28/hour=09/enriched-0-1200-2199.tsv.gz"]
    assert gzip.decompress(body(seaweedfs, s3_bucket, keys[1])).split(b"\n")[:-1] == lines
    docs = [json.loads(line) for line in gzip.decompress(body(seaweedfs, s3_bucket, keys[0])).splitlines()]
    assert docs == [json.loads(r) for r in rows]


def test_parquet_upload(seaweedfs, s3_bucket):
    store = S3Store(config(seaweedfs, s3_bucket, format="parquet"))
    store.open()
    store.write(batch([enriched_line(i) for i in range(100)]))
    (key,) = objects(seaweedfs, s3_bucket)
    assert key.endswith("/enriched-0-0-99.parquet")
    table = pq.read_table(pa.BufferReader(body(seaweedfs, s3_bucket, key)))
    assert table.num_rows == 100 and table.column("event_id")[99].as_py() == str(uuid.UUID(int=100, version=4))


def test_multipart_above_the_threshold(seaweedfs, s3_bucket):
    store = S3Store(config(seaweedfs, s3_bucket, multipart_threshold=64 * 1024))
    store.open()
    # incompressible bad rows: about 2.4 parts of S3's 5 MiB minimum once gzipped
    rows = [json.dumps({"payload": base64.b64encode(os.urandom(3000)).decode()}).encode() for i in range(4200)]
    big = batch(rows, kind=BAD, topic="bad")
    small = batch(rows[:10], kind=BAD, topic="bad", first=5000)
    store.write(big)
    store.write(small)
    heads = objects(seaweedfs, s3_bucket)
    big_key, small_key = store.key(big, ".ndjson.gz"), store.key(small, ".ndjson.gz")
    assert heads[big_key]["Size"] > 2 * MIN_PART_SIZE
    assert heads[big_key]["ETag"].strip('"').endswith("-3")  # three parts
    assert "-" not in heads[small_key]["ETag"].strip('"')  # 10 rows, under 64 KiB: one PUT
    assert gzip.decompress(body(seaweedfs, s3_bucket, big_key)).split(b"\n")[:-1] == rows
    assert seaweedfs.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_retry_rewrites_the_same_object(seaweedfs, s3_bucket):
    lines = [enriched_line(i) for i in range(500)]
    first = S3Store(config(seaweedfs, s3_bucket))
    first.open()
    first.write(batch(lines))
    before = objects(seaweedfs, s3_bucket)
    # a restarted loader writes the batch it could not commit again
    again = S3Store(config(seaweedfs, s3_bucket))
    again.open()
    again.write(batch(lines))
    after = objects(seaweedfs, s3_bucket)
    assert list(after) == list(before) and len(after) == 1
    (key,) = after
    assert after[key]["ETag"] == before[key]["ETag"] and after[key]["Size"] == before[key]["Size"]


def test_open_rejects_a_missing_bucket_and_bad_credentials(seaweedfs, s3_bucket, monkeypatch):
    with pytest.raises(S3StoreError, match="no such bucket"):
        S3Store(config(seaweedfs, f"missing-{uuid.uuid4().hex[:10]}")).open()
    if seaweedfs.kind == "external":
        return
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(S3StoreError, match="access denied"):
        S3Store(config(seaweedfs, s3_bucket)).open()


def test_open_on_an_unreachable_store_is_retryable(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        store = S3Store(S3Config(bucket="nowhere", endpoint_url=f"http://127.0.0.1:{port}", path_style=True),
                        max_attempts=1)
        with pytest.raises(StoreUnavailable):
            store.open()


def test_store_stopped_then_restarted(private_seaweedfs, make_s3_bucket):
    server = private_seaweedfs
    bucket = make_s3_bucket(server)
    store = S3Store(config(server, bucket), connect_timeout=1, read_timeout=2, max_attempts=2)
    store.open()
    store.write(batch([enriched_line(i) for i in range(100)], first=0))
    pending = batch([enriched_line(i) for i in range(100, 200)], first=100)

    server.stop()
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.write(pending)
    assert time.monotonic() - t0 < 15  # the loader hears of it quickly and backs off

    server.start()
    # the same batch, retried as the loader retries it: a SeaweedFS that answers its bucket listing may still
    # be bringing up its volume server, and on a loaded machine the first write can outlast the 2 s read timeout
    def written() -> bool:
        try:
            store.write(pending)
        except StoreUnavailable:
            return False
        return True

    wait_until(written, 30, "the restarted store to take the write", interval=0.5)
    keys = sorted(objects(server, bucket))
    assert keys == ["snowplow/enriched/date=2026-11-28/hour=09/enriched-0-0-99.tsv.gz",
                    "snowplow/enriched/date=2026-11-28/hour=09/enriched-0-100-199.tsv.gz"]
    events = [line for key in keys for line in gzip.decompress(body(server, bucket, key)).split(b"\n")[:-1]]
    assert events == [enriched_line(i) for i in range(200)]


def test_store_frozen_times_out_then_recovers(private_seaweedfs, make_s3_bucket):
    server = private_seaweedfs
    bucket = make_s3_bucket(server)
    store = S3Store(config(server, bucket), connect_timeout=1, read_timeout=1, max_attempts=1)
    store.open()
    pending = batch([enriched_line(i) for i in range(50)])
    os.killpg(server.proc.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unreachable or too slow"):
            store.write(pending)
        assert time.monotonic() - t0 < 10
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
    store.write(pending)
    (key,) = objects(server, bucket)
    assert gzip.decompress(body(server, bucket, key)).split(b"\n")[:-1] == list(pending.values)
