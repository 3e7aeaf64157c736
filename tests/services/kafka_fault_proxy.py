"""A Kafka wire-protocol proxy that refuses a client's offset reads, for the fault-injection tests.

``KafkaFaultProxy(upstream_port)`` listens on a free port of 127.0.0.1
(:attr:`port`) and relays every Kafka request and response between its
clients and the broker listening on ``upstream_port`` (a callable, read at
each connection, may stand for a port not chosen yet).  Start the broker
with ``advertised.listeners`` set to the proxy's address, so that clients
come back through it after their first metadata request.

Requests are relayed frame by frame (a 4-byte size, then the request).  An
``OffsetFetch`` request (API key 9) from the client named ``client_id`` is
numbered from 1; while :attr:`refuse` (a predicate on that number) is true,
it is not relayed: the proxy answers it itself with the group-level error
``NOT_COORDINATOR`` (16) and no partitions, the answer a broker gives while
it is no longer, or not yet, the group's coordinator (as after a stall).
:attr:`offset_fetches` counts those requests and :attr:`refused` the
refused ones.

The answer is encoded for the request's version: ``OffsetFetch`` v2 to v9
(v6 on in the flexible encoding, v8 on with one entry per group).

A request of that client whose API key is in :attr:`swallow` is neither
relayed nor answered (:attr:`swallowed` counts them): with ``{OFFSET_COMMIT}``,
a coordinator that stopped answering commits (the client's commit waits out
its request timeout, and its offsets do not move); with ``{HEARTBEAT,
JOIN_GROUP}``, a client that can no longer get into its group (its session
times out and its join requests go nowhere); with ``{FETCH}``, a member that
holds its partitions and never gets a record of them.

The proxy runs an asyncio server on its own event loop in a daemon thread::

    with KafkaFaultProxy(lambda: broker.port, client_id="loader", refuse=lambda n: n >= 2) as proxy:
        ... start the broker advertising 127.0.0.1:{proxy.port} ...
"""
from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from typing import Callable

from tests.services.server import LoopThreadServer, free_port

#: the ``client.id`` a test gives the client under test (the ``proxied_kafka_broker`` fixture's proxy)
PROXIED_CLIENT_ID = "snowmelt-under-test"
FETCH = 1
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
JOIN_GROUP = 11
HEARTBEAT = 12
NOT_COORDINATOR = 16


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def request_header(frame: bytes) -> tuple[int, int, int, str | None, int]:
    """``(api_key, api_version, correlation_id, client_id, where the header ends)`` of a request frame
    (without its size).  The header's tagged fields, in the flexible versions, are not read."""
    api_key, version, correlation_id = struct.unpack_from(">hhi", frame, 0)
    (length,) = struct.unpack_from(">h", frame, 8)
    client_id = None if length < 0 else frame[10:10 + length].decode("utf-8", "replace")
    return api_key, version, correlation_id, client_id, 10 + max(length, 0)


def offset_fetch_group(frame: bytes, version: int, header_end: int) -> str:
    """The group an ``OffsetFetch`` request (v8 on: its first group) asks about."""
    at = header_end
    if version >= 6:
        tags, at = _read_uvarint(frame, at)  # the header's tagged fields: none expected
        for _ in range(tags):
            _tag, at = _read_uvarint(frame, at)
            size, at = _read_uvarint(frame, at)
            at += size
    if version >= 8:
        _groups, at = _read_uvarint(frame, at)
    if version >= 6:
        length, at = _read_uvarint(frame, at)
        length -= 1
    else:
        (length,) = struct.unpack_from(">h", frame, at)
        at += 2
    return frame[at:at + length].decode("utf-8", "replace")


def offset_fetch_refusal(version: int, correlation_id: int, group: str, error: int = NOT_COORDINATOR) -> bytes:
    """An ``OffsetFetch`` response frame (with its size) holding a group-level ``error`` and no partitions."""
    flexible = version >= 6
    body = bytearray()
    if version >= 3:
        body += struct.pack(">i", 0)  # throttle_time_ms
    if version >= 8:
        name = group.encode()
        body += _uvarint(2) + _uvarint(len(name) + 1) + name  # one group
        body += _uvarint(1)  # no topics
        body += struct.pack(">h", error) + _uvarint(0)
    else:
        body += _uvarint(1) if flexible else struct.pack(">i", 0)  # no topics
        body += struct.pack(">h", error)
    if flexible:
        body += _uvarint(0)
    header = struct.pack(">i", correlation_id) + (_uvarint(0) if flexible else b"")
    payload = header + bytes(body)
    return struct.pack(">i", len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One Kafka frame: its 4-byte size, and what follows it."""
    size = await reader.readexactly(4)
    return size, await reader.readexactly(struct.unpack(">i", size)[0])


class KafkaFaultProxy(LoopThreadServer):
    """See the module docstring."""

    thread_name = "kafka-fault-proxy"

    def __init__(self, upstream_port: Callable[[], int], *, client_id: str,
                 refuse: Callable[[int], bool] = lambda n: False) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.client_id = client_id
        self.refuse = refuse
        self.port = free_port()
        self.offset_fetches = 0
        self.refused = 0
        self.swallow: frozenset[int] = frozenset()
        self.swallowed = 0
        self._lock = threading.Lock()

    def _count(self) -> bool:
        """Count an OffsetFetch of the client; whether to refuse it."""
        with self._lock:
            self.offset_fetches += 1
            refuse = bool(self.refuse(self.offset_fetches))
            self.refused += refuse
            return refuse

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.upstream_port())
        except OSError:
            client_w.close()
            return
        write_lock = asyncio.Lock()  # relayed responses and the proxy's own answers, a frame at a time

        async def to_client(data: bytes) -> None:
            async with write_lock:
                client_w.write(data)
                await client_w.drain()

        async def requests() -> None:
            while True:
                size, frame = await _read_frame(client_r)
                api_key, version, correlation_id, client_id, header_end = request_header(frame)
                if api_key == OFFSET_FETCH and client_id == self.client_id and version >= 2 and self._count():
                    await to_client(offset_fetch_refusal(version, correlation_id,
                                                         offset_fetch_group(frame, version, header_end)))
                    continue
                if api_key in self.swallow and client_id == self.client_id:
                    with self._lock:
                        self.swallowed += 1
                    continue
                upstream_w.write(size + frame)
                await upstream_w.drain()

        async def responses() -> None:
            while True:
                size, frame = await _read_frame(upstream_r)
                await to_client(size + frame)

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_w, upstream_w):
                with contextlib.suppress(Exception):
                    writer.close()

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        try:
            await self._until_stopped()
        finally:
            server.close()
            relays = asyncio.all_tasks() - {asyncio.current_task()}
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            await server.wait_closed()
