"""``snowmelt schemas pull`` against a real HTTP Iglu registry on 127.0.0.1, then offline.

The registry (``http.server`` in a thread) serves a folder in two layouts:
static (``/schemas/vendor/name/format/version`` only, as Iglu Central) and, when
``api`` is on, an Iglu Server's listing (``/api/schemas/vendor[/name[/format]]``,
URIs).  After a pull the registry is stopped and the resolver -- the shipped
schemas, the cache, then an HTTP repository on a closed port -- must resolve
the pulled schemas from the cache without a single connection.
"""
from __future__ import annotations

import errno
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from processor.iglu import LOCAL_CACHE_NAME, HttpRepository, ResolutionError, Resolver
from processor.iglu_pull import PullError, parse_target, pull
from processor.stage import Enricher
from snowmelt.cli import main

SELF_DESC = "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#"
VERSIONS = ["1-0-0", "1-0-1", "1-1-0", "2-0-0"]


def schema(vendor, name, version, required="id"):
    return {"$schema": SELF_DESC, "description": f"test schema {name}",
            "self": {"vendor": vendor, "name": name, "format": "jsonschema", "version": version},
            "type": "object", "properties": {required: {"type": "string"}}, "required": [required],
            "additionalProperties": False}


class Registry:
    def __init__(self, root: Path, api: bool):
        self.root, self.api, self.paths = root, api, []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                registry.paths.append(self.path)
                path = self.path.split("?")[0]
                if path.startswith("/schemas/") and ".." not in path:
                    target = registry.root / path[len("/schemas/"):]
                    if target.is_file():
                        return self._send(200, target.read_bytes())
                if registry.api and path.startswith("/api/schemas/"):
                    parts = [p for p in path[len("/api/schemas/"):].split("/") if p]
                    found = [f for f in registry.root.rglob("*") if f.is_file()
                             and f.relative_to(registry.root).parts[:len(parts)] == tuple(parts)]
                    if found:
                        uris = sorted("iglu:" + f.relative_to(registry.root).as_posix() for f in found)
                        return self._send(200, json.dumps(uris).encode())
                self._send(404, b'{"message":"The schema is not found"}')

            def _send(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["static", "iglu-server"])
def registry(request, tmp_path):
    root = tmp_path / "registry"
    for version in VERSIONS:
        write(root, schema("com.acme", "checkout", version))
    write(root, schema("com.acme", "basket", "1-0-0", required="sku"))
    write(root, schema("com.other", "thing", "1-0-0"))
    served = Registry(root, api=request.param == "iglu-server")
    yield served
    served.stop()


def write(root: Path, body: dict):
    s = body["self"]
    path = root / s["vendor"] / s["name"] / s["format"] / s["version"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def offline_resolver(cache: Path) -> Resolver:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    return Resolver([HttpRepository("Iglu Central", f"http://127.0.0.1:{port}", max_attempts=1, timeout=1)],
                    schema_cache=cache)


def test_parse_target():
    assert str(parse_target("iglu:com.acme/checkout/jsonschema/1-0-1")) == "iglu:com.acme/checkout/jsonschema/1-0-1"
    assert str(parse_target("com.acme/checkout")) == "iglu:com.acme/checkout/jsonschema/*-*-*"
    assert str(parse_target("iglu:com.acme/checkout/jsonschema/1-*-*")) == "iglu:com.acme/checkout/jsonschema/1-*-*"
    assert parse_target("com.acme") == "com.acme"
    with pytest.raises(PullError):
        parse_target("com.acme/a/b/c/d")


def test_pull_one_version_then_resolve_offline_from_the_cache(registry, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    report = pull(["iglu:com.acme/checkout/jsonschema/1-0-1"], cache, repo=registry.url)
    assert [k.uri for k in report.written] == ["iglu:com.acme/checkout/jsonschema/1-0-1"] and not report.errors
    assert json.loads((cache / "com.acme/checkout/jsonschema/1-0-1").read_text())["self"]["version"] == "1-0-1"
    registry.stop()
    # now offline
    tried: list = []

    def refuse(self, address, *args):
        tried.append(address)
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    resolver = offline_resolver(cache)
    ok = resolver.validate({"schema": "iglu:com.acme/checkout/jsonschema/1-0-1", "data": {"id": "x"}})
    assert ok.ok and tried == []
    bad = resolver.validate({"schema": "iglu:com.acme/checkout/jsonschema/1-0-1", "data": {"id": 1}})
    assert not bad.ok and bad.to_json()["error"]["error"] == "ValidationError"
    missing = resolver.lookup_schema("iglu:com.acme/checkout/jsonschema/1-0-0")  # not pulled
    assert isinstance(missing, ResolutionError)
    names = [h.repository for h in missing.lookup_history]
    # the local cache was asked (the schema is not in it) but is not a registry of the resolver config:
    # the history names what Snowplow's would
    assert names == ["Iglu Client Embedded", "Iglu Central"] and LOCAL_CACHE_NAME not in names


def test_pull_every_version_and_a_vendor(registry, tmp_path):
    cache = tmp_path / "cache"
    report = pull(["com.acme/checkout"], cache, repo=registry.url)
    assert sorted(str(k.version) for k in report.written) == VERSIONS and not report.errors
    again = pull(["iglu:com.acme/checkout/jsonschema/1-*-*"], cache, repo=registry.url)
    assert not again.written and sorted(str(k.version) for k in again.unchanged) == VERSIONS[:3]
    vendor = pull(["com.acme"], cache, repo=registry.url)
    if registry.api:
        assert sorted(k.name for k in vendor.written) == ["basket"] and not vendor.errors
        assert not (cache / "com.other").exists()
    else:  # a static registry cannot list a vendor
        assert not vendor.written and "cannot list" in vendor.errors[0]


def test_pull_reports_what_it_cannot_find(registry, tmp_path):
    report = pull(["iglu:com.acme/checkout/jsonschema/9-0-0", "com.acme/nothing"], tmp_path / "c", repo=registry.url)
    assert not report.written and len(report.errors) == 2


def test_pull_refuses_a_schema_that_names_another_key(tmp_path):
    root = tmp_path / "registry"
    body = schema("com.acme", "checkout", "1-0-0")
    path = root / "com.acme/checkout/jsonschema/1-0-1"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(body))
    served = Registry(root, api=False)
    try:
        report = pull(["iglu:com.acme/checkout/jsonschema/1-0-1"], tmp_path / "c", repo=served.url)
    finally:
        served.stop()
    assert not report.written and "describes itself as" in report.errors[0]
    assert not (tmp_path / "c/com.acme/checkout/jsonschema/1-0-1").exists()


def test_cli_pull_into_the_configured_cache_then_enricher_reads_it_offline(registry, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "from-env"
    monkeypatch.setenv("SNOWMELT_IGLU__CACHE_DIR", str(cache))
    code = main(["schemas", "pull", "--repo", registry.url, "iglu:com.acme/basket/jsonschema/1-0-0"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "pulled iglu:com.acme/basket/jsonschema/1-0-0" in out.out and str(cache) in out.out
    assert main(["schemas", "pull", "--repo", registry.url, "iglu:com.acme/nope/jsonschema/1-0-0"]) == 1
    assert main(["schemas", "pull", "not/a/valid/target/x"]) == 2
    registry.stop()

    from snowmelt.config import load_config, schema_cache_dir
    assert schema_cache_dir(load_config(None)) == str(cache)
    enricher = Enricher.from_files(None, None, (), schema_cache_dir(load_config(None)))
    tried: list = []

    def refuse(self, address, *args):
        tried.append(address)
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    result = enricher.resolver.validate({"schema": "iglu:com.acme/basket/jsonschema/1-0-0", "data": {"sku": "W"}})
    assert result.ok and tried == []
