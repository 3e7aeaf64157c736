"""Request bodies that the hostile tests and ``bench/hostile_bench.py`` both send."""
from __future__ import annotations

import zlib


def gzip_of_zeros(size: int) -> bytes:
    """gzip of ``size`` zero bytes (rounded down to whole MiB), compressed a megabyte at a time.

    Never held whole: the test process's peak memory is inherited by the
    fuzzing subprocesses the suite starts later (ru_maxrss survives exec).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(size >> 20)) + compressor.flush()
