"""Bad-row timestamps: exact milliseconds, as ISO 8601 in UTC."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from processor.badrows import iso_timestamp


def test_every_millisecond_is_written_exactly():
    for ms in (0, 1, 999, 1_700_000_000_123, 1_700_000_000_999, 253_402_300_799_999):
        expected = datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        assert iso_timestamp(ms) == expected
        assert iso_timestamp(ms) == expected  # the second call, from the last-value memo


def test_now_is_now():
    before = time.time()
    text = iso_timestamp()
    after = time.time()
    stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    assert before - 0.001 <= stamp <= after
