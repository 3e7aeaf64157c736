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
meanwhile.  A body that cannot be decoded raises ``web.RequestPayloadError``,
as aiohttp's own decoding did.
"""
from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

__all__ = ["read_bounded", "SERVER_OPTIONS"]

#: aiohttp settings of every server whose handlers read bodies with :func:`read_bounded`.
SERVER_OPTIONS = {"auto_decompress": False}

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


async def read_bounded(request: web.BaseRequest, limit: int) -> bytes | None:
    """The request body, decoded, or None as soon as it is longer than ``limit`` bytes (the rest is not read)."""
    if request.content_length is not None and request.content_length > limit:
        return None  # refused before reading (a compressed body that long would not inflate to less)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    first = await request.content.readany()
    # aiohttp decoded it already on a server without SERVER_OPTIONS: it counts the compressed bytes it read
    if not first or encoding in ("", "identity") or request.content.total_compressed_bytes is not None:
        return await _read(request, limit, first)
    if encoding not in _WBITS:
        raise web.RequestPayloadError(f"unsupported Content-Encoding {encoding!r}")
    return await _inflate(request, limit, encoding, first)


async def _read(request: web.BaseRequest, limit: int, chunk: bytes) -> bytes | None:
    chunks, size = [], 0
    while chunk:
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        chunk = await request.content.readany()
    return b"".join(chunks)


async def _inflate(request: web.BaseRequest, limit: int, encoding: str, chunk: bytes) -> bytes | None:
    loop = asyncio.get_running_loop()
    raw_deflate = encoding == "deflate" and chunk[0] & 0x0F != 8  # no zlib header, as some clients send it
    inflater = zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else _WBITS[encoding])
    chunks, size = [], 0
    while chunk:
        pending = chunk
        while pending:
            if inflater.eof:
                raise web.RequestPayloadError(f"data after the end of the {encoding} body")
            try:
                out = await loop.run_in_executor(None, inflater.decompress, pending, limit + 1 - size)
            except zlib.error as exc:
                raise web.RequestPayloadError(f"cannot decode the {encoding} body: {exc}") from None
            size += len(out)
            if size > limit:
                return None
            chunks.append(out)
            pending = inflater.unconsumed_tail
        chunk = await request.content.readany()
    if not inflater.eof:
        raise web.RequestPayloadError(f"truncated {encoding} body")
    return b"".join(chunks)
