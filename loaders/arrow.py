"""Enriched TSV lines to a typed Arrow table, the parsing both loaders share.

:func:`enriched_table` turns a batch of Snowplow enriched lines (the values of
the enriched topic: 131 tab-separated fields, no newline) into one
:class:`pyarrow.Table` with a column per atomic field, in the order of
:data:`processor.enriched.FIELDS`.  The per-row work is pyarrow's CSV reader
(C++, one thread) on the newline-joined lines: tab delimiter, no quoting,
no escaping (the enriched format has neither: enrichment replaces tab,
newline and carriage return inside a value by a space), an empty field is a
null.  The ClickHouse store inserts this table; the S3 store writes it as
Parquet.

Column types come from :data:`processor.enriched.FIELD_KINDS`, never from a
second list of names (:func:`enriched_schema`):

``timestamp``
    ``timestamp[ms, tz=UTC]`` (the TSV's ``yyyy-MM-dd HH:mm:ss.SSS`` is UTC).
``int``
    ``int32``: enrichment rejects any integer outside the 32-bit range (as
    Snowplow's enrich does, whose ``EnrichedEvent`` holds them as
    ``java.lang.Integer``), so no atomic integer needs 64 bits.
``float``
    ``float64`` (``geo_latitude``, ``geo_longitude``, ``se_value``).
``decimal``
    ``decimal128(18, 2)``, the type of Snowplow's atomic tables for money
    (``DEC(18,2)`` in Redshift, ``NUMBER(18,2)`` in Snowflake), so that
    ``19.99`` stays exactly ``19.99`` (a float64 would not, and ClickHouse
    would then truncate it to ``19.98`` on the way into a Decimal column).
    The TSV may carry more digits than that (a tracker's ``tr_tt=1.005``):
    the value is read at scale 18 and rounded half to even to cents, as
    Snowplow's warehouse loaders round; a value that does not fit even that
    is a malformed line.
``bool``
    ``bool`` from ``1``/``0``.
``string``
    ``string``; ``dictionary<int32, string>`` for the fields in
    :data:`LOW_CARDINALITY` (a few distinct values per batch: app, platform,
    event names, browser and OS families, countries ...), which Parquet keeps
    dictionary-encoded and ClickHouse maps to ``LowCardinality(String)``.
``json``
    ``string``: ``contexts``, ``derived_contexts`` and ``unstruct_event`` as the
    self-describing JSON envelopes of the TSV, byte for byte.

A line that cannot be a row must not sink the batch: it is returned apart in
:attr:`EnrichedTable.malformed` with the reason, and the table holds the
other lines.  A line is malformed when it does not have exactly 131 fields
(or holds a newline or carriage return), when a typed field does not parse
(``abc`` as an integer), or when ``event_id`` or ``collector_tstamp`` is empty
(both are keys of every store).  Finding them costs nothing on a clean batch:
the whole batch is parsed once; only when the reader reports a bad line is it
located (field counts with ``pyarrow.compute``, and a bisection of the batch
for a value that does not convert).  Each store routes these lines to its bad
rows as Snowplow's ``loader_parsing_error`` (:meth:`MalformedLine.bad_row`),
the bad row Snowplow's own loaders write for a line they cannot parse.

Importing this module turns off pyarrow's interruption of long operations
(``pyarrow.enable_signal_handlers(False)``, for the whole process).  By
default pyarrow installs its own SIGTERM and SIGINT handlers for the length
of a CSV read on the main thread, wherever the process handles those signals
itself, and cancels the read when one arrives.  Every service that loads
handles them as a graceful stop (write and commit the batches in hand): a
SIGTERM during a read made that stop an ``ArrowCancelled`` in the middle of
the last batch, and the loader exited 1 without writing it
(``tests/integration/test_load_sigterm.py``).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from processor import badrows
from processor.enriched import FIELD_KINDS, FIELDS

pa.enable_signal_handlers(False)

__all__ = [
    "LOW_CARDINALITY",
    "REQUIRED",
    "LOADER_PARSING_ERROR",
    "MalformedLine",
    "EnrichedTable",
    "enriched_schema",
    "enriched_table",
]

#: String fields with few distinct values: dictionary-encoded in Arrow, LowCardinality in ClickHouse.
LOW_CARDINALITY: frozenset[str] = frozenset({
    "app_id", "platform", "event", "name_tracker", "v_tracker", "v_collector", "v_etl",
    "geo_country", "geo_region", "geo_city", "geo_region_name", "geo_timezone",
    "ip_isp", "ip_organization", "ip_domain", "ip_netspeed",
    "page_urlscheme", "page_urlhost", "refr_urlscheme", "refr_urlhost", "refr_medium", "refr_source",
    "mkt_medium", "mkt_source", "mkt_campaign", "mkt_network",
    "se_category", "se_action",
    "tr_country", "tr_currency", "ti_currency", "base_currency",
    "br_name", "br_family", "br_version", "br_type", "br_renderengine", "br_lang", "br_colordepth",
    "os_name", "os_family", "os_manufacturer", "os_timezone", "dvce_type", "doc_charset",
    "event_vendor", "event_name", "event_format", "event_version",
})
#: Snowplow's bad row for a line a loader cannot read as an enriched event.
LOADER_PARSING_ERROR = f"iglu:{badrows.BADROWS_VENDOR}/loader_parsing_error/jsonschema/2-0-0"
#: Fields without which a line is not a row (every store keys on them).
REQUIRED: tuple[str, ...] = ("event_id", "collector_tstamp")

_NFIELDS = len(FIELDS)
_DECIMAL = pa.decimal128(18, 2)
_DECIMAL_READ = pa.decimal128(38, 18)
_TIMESTAMP = pa.timestamp("ms", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "timestamp": _TIMESTAMP,
    "int": pa.int32(),
    "float": pa.float64(),
    "decimal": _DECIMAL,
    "bool": pa.bool_(),
    "json": pa.string(),
    "string": pa.string(),
}
_LOW_CARD_TYPE = pa.dictionary(pa.int32(), pa.string())


def _field_type(name: str) -> pa.DataType:
    kind = FIELD_KINDS[name]
    if kind == "string" and name in LOW_CARDINALITY:
        return _LOW_CARD_TYPE
    return _ARROW_TYPES[kind]


def enriched_schema() -> pa.Schema:
    """The Arrow schema of :func:`enriched_table`: the 131 atomic fields, typed from ``FIELD_KINDS``."""
    return pa.schema([pa.field(name, _field_type(name), nullable=name not in REQUIRED) for name in FIELDS])


ENRICHED_SCHEMA = enriched_schema()

# What the CSV reader is asked for: timestamps naive (the reader wants an offset for a
# zoned type; the TSV's are UTC) and decimals wide, both fixed up after the read.
_READ_TYPES: dict[str, pa.DataType] = {
    name: (pa.timestamp("ms") if FIELD_KINDS[name] == "timestamp"
           else _DECIMAL_READ if FIELD_KINDS[name] == "decimal" else _field_type(name))
    for name in FIELDS
}
_CONVERT = pcsv.ConvertOptions(
    column_types=_READ_TYPES, null_values=[""], strings_can_be_null=True,
    true_values=["1"], false_values=["0"], timestamp_parsers=[pcsv.ISO8601],
)
# One thread, 4 MB blocks: on the two cores of bench/RESULTS.md the reader's threads doubled its CPU time
# (120 against 59 ms for 15,000 lines) for no gain in wall time, and the loader parses one batch while the
# store writes the one before, so CPU is what a parse costs.
_READ_BLOCK = 4 << 20


class MalformedLine(NamedTuple):
    """A value of the batch that is not an enriched row, and why."""

    line: bytes
    reason: str

    @property
    def field_count(self) -> int:
        return self.line.count(b"\t") + 1

    def bad_row(self, artifact: str) -> bytes:
        """This line as Snowplow's ``loader_parsing_error`` bad row (what its loaders emit for it).

        ``FieldNumberMismatch`` when the line does not have 131 fields,
        otherwise ``RowDecodingError`` with the reason as an
        ``UnhandledRowDecodingError`` message; the payload is the line.
        """
        if self.field_count != _NFIELDS or b"\n" in self.line or b"\r" in self.line:
            failure = {"type": "FieldNumberMismatch", "fieldCount": min(self.field_count, 1024)}
        else:
            failure = {"type": "RowDecodingError",
                       "errors": [{"type": "UnhandledRowDecodingError", "message": self.reason}]}
        return badrows.bad_row(LOADER_PARSING_ERROR, artifact, failure,
                               self.line.decode("utf-8", "replace"))


class EnrichedTable(NamedTuple):
    """What :func:`enriched_table` makes of a batch: the rows, and the lines that are not rows."""

    table: pa.Table
    malformed: list[MalformedLine]


class _BadShape(Exception):
    pass


def _read(joined: bytes) -> pa.Table:
    """One CSV read of newline-joined lines; raises ``_BadShape`` if any line has the wrong field count."""
    bad_shape = []

    def on_invalid(row):
        bad_shape.append(row)
        return "skip"

    parse = pcsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, double_quote=False,
                              newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=on_invalid)
    table = pcsv.read_csv(
        pa.py_buffer(joined),
        read_options=pcsv.ReadOptions(column_names=FIELDS, block_size=_READ_BLOCK, use_threads=False),
        parse_options=parse, convert_options=_CONVERT,
    )
    if bad_shape:
        raise _BadShape()
    return table


def _typed(table: pa.Table) -> pa.Table:
    """The read table in :data:`ENRICHED_SCHEMA`: zoned timestamps, decimals rounded to cents."""
    columns = []
    for name, column in zip(FIELDS, table.columns):
        kind = FIELD_KINDS[name]
        if kind == "timestamp":
            column = column.cast(_TIMESTAMP)
        elif kind == "decimal":
            column = pc.round(column, ndigits=2, round_mode="half_to_even").cast(_DECIMAL)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=ENRICHED_SCHEMA)


def _parse_lines(lines: list[bytes], malformed: list[MalformedLine]) -> list[tuple[pa.Table, list[bytes]]]:
    """(table, its lines) for the convertible lines, in order; the others go to ``malformed``.

    A conversion error names a column but not a line, so the batch is halved
    until the failing lines are alone.
    """
    if not lines:
        return []
    try:
        table = _read(b"\n".join(lines))
        if table.num_rows != len(lines):
            raise _BadShape()
        return [(_typed(table), lines)]
    except (pa.ArrowInvalid, _BadShape) as exc:
        if len(lines) == 1:
            reason = str(exc) if isinstance(exc, pa.ArrowInvalid) else _shape_reason(lines[0])
            malformed.append(MalformedLine(lines[0], reason))
            return []
        half = len(lines) // 2
        return _parse_lines(lines[:half], malformed) + _parse_lines(lines[half:], malformed)


def _split_by_shape(values: Sequence[bytes]) -> tuple[list[bytes], list[MalformedLine]]:
    """The lines with 130 tabs and no line break, and the others as malformed (vectorised)."""
    arr = pa.array(values, type=pa.binary())
    tabs = pc.count_substring(arr, "\t")
    breaks = pc.or_(pc.match_substring(arr, "\n"), pc.match_substring(arr, "\r"))
    ok = pc.and_(pc.equal(tabs, _NFIELDS - 1), pc.invert(breaks))
    good = arr.filter(ok).to_pylist()
    bad_lines = arr.filter(pc.invert(ok)).to_pylist()
    return good, [MalformedLine(line, _shape_reason(line)) for line in bad_lines]


def _shape_reason(line: bytes) -> str:
    if b"\n" in line or b"\r" in line:
        return "line break inside the line"
    fields = line.count(b"\t") + 1
    return f"{fields} tab-separated fields, expected {_NFIELDS}"


def _drop_missing_required(table: pa.Table, lines: list[bytes],
                           malformed: list[MalformedLine]) -> pa.Table:
    ok = None
    for name in REQUIRED:
        valid = pc.is_valid(table.column(name))
        ok = valid if ok is None else pc.and_(ok, valid)
    if pc.all(ok).as_py() is not False:
        return table
    missing = pc.invert(ok)
    indices = pc.indices_nonzero(missing).to_pylist()
    malformed.extend(MalformedLine(lines[i], f"empty {' or '.join(REQUIRED)}") for i in indices)
    return table.filter(ok)


def enriched_table(values: Sequence[bytes]) -> EnrichedTable:
    """The batch's enriched lines as a typed table, and the lines that are not rows.

    ``values`` are enriched TSV lines (bytes, without newline) in offset
    order; the table keeps their order.  Lines in ``malformed`` are not in
    the table; every other line is exactly one row.
    """
    if not values:
        return EnrichedTable(ENRICHED_SCHEMA.empty_table(), [])
    malformed: list[MalformedLine] = []
    lines = values if isinstance(values, list) else list(values)
    try:
        table = _read(b"\n".join(lines))
        if table.num_rows != len(lines):
            raise _BadShape()
        parts = [(_typed(table), lines)]
    except _BadShape:
        lines, malformed = _split_by_shape(lines)
        parts = _parse_lines(lines, malformed)
    except pa.ArrowInvalid:
        parts = _parse_lines(lines, malformed)
    if not parts:
        return EnrichedTable(ENRICHED_SCHEMA.empty_table(), malformed)
    if len(parts) == 1:
        table, kept = parts[0]
    else:
        table = pa.concat_tables([t for t, _ in parts]).unify_dictionaries().combine_chunks()
        kept = [line for _, part in parts for line in part]
    return EnrichedTable(_drop_missing_required(table, kept, malformed), malformed)
