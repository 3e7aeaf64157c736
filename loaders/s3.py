"""The S3 store: one object per batch, at a key the batch names, on S3 or in a local folder.

:class:`S3Store` is the :class:`~loaders.base.Store` of ``snowmelt load s3``
(and of ``snowmelt up``, with the local-folder backend).  Each
:class:`~loaders.base.Batch` becomes **one object** (the loader's
``load.batch_size`` / ``load.batch_timeout`` are what Snowplow's S3 loader
calls rolling by size and by time), at a key computed from the batch alone::

    {partition_layout}/{batch.token}{extension}
    snowplow/enriched/date=2026-11-28/hour=09/enriched-0-1200-1799.tsv.gz

``partition_layout`` (config ``s3.partition_layout``, default
``{prefix}/{kind}/date={date}/hour={hour}`` like Snowplow's S3 loader) may use
``{prefix}``, ``{kind}`` (``enriched`` or ``bad``), ``{date}``
(``YYYY-MM-DD``), ``{hour}`` (``HH``), ``{year}``, ``{month}``, ``{day}``,
``{topic}`` and ``{partition}``.  The date and hour are those of
:attr:`~loaders.base.Batch.first_timestamp_ms` (the Kafka timestamp of the
batch's first record, UTC), never of the wall clock, and the file name is
:attr:`~loaders.base.Batch.token` (topic, partition, offset range): a batch
written again after a crash or a retry lands on the same key with the same
bytes and replaces the object instead of adding a copy.  This is where we
differ from Snowplow's S3 loader, whose file names carry the time of the
flush, so that its retries after a crash leave duplicates (its readers
deduplicate by event_id; ours find at most one object per offset range).  The
loader cuts a batch re-read after a crash at the same offsets (its write intent,
``load.exactly_once``); without the intent, or with another batch size after a
restart, an offset range cut differently can still overlap an earlier object:
S3 is then at least once per event, exactly once per batch.

Formats (``s3.format`` for enriched events; bad rows always NDJSON):

``tsv`` (``.tsv.gz``)
    The enriched lines joined by ``"\\n"`` with a final newline, gzip: what
    Snowplow's S3 loader writes for the enriched stream, so Snowplow's
    tooling (the analytics SDKs, its batch loaders, Athena tables over the
    archive) reads it.  A line break inside a value (the enriched format has
    none; enrich replaces them by spaces) would split one record in two: it
    is replaced by a space here too, so one record is always one line.
``parquet`` (``.parquet``)
    :func:`loaders.arrow.enriched_table`: one typed column per atomic field
    (timestamps UTC, integers, decimals, booleans; low-cardinality strings
    dictionary-encoded), ``contexts``/``unstruct_event``/``derived_contexts``
    as their self-describing JSON strings; zstd-compressed, one row group
    (see :func:`parquet_bytes`).
    Lines that are not enriched rows (wrong field count, a value that does
    not parse) cannot be columns: they go to a bad-rows object of the same
    token under the ``bad`` kind, as ``generic_error`` bad rows whose payload
    is the line (base64), written before the Parquet object.
bad rows (``.ndjson.gz``)
    The self-describing bad-row JSON documents, one per line, gzip.

Compression is gzip level 1 from ISA-L (``isal``): about 1.1 million
enriched events/s per core and a 10x ratio on realistic events, against
about 200,000/s and 8.8x for the standard library's zlib at levels 1-3 (see
bench/bench_load_s3.py); the output is ordinary gzip (RFC 1952, one member,
header mtime 0 so the same lines always give the same bytes).

Backends (``s3.backend``):

``s3``
    boto3's S3 client: ``endpoint_url`` for S3-compatible stores (SeaweedFS,
    MinIO, ...), ``path_style`` for stores without virtual-host buckets,
    ``region``; credentials from the usual AWS chain (environment, profiles,
    instance and container roles).  Objects larger than
    ``multipart_threshold`` are uploaded in parts of that size (at least 5
    MiB, S3's minimum part size), one after the other; a failed multipart
    upload is aborted so no parts are left behind, and the retry starts a new
    one.  :meth:`S3Store.open` checks that the bucket exists and that the
    credentials may use it; the store never creates buckets (a production
    bucket has its own policy, lifecycle and encryption set up beside us).
``local``
    Files under ``local_dir`` at the same keys (``snowmelt up``): each is
    written to a hidden temporary file in the target folder, flushed to disk,
    then renamed over the key, so a reader never sees half an object and a
    rewrite replaces the file atomically.

Errors: the store cannot be reached, times out, answers 5xx, or throttles
(``SlowDown``, 503, 429) -> :class:`~loaders.base.StoreUnavailable` (the
loader backs off and retries the same batch); a local disk that is full or
failing -> ``StoreUnavailable`` too.  Anything else (bad credentials, no such
bucket, access denied, an unusable layout) -> :class:`S3StoreError`, which
stops the loader without committing, with a message that says what to fix.
"""
from __future__ import annotations

import base64
import contextlib
import errno
import logging
import os
import string
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from isal import igzip, isal_zlib

from ext import join_lines as ext_join_lines
from loaders.base import BAD, ENRICHED, Batch, Lines, Store, StoreUnavailable
from snowmelt.config import S3Config

__all__ = [
    "GZIP_LEVEL",
    "MIN_PART_SIZE",
    "S3Store",
    "S3StoreError",
    "StoredObject",
    "gzip_compress",
    "gzip_lines",
    "join_lines",
    "parquet_bytes",
]

log = logging.getLogger("snowmelt.load.s3")

#: ISA-L gzip level: 1 is as fast as 0 (its fastest) with the ratio of zlib's level 6 on enriched events.
GZIP_LEVEL = 1
#: values joined and compressed at a time by :func:`gzip_lines` (~0.7 MB of enriched lines)
GZIP_CHUNK = 512
#: S3's smallest allowed part (except the last): a smaller ``multipart_threshold`` is raised to it.
MIN_PART_SIZE = 5 * 1024 * 1024
#: zstd level of the Parquet pages.
PARQUET_ZSTD_LEVEL = 1
ARTIFACT = "snowmelt-loader-s3"

_LAYOUT_FIELDS = frozenset({"prefix", "kind", "date", "hour", "year", "month", "day", "topic", "partition"})
_GZIP_TYPE = "application/gzip"
_PARQUET_TYPE = "application/vnd.apache.parquet"

#: S3 error codes that mean "not now": throttling and transient server trouble.
_RETRYABLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequests", "TooManyRequestsException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "ProvisionedThroughputExceededException", "ServiceUnavailable",
    "InternalError", "RequestTimeout", "RequestTimeoutException", "OperationAborted",
    "PriorRequestNotComplete", "EC2ThrottledException",
})
#: local disk errors that can pass (space freed, device back)
_RETRYABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN})


class S3StoreError(RuntimeError):
    """The store is misconfigured or refuses us (bucket, credentials, permissions): not worth a retry."""


class StoredObject(NamedTuple):
    """One object a batch becomes: its key, its bytes, its Content-Type."""

    key: str
    body: bytes
    content_type: str


# --------------------------------------------------------------------------- encoding


def join_lines(values: Sequence[bytes]) -> bytes:
    """``values`` as lines: joined by ``"\\n"``, with a final newline; one value is always one line.

    A value holding ``"\\n"`` or ``"\\r"`` (never an enriched line or a
    compact JSON document) has them replaced by spaces, as enrich does inside
    fields.  :class:`Lines` are one buffer already.  Other values are joined by
    ``ext.join_lines``, which copies and scans them without the interpreter's
    lock: the loader's own loop, bound by that lock, reads on meanwhile.
    """
    if isinstance(values, Lines) and b"\r" not in values.data:  # one value a line by construction
        return values.data
    return ext_join_lines(values)


def gzip_lines(values: Sequence[bytes], level: int = GZIP_LEVEL) -> bytes:
    """:func:`join_lines` of ``values``, gzip-compressed: one member, header mtime 0, the same bytes for the
    same values.

    The lines are joined and compressed :data:`GZIP_CHUNK` values at a time
    instead of joined whole first: a batch of 15,000 enriched lines is 21 MB
    joined, and building that buffer cost as much as compressing it (27 ms
    against 54 ms for the batch, ``bench/RESULTS.md``).  :class:`Lines` are
    one buffer already and are compressed as they are.
    """
    if isinstance(values, Lines) or len(values) <= GZIP_CHUNK:
        return gzip_compress(join_lines(values), level)
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)  # 16 +: gzip wrapper
    parts = [compressor.compress(join_lines(values[start:start + GZIP_CHUNK]))
             for start in range(0, len(values), GZIP_CHUNK)]
    parts.append(compressor.flush())
    return b"".join(parts)


def gzip_compress(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """One gzip member (ISA-L), header mtime 0: the same input always gives the same bytes."""
    return igzip.compress(data, compresslevel=level, mtime=0)


def parquet_bytes(table: Any) -> bytes:
    """``table`` as one Parquet file: zstd, one row group.

    Dictionary pages and statistics only where they serve a reader: the
    dictionary-typed (low-cardinality) columns are dictionary-encoded, and
    min/max statistics are kept for every column but the free-text and JSON
    strings (URLs, user agents, contexts), whose statistics prune nothing and
    cost about a tenth of the write.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = list(table.schema)
    dictionary = [f.name for f in fields if pa.types.is_dictionary(f.type)]
    statistics = [f.name for f in fields if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=PARQUET_ZSTD_LEVEL,
                   row_group_size=max(table.num_rows, 1), use_dictionary=dictionary or False,
                   write_statistics=statistics or False)
    return sink.getvalue().to_pybytes()


def _malformed_bad_row(line: bytes, reason: str, timestamp_ms: int) -> bytes:
    """A ``generic_error`` bad row for an enriched line that cannot be a Parquet row (deterministic)."""
    from processor.badrows import GENERIC_ERROR, bad_row, iso_timestamp

    failure = {"timestamp": iso_timestamp(timestamp_ms), "errors": [f"not an enriched row: {reason}"[:1024]]}
    return bad_row(GENERIC_ERROR, ARTIFACT, failure, base64.b64encode(bytes(line)).decode("ascii"))


# --------------------------------------------------------------------------- the store


class S3Store(Store):
    """Batches to objects on S3 (or an S3-compatible store) or in a local folder; see the module docstring.

    ``connect_timeout`` / ``read_timeout`` (seconds) and ``max_attempts``
    (boto3's own retries of one request, "standard" mode, before the
    loader's back-off takes over) apply to the ``s3`` backend.
    """

    name = "s3"

    def __init__(self, config: S3Config, *, connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_attempts: int = 3):
        self.config = config
        self._check_layout(config.partition_layout)
        if config.format not in ("tsv", "parquet"):
            raise S3StoreError(f"s3.format must be tsv or parquet, not {config.format!r}")
        if config.backend == "s3":
            if not config.bucket:
                raise S3StoreError("s3.bucket is empty: name the bucket to write to (or use s3.backend: local)")
            self._backend: _Backend = _S3Backend(config, connect_timeout, read_timeout, max_attempts)
        elif config.backend == "local":
            self._backend = _LocalBackend(Path(config.local_dir))
        else:
            raise S3StoreError(f"s3.backend must be s3 or local, not {config.backend!r}")

    @staticmethod
    def _check_layout(layout: str) -> None:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(layout) if name is not None}
        except ValueError as exc:
            raise S3StoreError(f"s3.partition_layout {layout!r}: {exc}") from None
        unknown = names - _LAYOUT_FIELDS
        if unknown:
            raise S3StoreError(f"s3.partition_layout {layout!r} uses {sorted(unknown)}; "
                               f"it may use {sorted(_LAYOUT_FIELDS)}")
        if ".." in layout.split("/"):
            raise S3StoreError(f"s3.partition_layout {layout!r} must not contain '..'")

    def describe(self) -> str:
        return self._backend.describe()

    # ------------------------------------------------------------------ keys and bytes

    def folder(self, batch: Batch, kind: str | None = None) -> str:
        """The partition folder of ``batch`` (no leading or trailing slash)."""
        when = datetime.fromtimestamp(batch.first_timestamp_ms / 1000, timezone.utc)
        path = self.config.partition_layout.format(
            prefix=self.config.prefix, kind=kind or batch.kind, date=when.strftime("%Y-%m-%d"),
            hour=when.strftime("%H"), year=when.strftime("%Y"), month=when.strftime("%m"),
            day=when.strftime("%d"), topic=batch.topic, partition=batch.partition)
        return "/".join(part for part in path.split("/") if part)

    def key(self, batch: Batch, extension: str, kind: str | None = None) -> str:
        """The object key of ``batch``: its partition folder, then ``token`` + ``extension``."""
        folder = self.folder(batch, kind)
        name = batch.token + extension
        return f"{folder}/{name}" if folder else name

    def encode(self, batch: Batch) -> list[StoredObject]:
        """The objects ``batch`` becomes, in the order they are written (deterministic bytes)."""
        if not batch.values:
            return []
        if batch.kind == BAD:
            return [StoredObject(self.key(batch, ".ndjson.gz"), gzip_lines(batch.values), _GZIP_TYPE)]
        if batch.kind != ENRICHED:
            raise ValueError(f"batch kind must be {ENRICHED!r} or {BAD!r}, not {batch.kind!r}")
        if self.config.format == "tsv":
            return [StoredObject(self.key(batch, ".tsv.gz"), gzip_lines(batch.values), _GZIP_TYPE)]
        from loaders.arrow import enriched_table

        parsed = enriched_table(batch.values)
        objects = []
        if parsed.malformed:
            rows = [_malformed_bad_row(m.line, m.reason, batch.first_timestamp_ms) for m in parsed.malformed]
            objects.append(StoredObject(self.key(batch, ".ndjson.gz", kind=BAD),
                                        gzip_lines(rows), _GZIP_TYPE))
            log.warning("%s: %d of %d lines are not enriched rows; written as bad rows to %s",
                        batch.token, len(rows), len(batch.values), objects[0].key)
        if parsed.table.num_rows:
            objects.append(StoredObject(self.key(batch, ".parquet"), parquet_bytes(parsed.table), _PARQUET_TYPE))
        return objects

    # ------------------------------------------------------------------ Store

    def open(self) -> None:
        """Local: create ``local_dir``.  S3: connect and check the bucket (``S3StoreError`` if unusable)."""
        self._backend.open()

    @property
    def prepare_off_loop(self) -> bool:
        """Gzip TSV is prepared off the loop: joining and compressing the lines let go of the interpreter's
        lock.  Parquet's parsing into Arrow holds it for its Python parts."""
        return self.config.format == "tsv"

    def prepare(self, batch: Batch) -> Batch:
        """``batch`` with its objects encoded (:meth:`encode`): the compression runs while the batch before
        is uploaded."""
        return replace(batch, prepared=self.encode(batch))

    def write(self, batch: Batch) -> None:
        """Encode ``batch`` (unless prepared) and put its object(s); returns once the store has them
        (idempotent by key)."""
        for obj in batch.prepared if batch.prepared is not None else self.encode(batch):
            self._backend.put(obj)

    def close(self) -> None:
        self._backend.close()


# --------------------------------------------------------------------------- backends


class _Backend:
    def open(self) -> None: ...

    def put(self, obj: StoredObject) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class _LocalBackend(_Backend):
    """Files under a folder: temporary file, fsync, rename over the key, fsync the folder."""

    def __init__(self, root: Path):
        self.root = root

    def describe(self) -> str:
        return f"local folder {self.root}"

    def open(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _local_error(exc, self.root) from exc

    def put(self, obj: StoredObject) -> None:
        path = self.root / obj.key
        tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(obj.body)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _local_error(exc, path) from exc


def _local_error(exc: OSError, path: Path) -> Exception:
    if exc.errno in _RETRYABLE_ERRNOS:
        return StoreUnavailable(f"cannot write {path}: {exc}")
    return S3StoreError(f"cannot write {path}: {exc}")


def tls_verify(config: S3Config) -> bool | str:
    """boto3's ``verify``: the CA bundle file when ``s3.ca_bundle`` is set, else ``s3.verify``."""
    return config.ca_bundle or config.verify


class _S3Backend(_Backend):
    """boto3's S3 client; every error goes through :func:`_s3_error`."""

    def __init__(self, config: S3Config, connect_timeout: float, read_timeout: float, max_attempts: int):
        self.config = config
        self.bucket = config.bucket
        self.part_size = max(config.multipart_threshold, MIN_PART_SIZE)
        self._client_options = {"connect_timeout": connect_timeout, "read_timeout": read_timeout,
                                "max_attempts": max_attempts}
        self.client: Any = None

    def describe(self) -> str:
        where = self.config.endpoint_url or f"AWS ({self.config.region})"
        return f"s3://{self.bucket} at {where}"

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        options = self._client_options
        config = Config(
            s3={"addressing_style": "path" if self.config.path_style else "auto"},
            connect_timeout=options["connect_timeout"], read_timeout=options["read_timeout"],
            retries={"max_attempts": options["max_attempts"], "mode": "standard"},
            max_pool_connections=4,
        )
        return boto3.session.Session().client(
            "s3", endpoint_url=self.config.endpoint_url or None, region_name=self.config.region or None,
            config=config, verify=tls_verify(self.config))

    def open(self) -> None:
        if self.client is None:
            self.client = self._make_client()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            _raise_s3_error(exc, f"bucket {self.bucket!r} at {self.describe()}")

    def put(self, obj: StoredObject) -> None:
        if self.client is None:
            self.open()
        try:
            if len(obj.body) > self.config.multipart_threshold:
                self._put_multipart(obj)
            else:
                self.client.put_object(Bucket=self.bucket, Key=obj.key, Body=obj.body, ContentType=obj.content_type)
        except Exception as exc:
            _raise_s3_error(exc, f"s3://{self.bucket}/{obj.key}")

    def _put_multipart(self, obj: StoredObject) -> None:
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=obj.key, ContentType=obj.content_type)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, len(obj.body), self.part_size), start=1):
                answer = self.client.upload_part(Bucket=self.bucket, Key=obj.key, UploadId=upload_id,
                                                 PartNumber=number, Body=obj.body[start:start + self.part_size])
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=obj.key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            # leave no parts behind (best effort: the store may be the thing that failed)
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=obj.key, UploadId=upload_id)
            raise

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None


def _raise_s3_error(exc: Exception, what: str) -> None:
    error = _s3_error(exc, what)
    if error is exc:
        raise exc
    raise error from exc


def _s3_error(exc: Exception, what: str) -> Exception:
    """``StoreUnavailable`` for unreachable/slow/throttling/5xx, else ``S3StoreError`` saying what to fix."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
    )

    if isinstance(exc, (StoreUnavailable, S3StoreError)):
        return exc
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return StoreUnavailable(f"{what}: store unreachable or too slow: {exc}")
    if isinstance(exc, NoCredentialsError):
        return S3StoreError(f"{what}: no AWS credentials found (environment, profile or role)")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _RETRYABLE_CODES or status >= 500 or status == 429:
            return StoreUnavailable(f"{what}: {code or status} (retry later): {error.get('Message', '')}")
        if code in ("404", "NoSuchBucket"):
            return S3StoreError(f"{what}: no such bucket (create it, or fix s3.bucket / s3.endpoint_url)")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "AllAccessDisabled"):
            return S3StoreError(f"{what}: access denied ({code}): check the AWS credentials and the "
                                "bucket policy (the loader needs s3:ListBucket and s3:PutObject)")
        return S3StoreError(f"{what}: {code or status}: {error.get('Message', '') or exc}")
    return exc
