"""``snowmelt diff A B``: two enriched outputs compared field by field, joined on event_id.

A team moving from Snowplow runs Snowplow's enrich and snowmelt side by side on
its own traffic and points this at the two outputs.  Each side is one of:

- a file of enriched TSV lines (Snowplow's 131 fields, :data:`processor.enriched.FIELDS`),
  gzip-compressed or not (a ``.gz`` suffix or gzip's magic bytes);
- a folder: every ``*.tsv`` and ``*.tsv.gz`` file in it, in name order (not recursive);
- a Kafka topic, ``kafka://HOST:PORT/TOPIC`` (several brokers: ``kafka://H1:P1,H2:P2/TOPIC``),
  read from the beginning of every partition up to the end offsets it had when
  the diff started.

The pieces are plain functions, so a benchmark or a notebook can call them:

    a = read_lines("snowplow/enriched/")                  # iterator of bytes lines
    b = read_lines("kafka://127.0.0.1:9092/enriched")
    report = compare(a, b, ignore=DEFAULT_IGNORE)         # -> DiffReport
    print(format_report(report, examples=3))
    sys.exit(report.exit_status)                          # 0 same, 1 different

How events are matched and compared:

- a line that is not 131 tab-separated fields is counted as malformed on its
  side and otherwise left out;
- events are joined on ``event_id`` (field 6); an event_id seen again on the same
  side is counted as duplicated and only its first occurrence is compared;
- ``contexts``, ``derived_contexts`` and ``unstruct_event`` are compared as JSON
  documents: key order, spacing and ``1`` against ``1.0`` do not matter, and the
  entities of a contexts array are a multiset (their order does not matter,
  their number does).  A value that is not JSON is compared as text.  Every
  other field is compared as exact bytes, and with ``exact`` (``--exact``)
  these three too;
- ``etl_tstamp`` and ``v_etl`` (:data:`DEFAULT_IGNORE`) always differ between two
  runs and are left out unless asked for.

Memory: side A is held as a dict ``event_id -> line`` (bytes); side B is streamed
against it, keeping only the set of its event_ids.  No input is ever read into
one string.  A few million events of about 2 KB each need a few GB.
"""
from __future__ import annotations

import gzip
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from processor.enriched import FIELD_INDEX, FIELDS

__all__ = [
    "DEFAULT_IGNORE",
    "JSON_FIELDS",
    "DiffInputError",
    "SideStats",
    "FieldDiff",
    "DiffReport",
    "read_lines",
    "compared_fields",
    "compare",
    "json_equal",
    "format_report",
    "report_as_dict",
]

#: Fields that always differ between two runs of enrich over the same events.
DEFAULT_IGNORE: tuple[str, ...] = ("etl_tstamp", "v_etl")
#: Fields compared as JSON documents rather than as text.
JSON_FIELDS: tuple[str, ...] = ("contexts", "derived_contexts", "unstruct_event")
#: Fields whose JSON is a contexts envelope: its ``data`` array is compared as a multiset.
_CONTEXTS_FIELDS = frozenset(("contexts", "derived_contexts"))

_N_FIELDS = len(FIELDS)
_N_TABS = _N_FIELDS - 1
_EVENT_ID = FIELD_INDEX["event_id"]
_GZIP_MAGIC = b"\x1f\x8b"
_KAFKA_SCHEME = "kafka://"


class DiffInputError(Exception):
    """An input that cannot be read: a missing file, a bad URL, an unreachable broker, a timeout.

    ``str(exc)`` is one line naming the input.
    """


# --- reading ---------------------------------------------------------------------------


def read_lines(source: str, timeout: float = 60.0) -> Iterator[bytes]:
    """The enriched lines of ``source`` as bytes, without their line ends.

    ``source`` is a file (gzip detected by suffix or magic bytes), a folder
    (its ``*.tsv`` and ``*.tsv.gz`` files in name order) or
    ``kafka://HOST:PORT/TOPIC``.  What can be checked before reading is
    checked now, so that a bad input fails before the other side is read:
    the path exists, the folder has files, the broker answers and the topic
    exists (whose end offsets are taken now).  ``timeout`` (seconds) bounds
    the total time spent waiting on a Kafka broker, for this source;
    files ignore it.

    Raises :class:`DiffInputError`, now or while iterating (a corrupt gzip
    stream, a timeout), with a one-line message naming the input.
    """
    if source.startswith(_KAFKA_SCHEME):
        return _KafkaSource(source, timeout).lines()
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and (p.name.endswith(".tsv") or p.name.endswith(".tsv.gz")))
        if not files:
            raise DiffInputError(f"{source}: folder has no *.tsv or *.tsv.gz files")
        return _read_files(files)
    if not path.exists():
        raise DiffInputError(f"{source}: no such file or folder")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise DiffInputError(f"{source}: {exc.strerror or exc}") from None
    return _read_files([path])


def _read_files(paths: Sequence[Path]) -> Iterator[bytes]:
    for path in paths:
        yield from _read_file(path)


def _read_file(path: Path) -> Iterator[bytes]:
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise DiffInputError(f"{path}: {exc.strerror or exc}") from None
    gzipped = False
    with raw:
        try:
            gzipped = path.name.endswith(".gz") or raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            # line by line through the file's buffer: a multi-GB file is never one string
            for line in stream:
                yield _strip_eol(line)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise DiffInputError(f"{path}: cannot read ({'gzip: ' if gzipped else ''}{exc})") from None


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


class _KafkaSource:
    """One topic read from the beginning to the end offsets it had when opened."""

    def __init__(self, url: str, timeout: float) -> None:
        rest = url[len(_KAFKA_SCHEME):]
        servers, _, topic = rest.partition("/")
        if not servers or not topic or "/" in topic:
            raise DiffInputError(f"{url}: expected kafka://HOST:PORT/TOPIC")
        self.url = url
        self.topic = topic
        self.timeout = timeout
        self._spent = 0.0
        self._errors: list[str] = []
        self._unreachable = False
        try:
            self.consumer = Consumer({
                "bootstrap.servers": servers,
                "group.id": f"snowmelt-diff-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "allow.auto.create.topics": False,
                "error_cb": self._on_error,
                # librdkafka would log every failed connection attempt to stderr; the
                # errors reach error_cb and the one-line message instead
                "log_level": 0,
            })
        except KafkaException as exc:
            raise DiffInputError(f"{url}: {exc.args[0].str() if exc.args else exc}") from None
        try:
            self.ends = self._end_offsets()
        except BaseException:
            self.consumer.close()
            raise

    def _on_error(self, err) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._unreachable = True
        if len(self._errors) < 5:
            self._errors.append(err.str())

    def _remaining(self, started: float) -> float:
        return self.timeout - self._spent - (time.monotonic() - started)

    def _timed_out(self, what: str) -> DiffInputError:
        detail = f" ({self._errors[-1]})" if self._errors else ""
        return DiffInputError(f"{self.url}: timed out after {self.timeout:g} s {what}{detail}")

    def _topic_metadata(self, started: float):
        """The topic's metadata; fails fast once librdkafka says every broker is down."""
        while True:
            remaining = self._remaining(started)
            if remaining <= 0:
                raise self._timed_out("waiting for the broker")
            try:
                metadata = self.consumer.list_topics(self.topic, timeout=min(remaining, 0.25))
            except KafkaException:
                self.consumer.poll(0)  # serves error_cb
                if self._unreachable:
                    raise DiffInputError(f"{self.url}: broker unreachable ({self._errors[-1]})") from None
                continue
            meta = metadata.topics.get(self.topic)
            if meta is None or (meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise DiffInputError(f"{self.url}: no such topic")
            if meta.error is not None:
                if not meta.error.retriable():
                    raise DiffInputError(f"{self.url}: {meta.error.str()}")
                self._errors = [*self._errors[-4:], meta.error.str()]
                time.sleep(min(0.2, max(remaining, 0)))  # e.g. a topic still electing its leaders
                continue
            return meta

    def _end_offsets(self) -> dict[int, int]:
        started = time.monotonic()
        try:
            meta = self._topic_metadata(started)
            ends: dict[int, int] = {}
            for partition in sorted(meta.partitions):
                remaining = self._remaining(started)
                if remaining <= 0:
                    raise self._timed_out("reading the end offsets")
                try:
                    low, high = self.consumer.get_watermark_offsets(
                        TopicPartition(self.topic, partition), timeout=remaining, cached=False)
                except KafkaException:
                    raise self._timed_out("reading the end offsets") from None
                if high > low:
                    ends[partition] = high
            return ends
        finally:
            self._spent += time.monotonic() - started

    def lines(self) -> Iterator[bytes]:
        try:
            pending = dict(self.ends)  # partition -> end offset still to reach
            if not pending:
                return
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in pending])
            started = time.monotonic()
            read = 0
            while pending:
                remaining = self._remaining(started)
                if remaining <= 0:
                    left = ", ".join(f"partition {p} below offset {end}" for p, end in sorted(pending.items()))
                    raise self._timed_out(f"with {read} records read ({left})")
                # consume() waits for a full batch or its timeout: short, so the last batch is not held
                for msg in self.consumer.consume(1000, timeout=min(remaining, 0.1)):
                    partition = msg.partition()
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            # the end of what the broker has: past transaction markers too
                            end = pending.get(partition)
                            if end is not None and msg.offset() >= end:
                                del pending[partition]
                            continue
                        if err.fatal() or err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                         KafkaError.TOPIC_AUTHORIZATION_FAILED):
                            raise DiffInputError(f"{self.url}: {err.str()}")
                        continue  # retriable: librdkafka retries, the deadline bounds it
                    end = pending.get(partition)
                    if end is None or msg.offset() >= end:
                        continue  # written after the diff started
                    read += 1
                    value = msg.value()
                    yield _strip_eol(value) if value is not None else b""
                    if msg.offset() + 1 >= end:
                        del pending[partition]
        except KafkaException as exc:
            raise DiffInputError(f"{self.url}: {exc}") from None
        finally:
            self.consumer.close()


# --- comparing -------------------------------------------------------------------------


def json_equal(field_name: str, a: bytes | str, b: bytes | str) -> bool:
    """Whether two values of a JSON field hold the same document.

    Key order and formatting do not matter, numbers compare by value (``1 ==
    1.0``; integers of any size exactly), and for ``contexts`` and
    ``derived_contexts`` the entities of the envelope's ``data`` array form a
    multiset.  Arrays elsewhere keep their order.  When either side is not
    JSON, the two are equal only as identical text.
    """
    if a == b:
        return True
    try:
        # the json module, not orjson: orjson turns integers beyond 64 bits into floats
        doc_a, doc_b = json.loads(a), json.loads(b)
    except (ValueError, RecursionError):
        return False
    multiset = field_name in _CONTEXTS_FIELDS
    try:
        return _canonical(doc_a, multiset) == _canonical(doc_b, multiset)
    except RecursionError:
        return False


def _canonical(doc: Any, contexts: bool) -> str:
    if contexts and isinstance(doc, dict) and isinstance(doc.get("data"), list):
        entities = sorted(_canonical_text(e) for e in doc["data"])
        doc = dict(doc, data=entities)
    return _canonical_text(doc)


def _canonical_text(doc: Any) -> str:
    return json.dumps(_numbers_by_value(doc), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _numbers_by_value(doc: Any) -> Any:
    if isinstance(doc, float):
        return int(doc) if doc.is_integer() else doc
    if isinstance(doc, dict):
        return {k: _numbers_by_value(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_numbers_by_value(v) for v in doc]
    return doc


@dataclass
class SideStats:
    """What was read on one side."""

    source: str
    lines: int = 0                 #: lines (or records) read
    events: int = 0                #: distinct event_ids among well-formed lines
    malformed: int = 0             #: lines that are not 131 fields
    duplicated_ids: int = 0        #: event_ids seen more than once
    duplicate_lines: int = 0       #: lines after the first for those event_ids


@dataclass
class FieldDiff:
    """One field: how many joined events differ in it, and the first few of them."""

    field: str
    count: int = 0
    #: ``(event_id, value in A, value in B)``, as text
    examples: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class DiffReport:
    """The result of :func:`compare`."""

    a: SideStats
    b: SideStats
    both: int                      #: event_ids in A and in B
    only_a: int
    only_b: int
    events_differing: int          #: joined events with at least one differing field
    compared: tuple[str, ...]      #: the fields compared, in TSV order
    fields: list[FieldDiff]        #: fields that differ, most differing first
    only_a_examples: list[str] = field(default_factory=list)
    only_b_examples: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """No compared field differs and every event is on both sides."""
        return not self.fields and not self.only_a and not self.only_b

    @property
    def exit_status(self) -> int:
        return 0 if self.identical else 1


def compared_fields(ignore: Iterable[str] | None = DEFAULT_IGNORE,
                    fields: Iterable[str] | None = None) -> tuple[str, ...]:
    """The fields a diff compares, in TSV order: ``fields`` (default: all) less ``ignore``.

    Raises :class:`ValueError` naming an unknown field.
    """
    ignore = list(ignore or ())
    chosen = list(fields) if fields else list(FIELDS)
    unknown = [f for f in (*chosen, *ignore) if f not in FIELD_INDEX]
    if unknown:
        raise ValueError(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
                         " (see processor.enriched.FIELDS)")
    wanted = set(chosen) - set(ignore)
    return tuple(f for f in FIELDS if f in wanted)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _scan(line: bytes, stats: SideStats) -> bytes | None:
    """The event_id of a well-formed line; ``None`` (counted as malformed) otherwise."""
    stats.lines += 1
    if line.count(b"\t") != _N_TABS:
        stats.malformed += 1
        return None
    return line.split(b"\t", _EVENT_ID + 1)[_EVENT_ID]



def _first_occurrences(lines, stats: "SideStats"):
    """``(event_id, line)`` for the first line of each event id in ``lines`` (the well-formed ones);
    ``stats`` gets the events, the duplicated ids and the duplicate lines counted."""
    seen: set[bytes] = set()
    duplicated: set[bytes] = set()
    for line in lines:
        if isinstance(line, str):
            line = line.encode("utf-8", "surrogateescape")
        line = _strip_eol(line)
        eid = _scan(line, stats)
        if eid is None:
            continue
        if eid in seen:
            stats.duplicate_lines += 1
            duplicated.add(eid)
            continue
        seen.add(eid)
        yield eid, line
    stats.events = len(seen)
    stats.duplicated_ids = len(duplicated)

def compare(a_lines: Iterable[bytes | str], b_lines: Iterable[bytes | str],
            ignore: Iterable[str] | None = DEFAULT_IGNORE, fields: Iterable[str] | None = None,
            *, examples: int = 3, sources: tuple[str, str] = ("A", "B"), exact: bool = False) -> DiffReport:
    """Compare two enriched outputs joined on event_id.

    ``a_lines`` and ``b_lines`` are iterables of enriched TSV lines (bytes, or
    str encoded as UTF-8; a trailing newline is allowed), such as
    :func:`read_lines` returns.  A is read whole into a dict ``event_id ->
    line``; B is streamed against it.  ``fields`` restricts the comparison
    (default: all 131), ``ignore`` leaves fields out (default
    :data:`DEFAULT_IGNORE`).  Up to ``examples`` differing events are kept per
    field, and up to ``examples`` event_ids found on one side only.
    ``sources`` names the two sides in the report.  ``exact`` compares the JSON
    fields as text too (a number's text, key order and escapes then count).

    Raises :class:`ValueError` for an unknown field name and whatever the
    iterables raise (:class:`DiffInputError` from :func:`read_lines`).
    """
    names = compared_fields(ignore, fields)
    indexes = tuple(FIELD_INDEX[n] for n in names)
    json_indexes = set() if exact else {FIELD_INDEX[n] for n in JSON_FIELDS if n in names}
    # One C-level comparison settles an event whose compared fields all match: of the
    # whole split lines after copying the few fields left out, or of the fields picked.
    left_out = tuple(sorted(set(range(_N_FIELDS)) - set(indexes)))
    pick = itemgetter(*indexes) if len(left_out) > _N_FIELDS // 2 and indexes else None

    stats_a, stats_b = SideStats(sources[0]), SideStats(sources[1])
    side_a: dict[bytes, bytes] = dict(_first_occurrences(a_lines, stats_a))
    diffs: dict[int, FieldDiff] = {}
    both = only_b = events_differing = 0
    only_b_examples: list[str] = []
    for eid, line in _first_occurrences(b_lines, stats_b):
        line_a = side_a.pop(eid, None)  # what is left in side_a at the end is only in A
        if line_a is None:
            only_b += 1
            if len(only_b_examples) < examples:
                only_b_examples.append(_text(eid))
            continue
        both += 1
        if line_a == line:
            continue
        values_a, values_b = line_a.split(b"\t"), line.split(b"\t")
        if pick is None:
            for i in left_out:
                values_b[i] = values_a[i]
            if values_a == values_b:
                continue
        elif pick(values_a) == pick(values_b):
            continue
        differing = False
        for i in indexes:
            va, vb = values_a[i], values_b[i]
            if va == vb or (i in json_indexes and json_equal(FIELDS[i], va, vb)):
                continue
            differing = True
            diff = diffs.get(i)
            if diff is None:
                diff = diffs[i] = FieldDiff(FIELDS[i])
            diff.count += 1
            if len(diff.examples) < examples:
                diff.examples.append((_text(eid), _text(va), _text(vb)))
        events_differing += differing

    only_a_examples = [_text(eid) for eid, _ in zip(side_a, range(examples))]
    return DiffReport(
        a=stats_a, b=stats_b, both=both, only_a=len(side_a), only_b=only_b,
        events_differing=events_differing, compared=names,
        fields=sorted(diffs.values(), key=lambda d: (-d.count, FIELD_INDEX[d.field])),
        only_a_examples=only_a_examples, only_b_examples=only_b_examples,
    )


# --- reporting -------------------------------------------------------------------------


def report_as_dict(report: DiffReport, examples: int = 3) -> dict[str, Any]:
    """The report as one JSON-ready dict, with up to ``examples`` examples per field."""
    def side(s: SideStats) -> dict[str, Any]:
        return {"source": s.source, "lines": s.lines, "events": s.events, "malformed_lines": s.malformed,
                "duplicated_event_ids": s.duplicated_ids, "duplicate_lines": s.duplicate_lines}

    ignored = [f for f in FIELDS if f not in set(report.compared)]
    return {
        "identical": report.identical,
        "exit_status": report.exit_status,
        "a": side(report.a),
        "b": side(report.b),
        "in_both": report.both,
        "only_in_a": report.only_a,
        "only_in_b": report.only_b,
        "only_in_a_examples": report.only_a_examples[:examples],
        "only_in_b_examples": report.only_b_examples[:examples],
        "events_differing": report.events_differing,
        "fields_compared": len(report.compared),
        "fields_not_compared": ignored,
        "fields": [{"field": d.field, "differing": d.count,
                    "examples": [{"event_id": e, "a": va, "b": vb} for e, va, vb in d.examples[:examples]]}
                   for d in report.fields],
    }


_MAX_SHOWN = 300  # characters of a value shown in an example


def _show(value: str) -> str:
    if value == "":
        return "(empty)"
    if len(value) > _MAX_SHOWN:
        return f"{value[:_MAX_SHOWN]}... ({len(value)} characters)"
    if value != value.strip() or not value.isprintable():
        return repr(value)
    return value


def format_report(report: DiffReport, examples: int = 3) -> str:
    """The report as a text table, with up to ``examples`` examples per differing field."""
    a, b = report.a, report.b
    rows = [
        ("events (distinct event_ids)", a.events, b.events),
        ("lines read", a.lines, b.lines),
        ("malformed lines (not 131 fields)", a.malformed, b.malformed),
        ("duplicated event_ids", a.duplicated_ids, b.duplicated_ids),
    ]
    width = max(len(r[0]) for r in rows)
    col = max(12, *(len(f"{r[1]:,}") + 2 for r in rows), *(len(f"{r[2]:,}") + 2 for r in rows))
    out = [f"A: {a.source}", f"B: {b.source}", "",
           f"{'':<{width}}{'A':>{col}}{'B':>{col}}"]
    out += [f"{label:<{width}}{va:>{col},}{vb:>{col},}" for label, va, vb in rows]
    out += ["",
            f"{'in both':<{width}}{report.both:>{col},}",
            f"{'only in A':<{width}}{report.only_a:>{col},}",
            f"{'only in B':<{width}}{report.only_b:>{col},}",
            f"{'joined events that differ':<{width}}{report.events_differing:>{col},}"]
    skipped = [f for f in FIELDS if f not in set(report.compared)]
    out.append(f"fields compared: {len(report.compared)} of {len(FIELDS)}"
               + (f" (not compared: {', '.join(skipped)})" if skipped and len(skipped) <= 10
                  else f" ({len(skipped)} not compared)" if skipped else ""))
    out.append("")
    if report.fields:
        name_width = max(len("field"), *(len(d.field) for d in report.fields))
        out.append(f"{'field':<{name_width}}  differing events")
        out += [f"{d.field:<{name_width}}  {d.count:>16,}" for d in report.fields]
    else:
        out.append("no compared field differs in any joined event")
    if examples > 0:
        for d in report.fields:
            if not d.examples[:examples]:
                continue
            out += ["", f"{d.field}: {d.count:,} event{'s' if d.count != 1 else ''}"]
            for eid, va, vb in d.examples[:examples]:
                out += [f"  event_id {eid}", f"    A: {_show(va)}", f"    B: {_show(vb)}"]
        for label, ids, count in (("only in A", report.only_a_examples, report.only_a),
                                  ("only in B", report.only_b_examples, report.only_b)):
            if ids[:examples]:
                more = f" (and {count - len(ids[:examples]):,} more)" if count > len(ids[:examples]) else ""
                out += ["", f"{label}: {', '.join(ids[:examples])}{more}"]
    out += ["", "identical" if report.identical else "different"]
    return "\n".join(out)
