"""Readiness: "can this process do work now?", served beside ``/metrics``.

A worker (``snowmelt enrich``, ``snowmelt load ...``) serves three paths on
its metrics port (:func:`serve`):

- ``/metrics``: the Prometheus exposition of every registered metric;
- ``/health``: 200 while the process serves HTTP at all (a liveness probe);
- ``/ready``: 200 only when every readiness check passes, else 503.  The body
  is JSON, ``{"ready": false, "checks": {"kafka": "...reason...", ...}}``, one
  entry per check with ``"ok"`` or the reason it failed.

A check is a plain callable that returns when the dependency answers and
raises (any exception; its message becomes the reason) when it does not.  The
checks here actively ask the dependency (a Kafka metadata request, an S3
``HeadBucket``, ClickHouse's ``/ping``) with short timeouts, so that a role
reports not-ready during an outage even when no traffic has hit it yet.
:class:`Readiness` runs them at most once per ``ttl`` seconds, whatever the
probe rate, and never two at a time.

Reasons never carry credentials: URLs are reduced to scheme, host and port.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("snowmelt.health")

Check = Callable[[], None]

#: seconds a dependency has to answer a readiness check
PROBE_TIMEOUT = 2.0


class NotReady(Exception):
    """A readiness check's reason for failing."""


class Readiness:
    """Named checks run together, their result cached for ``ttl`` seconds.

    ``checks`` may be extended after construction (:meth:`add`); the worker
    adds a ``stopping`` check that fails once SIGTERM has been received, so
    that a draining process is taken out of rotation.
    """

    def __init__(self, checks: Mapping[str, Check] | None = None, *, ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.checks: dict[str, Check] = dict(checks or {})
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, bool, dict[str, str]] | None = None
        self._was_ready: bool | None = None

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check
        self._last = None

    def check(self) -> tuple[bool, dict[str, str]]:
        """``(ready, {check name: "ok" or the reason it failed})``."""
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last[0] < self.ttl:
                return self._last[1], dict(self._last[2])
            results: dict[str, str] = {}
            for name, check in self.checks.items():
                try:
                    check()
                    results[name] = "ok"
                except Exception as exc:  # a failing dependency is a result, not an error
                    results[name] = _reason(exc)
            ready = all(r == "ok" for r in results.values())
            if ready != self._was_ready:
                # one line per change, not one per probe
                if ready:
                    log.info("ready")
                else:
                    log.warning("not ready: %s", "; ".join(f"{k}: {v}" for k, v in results.items() if v != "ok"))
                self._was_ready = ready
            self._last = (self.clock(), ready, results)
            return ready, dict(results)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def redact_url(url: str) -> str:
    """``url`` without user info, path or query: ``http://user:pw@host:8123/x?y`` -> ``http://host:8123``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}" if parts.scheme else f"{host}{port}"


# --------------------------------------------------------------------------- checks


def kafka_client_settings(kafka) -> dict[str, Any]:
    """librdkafka settings for a metadata-only client: bootstrap servers and ``kafka.common`` (security)."""
    settings: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap_servers,
                                "client.id": f"{kafka.client_id}-readiness"}
    settings.update(kafka.common)
    return settings


def kafka_check(settings: Mapping[str, Any], topics: Iterable[str] = (), *, timeout: float = PROBE_TIMEOUT,
                admin_factory: Callable[[dict], Any] | None = None) -> Check:
    """A check that passes when a broker answers a metadata request and every topic in ``topics`` exists.

    One client is kept for the process's life (librdkafka reconnects by itself);
    it logs nothing itself: the role's own consumer already logs an outage.
    """
    wanted = [t for t in topics if t]
    state: dict[str, Any] = {}

    def make(conf: dict):
        from confluent_kafka.admin import AdminClient

        return AdminClient(conf)

    factory = admin_factory or make

    def check() -> None:
        client = state.get("client")
        if client is None:
            client = state["client"] = factory({**settings, "log_level": 0,
                                                "socket.connection.setup.timeout.ms": int(timeout * 1000) + 1000})
        try:
            metadata = client.list_topics(timeout=timeout)
        except Exception as exc:
            raise NotReady(f"broker unreachable ({_kafka_error(exc)})") from None
        if not metadata.brokers:
            raise NotReady("broker unreachable (no brokers in metadata)")
        missing = [t for t in wanted if t not in metadata.topics or metadata.topics[t].error is not None]
        if missing:
            raise NotReady(f"topic(s) missing: {', '.join(missing)}")

    return check


def _kafka_error(exc: BaseException) -> str:
    arg = exc.args[0] if getattr(exc, "args", None) else exc
    name = getattr(arg, "name", None)
    return name() if callable(name) else type(exc).__name__


def s3_check(s3, *, timeout: float = PROBE_TIMEOUT, client_factory: Callable[[], Any] | None = None) -> Check:
    """The S3 loader's store: ``HeadBucket`` on ``s3.bucket`` (backend ``s3``) or a writable ``s3.local_dir``."""
    if s3.backend == "local":
        def check_local() -> None:
            path = s3.local_dir
            if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
                raise NotReady(f"local folder {path} is not a writable folder")
        return check_local

    state: dict[str, Any] = {}

    def make():
        import boto3
        from botocore.config import Config

        config = Config(s3={"addressing_style": "path" if s3.path_style else "auto"},
                        connect_timeout=min(timeout, s3.connect_timeout), read_timeout=timeout,
                        retries={"max_attempts": 1, "mode": "standard"})
        return boto3.session.Session().client("s3", endpoint_url=s3.endpoint_url or None,
                                              region_name=s3.region or None, config=config,
                                              verify=s3.ca_bundle or s3.verify)

    factory = client_factory or make
    where = f"s3://{s3.bucket} at {redact_url(s3.endpoint_url) if s3.endpoint_url else 'AWS'}"

    def check() -> None:
        client = state.get("client")
        if client is None:
            client = state["client"] = factory()
        try:
            client.head_bucket(Bucket=s3.bucket)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
            raise NotReady(f"{where} unreachable ({code or type(exc).__name__})") from None

    return check


def clickhouse_check(clickhouse, *, timeout: float = PROBE_TIMEOUT,
                     opener: Callable[..., Any] | None = None) -> Check:
    """The ClickHouse loader's store: the server's ``/ping`` (backend ``server``); chdb is in-process."""
    if clickhouse.backend == "chdb":
        def check_chdb() -> None:
            return None
        return check_chdb

    import urllib.request

    base = redact_url(clickhouse.url)
    open_url = opener or urllib.request.urlopen
    tls: dict[str, Any] = {}
    if base.startswith("https:"):
        import ssl

        context = ssl.create_default_context(cafile=clickhouse.ca_cert or None)
        if not clickhouse.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        tls["context"] = context

    def check() -> None:
        try:
            with open_url(f"{base}/ping", timeout=timeout, **tls) as resp:
                status = getattr(resp, "status", 200)
                if status != 200:
                    raise NotReady(f"ClickHouse at {base} answered {status} to /ping")
        except NotReady:
            raise
        except Exception as exc:
            raise NotReady(f"ClickHouse at {base} unreachable ({type(exc).__name__})") from None

    return check


def flag_check(is_set: Callable[[], bool], reason: str) -> Check:
    """Fails with ``reason`` while ``is_set()`` is true (e.g. the process is stopping)."""
    def check() -> None:
        if is_set():
            raise NotReady(reason)
    return check


# --------------------------------------------------------------------------- HTTP


def _handler(readiness: Readiness, registry) -> type[BaseHTTPRequestHandler]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/ready":
                ready, checks = readiness.check()
                body = json.dumps({"ready": ready, "checks": checks}).encode()
                self._send(200 if ready else 503, body, "application/json")
            elif path in ("/health", "/live"):
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None  # probes every few seconds are not notable events

    return Handler


def serve(host: str, port: int, readiness: Readiness, registry=None) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/ready`` and ``/health`` on ``host:port`` from a daemon thread."""
    from prometheus_client import REGISTRY

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server((host, port), _handler(readiness, registry if registry is not None else REGISTRY))
    thread = threading.Thread(target=server.serve_forever, name="snowmelt-metrics", daemon=True)
    thread.start()
    return server
