"""Fixtures for the integration tests' S3 store (Kafka's are in tests/conftest.py).

``seaweedfs`` (session)
    One S3 server for the whole run, from :func:`tests.services.s3.s3_from_env`:
    ``S3_ENDPOINT_URL`` (any running S3-compatible store, credentials from the
    AWS environment) > a SeaweedFS ``weed mini`` started here.  Which one ran
    is printed when it starts and in the summary.  Do not stop it from a
    test: use ``private_seaweedfs``.

``private_seaweedfs`` (function)
    A SeaweedFS for this test alone, which it may ``stop()``, ``kill()`` and
    ``start()`` again (same port, same data).  Skips when ``S3_ENDPOINT_URL``
    names an external store.

``make_s3_bucket`` / ``s3_bucket`` (function)
    ``make_s3_bucket(server=seaweedfs)`` creates a bucket with a fresh name on
    ``server``, puts the server's credentials in this test's environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
    for the store's default AWS credential chain) and returns the name;
    ``s3_bucket`` is ``make_s3_bucket()``.  Buckets on an external store are
    emptied and deleted afterwards.
"""
from __future__ import annotations

import contextlib
import time
import uuid

import pytest

from tests.services.s3 import SeaweedFS, s3_from_env

_started: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in _started:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def seaweedfs():
    server = s3_from_env()
    t0 = time.monotonic()
    server.start()
    line = f"s3 store: {server.describe()} (ready in {time.monotonic() - t0:.1f}s)"
    _started.append(line)
    print(f"\n{line}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_seaweedfs(seaweedfs):
    if not seaweedfs.supports_stop:
        pytest.skip(f"{seaweedfs.describe()} cannot be stopped by the tests")
    server = SeaweedFS()
    server.start()
    print(f"\nprivate s3 store: {server.describe()} (ready in {server.start_seconds:.1f}s)")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_s3_bucket(seaweedfs, monkeypatch):
    made: list[tuple[SeaweedFS, str]] = []

    def make(server: SeaweedFS | None = None) -> str:
        server = server or seaweedfs
        for key, value in server.credentials_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        name = f"snowmelt-test-{uuid.uuid4().hex[:12]}"
        server.create_bucket(name)
        made.append((server, name))
        return name

    yield make
    for server, name in made:
        if server.kind == "external":
            with contextlib.suppress(Exception):
                server.delete_bucket(name)


@pytest.fixture
def s3_bucket(make_s3_bucket) -> str:
    return make_s3_bucket()
