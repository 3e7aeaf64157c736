"""A local HTTP stub for the enrichments that call web APIs (no network beyond 127.0.0.1).

``HttpStub`` runs a threaded :mod:`http.server` on ``127.0.0.1:0`` (a free
port), records every request it receives and answers from canned responses::

    with HttpStub() as stub:
        stub.route("GET", "/api/users/42", {"name": "Ada"})
        stub.route("POST", "/lookup", lambda req: (200, {"echo": req.json}))
        ... stub.url + "/api/users/42" ...
        assert stub.requests[0].path == "/api/users/42"

A route's response is a JSON-able value (served with status 200), a
``(status, value)`` tuple, or a callable taking the :class:`Request` and
returning either.  ``delay`` makes a route answer late (to test client
timeouts) by waiting on an event that :meth:`HttpStub.close` sets, so the
stub never sleeps past the test.  Unknown paths get a 404.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit




@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Route:
    response: Any
    delay: float = 0.0


@dataclass
class HttpStub:
    routes: dict[tuple[str, str], _Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                stub.requests.append(request)
                route = stub.routes.get((self.command, parts.path))
                if route is None:
                    status, value = 404, {"error": "no such route"}
                else:
                    if route.delay:
                        stub._release.wait(route.delay)
                    response = route.response(request) if callable(route.response) else route.response
                    status, value = response if isinstance(response, tuple) else (200, response)
                data = value if isinstance(value, bytes) else json.dumps(value).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            do_GET = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def route(self, method: str, path: str, response: Any | Callable[[Request], Any], *,
              delay: float = 0.0) -> None:
        self.routes[(method.upper(), path)] = _Route(response, delay)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "HttpStub":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
