"""Reading a request body with a bound, for every server of the project (collector, ``snowmelt up``, SQL).

aiohttp's ``request.read()`` raises when the body grows past
``client_max_size``, and the exception's traceback keeps the part already
read alive until a full garbage collection; a flood of refused bodies then
holds hundreds of megabytes.  :func:`read_bounded` stops at the limit and
returns ``None`` instead: nothing refers to what was read once it returns.
Bodies sent with ``Content-Encoding`` are decompressed by aiohttp in bounded
steps as they are read, so the limit is on decompressed bytes and a
compression bomb costs no more than the limit.
"""
from __future__ import annotations

from aiohttp import web

__all__ = ["read_bounded"]


async def read_bounded(request: web.BaseRequest, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than ``limit`` bytes (the rest is not read)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
