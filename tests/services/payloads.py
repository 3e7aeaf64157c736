"""What the tests' tracker requests carry: the tp2 path, the payload_data schema, and request bodies that
the hostile tests and ``bench/hostile_bench.py`` both send."""
from __future__ import annotations

import zlib

#: the collector's path for tracker protocol 2 (POST batches, and GET as well)
TP2 = "/com.snowplowanalytics.snowplow/tp2"
#: the schema of a tp2 POST body
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


def gzip_of_zeros(size: int) -> bytes:
    """gzip of ``size`` zero bytes (rounded down to whole MiB), compressed a megabyte at a time.

    Never held whole: the test process's peak memory is inherited by the
    fuzzing subprocesses the suite starts later (ru_maxrss survives exec).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(size >> 20)) + compressor.flush()
