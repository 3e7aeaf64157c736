"""A lean HTTP/1.1 client for the load generator: requests encoded once, written on kept-alive connections.

The end-to-end bench measures the pipeline on two cores with its load generator on the same two.
aiohttp's client cost the generator 381-414 µs of CPU a request (a URL object, header multidicts, a
response object and its timers each time): at 10,000 events/s, 4.5 of the 40 CPU-seconds in a 20-second
step.  Here a request is the bytes :func:`encode_request` made before the clock started; a
:class:`Pool` connection writes them and httptools' parser (llhttp, as aiohttp's own) reads the
answer: 149-162 µs a request, about half of it in the event loop's system calls (``bench/RESULTS.md``,
"the load generator's own CPU").

What it does not do: redirects, cookies, compression, TLS, proxies, pipelining.  An answer is complete
when the parser says so (``Content-Length`` or chunked); a connection is closed and not reused when the
server says ``Connection: close``, when its answer is read to the end of the connection, or after an
error or a timeout.  Errors are :class:`ConnectionError` (the connection failed, was refused or closed
before the answer was complete, or the answer was not HTTP) and :class:`TimeoutError`.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httptools

__all__ = ["Pool", "encode_request"]


def encode_request(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The bytes of one request: request line, ``Host``, ``headers``, ``Content-Length`` when there is a body."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class _Connection(asyncio.Protocol):
    """One connection: at most one request in flight; its answer's status resolves :attr:`waiter`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.reusable = True

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(ConnectionError(f"not an HTTP answer: {exc}"))

    def eof_received(self):
        return False  # the transport closes itself; connection_lost settles the waiter

    def connection_lost(self, exc) -> None:
        self.fail(ConnectionError(f"connection closed before the answer was complete{f': {exc}' if exc else ''}"))

    # httptools' callback
    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.get_status_code())

    def send(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        self.waiter = loop.create_future()
        self.transport.write(data)
        return self.waiter

    def fail(self, exc: BaseException) -> None:
        """Settle the request in flight with ``exc`` and close the connection for good."""
        self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Pool:
    """At most ``limit`` connections to ``host``:``port``, kept alive between requests (as aiohttp's
    ``TCPConnector(limit=...)``): a request waits for a free one when all are busy."""

    def __init__(self, host: str, port: int, *, limit: int = 64, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self.connections_opened = 0

    async def request(self, data: bytes) -> int:
        """Send one encoded request (:func:`encode_request`); the answer's status code once it is read whole."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            conn = None
            while self._idle and conn is None:  # one the server closed while it was idle is dropped
                conn = self._idle.pop()
                if not conn.reusable or conn.transport.is_closing():
                    self._all.discard(conn)
                    conn = None
            if conn is None:
                conn = await self._connect(loop)
            timer = loop.call_later(self.timeout, conn.fail, TimeoutError(f"no answer within {self.timeout} s"))
            try:
                status = await conn.send(data, loop)
            except BaseException:
                conn.close()  # an error, a timeout or a cancelled wait: this connection's state is unknown
                self._all.discard(conn)
                raise
            finally:
                timer.cancel()
            if conn.reusable:
                self._idle.append(conn)
            else:
                self._all.discard(conn)
            return status

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(_Connection, self.host, self.port),
                                             self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no connection within {self.timeout} s") from None
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.connections_opened += 1
        self._all.add(conn)
        return conn

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()
