"""The Iglu resolver against a real HTTP Iglu server on 127.0.0.1.

The server (``http.server`` in a thread) serves ``/schemas/vendor/name/format/
version`` from a tmp dir, counts requests, can answer 500 for the first N
requests, can require an ``apikey`` header, and can hold a request open to
provoke a client timeout.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from processor.iglu import HttpRepository, ResolutionError, Resolver, SchemaKey

LINK_CLICK = {
    "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
    "self": {"vendor": "com.acme", "name": "link_click", "format": "jsonschema", "version": "1-0-0"},
    "type": "object",
    "properties": {"targetUrl": {"type": "string", "minLength": 1}},
    "required": ["targetUrl"],
    "additionalProperties": False,
}
KEY = "iglu:com.acme/link_click/jsonschema/1-0-0"
EVENT = json.dumps({"schema": KEY, "data": {"targetUrl": "https://example.com"}})


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is expected here


class IgluServer:
    def __init__(self, root):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (path, apikey header)
        self.fail_next = 0
        self.required_apikey: str | None = None
        self.hold = threading.Event()  # set = release held requests
        self.hold_paths: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with server.lock:
                    server.requests.append((self.path, self.headers.get("apikey")))
                    fail = server.fail_next > 0
                    if fail:
                        server.fail_next -= 1
                if self.path in server.hold_paths:
                    server.hold.wait(30)
                if fail:
                    return self._send(500, b"boom")
                if server.required_apikey is not None and self.headers.get("apikey") != server.required_apikey:
                    return self._send(401, b"bad apikey")
                prefix = "/schemas/"
                target = server.root / self.path[len(prefix):] if self.path.startswith(prefix) else None
                if target is None or ".." in self.path or not target.is_file():
                    return self._send(404, b'{"message":"The schema is not found"}')
                self._send(200, target.read_bytes())

            def _send(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def publish(self, schema):
        s = schema["self"]
        path = self.root / s["vendor"] / s["name"] / s["format"] / s["version"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema))

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while True:  # poll until the socket accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("Iglu test server did not start")

    def stop(self):
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def count(self, path=None):
        with self.lock:
            return len([r for r in self.requests if path is None or r[0] == path])


@pytest.fixture
def iglu_server(tmp_path):
    server = IgluServer(tmp_path / "registry")
    server.publish(LINK_CLICK)
    server.start()
    yield server
    server.stop()


def make_resolver(server, apikey=None, **kwargs):
    config = {
        "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
        "data": {
            "cacheSize": 100,
            "cacheTtl": 600,
            "repositories": [
                {
                    "name": "Test Iglu Server",
                    "priority": 0,
                    "vendorPrefixes": ["com.acme"],
                    "connection": {"http": {"uri": server.uri + "/", "apikey": apikey}},
                }
            ],
        },
    }
    kwargs.setdefault("http_backoff", 0.001)
    kwargs.setdefault("http_timeout", 5.0)
    return Resolver.from_config(config, **kwargs)


SCHEMA_PATH = "/schemas/com.acme/link_click/jsonschema/1-0-0"


def test_resolves_over_http_and_caches(iglu_server):
    resolver = make_resolver(iglu_server)
    out = resolver.validate(EVENT)
    assert out.ok, out
    assert iglu_server.requests == [(SCHEMA_PATH, None)]
    # second lookup and validation: served from the cache, no request
    assert resolver.validate(EVENT).ok
    assert resolver.lookup_schema(KEY) == LINK_CLICK
    assert iglu_server.count() == 1
    bad = resolver.validate(json.dumps({"schema": KEY, "data": {}}))
    assert bad.to_json()["error"]["error"] == "ValidationError"
    assert iglu_server.count() == 1


def test_apikey_header_is_sent(iglu_server):
    iglu_server.required_apikey = "s3cret-key"
    assert make_resolver(iglu_server, apikey="s3cret-key").validate(EVENT).ok
    assert iglu_server.requests == [(SCHEMA_PATH, "s3cret-key")]


def test_wrong_apikey_is_repo_failure_without_retry(iglu_server):
    iglu_server.required_apikey = "s3cret-key"
    out = make_resolver(iglu_server, apikey="wrong").validate(EVENT)
    assert isinstance(out, ResolutionError)
    history = {h.repository: h for h in out.lookup_history}["Test Iglu Server"]
    assert history.attempts == 1 and history.errors[0].error == "RepoFailure"
    assert "401" in history.errors[0].message
    assert iglu_server.count() == 1


def test_retries_5xx_then_succeeds(iglu_server):
    iglu_server.fail_next = 2
    resolver = make_resolver(iglu_server, http_max_attempts=3)
    assert resolver.validate(EVENT).ok
    assert iglu_server.count(SCHEMA_PATH) == 3


def test_retries_are_bounded(iglu_server):
    iglu_server.fail_next = 10
    resolver = make_resolver(iglu_server, http_max_attempts=3)
    out = resolver.validate(EVENT)
    assert isinstance(out, ResolutionError)
    assert iglu_server.count(SCHEMA_PATH) == 3
    entry = out.to_json()["error"]["lookupHistory"][-1]
    assert entry["repository"] == "Test Iglu Server" and entry["attempts"] == 3
    assert entry["errors"][0]["error"] == "RepoFailure" and "500" in entry["errors"][0]["message"]


def test_not_found_is_resolution_error_naming_the_repo(iglu_server):
    resolver = make_resolver(iglu_server)
    missing = "iglu:com.acme/missing/jsonschema/1-0-0"
    out = resolver.validate(json.dumps({"schema": missing, "data": {}}))
    assert isinstance(out, ResolutionError)
    body = out.to_json()
    assert body["schemaKey"] == missing
    history = body["error"]["lookupHistory"]
    assert [h["repository"] for h in history] == ["Iglu Client Embedded", "Test Iglu Server"]
    assert history[1]["errors"] == [{"error": "NotFound"}] and history[1]["attempts"] == 1
    assert iglu_server.count() == 1  # 404 is not retried
    # the miss is cached too
    assert isinstance(resolver.lookup_schema(missing), ResolutionError)
    assert iglu_server.count() == 1


def test_unreachable_server_is_client_failure(iglu_server):
    resolver = make_resolver(iglu_server, http_max_attempts=2)
    iglu_server.stop()
    out = resolver.lookup_schema(KEY)
    assert isinstance(out, ResolutionError)
    entry = out.lookup_history[-1]
    assert entry.repository == "Test Iglu Server" and entry.attempts == 2
    assert entry.errors[0].error == "ClientFailure"


def test_timeout_is_client_failure(iglu_server):
    iglu_server.hold_paths.add(SCHEMA_PATH)
    resolver = make_resolver(iglu_server, http_timeout=0.3, http_max_attempts=1)
    out = resolver.lookup_schema(KEY)
    iglu_server.hold.set()
    assert isinstance(out, ResolutionError)
    entry = out.lookup_history[-1]
    assert entry.errors[0].error == "ClientFailure" and "timed out" in entry.errors[0].message


def test_embedded_registry_is_asked_before_http(iglu_server):
    resolver = make_resolver(iglu_server)
    out = resolver.lookup_schema("iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0")
    assert isinstance(out, dict)
    assert iglu_server.count() == 0


def test_repository_url_layout(iglu_server):
    repo = HttpRepository("x", iglu_server.uri + "/")
    assert repo.schema_url(SchemaKey.parse(KEY)) == iglu_server.uri + SCHEMA_PATH
    assert repo.fetch(SchemaKey.parse(KEY)).schema == LINK_CLICK
