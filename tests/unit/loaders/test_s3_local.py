"""The S3 store on its local-folder backend (no service): keys, formats, idempotence, errors."""
from __future__ import annotations

import base64
import errno
import gzip
import json
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from loaders import s3 as s3mod
from loaders.base import BAD, ENRICHED, Batch, StoreUnavailable
from loaders.s3 import S3Store, S3StoreError, join_lines
from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX, FIELDS, EnrichedEvent, to_tsv
from snowmelt.config import S3Config

# 2026-11-28 09:15:42.123 UTC
TS = int(datetime(2026, 11, 28, 9, 15, 42, 123000, tzinfo=timezone.utc).timestamp() * 1000)


def enriched_line(i: int) -> bytes:
    event = EnrichedEvent(
        app_id="shop", platform="web", collector_tstamp=TS + i, etl_tstamp=TS + i + 5,
        dvce_created_tstamp=TS + i - 100, event="unstruct" if i % 3 == 0 else "page_view",
        event_id=str(uuid.UUID(int=i + 1, version=4)), name_tracker="sp", v_tracker="js-3.24.0",
        v_collector="snowmelt-0.1.0", v_etl="snowmelt-0.1.0", user_ipaddress=f"10.0.{i % 256}.1",
        domain_userid=f"user-{i % 17}", domain_sessionidx=i % 5 + 1, page_url=f"https://shop.acme.com/p/{i}",
        page_title=f"Product {i} \u00e9t\u00e9", page_urlscheme="https", page_urlhost="shop.acme.com",
        page_urlport=443, page_urlpath=f"/p/{i}", br_cookies=i % 2 == 0, tr_total=Decimal("19.99") if i % 4 == 0 else None,
        contexts=[{"schema": "iglu:com.acme/product/jsonschema/1-0-0", "data": {"sku": f"sku-{i}", "price": i * 1.5}}],
        unstruct_event={"schema": "iglu:com.acme/checkout/jsonschema/1-0-0", "data": {"step": i}} if i % 3 == 0 else None,
        event_vendor="com.snowplowanalytics.snowplow", event_name="page_view", event_format="jsonschema",
        event_version="1-0-0",
    )
    return to_tsv(event).encode("utf-8")


def bad_row(i: int) -> bytes:
    return json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0",
                       "data": {"processor": {"artifact": "x", "version": "1"},
                                "failure": {"timestamp": "2026-11-28T09:15:42.123Z", "errors": [f"e{i}\nsecond"]},
                                "payload": f"p{i}"}}, separators=(",", ":")).encode()


def batch(values, kind=ENRICHED, topic="enriched", partition=0, first=1200, ts=TS) -> Batch:
    values = tuple(values)
    return Batch(kind=kind, topic=topic, partition=partition, first_offset=first,
                 last_offset=first + len(values) - 1, values=values, first_timestamp_ms=ts)


def store(tmp_path: Path, **overrides) -> S3Store:
    s = S3Store(S3Config(backend="local", local_dir=str(tmp_path / "s3"), **overrides))
    s.open()
    return s


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative key, temporary files included."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- keys


def test_key_is_layout_then_token_from_the_first_record_timestamp(tmp_path):
    s = store(tmp_path)
    b = batch([enriched_line(i) for i in range(600)])
    assert b.token == "enriched-0-1200-1799"
    assert s.key(b, ".tsv.gz") == "snowplow/enriched/date=2026-11-28/hour=09/enriched-0-1200-1799.tsv.gz"
    # an hour later by the wall clock or on a retry: the same key, from the batch alone
    assert S3Store(s.config).key(b, ".tsv.gz") == s.key(b, ".tsv.gz")
    s.write(b)
    assert list(files(tmp_path / "s3")) == ["snowplow/enriched/date=2026-11-28/hour=09/enriched-0-1200-1799.tsv.gz"]


def test_bad_rows_go_under_their_kind_as_ndjson(tmp_path):
    s = store(tmp_path)
    s.write(batch([bad_row(i) for i in range(3)], kind=BAD, topic="bad", partition=2, first=7,
                  ts=TS - 10 * 3600 * 1000))
    assert list(files(tmp_path / "s3")) == ["snowplow/bad/date=2026-11-27/hour=23/bad-2-7-9.ndjson.gz"]


def test_custom_layout_and_empty_prefix(tmp_path):
    s = store(tmp_path, prefix="", partition_layout="{prefix}/{topic}/{year}/{month}/{day}/{hour}/p{partition}")
    b = batch([enriched_line(0)], topic="good", partition=3, first=5)
    assert s.key(b, ".tsv.gz") == "good/2026/11/28/09/p3/good-3-5-5.tsv.gz"


@pytest.mark.parametrize("layout", ["{prefix}/{kind}/{minute}", "{prefix}/../{kind}", "{prefix/{kind}"])
def test_unusable_layout_is_a_config_error(tmp_path, layout):
    with pytest.raises(S3StoreError, match="partition_layout"):
        S3Store(S3Config(backend="local", local_dir=str(tmp_path), partition_layout=layout))


def test_s3_backend_needs_a_bucket():
    with pytest.raises(S3StoreError, match="bucket"):
        S3Store(S3Config(backend="s3", bucket=""))


# --------------------------------------------------------------------------- contents


def test_tsv_gzip_round_trip(tmp_path):
    s = store(tmp_path)
    lines = [enriched_line(i) for i in range(500)]
    s.write(batch(lines))
    (body,) = files(tmp_path / "s3").values()
    assert body[:2] == b"\x1f\x8b"  # gzip, as Snowplow's S3 loader writes
    text = gzip.decompress(body)
    assert text.endswith(b"\n")
    assert text.split(b"\n")[:-1] == lines
    # and Snowplow's analytics shape reads every line of it back
    first = parse_tsv(text.split(b"\n")[0].decode())
    assert first["event_id"] == str(uuid.UUID(int=1, version=4))
    assert first["contexts_com_acme_product_1"] == [{"sku": "sku-0", "price": 0.0}]


def test_bad_rows_round_trip(tmp_path):
    s = store(tmp_path)
    rows = [bad_row(i) for i in range(50)]
    s.write(batch(rows, kind=BAD, topic="bad"))
    (body,) = files(tmp_path / "s3").values()
    docs = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert docs == [json.loads(r) for r in rows]


def test_a_value_with_a_line_break_stays_one_line():
    values = [b"a\tb", b"c\nd", b"e\r\nf", b"g"]
    assert join_lines(values) == b"a\tb\nc d\ne  f\ng\n"
    assert join_lines([]) == b""


def test_lines_compressed_a_chunk_at_a_time_are_the_joined_lines_and_the_same_bytes_each_time():
    from loaders import s3

    # over several chunks, with a line break inside a value of a later chunk
    values = [f"event-{i}\tpage".encode() for i in range(3 * s3.GZIP_CHUNK + 7)]
    values[2 * s3.GZIP_CHUNK + 1] = b"c\r\nd"
    body = s3.gzip_lines(tuple(values))
    assert gzip.decompress(body) == join_lines(values)
    assert gzip.decompress(body).count(b"\n") == len(values)
    assert body[:4] == b"\x1f\x8b\x08\x00" and body[4:8] == b"\x00\x00\x00\x00"  # one gzip member, mtime 0
    assert s3.gzip_lines(tuple(values)) == body


def test_same_batch_twice_is_one_object_with_the_same_bytes(tmp_path):
    lines = [enriched_line(i) for i in range(300)]
    s = store(tmp_path)
    s.write(batch(lines))
    before = files(tmp_path / "s3")
    # the retry after a crash: another store instance, the same batch
    again = store(tmp_path)
    again.write(batch(lines))
    again.write(batch(lines))
    assert files(tmp_path / "s3") == before and len(before) == 1
    # the next batch of the partition is another object
    again.write(batch(lines[:10], first=1500))
    assert len(files(tmp_path / "s3")) == 2


def test_empty_batch_writes_nothing(tmp_path):
    s = store(tmp_path)
    s.write(batch([]))
    assert files(tmp_path / "s3") == {}


# --------------------------------------------------------------------------- parquet


def test_gzip_tsv_is_prepared_off_the_loaders_loop_and_parquet_on_it(tmp_path):
    # joining and compressing lines let go of the interpreter's lock; parsing into Arrow holds it in part
    assert store(tmp_path).prepare_off_loop is True
    assert store(tmp_path, format="parquet").prepare_off_loop is False


def test_parquet_round_trip(tmp_path):
    s = store(tmp_path, format="parquet")
    lines = [enriched_line(i) for i in range(200)]
    s.write(batch(lines))
    written = files(tmp_path / "s3")
    assert list(written) == ["snowplow/enriched/date=2026-11-28/hour=09/enriched-0-1200-1399.parquet"]
    table = pq.read_table(pa.BufferReader(next(iter(written.values()))))
    meta = pq.ParquetFile(pa.BufferReader(next(iter(written.values())))).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert table.num_rows == 200
    assert table.column_names == list(FIELDS)
    # typed atomic fields
    assert table.schema.field("collector_tstamp").type == pa.timestamp("ms", tz="UTC")
    assert pa.types.is_integer(table.schema.field("domain_sessionidx").type)
    assert table.column("collector_tstamp")[0].as_py() == datetime.fromtimestamp(TS / 1000, timezone.utc)
    assert table.column("br_cookies").to_pylist()[:2] == [True, False]
    assert table.column("tr_total").to_pylist()[:2] == [Decimal("19.99"), None]
    # self-describing data as the TSV's JSON strings, byte for byte
    contexts = FIELD_INDEX["contexts"]
    assert table.column("contexts").to_pylist() == [line.decode().split("\t")[contexts] for line in lines]
    assert table.column("event_id").to_pylist() == [str(uuid.UUID(int=i + 1, version=4)) for i in range(200)]
    # a retry gives the same bytes
    store(tmp_path, format="parquet").write(batch(lines))
    assert files(tmp_path / "s3") == written


def test_parquet_sends_malformed_lines_to_bad_rows(tmp_path):
    s = store(tmp_path, format="parquet")
    lines = [enriched_line(i) for i in range(20)]
    lines[7] = b"not\tan\tenriched\tline"
    s.write(batch(lines))
    written = files(tmp_path / "s3")
    assert sorted(written) == ["snowplow/bad/date=2026-11-28/hour=09/enriched-0-1200-1219.ndjson.gz",
                               "snowplow/enriched/date=2026-11-28/hour=09/enriched-0-1200-1219.parquet"]
    bad_key, parquet_key = sorted(written)
    table = pq.read_table(pa.BufferReader(written[parquet_key]))
    assert table.num_rows == 19
    (doc,) = [json.loads(line) for line in gzip.decompress(written[bad_key]).splitlines()]
    assert doc["schema"] == "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0"
    assert base64.b64decode(doc["data"]["payload"]) == lines[7]
    assert doc["data"]["failure"]["timestamp"] == "2026-11-28T09:15:42.123Z"


# --------------------------------------------------------------------------- errors


def test_failed_local_write_leaves_no_temporary_file(tmp_path):
    s = store(tmp_path)
    b = batch([enriched_line(0)])
    target = tmp_path / "s3" / s.key(b, ".tsv.gz")
    target.mkdir(parents=True)  # a folder where the object should go: rename fails
    with pytest.raises(S3StoreError, match="cannot write"):
        s.write(b)
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_full_disk_is_retryable(tmp_path, monkeypatch):
    s = store(tmp_path)

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(s3mod.os, "write", full)
    with pytest.raises(StoreUnavailable):
        s.write(batch([enriched_line(0)]))
    monkeypatch.undo()
    assert files(tmp_path / "s3") == {}
    s.write(batch([enriched_line(0)]))
    assert len(files(tmp_path / "s3")) == 1


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


@pytest.mark.parametrize("exc", [
    client_error("SlowDown", 503), client_error("InternalError", 500), client_error("ServiceUnavailable", 503),
    client_error("TooManyRequests", 429), client_error("RequestTimeout", 400),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ReadTimeoutError(endpoint_url="http://x"),
])
def test_s3_errors_that_pass_are_store_unavailable(exc):
    assert isinstance(s3mod._s3_error(exc, "s3://b/k"), StoreUnavailable)


@pytest.mark.parametrize("code,status,match", [
    ("AccessDenied", 403, "access denied"), ("InvalidAccessKeyId", 403, "credentials"),
    ("NoSuchBucket", 404, "no such bucket"), ("404", 404, "no such bucket"), ("InvalidArgument", 400, "InvalidArgument"),
])
def test_s3_errors_that_need_a_fix_say_what(code, status, match):
    err = s3mod._s3_error(client_error(code, status), "s3://b/k")
    assert isinstance(err, S3StoreError) and not isinstance(err, StoreUnavailable)
    assert match in str(err)


def test_layout_without_prefix_or_hour(tmp_path):
    config = replace(S3Config(backend="local", local_dir=str(tmp_path)), partition_layout="{kind}/{date}")
    assert S3Store(config).key(batch([b"x"]), ".tsv.gz") == "enriched/2026-11-28/enriched-0-1200-1200.tsv.gz"


def test_lines_read_from_a_file_make_the_same_object_as_values(tmp_path):
    from loaders.base import Lines

    rows = [bad_row(i) for i in range(20)] + [b'{"schema":"c"}\r']
    for name, values in (("values", tuple(rows)), ("lines", Lines(b"\n".join(rows) + b"\n"))):
        s = store(tmp_path / name)
        s.write(Batch(kind=BAD, topic="bad", partition=0, first_offset=0, last_offset=len(rows) - 1, values=values,
                      first_timestamp_ms=TS))
    (from_values,) = files(tmp_path / "values" / "s3").values()
    (from_lines,) = files(tmp_path / "lines" / "s3").values()
    assert from_lines == from_values
    assert gzip.decompress(from_lines).endswith(b'{"schema":"c"} \n')  # a carriage return is a space still


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_a_prepared_batch_is_written_as_encoded_without_encoding_it_again(tmp_path, monkeypatch, fmt):
    lines = [enriched_line(i) for i in range(50)]
    lines[3] = b"not\tan\tenriched\tline"
    plain, prepared = store(tmp_path / "plain", format=fmt), store(tmp_path / "prepared", format=fmt)
    plain.write(batch(lines))
    ready = prepared.prepare(batch(lines))
    assert ready.prepared == prepared.encode(batch(lines)) and ready == batch(lines)
    monkeypatch.setattr(S3Store, "encode", lambda *_: pytest.fail("a prepared batch encoded again"))
    prepared.write(ready)
    prepared.write(ready)  # a retry: the same objects
    assert files(tmp_path / "prepared" / "s3") == files(tmp_path / "plain" / "s3")
