"""The enriched event and its 131-field TSV: Snowplow's enriched output format.

Every good event leaves enrichment as one line of tab-separated values, the
131 "atomic" fields of Snowplow's canonical event model in Snowplow's order
(:data:`FIELDS`).  Anything that reads Snowplow's enriched stream (the
analytics SDKs, the loaders, a Kafka consumer of the enriched topic) reads
ours.

Formatting, field by field (the kind of each field is in :data:`FIELD_KINDS`,
a plain table so that a compiled twin can follow the same data):

``string``
    written as is, except that tab, newline and carriage return become a
    space, so that a row is always one line of exactly 131 fields.
``int``
    a decimal integer, no ``.0`` (``txn_id``, ports, sizes, offsets ...).
``bool``
    ``1`` or ``0`` (``br_features_*``, ``br_cookies``, ``dvce_ismobile``);
    ``True``/``False`` and ``1``/``0`` are accepted.
``float``
    a float's shortest round-trip decimal (``geo_latitude``,
    ``geo_longitude``).
``decimal``
    ``se_value`` and money (``tr_total``, ``ti_price``, ``*_base`` ...): a
    :class:`~decimal.Decimal` is written as Java's ``BigDecimal.toString``
    writes it, as Snowplow's enrich does (``12.50``, ``42``, ``1E-7``: the
    same rules as ``str`` of a Decimal), an ``int`` as an integer, a
    ``float`` as its repr.
``timestamp``
    ``yyyy-MM-dd HH:mm:ss.SSS`` in UTC; from an aware or naive (taken as UTC)
    :class:`~datetime.datetime` or from epoch milliseconds (``int``).
``json``
    ``contexts`` and ``derived_contexts`` hold a list of self-describing dicts
    and are written wrapped in the ``contexts/jsonschema/1-0-1`` envelope
    (Snowplow's enrich writes 1-0-1 whatever envelope the tracker sent);
    ``unstruct_event`` holds one self-describing dict and is written wrapped
    in the ``unstruct_event/jsonschema/1-0-0`` envelope.  Compact JSON,
    non-ASCII kept as UTF-8 (control characters are escaped by JSON, so the
    row stays one line).  An empty list is written as an empty field.

Any field may also be given as a ``str``, which is taken as already formatted
and only made TSV-safe.  ``None`` is an empty field.

:data:`FIELD_MAX_LENGTHS` holds the string length limits of Snowplow's atomic
schema (``iglu:com.snowplowanalytics.snowplow/atomic/jsonschema/1-0-0``), in the order
Snowplow's ``AtomicFieldsLengthValidator`` checks them; :func:`atomic_length_errors` gives
its messages for an event, :func:`oversized_fields` the fields over them.
"""
from __future__ import annotations

import operator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

import ext
from ext.javanum import joda_timestamp
from processor import jsontext

__all__ = [
    "FIELDS",
    "FIELD_INDEX",
    "FIELD_KINDS",
    "FIELD_MAX_LENGTHS",
    "CONTEXTS_SCHEMA",
    "CONTEXTS_ENVELOPE_PREFIX",
    "UNSTRUCT_EVENT_SCHEMA",
    "EnrichedEvent",
    "new_event",
    "to_tsv",
    "format_timestamp",
    "oversized_fields",
    "atomic_length_errors",
]

CONTEXTS_SCHEMA = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
#: every version of the contexts envelope starts so (a script may set contexts in any of them)
CONTEXTS_ENVELOPE_PREFIX = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-"
UNSTRUCT_EVENT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"

# (name, kind) for the 131 fields, in the order of Snowplow's enriched TSV.
_FIELD_TABLE: tuple[tuple[str, str], ...] = (
    # 0: application, platform and timestamps
    ("app_id", "string"),
    ("platform", "string"),
    ("etl_tstamp", "timestamp"),
    ("collector_tstamp", "timestamp"),
    ("dvce_created_tstamp", "timestamp"),
    # 5: event
    ("event", "string"),
    ("event_id", "string"),
    ("txn_id", "int"),
    # 8: versions
    ("name_tracker", "string"),
    ("v_tracker", "string"),
    ("v_collector", "string"),
    ("v_etl", "string"),
    # 12: user
    ("user_id", "string"),
    ("user_ipaddress", "string"),
    ("user_fingerprint", "string"),
    ("domain_userid", "string"),
    ("domain_sessionidx", "int"),
    ("network_userid", "string"),
    # 18: geo
    ("geo_country", "string"),
    ("geo_region", "string"),
    ("geo_city", "string"),
    ("geo_zipcode", "string"),
    ("geo_latitude", "float"),
    ("geo_longitude", "float"),
    ("geo_region_name", "string"),
    # 25: ip lookups
    ("ip_isp", "string"),
    ("ip_organization", "string"),
    ("ip_domain", "string"),
    ("ip_netspeed", "string"),
    # 29: page
    ("page_url", "string"),
    ("page_title", "string"),
    ("page_referrer", "string"),
    ("page_urlscheme", "string"),
    ("page_urlhost", "string"),
    ("page_urlport", "int"),
    ("page_urlpath", "string"),
    ("page_urlquery", "string"),
    ("page_urlfragment", "string"),
    # 38: referrer
    ("refr_urlscheme", "string"),
    ("refr_urlhost", "string"),
    ("refr_urlport", "int"),
    ("refr_urlpath", "string"),
    ("refr_urlquery", "string"),
    ("refr_urlfragment", "string"),
    ("refr_medium", "string"),
    ("refr_source", "string"),
    ("refr_term", "string"),
    # 47: marketing
    ("mkt_medium", "string"),
    ("mkt_source", "string"),
    ("mkt_term", "string"),
    ("mkt_content", "string"),
    ("mkt_campaign", "string"),
    # 52: custom contexts
    ("contexts", "json"),
    # 53: structured event
    ("se_category", "string"),
    ("se_action", "string"),
    ("se_label", "string"),
    ("se_property", "string"),
    ("se_value", "decimal"),
    # 58: self-describing event
    ("unstruct_event", "json"),
    # 59: ecommerce transaction
    ("tr_orderid", "string"),
    ("tr_affiliation", "string"),
    ("tr_total", "decimal"),
    ("tr_tax", "decimal"),
    ("tr_shipping", "decimal"),
    ("tr_city", "string"),
    ("tr_state", "string"),
    ("tr_country", "string"),
    # 67: ecommerce transaction item
    ("ti_orderid", "string"),
    ("ti_sku", "string"),
    ("ti_name", "string"),
    ("ti_category", "string"),
    ("ti_price", "decimal"),
    ("ti_quantity", "int"),
    # 73: page pings
    ("pp_xoffset_min", "int"),
    ("pp_xoffset_max", "int"),
    ("pp_yoffset_min", "int"),
    ("pp_yoffset_max", "int"),
    # 77: user agent and browser
    ("useragent", "string"),
    ("br_name", "string"),
    ("br_family", "string"),
    ("br_version", "string"),
    ("br_type", "string"),
    ("br_renderengine", "string"),
    ("br_lang", "string"),
    ("br_features_pdf", "bool"),
    ("br_features_flash", "bool"),
    ("br_features_java", "bool"),
    ("br_features_director", "bool"),
    ("br_features_quicktime", "bool"),
    ("br_features_realplayer", "bool"),
    ("br_features_windowsmedia", "bool"),
    ("br_features_gears", "bool"),
    ("br_features_silverlight", "bool"),
    ("br_cookies", "bool"),
    ("br_colordepth", "string"),
    ("br_viewwidth", "int"),
    ("br_viewheight", "int"),
    # 97: operating system
    ("os_name", "string"),
    ("os_family", "string"),
    ("os_manufacturer", "string"),
    ("os_timezone", "string"),
    # 101: device
    ("dvce_type", "string"),
    ("dvce_ismobile", "bool"),
    ("dvce_screenwidth", "int"),
    ("dvce_screenheight", "int"),
    # 105: document
    ("doc_charset", "string"),
    ("doc_width", "int"),
    ("doc_height", "int"),
    # 108: currency conversion
    ("tr_currency", "string"),
    ("tr_total_base", "decimal"),
    ("tr_tax_base", "decimal"),
    ("tr_shipping_base", "decimal"),
    ("ti_currency", "string"),
    ("ti_price_base", "decimal"),
    ("base_currency", "string"),
    # 115: later additions
    ("geo_timezone", "string"),
    ("mkt_clickid", "string"),
    ("mkt_network", "string"),
    ("etl_tags", "string"),
    ("dvce_sent_tstamp", "timestamp"),
    ("refr_domain_userid", "string"),
    ("refr_dvce_tstamp", "timestamp"),
    ("derived_contexts", "json"),
    ("domain_sessionid", "string"),
    ("derived_tstamp", "timestamp"),
    ("event_vendor", "string"),
    ("event_name", "string"),
    ("event_format", "string"),
    ("event_version", "string"),
    ("event_fingerprint", "string"),
    ("true_tstamp", "timestamp"),
)

#: The 131 atomic field names, in the order of the enriched TSV.
FIELDS: tuple[str, ...] = tuple(name for name, _ in _FIELD_TABLE)
#: Field name -> column index in the TSV.
FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}
#: Field name -> kind: ``string``, ``int``, ``bool``, ``float``, ``decimal``, ``timestamp`` or ``json``.
FIELD_KINDS: dict[str, str] = dict(_FIELD_TABLE)

assert len(FIELDS) == 131 and len(FIELD_INDEX) == 131

#: ``maxLength`` of each string field in ``atomic/jsonschema/1-0-0``.
FIELD_MAX_LENGTHS: dict[str, int] = {
    "app_id": 255,
    "platform": 255,
    "event": 128,
    "event_id": 36,
    "name_tracker": 128,
    "v_tracker": 100,
    "v_collector": 100,
    "v_etl": 100,
    "user_id": 255,
    "user_ipaddress": 128,
    "user_fingerprint": 128,
    "domain_userid": 128,
    "network_userid": 128,
    "geo_country": 2,
    "geo_region": 3,
    "geo_city": 75,
    "geo_zipcode": 15,
    "geo_region_name": 100,
    "ip_isp": 100,
    "ip_organization": 128,
    "ip_domain": 128,
    "ip_netspeed": 100,
    "page_url": 4096,
    "page_title": 2000,
    "page_referrer": 4096,
    "page_urlscheme": 16,
    "page_urlhost": 255,
    "page_urlpath": 3000,
    "page_urlquery": 6000,
    "page_urlfragment": 3000,
    "refr_urlscheme": 16,
    "refr_urlhost": 255,
    "refr_urlpath": 6000,
    "refr_urlquery": 6000,
    "refr_urlfragment": 3000,
    "refr_medium": 25,
    "refr_source": 50,
    "refr_term": 255,
    "mkt_medium": 255,
    "mkt_source": 255,
    "mkt_term": 255,
    "mkt_content": 500,
    "mkt_campaign": 255,
    "se_category": 1000,
    "se_action": 1000,
    "se_label": 4096,
    "se_property": 1000,
    "tr_orderid": 255,
    "tr_affiliation": 255,
    "tr_city": 255,
    "tr_state": 255,
    "tr_country": 255,
    "ti_orderid": 255,
    "ti_sku": 255,
    "ti_name": 255,
    "ti_category": 255,
    "useragent": 1000,
    "br_name": 50,
    "br_family": 50,
    "br_version": 50,
    "br_type": 50,
    "br_renderengine": 50,
    "br_lang": 255,
    "br_colordepth": 12,
    "os_name": 50,
    "os_family": 50,
    "os_manufacturer": 50,
    "os_timezone": 255,
    "dvce_type": 50,
    "doc_charset": 128,
    "tr_currency": 3,
    "ti_currency": 3,
    "base_currency": 3,
    "geo_timezone": 64,
    "mkt_clickid": 128,
    "mkt_network": 64,
    "etl_tags": 500,
    "refr_domain_userid": 128,
    "domain_sessionid": 128,
    "event_vendor": 1000,
    "event_name": 1000,
    "event_format": 128,
    "event_version": 128,
    "event_fingerprint": 128,
}


class EnrichedEvent:
    """One enriched event: an attribute per atomic field, all ``None`` at first.

    ``contexts`` and ``derived_contexts`` hold lists of self-describing dicts
    (``{"schema": "iglu:...", "data": {...}}``) and ``unstruct_event`` one
    self-describing dict; :func:`to_tsv` wraps them in Snowplow's envelopes.
    Other fields hold plain Python values (see the module docstring for what
    each kind accepts).  Unknown keyword arguments are a ``TypeError``.
    """

    __slots__ = FIELDS

    # __init__ is generated below: one attribute store per field is several
    # times faster than a setattr loop, and an event is made per tracked event.

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set (not ``None``), in TSV order."""
        return {name: value for name in FIELDS if (value := getattr(self, name)) is not None}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnrichedEvent):
            return NotImplemented
        return _get_all(self) == _get_all(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"EnrichedEvent({inner})"


#: the 131 slots, made None and read as a tuple in one call each (``ext.SlotTable``)
_SLOTS = ext.SlotTable(EnrichedEvent, FIELDS)
_get_all = _SLOTS.values
#: a new event, every field None (what ``EnrichedEvent()`` makes, without the keyword arguments' ``__init__``)
new_event = _SLOTS.new


def _set_fields(event: EnrichedEvent, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name not in FIELD_INDEX:
            raise TypeError(f"EnrichedEvent has no field {name!r}")
        setattr(event, name, value)


def _generated_init():
    source = "def __init__(self, **fields):\n" + "".join(f"    self.{name} = None\n" for name in FIELDS) + \
        "    if fields:\n        _set_fields(self, fields)\n"
    namespace: dict[str, Any] = {"_set_fields": _set_fields}
    exec(source, namespace)  # names come from FIELDS, a constant of this module
    return namespace["__init__"]


EnrichedEvent.__init__ = _generated_init()

# --- per-kind formatters -----------------------------------------------------------

_EPOCH = datetime(1970, 1, 1)
_FIRST_DATETIME_MS = -62135596800000  #: 0001-01-01 00:00:00.000, the first instant datetime holds
_UTC = timezone.utc


def _tsv_safe(s: str) -> str:
    # Snowplow makes string fields TSV-safe by turning tab/newline/CR into a space.
    if "\t" in s or "\n" in s or "\r" in s:
        return s.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return s


def format_timestamp(value: datetime | int) -> str:
    """``yyyy-MM-dd HH:mm:ss.SSS`` UTC from a datetime (naive = UTC) or epoch ms."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_UTC)
        dt = value
    elif isinstance(value, int) and not isinstance(value, bool):
        if value < _FIRST_DATETIME_MS:  # year 0, which a tracker may send and datetime cannot hold
            return joda_timestamp(value)
        dt = _EPOCH + timedelta(milliseconds=value)
    else:
        raise TypeError(f"timestamp must be a datetime or epoch milliseconds, not {type(value).__name__}")
    return "%04d-%02d-%02d %02d:%02d:%02d.%03d" % (
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond // 1000,
    )


def _fmt_string(value: Any) -> str:
    if type(value) is not str:
        value = str(value)
    return _tsv_safe(value)


def _fmt_int(value: Any) -> str:
    if type(value) is int:
        return str(value)
    if isinstance(value, str):
        return _tsv_safe(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(operator.index(value))


def _fmt_bool(value: Any) -> str:
    if value is True or value == 1:
        return "1"
    if value is False or value == 0:
        return "0"
    if isinstance(value, str):
        return _tsv_safe(value)
    raise TypeError(f"boolean field must be True/False or 1/0, not {value!r}")


def _fmt_float(value: Any) -> str:
    if isinstance(value, str):
        return _tsv_safe(value)
    return repr(float(value))


def _fmt_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        # Java's BigDecimal.toString; a negative scale (1E+2), which Snowplow sets to 0 or 2 before
        # writing, in plain notation
        return str(value) if value.as_tuple().exponent <= 0 else format(value, "f")
    if type(value) is int:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _tsv_safe(value)
    raise TypeError(f"decimal field must be a Decimal, int or float, not {value!r}")


def _fmt_timestamp(value: Any) -> str:
    if isinstance(value, str):
        return _tsv_safe(value)
    return format_timestamp(value)


# compact JSON, UTF-8 kept, NaN/Infinity refused (not JSON)
_dump_json = jsontext.dumps


def _fmt_contexts(value: Any) -> str:
    """The validated entities (a list) in their envelope; an envelope, or any other JSON a tracker sent (a
    bad row shows the event before validation), as it is."""
    if isinstance(value, str):
        return _tsv_safe(value)
    if not isinstance(value, (list, tuple)):
        return _dump_json(value)
    if not value:
        return ""
    return _dump_json({"schema": CONTEXTS_SCHEMA, "data": list(value)})


def _fmt_unstruct(value: Any) -> str:
    """The validated event (an object) in its envelope; the envelope, or any other JSON a tracker sent, as it
    is."""
    if isinstance(value, str):
        return _tsv_safe(value)
    if not isinstance(value, dict) or value.get("schema") == UNSTRUCT_EVENT_SCHEMA:
        return _dump_json(value)
    return _dump_json({"schema": UNSTRUCT_EVENT_SCHEMA, "data": value})


_KIND_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "string": _fmt_string,
    "int": _fmt_int,
    "bool": _fmt_bool,
    "float": _fmt_float,
    "decimal": _fmt_decimal,
    "timestamp": _fmt_timestamp,
}


def _formatter_for(name: str, kind: str) -> Callable[[Any], str]:
    if kind == "json":
        return _fmt_unstruct if name == "unstruct_event" else _fmt_contexts
    return _KIND_FORMATTERS[kind]


#: One formatter per column, aligned with FIELDS.
_FORMATTERS: tuple[Callable[[Any], str], ...] = tuple(_formatter_for(n, k) for n, k in _FIELD_TABLE)


_KIND_CODES: dict[str, int] = {
    "string": ext.KIND_STRING,
    "int": ext.KIND_INT,
    "bool": ext.KIND_BOOL,
    "float": ext.KIND_FLOAT,
    "decimal": ext.KIND_DECIMAL,
    "timestamp": ext.KIND_TIMESTAMP,
    "json": ext.KIND_JSON,
}
#: The ``ext`` kind code of each column, aligned with FIELDS.
_KINDS: tuple[int, ...] = tuple(_KIND_CODES[kind] for _, kind in _FIELD_TABLE)
#: The atomic-schema length limit of each column (-1: none), aligned with FIELDS.
_LIMITS: tuple[int, ...] = tuple(FIELD_MAX_LENGTHS.get(name, -1) for name in FIELDS)


def _format_by_column(index: int, value: Any) -> str:
    # what ext.join_tsv does not format itself (Decimal, datetime, JSON, odd types)
    return _FORMATTERS[index](value)


def to_tsv(event: EnrichedEvent) -> str:
    """The event as one line of Snowplow's enriched TSV (131 fields, no newline).

    ``None`` becomes an empty field; every other value is formatted by the
    kind of its field (see the module docstring).  Raises ``TypeError`` or
    ``ValueError`` for a value its field's kind cannot hold.

    The row is assembled by :func:`ext.join_tsv` (compiled, or its twin),
    which formats the common cases itself and hands the others back to this
    module's per-kind formatters.
    """
    return _join_tsv(_get_all(event), _KINDS, _format_by_column)


def field_values(event: EnrichedEvent) -> tuple:
    """The 131 values of ``event`` in TSV order, for :func:`tsv_row` and :func:`oversized_values`."""
    return _get_all(event)


def tsv_row(values: tuple) -> str:
    """:func:`to_tsv` of the event whose :func:`field_values` these are."""
    return _join_tsv(values, _KINDS, _format_by_column)


def oversized_fields(event: EnrichedEvent) -> list[tuple[str, int, int]]:
    """``(field, length, max_length)`` for each string field longer than the atomic schema allows."""
    return oversized_values(_get_all(event))


def oversized_values(values: tuple) -> list[tuple[str, int, int]]:
    """:func:`oversized_fields` of the event whose :func:`field_values` these are."""
    return [(FIELDS[i], len(values[i]), _LIMITS[i]) for i in _oversized(values, _LIMITS)]


_join_tsv = ext.join_tsv
_oversized = ext.oversized


#: Snowplow enrich 3.9.0's ``AtomicFieldsLengthValidator``, in its order: (name reported, column read, max length).
#: Its ``event_id`` check reads the ``event`` column (``_.event``), so an event_id is never reported.
_ATOMIC_CHECKS: tuple[tuple[str, int, int], ...] = tuple(
    (name, FIELD_INDEX["event" if name == "event_id" else name], limit) for name, limit in FIELD_MAX_LENGTHS.items())


def _checks_by_column() -> dict[int, tuple[int, tuple[tuple[int, str, int], ...]]]:
    """Column -> (its smallest limit, the checks that read it, each ``(place in _ATOMIC_CHECKS, name reported,
    max length)``)."""
    checks: dict[int, list[tuple[int, str, int]]] = {}
    for place, (name, column, limit) in enumerate(_ATOMIC_CHECKS):
        checks.setdefault(column, []).append((place, name, limit))
    return {column: (min(limit for _, _, limit in found), tuple(found)) for column, found in checks.items()}


_CHECKS_BY_COLUMN = _checks_by_column()
#: Half of each column's smallest limit (-1: no check reads it): a string of at most that many code points is
#: within any limit counted in UTF-16 code units, as Java's ``String.length`` counts.
_CANDIDATE_LIMITS: tuple[int, ...] = tuple(
    _CHECKS_BY_COLUMN[i][0] // 2 if i in _CHECKS_BY_COLUMN else -1 for i in range(len(FIELDS)))


def _java_length(text: str) -> int:
    """``String.length``: UTF-16 code units (a character beyond U+FFFF counts 2)."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def atomic_length_errors(values: tuple) -> list[str]:
    """The messages of Snowplow's ``AtomicFieldsLengthValidator`` for the event whose :func:`field_values`
    these are (``Field domain_userid longer than maximum allowed size 128``), in its order; [] when it passes."""
    candidates = _oversized(values, _CANDIDATE_LIMITS)
    if not candidates:
        return []
    failed = []  # only the candidates' checks are read: two-letter country codes are candidates in most events
    for column in candidates:
        smallest, checks = _CHECKS_BY_COLUMN[column]
        length = _java_length(values[column])
        if length > smallest:
            failed.extend(check for check in checks if length > check[2])
    if not failed:
        return []
    failed.sort()  # into Snowplow's order
    return [f"Field {name} longer than maximum allowed size {limit}" for _, name, limit in failed]
