"""Reading a request body with a bound, for every server of the project (collector, ``snowmelt up``, SQL).

aiohttp's ``request.read()`` raises when the body grows past
``client_max_size``, and the exception's traceback keeps the part already
read alive until a full garbage collection; a flood of refused bodies then
holds hundreds of megabytes.  :func:`read_bounded` stops at the limit and
returns ``None`` instead: nothing refers to what was read once it returns.

Bodies sent with ``Content-Encoding`` (gzip, deflate) are decompressed here,
never on the event loop: every server of the project runs aiohttp with
:data:`SERVER_OPTIONS` (``auto_decompress`` off, so aiohttp hands over the
bytes as sent), and each compressed chunk is inflated on a thread (zlib
releases the interpreter while it works) with the output capped at what the
limit still allows.  The limit is thus on decompressed bytes, a compression
bomb costs no more than the limit, and the loop goes on answering others
meanwhile.  The SQL endpoint also takes ``lz4`` (an LZ4 frame), which
ClickHouse's clients send.  A body that cannot be decoded raises
``web.RequestPayloadError``, as aiohttp's own decoding did.
"""
from __future__ import annotations

import asyncio
import zlib
from typing import Callable

from aiohttp import web

__all__ = ["read_bounded", "SERVER_OPTIONS"]

#: aiohttp settings of every server whose handlers read bodies with :func:`read_bounded`.
SERVER_OPTIONS = {"auto_decompress": False}

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
#: How much of a body's start ``head`` is shown, at most.
HEAD_BYTES = 64 * 1024


async def read_bounded(request: web.BaseRequest, limit: int, *, lz4: bool = False,
                       head: Callable[[bytes], bool] | None = None) -> bytes | None:
    """The request body, decoded, or None as soon as it is longer than ``limit`` bytes (the rest is not read).

    ``lz4``: a body with ``Content-Encoding: lz4`` (an LZ4 frame, what ClickHouse's
    clients send) is decoded too.  ``head``: called with the body's start (up to
    :data:`HEAD_BYTES`, decoded) as it arrives; once it returns True the reading
    stops and what was read so far is returned, however long the body (a server
    that knows from a statement's start that it will refuse it).
    """
    if head is None and request.content_length is not None and request.content_length > limit:
        return None  # refused before reading (a compressed body that long would not inflate to less)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    first = await request.content.readany()
    # aiohttp decoded it already on a server without SERVER_OPTIONS: it counts the compressed bytes it read
    if not first or encoding in ("", "identity") or request.content.total_compressed_bytes is not None:
        return await _read(request, limit, first, head)
    if encoding in _WBITS:
        raw_deflate = encoding == "deflate" and first[0] & 0x0F != 8  # no zlib header, as some clients send it
        decoder = _Zlib(-zlib.MAX_WBITS if raw_deflate else _WBITS[encoding])
    elif encoding == "lz4" and lz4:
        decoder = _Lz4()
    else:
        raise web.RequestPayloadError(f"unsupported Content-Encoding {encoding!r}")
    return await _decode(request, limit, encoding, decoder, first, head)


class _Head:
    """Shows ``head`` the body's start while it is shorter than :data:`HEAD_BYTES`."""

    def __init__(self, head: Callable[[bytes], bool] | None) -> None:
        self.head = head
        self.seen = 0

    def stop(self, chunks: list[bytes], size: int) -> bool:
        if self.head is None or self.seen >= HEAD_BYTES or size == self.seen:
            return False
        self.seen = size
        return self.head(b"".join(chunks)[:HEAD_BYTES])


async def _read(request: web.BaseRequest, limit: int, chunk: bytes, head=None) -> bytes | None:
    chunks, size, start = [], 0, _Head(head)
    while chunk:
        size += len(chunk)
        chunks.append(chunk)
        if start.stop(chunks, size):
            break
        if size > limit:
            return None
        chunk = await request.content.readany()
    return b"".join(chunks)


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self.inflater = zlib.decompressobj(wbits)

    @property
    def eof(self) -> bool:
        return self.inflater.eof

    def step(self, data: bytes, room: int) -> tuple[bytes, bytes, bool]:
        """Up to ``room`` bytes of output; the input left, and whether a next step has more to give."""
        out = self.inflater.decompress(data, room)
        tail = self.inflater.unconsumed_tail
        return out, tail, bool(tail)


class _Lz4:
    def __init__(self) -> None:
        import lz4.frame  # clickhouse-connect's dependency, as the clients that send lz4 bodies

        self.decompressor = lz4.frame.LZ4FrameDecompressor()

    @property
    def eof(self) -> bool:
        return self.decompressor.eof

    def step(self, data: bytes, room: int) -> tuple[bytes, bytes, bool]:
        try:
            out = self.decompressor.decompress(data, max_length=room)
        except RuntimeError as exc:  # what lz4.frame raises for data that is not a frame
            raise zlib.error(str(exc)) from None
        if self.decompressor.eof and self.decompressor.unused_data:
            raise zlib.error("data after the end of the frame")
        return out, b"", not self.decompressor.needs_input and not self.decompressor.eof


async def _decode(request: web.BaseRequest, limit: int, encoding: str, decoder, chunk: bytes,
                  head=None) -> bytes | None:
    """Decode the body on threads, the output capped at what ``limit`` still allows (see the module docstring)."""
    loop = asyncio.get_running_loop()
    chunks, size, start = [], 0, _Head(head)
    while chunk:
        pending, more = chunk, True
        while more:
            if decoder.eof and pending:
                raise web.RequestPayloadError(f"data after the end of the {encoding} body")
            try:
                out, pending, more = await loop.run_in_executor(None, decoder.step, pending, limit + 1 - size)
            except zlib.error as exc:
                raise web.RequestPayloadError(f"cannot decode the {encoding} body: {exc}") from None
            size += len(out)
            chunks.append(out)
            if start.stop(chunks, size):
                return b"".join(chunks)
            if size > limit:
                return None
        chunk = await request.content.readany()
    if not decoder.eof:
        raise web.RequestPayloadError(f"truncated {encoding} body")
    return b"".join(chunks)
