"""An HTTP proxy that answers a share of requests with S3 errors, for the fault-injection tests.

``S3FaultProxy(upstream_url)`` listens on a free port of 127.0.0.1 (``url``)
and forwards every request to ``upstream_url`` (a SeaweedFS S3 gateway) as it
came: same method, path, query, headers -- the ``Host`` header included, so a
SigV4 signature made for the proxy's address still verifies upstream -- and
body, and hands the answer back.  While :attr:`fail_share` is above zero, that
share of requests (drawn from a seeded random generator) is answered by the
proxy itself, after reading the whole body, with one of S3's own error
documents instead:

* ``503 SlowDown`` ("Please reduce your request rate."), S3's throttling, and
* ``500 InternalError`` ("We encountered an internal error. Please try again."),
  in the proportion ``internal_error_share`` of the injected errors.

``delay`` adds that many seconds before every forwarded request (a slow store).
:attr:`injected` counts the injected answers by status and :attr:`forwarded`
the requests that reached the store, each by method.

While :attr:`hold_writes` is true, a ``PUT`` is forwarded and the store's
answer is then held back until :meth:`release` (or :meth:`close`): the
object is in the store but the writer does not know it yet, the moment to
kill a loader between a write and its commit.  :attr:`held` lists the paths
of the writes whose answers were held.

The proxy runs an aiohttp server on its own event loop in a daemon thread::

    with S3FaultProxy(seaweedfs.endpoint_url, fail_share=0.3) as proxy:
        ... point the S3 client at proxy.url ...
        proxy.fail_share = 0          # the store heals
"""
from __future__ import annotations

import asyncio
import collections
import random
import threading
import uuid

import aiohttp
from aiohttp import web

from tests.services.server import LoopThreadServer, free_port

# hop-by-hop headers are the proxy's own business; aiohttp sets the length of what it sends
_SKIP_REQUEST = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                           "transfer-encoding"})
_SKIP_RESPONSE = _SKIP_REQUEST | {"content-length", "content-encoding"}

_ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
}


def s3_error_body(code: str, message: str, resource: str) -> bytes:
    """S3's XML error document."""
    request_id = uuid.uuid4().hex[:16].upper()
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>").encode()


class S3FaultProxy(LoopThreadServer):
    """See the module docstring."""

    thread_name = "s3-fault-proxy"

    def __init__(self, upstream_url: str, *, fail_share: float = 0.0, internal_error_share: float = 0.25,
                 delay: float = 0.0, seed: int = 1):
        super().__init__()
        self.upstream_url = upstream_url.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.fail_share = fail_share
        self.internal_error_share = internal_error_share
        self.delay = delay
        self.hold_writes = False
        self.held: list[str] = []
        self._release: asyncio.Event | None = None
        self.injected: collections.Counter = collections.Counter()  # (status, method) -> count
        self.forwarded: collections.Counter = collections.Counter()  # method -> count
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ counts

    def held_paths(self) -> list[str]:
        with self._lock:
            return list(self.held)

    def release(self) -> None:
        """Stop holding writes and answer those held (their writers may be gone)."""
        with self._lock:
            self.hold_writes = False
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def injected_total(self, status: int | None = None) -> int:
        with self._lock:
            return sum(n for (s, _m), n in self.injected.items() if status is None or s == status)

    def forwarded_total(self, method: str | None = None) -> int:
        with self._lock:
            return sum(n for m, n in self.forwarded.items() if method is None or m == method)

    # ------------------------------------------------------------------ serving

    def _draw(self) -> int | None:
        """The status to inject for the next request, or None to forward it."""
        with self._lock:
            if self.fail_share <= 0 or self._rng.random() >= self.fail_share:
                return None
            return 500 if self._rng.random() < self.internal_error_share else 503

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        status = self._draw()
        if status is not None:
            with self._lock:
                self.injected[(status, request.method)] += 1
            code, message = _ERRORS[status]
            return web.Response(status=status, body=s3_error_body(code, message, request.path),
                                content_type="application/xml", headers={"Retry-After": "1"} if status == 503 else None)
        if self.delay > 0:
            await asyncio.sleep(self.delay)  # the slow store being simulated
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _SKIP_REQUEST]
        try:
            async with self._session.request(request.method, self.upstream_url + request.path_qs, headers=headers,
                                             data=body if body else None, allow_redirects=False) as upstream:
                payload = await upstream.read()
                out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _SKIP_RESPONSE]
                status = upstream.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return web.Response(status=502, text=f"upstream: {exc!r}")
        with self._lock:
            self.forwarded[request.method] += 1
            hold = self.hold_writes and request.method == "PUT"
            if hold:
                self.held.append(request.path)
        if hold:
            await self._release.wait()
        response = web.Response(status=status, body=payload)
        for k, v in out_headers:
            response.headers.add(k, v)
        if request.method == "HEAD":
            # a HEAD answer carries the object's length, not a body
            length = upstream.headers.get("Content-Length")
            if length is not None:
                response.headers["Content-Length"] = length
        return response

    async def _serve(self) -> None:
        # the client neither adds headers nor decompresses: the store sees the request as signed
        self._session = aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("User-Agent", "Accept",
                                                                                          "Accept-Encoding",
                                                                                          "Content-Type"),
                                              timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._release = asyncio.Event()
        try:
            await self._until_stopped()
        finally:
            await runner.cleanup()
            await self._session.close()

    def close(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self.release()  # the writes held are answered, so that their handlers end
        super().close()
