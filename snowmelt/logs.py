"""Logging set-up: human-readable text or one JSON object per line."""
from __future__ import annotations

import json
import logging
import re
import sys
import time

from snowmelt.config import LoggingConfig


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Lets a message through once per ``window`` seconds.

    Client libraries log every reconnect attempt; an operator needs one line
    per outage, not ten a second.  The next line after a quiet window says how
    many repeats were held back.  Messages that differ only in their numbers
    are repeats (librdkafka's "failed: Connection refused (after 3ms in state
    CONNECT)" counts its milliseconds).
    """

    def __init__(self, window: float = 60.0, clock=time.monotonic):
        super().__init__()
        self.window = window
        self.clock = clock
        self.seen: dict[tuple, list] = {}  # key -> [last emitted, suppressed count]

    def filter(self, record: logging.LogRecord) -> bool:
        # the formatted text: confluent-kafka logs "%s [%s] %s" with librdkafka's line as an argument
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted is told apart by its template alone
            text = str(record.msg)
        key = (record.name, record.levelno, _DIGITS.sub("#", text))
        now = self.clock()
        entry = self.seen.get(key)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            return False
        if entry is not None and entry[1]:
            record.msg = f"{record.msg} (repeated {entry[1]} more times in the last {self.window:.0f}s)"
        self.seen[key] = [now, 0]
        if len(self.seen) > 1000:
            self.seen.clear()
        return True


class SummaryFilter(logging.Filter):
    """At most one line per ``window`` seconds for records with the same message template.

    For what a client can trigger at will (aiohttp's "Error handling request
    from %s" for each malformed request): the arguments (the peer's address)
    are ignored in the key, so a flood from many addresses is still one line
    per window, which says how many were held back since the previous one.  A
    record's traceback is reduced to one line (the exception's type and
    message): the cause is the client's bytes, not our code.
    """

    def __init__(self, window: float = 60.0, clock=time.monotonic):
        super().__init__()
        self.window = window
        self.clock = clock
        self.seen: dict[tuple, list] = {}  # (level, template) -> [last emitted, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, str(record.msg))
        now = self.clock()
        entry = self.seen.get(key)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            return False
        held = entry[1] if entry is not None else 0
        if len(self.seen) >= 100:
            self.seen.clear()
        self.seen[key] = [now, 0]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            detail = f"{type(exc).__name__}: {str(exc)[:200]!r}".replace("%", "%%") if record.args else \
                f"{type(exc).__name__}: {str(exc)[:200]!r}"
            record.msg = f"{record.msg}: {detail}"
            record.exc_info = None
            record.exc_text = None
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {now - entry[0]:.0f}s)"
        return True


def configure(config: LoggingConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
