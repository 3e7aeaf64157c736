"""The data reports of a failed validation, as Snowplow's enrich 3.9.0 writes them.

Snowplow validates with iglu-scala-client 1.5.0, which runs networknt's
json-schema-validator 1.0.70 (draft 4, ``typeLoose`` off) and turns each
``ValidationMessage`` into ``{"message", "path", "keyword", "targets"}``.
``jsonschema_rs`` (snowmelt's validator) decides *whether* data is valid;
when it is not, :func:`reports` walks the schema again in Python the way
networknt does, to give the same messages in the same order.  Only the
failure path pays for it.

What is reproduced (facts taken from networknt 1.0.70's sources):

* message templates (``jsv-messages.properties``), the keyword written
  (``type``, ``unionType``, ``required``, ``additionalProperties``, ``enum``,
  ``format``, ``dateTime``, ``uuid``, ``pattern``, ``minLength``,
  ``maxLength``, ``minimum``, ``maximum``, ``multipleOf``, ``minItems``,
  ``maxItems``, ``uniqueItems``, ``items``, ``minProperties``,
  ``maxProperties``, ``dependencies``, ``anyOf``, ``oneOf``, ``not``) and
  the arguments as networknt formats them: type names, enum values by
  Jackson's ``asText`` (``[a, 1, null]``), thresholds as written in the
  schema (``1.5``, ``1E+3``), ``multipleOf`` divisors as Java doubles
  (``2.0``), union types as ``[string, null]``;
* paths: ``$``, ``$.a.b``, ``$.a[0]``, names written as they are (no
  quoting); ``required`` and ``additionalProperties`` report the object's
  path and name the property in the message;
* order: a schema's keywords run ``properties`` first, then sorted by name;
  messages are a set (a repeat is dropped); ``properties`` are visited in
  ``java.util.HashMap`` order of their names, object members in the order
  of Scala 2.12's immutable ``Map`` (insertion order up to four keys, hash
  order beyond), since Snowplow converts circe JSON to Jackson through one;
  a missing property listed in ``properties`` reports the whole
  ``required`` list at that point; ``anyOf`` reports
  ``should be valid to any of the schemas <type>`` for each alternative
  whose ``type`` the value does not have, plus the errors of the others;
  ``oneOf`` with none valid drops ``required`` errors when there are
  others, then ``additionalProperties`` ones, and sorts what is left by
  networknt's priority (``type`` first, then by error code) from
  ``HashSet`` order; ``oneOf`` with several valid lists the schemas'
  JSON, run together.

Known differences (cannot be reproduced, or not worth it):

* numbers are Python's after parsing: a schema's or event's ``1.50`` or
  ``1e5`` is written ``1.5`` / ``100000.0`` where Jackson keeps the text
  (``1.50``, ``1E+5``); Java's ``Double.toString`` is taken as the
  shortest round-trip digits (older JDKs sometimes print one more);
* ``patternProperties`` patterns are tried in schema order (networknt keeps
  them in an ``IdentityHashMap``, whose order varies from run to run);
* regular expressions run on Python's ``re`` (ASCII classes), not
  ``java.util.regex``; a pattern Python cannot compile reports nothing;
* ``format: email`` does not look the top-level domain up in IANA's list
  (commons-validator's ``DomainValidator``, which networknt carries): any
  of two letters or more is taken (``a@b.invalidtld`` passes here, not
  there); ``date-time`` follows ethlo ITU 1.5.1 as it answers (optional
  seconds before the offset, empty fractions, offsets up to 18:00, its own
  table of leap-second days), ``date`` Java's ``LocalDate.parse``;
* where ``jsonschema_rs`` and networknt disagree on validity (e.g. a
  member name starting with ``#``, which networknt's ``additionalProperties``
  skips), :func:`reports` may find nothing; the caller then falls back to
  ``jsonschema_rs``'s own errors;
* ``readOnly``, ``notAllowed``, custom ``message`` keywords, ``$ref``
  resolved against an ``id``, and the "enum object schema" exception of
  networknt's ``type`` check are not reproduced; a remote ``$ref`` accepts
  anything, as Snowplow's (which fetches an empty schema for it);
* equality of decimals (``enum``, ``uniqueItems``) is by value: Jackson's
  ``DecimalNode`` may also compare the scale (``1.0`` vs ``1.00``);
* data ``jsonschema_rs`` accepts but networknt refuses (e.g. ``enum: [1]``
  and ``1.0``) gets no report at all: that is a difference in validity, not
  in reports.
"""
from __future__ import annotations

import math
import re
from decimal import Context, Decimal, InvalidOperation
import ipaddress
from typing import Any, Callable, Iterable, NamedTuple

from ext.javanum import days_in_month
from processor.scala_order import java_string_hash as _java_string_hash, scala_map_order

__all__ = ["Message", "reports"]

_M32 = 0xFFFFFFFF


# networknt's ValidatorTypeCode: keyword -> (error code, message template)
_TEMPLATES: dict[str, tuple[str, str]] = {
    "additionalProperties": ("1001", "{0}.{1}: is not defined in the schema and the schema does not allow additional properties"),
    "allOf": ("1002", "{0}: should be valid to all the schemas {1}"),
    "anyOf": ("1003", "{0}: should be valid to any of the schemas {1}"),
    "dependencies": ("1007", "{0}: has an error with dependencies {1}"),
    "enum": ("1008", "{0}: does not have a value in the enumeration {1}"),
    "format": ("1009", "{0}: does not match the {1} pattern {2}"),
    "items": ("1010", "{0}[{1}]: no validator found at this index"),
    "maximum": ("1011", "{0}: must have a maximum value of {1}"),
    "maxItems": ("1012", "{0}: there must be a maximum of {1} items in the array"),
    "maxLength": ("1013", "{0}: may only be {1} characters long"),
    "maxProperties": ("1014", "{0}: may only have a maximum of {1} properties"),
    "minimum": ("1015", "{0}: must have a minimum value of {1}"),
    "minItems": ("1016", "{0}: there must be a minimum of {1} items in the array"),
    "minLength": ("1017", "{0}: must be at least {1} characters long"),
    "minProperties": ("1018", "{0}: should have a minimum of {1} properties"),
    "multipleOf": ("1019", "{0}: must be multiple of {1}"),
    "not": ("1020", "{0}: should not be valid to the schema {1}"),
    "oneOf": ("1022", "{0}: should be valid to one and only one of schema, but more than one are valid: {1}"),
    "pattern": ("1023", "{0}: does not match the regex pattern {1}"),
    "required": ("1028", "{0}.{1}: is missing but it is required"),
    "type": ("1029", "{0}: {1} found, {2} expected"),
    "unionType": ("1030", "{0}: {1} found, but {2} is required"),
    "uniqueItems": ("1031", "{0}: the items in the array must be unique"),
    "dateTime": ("1034", "{0}: {1} is an invalid {2}"),
    "uuid": ("1035", "{0}: {1} is an invalid {2}"),
}

# OneOfValidator.compareValidationMessages: these types first, in this order; then by error code
_ONE_OF_PRIORITY = {t: i for i, t in enumerate(
    ("type", "dateTime", "uuid", "id", "exclusiveMaximum", "exclusiveMinimum", "true", "false", "const",
     "contains", "propertyNames"))}

# keywords networknt's draft-4 meta-schema validates (others are ignored)
_KEYWORDS = frozenset((
    "additionalProperties", "allOf", "anyOf", "dependencies", "enum", "format", "items", "maximum", "maxItems",
    "maxLength", "maxProperties", "minimum", "minItems", "minLength", "minProperties", "multipleOf", "not",
    "oneOf", "patternProperties", "pattern", "properties", "$ref", "required", "type", "uniqueItems"))


class Message(NamedTuple):
    """A networknt ``ValidationMessage``: equal fields make the same message (networknt keeps a set)."""

    type: str  # the keyword written in the report
    code: str
    path: str
    schema_path: str
    arguments: tuple[str, ...]
    message: str


def _message(kind: str, at: str, schema_path: str, *args: str) -> Message:
    code, template = _TEMPLATES[kind]
    return Message(kind, code, at, schema_path, args, template.format(at, *args))


# ---------------------------------------------------------------- Java facts


def _java_hash_order(items: list, hashes: list[int]) -> list:
    """``items`` (in insertion order) as a ``java.util.HashMap``/``HashSet`` holding them iterates them."""
    capacity = 16
    while len(items) > capacity * 3 // 4:
        capacity *= 2
    mask = capacity - 1
    keyed = [((h ^ (h >> 16)) & mask, i) for i, h in enumerate(h & _M32 for h in hashes)]
    keyed.sort()
    return [items[i] for _, i in keyed]


def _message_hash(m: Message) -> int:
    """``ValidationMessage.hashCode`` (details always null)."""
    h = _java_string_hash(m.type)
    h = (31 * h + _java_string_hash(m.code)) & _M32
    h = (31 * h + _java_string_hash(m.path)) & _M32
    h = (31 * h + _java_string_hash(m.schema_path)) & _M32
    h = (31 * h) & _M32
    a = 1
    for arg in m.arguments:
        a = (31 * a + _java_string_hash(arg)) & _M32
    h = (31 * h + a) & _M32
    return (31 * h + _java_string_hash(m.message)) & _M32


def _decimal_text(value: float) -> str:
    """``BigDecimal.toString`` of the number (Jackson's ``DecimalNode.asText``)."""
    return str(Decimal(repr(value)))


def _java_double(value: float) -> str:
    """``Double.toString``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    d = Decimal(repr(abs(value))).normalize()
    digits = "".join(map(str, d.as_tuple().digits))
    point = len(digits) + d.as_tuple().exponent  # digits before the decimal point
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


def _as_text(value: Any) -> str:
    """Jackson's ``JsonNode.asText``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _decimal_text(value)
    return ""  # arrays and objects


def _fields(obj: dict) -> list[str]:
    """An object's member names in the order Snowplow's Jackson copy of it iterates them."""
    return scala_map_order(list(obj))


def _json_text(value: Any) -> str:
    """Jackson's ``JsonNode.toString``: compact JSON, members in the Jackson copy's order."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_string(k)}:{_json_text(value[k])}" for k in _fields(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, str):
        return _json_string(value)
    return _as_text(value)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _json_string(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04X}" if ord(c) < 0x20 else c) for c in text) + '"'


def _type_name(value: Any) -> str:
    """networknt's ``TypeFactory.getValueNodeType``."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


_SCHEMA_TYPES = frozenset(("object", "array", "string", "number", "integer", "boolean", "any", "null"))


def _schema_type(node: Any) -> str:
    """networknt's ``TypeFactory.getSchemaNodeType``."""
    if isinstance(node, str) and node in _SCHEMA_TYPES:
        return node
    if isinstance(node, list):
        return "union"
    return "unknown"


def _node_key(value: Any) -> Any:
    """Equality of Jackson nodes: an integer never equals a decimal, objects ignore member order."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, float):
        return ("f", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("n",)
    if isinstance(value, list):
        return ("a", tuple(_node_key(v) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, _node_key(v)) for k, v in value.items()))
    return ("?", repr(value))


def _enum_key(value: Any) -> Any:
    # EnumValidator compares numbers as BigDecimals
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("d", value)
    return _node_key(value)


_REGEX_CACHE: dict[tuple[str, bool], Any] = {}


def _regex(pattern: str) -> Any:
    compiled = _REGEX_CACHE.get((pattern, False))
    if compiled is None and (pattern, False) not in _REGEX_CACHE:
        try:
            compiled = re.compile(pattern, re.ASCII)
        except (re.error, RecursionError, OverflowError):
            compiled = None
        if len(_REGEX_CACHE) < 1024:
            _REGEX_CACHE[(pattern, False)] = compiled
    return compiled


# ------------------------------------------------------------------ formats

# JsonMetaSchema.COMMON_BUILTIN_FORMATS (name -> regex, matched whole)
_IPV6 = (r"^\s*((([0-9A-Fa-f]{1,4}:){7}([0-9A-Fa-f]{1,4}|:))|(([0-9A-Fa-f]{1,4}:){6}(:[0-9A-Fa-f]{1,4}|((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(([0-9A-Fa-f]{1,4}:){5}(((:[0-9A-Fa-f]{1,4}){1,2})|:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(([0-9A-Fa-f]{1,4}:){4}(((:[0-9A-Fa-f]{1,4}){1,3})|((:[0-9A-Fa-f]{1,4})?:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9A-Fa-f]{1,4}:){3}(((:[0-9A-Fa-f]{1,4}){1,4})|((:[0-9A-Fa-f]{1,4}){0,2}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9A-Fa-f]{1,4}:){2}(((:[0-9A-Fa-f]{1,4}){1,5})|((:[0-9A-Fa-f]{1,4}){0,3}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9A-Fa-f]{1,4}:){1}(((:[0-9A-Fa-f]{1,4}){1,6})|((:[0-9A-Fa-f]{1,4}){0,4}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(:(((:[0-9A-Fa-f]{1,4}){1,7})|((:[0-9A-Fa-f]{1,4}){0,5}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:)))(%.+)?\s*$")
_FORMATS: dict[str, str] = {
    "time": r"^\d{2}:\d{2}:\d{2}(?:\.\d+)?$",
    "ip-address": r"^(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$",
    "ipv4": r"^(([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\.){3}([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$",
    "ipv6": _IPV6,
    "uri": r"^[A-Za-z][A-Za-z0-9+.-]*:(\/\/([A-Za-z0-9._~\-%!$&'()*+,;=:]*@)?[A-Za-z0-9._~\-!$&'()*+,;=%:\[\]]*(:[0-9]*)?)?[A-Za-z0-9._~\-%!$&'()*+,;=:@\/]*([?][A-Za-z0-9._~\-%!$&'()*+,;=:@\/?]*)?([#][A-Za-z0-9._~\-%!$&'()*+,;=:@\/?]*)?",
    "color": r"(#?([0-9A-Fa-f]{3,6})\b)|(aqua)|(black)|(blue)|(fuchsia)|(gray)|(green)|(lime)|(maroon)|(navy)|(olive)|(orange)|(purple)|(red)|(silver)|(teal)|(white)|(yellow)|(rgb\(\s*\b([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\b\s*,\s*\b([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\b\s*,\s*\b([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\b\s*\))|(rgb\(\s*(\d?\d%|100%)+\s*,\s*(\d?\d%|100%)+\s*,\s*(\d?\d%|100%)+\s*\))",
    "hostname": r"^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*$",
    "alpha": r"^[a-zA-Z]+$",
    "alphanumeric": r"^[a-zA-Z0-9]+$",
    "phone": r"^\+(?:[0-9] ?){6,14}[0-9]$",
    "utc-millisec": r"^[0-9]+(\.?[0-9]+)?$",
    "style": r"\s*(.+?):\s*([^;]+);?",
}
# the text networknt prints for a pattern is Java's source, where the Python one differs only by escapes
_FORMAT_TEXT = {name: pattern for name, pattern in _FORMATS.items()}
_FORMAT_RE = {name: re.compile(pattern, re.ASCII) for name, pattern in _FORMATS.items()}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
_DATE = re.compile(r"([+-]?)([0-9]{4,10})-([0-9]{2})-([0-9]{2})", re.ASCII)
# RFC 3339 as ethlo's ITU 1.5.1 reads it (found by trying it): seconds may be left out before the
# offset, the fraction may be empty, the offset is at most 18:00 and never -00:00
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{0,9})?)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))", re.ASCII)
# the days whose 23:59:60 (UTC) ITU 1.5.1 takes as a leap second (its own table, as it answers)
_LEAP_SECOND_DAYS = frozenset((
    "1971-12-31", "1972-06-30", "1972-12-31", "1973-12-31", "1974-12-31", "1975-12-31", "1976-12-31",
    "1977-12-31", "1978-12-31", "1981-06-30", "1982-06-30", "1983-06-30", "1985-06-30", "1988-12-31",
    "1989-12-31", "1990-12-31", "1992-06-30", "1993-06-30", "1994-06-30", "1995-12-31", "1997-06-30",
    "1998-12-31", "2005-12-31", "2008-12-31", "2012-06-30", "2015-06-30", "2016-12-31"))
# commons-validator's EmailValidator and DomainValidator, as networknt 1.0.70 carries them
_EMAIL_SPECIALS = "\\x00-\\x1f\\x7f()<>@,;:'\\\\\"\\.\\[\\]"
_EMAIL_WORD = f"(((\\\\.)|[^\\s{_EMAIL_SPECIALS}]|')+|(\"(\\\\\"|[^\"])*\"))"
_EMAIL_USER = re.compile(f"\\s*{_EMAIL_WORD}(\\.{_EMAIL_WORD})*", re.ASCII)
_LINE_ENDS = re.compile("[\n\r\x85\u2028\u2029]")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)\.?")
_IPV4_LITERAL = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")


def _valid_ymd(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= days_in_month(year, month)


def _valid_date(text: str) -> bool:
    """``LocalDate.parse`` (ISO_LOCAL_DATE, strict): four-digit years, or signed (``+`` beyond 9999)."""
    match = _DATE.fullmatch(text)
    if match is None:
        return False
    sign, digits = match.group(1), match.group(2)
    if (sign == "" and len(digits) != 4) or (sign == "+" and len(digits) < 5) or len(digits) > 9:
        return False
    year = -int(digits) if sign == "-" else int(digits)
    return _valid_ymd(year, int(match.group(3)), int(match.group(4)))


def _valid_date_time(text: str) -> bool:
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute = (int(g) for g in match.group(1, 2, 3, 4, 5))
    if not _valid_ymd(year, month, day) or hour > 23 or minute > 59:
        return False
    utc = True
    if match.group(7) is not None:
        oh, om = int(match.group(8)), int(match.group(9))
        if om > 59 or oh * 60 + om > 18 * 60 or (match.group(7) == "-" and oh == om == 0):
            return False
        utc = oh == om == 0
    second = int(match.group(6) or 0)
    if second == 60:
        return utc and hour == 23 and minute == 59 and text[:10] in _LEAP_SECOND_DAYS
    return second < 60


def _valid_ip_literal(text: str) -> bool:
    match = _IPV4_LITERAL.fullmatch(text)
    if match is not None:
        return all(int(g) <= 255 and not (len(g) > 1 and g[0] == "0") for g in match.groups())
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _valid_email(text: str) -> bool:
    """commons-validator's ``EmailValidator`` (no local names, no bare TLDs), but for the top-level
    domain, which is not looked up in IANA's list: two letters or more, or an ``xn--`` label."""
    if text.endswith("."):
        return False
    # ``\s*?(.+)@(.+?)\s*``: the user is all before the last @, the domain what follows less blanks
    at = text.rfind("@")
    user, domain = text[:at], text[at + 1:].rstrip(" \t\n\x0b\f\r")
    if at < 1 or not domain or _LINE_ENDS.search(user) or _LINE_ENDS.search(domain):
        return False
    if len(user) > 64 or not _EMAIL_USER.fullmatch(user):
        return False
    if domain.startswith("[") and domain.endswith("]"):
        return _valid_ip_literal(domain[1:-1])
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            pass
    if len(domain) > 253:
        return False
    match = _DOMAIN.fullmatch(domain)
    if match is None:
        return False
    tld = match.group(1)
    return tld.lower().startswith("xn--") or (len(tld) >= 2 and tld.isalpha())


# ---------------------------------------------------------------- validation


def _regex_format(name: str) -> Callable[[str], bool]:
    pattern = _FORMAT_RE[name]
    if name == "ipv6":
        return lambda value: value.strip() == value and "%" not in value and pattern.fullmatch(value) is not None
    return lambda value: pattern.fullmatch(value) is not None


#: networknt's verdict on each format it knows in draft 4, for the validator that decides validity
#: (``processor.iglu`` gives them to jsonschema_rs, replacing its own: its draft 4 does not check ``uuid``
#: and refuses a ``date-time`` without seconds, where Snowplow's validator does the opposite); formats
#: networknt does not know are not checked, as there.
FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    **{name: _regex_format(name) for name in _FORMATS},
    "date": _valid_date,
    "date-time": _valid_date_time,
    "uuid": lambda value: _UUID.fullmatch(value) is not None,
    "email": _valid_email,
}


class _State:
    """networknt's ValidatorState (one per validation)."""

    __slots__ = ("matched", "complex")

    def __init__(self) -> None:
        self.matched = True
        self.complex = False


class _Walker:
    def __init__(self, root: dict) -> None:
        self.root = root
        self.state = _State()
        self.depth = 0

    # a schema: its validators in networknt's order ------------------------

    def schema(self, node: Any, path: str, parent: Any, value: Any, at: str) -> dict[Message, None]:
        errors: dict[Message, None] = {}
        if not isinstance(node, dict):
            return errors
        self.depth += 1
        try:
            if self.depth > 200:
                return errors
            keys = [k for k in node if k in _KEYWORDS]
            keys.sort(key=lambda k: (k != "properties", k))
            for keyword in keys:
                for m in self.keyword(keyword, node, path, parent, value, at):
                    errors[m] = None
        finally:
            self.depth -= 1
        return errors

    def keyword(self, kw: str, node: dict, path: str, parent: Any, value: Any, at: str) -> Iterable[Message]:
        arg = node[kw]
        vpath = f"{path}/{kw}"
        if kw == "type":
            return self.type_(arg, vpath, node, parent, value, at)
        if kw == "properties":
            return self.properties(arg, vpath, node, value, at)
        if kw == "required":
            return self.required(arg, vpath, value, at)
        return getattr(self, "kw_" + kw.lstrip("$"))(arg, vpath, node, value, at)

    # type ----------------------------------------------------------------

    def type_matches(self, expected: str, node: dict, parent: Any, value: Any) -> bool:
        actual = _type_name(value)
        if actual == expected or expected == "any":
            return True
        if expected == "number" and actual == "integer":
            return True
        if actual == "null" and (_nullable(node) or _nullable(parent)):
            return True
        return False

    def type_(self, arg: Any, vpath: str, node: dict, parent: Any, value: Any, at: str) -> Iterable[Message]:
        expected = _schema_type(arg)
        if expected == "union":
            names = []
            ok = False
            for item in arg:
                t = _schema_type(item)
                names.append(t)
                if not ok:
                    if isinstance(item, dict):
                        ok = not self.schema(item, "type", node, value, at)
                    else:
                        ok = self.type_matches(t, node, parent, value)
            if ok:
                return ()
            return (_message("unionType", at, vpath, _type_name(value), "[" + ", ".join(names) + "]"),)
        if self.type_matches(expected, node, parent, value):
            return ()
        return (_message("type", at, vpath, _type_name(value), expected),)

    # objects ---------------------------------------------------------------

    def properties(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(arg, dict):
            return ()
        errors: dict[Message, None] = {}
        state = self.state
        missing: list[Message] | None = None
        for name in _properties_order(arg):
            present = isinstance(value, dict) and name in value
            if present:
                was_complex = state.complex
                if was_complex:
                    state.matched = True
                state.complex = False
                errors.update(self.schema(arg[name], f"{vpath}/{name}", node, value[name], f"{at}.{name}"))
                state.complex = was_complex
                if was_complex:
                    state.matched = True
            elif "required" in node:
                if missing is None:  # the same object each time: the same answer
                    missing = self.required(node["required"], f"{vpath[:-len('/properties')]}/required", value, at)
                if missing:
                    if state.complex:
                        state.matched = False
                        return ()
                    errors.update(dict.fromkeys(missing))
        return errors

    def required(self, arg: Any, vpath: str, value: Any, at: str) -> list[Message]:
        if not isinstance(value, dict) or not isinstance(arg, list):
            return []
        return [_message("required", at, vpath, _as_text(name)) for name in arg if _as_text(name) not in value]

    def kw_additionalProperties(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(value, dict):
            return ()
        allowed = node.get("properties")
        allowed = allowed if isinstance(allowed, dict) else {}
        patterns = node.get("patternProperties")
        patterns = [p for p in (_regex(k) for k in _fields(patterns)) if p is not None] \
            if isinstance(patterns, dict) else []
        errors: dict[Message, None] = {}
        for name in _fields(value):
            if name.startswith("#") or name in allowed or any(p.search(name) for p in patterns):
                continue
            if arg is False or not isinstance(arg, (bool, dict)):
                errors[_message("additionalProperties", at, vpath, name)] = None
            elif isinstance(arg, dict):
                errors.update(self.schema(arg, "additionalProperties", node, value[name], f"{at}.{name}"))
        return errors

    def kw_patternProperties(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(value, dict) or not isinstance(arg, dict):
            return ()
        errors: dict[Message, None] = {}
        compiled = [(k, _regex(k)) for k in _fields(arg)]
        for name in _fields(value):
            for pattern, regex in compiled:
                if regex is not None and regex.search(name):
                    errors.update(self.schema(arg[pattern], pattern, node, value[name], f"{at}.{name}"))
        return errors

    def kw_dependencies(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(value, dict) or not isinstance(arg, dict):
            return ()
        names = _fields(arg)
        props = {n: [_as_text(v) for v in arg[n]] for n in names if isinstance(arg[n], list)}
        order = _java_hash_order(list(props), [_java_string_hash(n) for n in props])
        text = "{" + ", ".join(f"{n}=[{', '.join(props[n])}]" for n in order) + "}"
        errors: dict[Message, None] = {}
        for name in _fields(value):
            for field in props.get(name, ()):
                if field not in value:
                    errors[_message("dependencies", at, vpath, text)] = None
            sub = arg.get(name)
            if isinstance(sub, (dict, bool)) and name in arg:
                errors.update(self.schema(sub, name, node, value, at))
        return errors

    def kw_minProperties(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        limit = _int_arg(arg, 0)
        if isinstance(value, dict) and len(value) < limit:
            return (_message("minProperties", at, vpath, str(limit)),)
        return ()

    def kw_maxProperties(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        limit = _int_arg(arg, 0)
        if isinstance(value, dict) and len(value) > limit:
            return (_message("maxProperties", at, vpath, str(limit)),)
        return ()

    # arrays ----------------------------------------------------------------

    def kw_items(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(value, list):
            return ()
        errors: dict[Message, None] = {}
        if isinstance(arg, (dict, bool)):
            for i, item in enumerate(value):
                errors.update(self.schema(arg, vpath, node, item, f"{at}[{i}]"))
            return errors
        if not isinstance(arg, list):
            return errors
        extra = node.get("additionalItems", True)
        for i, item in enumerate(value):
            if i < len(arg):
                errors.update(self.schema(arg[i], vpath, node, item, f"{at}[{i}]"))
            elif isinstance(extra, dict):
                errors.update(self.schema(extra, "#", node, item, f"{at}[{i}]"))
            elif extra is False:
                errors[_message("items", at, vpath, str(i))] = None
        return errors

    def kw_minItems(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        limit = _int_arg(arg, 0)
        if isinstance(value, list) and len(value) < limit:
            return (_message("minItems", at, vpath, str(limit)),)
        return ()

    def kw_maxItems(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        limit = _int_arg(arg, 0)
        if isinstance(value, list) and len(value) > limit:
            return (_message("maxItems", at, vpath, str(limit)),)
        return ()

    def kw_uniqueItems(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if arg is not True:
            return ()
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else ()
        seen = set()
        for item in items:
            key = _node_key(item)
            if key in seen:
                return (_message("uniqueItems", at, vpath),)
            seen.add(key)
        return ()

    # strings ---------------------------------------------------------------

    def kw_minLength(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        limit = _int_arg(arg, -(2 ** 31))
        if isinstance(value, str) and len(value) < limit:
            return (_message("minLength", at, vpath, str(limit)),)
        return ()

    def kw_maxLength(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        limit = _int_arg(arg, 2 ** 31 - 1)
        if isinstance(value, str) and len(value) > limit:
            return (_message("maxLength", at, vpath, str(limit)),)
        return ()

    def kw_pattern(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(value, str) or not isinstance(arg, str):
            return ()
        regex = _regex(arg)
        if regex is not None and not regex.search(value):
            return (_message("pattern", at, vpath, arg),)
        return ()

    def kw_format(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(value, str) or not isinstance(arg, str):
            return ()
        # FormatKeyword builds its validator with the schema's own path
        spath = vpath[: -len("/format")]
        if arg in _FORMAT_RE:
            errors = []
            if arg == "ipv6" and (value.strip() != value or "%" in value):
                errors.append(_message("format", at, spath, arg, _FORMAT_TEXT[arg]))
            if not _FORMAT_RE[arg].fullmatch(value):
                errors.append(_message("format", at, spath, arg, _FORMAT_TEXT[arg]))
            return dict.fromkeys(errors)
        if arg == "date":
            if not _valid_date(value):
                return (_message("dateTime", at, spath, value, arg),)
        elif arg == "date-time":
            if not _valid_date_time(value):
                return (_message("dateTime", at, spath, value, arg),)
        elif arg == "uuid":
            if not _UUID.fullmatch(value):
                return (_message("uuid", at, spath, value, arg),)
        elif arg == "email":
            if not _valid_email(value):
                return (_message("format", at, spath, value, arg),)
        return ()

    # numbers ---------------------------------------------------------------

    def _threshold(self, kind: str, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not _is_number(value) or not _is_number(arg):
            return ()
        exclusive = node.get("exclusiveMinimum" if kind == "minimum" else "exclusiveMaximum") is True
        if isinstance(arg, int) and node.get("type") == "integer" and -2 ** 63 <= arg < 2 ** 63:
            # networknt compares an integer schema's bound with the value's long part
            compared = int(value) if isinstance(value, float) and math.isfinite(value) else value
        else:
            compared = value
        if kind == "minimum":
            crossed = compared < arg or (exclusive and compared == arg)
        else:
            crossed = compared > arg or (exclusive and compared == arg)
        if crossed:
            return (_message(kind, at, vpath, _as_text(arg)),)
        return ()

    def kw_minimum(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        return self._threshold("minimum", arg, vpath, node, value, at)

    def kw_maximum(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        return self._threshold("maximum", arg, vpath, node, value, at)

    def kw_multipleOf(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not _is_number(value) or not _is_number(arg) or arg == 0:
            return ()
        divisor = float(arg)
        try:
            dividend = Decimal(repr(value)) if isinstance(value, float) else Decimal(_java_double(float(value)))
            ctx = Context(prec=1000)
            remainder = ctx.remainder(dividend, Decimal(_java_double(divisor)))
        except (InvalidOperation, OverflowError, ValueError):
            return ()
        if remainder != 0:
            return (_message("multipleOf", at, vpath, _java_double(divisor)),)
        return ()

    # any type --------------------------------------------------------------

    def kw_enum(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if isinstance(arg, list):
            values = list(arg)
            text = "[" + ", ".join(_as_text(v) for v in arg) + "]"
            if node.get("nullable") is not None and _nullable(node):
                values.append(None)
                text = text[:-1] + ", null]"
            allowed = {_enum_key(v) for v in values}
        else:
            allowed, text = set(), "[none]"
        if _enum_key(value) not in allowed:
            return (_message("enum", at, vpath, text),)
        return ()

    def kw_ref(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if not isinstance(arg, str):
            return ()
        target = _resolve(self.root, arg)
        if target is None:
            return ()
        return self.schema(target, arg, node, value, at)

    def kw_allOf(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        errors: dict[Message, None] = {}
        for sub in arg if isinstance(arg, list) else ():
            errors.update(self.schema(sub, "allOf", node, value, at))
        return errors

    def kw_anyOf(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        errors: dict[Message, None] = {}
        for sub in arg if isinstance(arg, list) else ():
            if isinstance(sub, dict) and "type" in sub:
                expected = _schema_type(sub["type"])
                if expected != "union" and not self.type_matches(expected, sub, node, value):
                    errors[_message("anyOf", at, vpath, expected)] = None
                    continue
            sub_errors = self.schema(sub, "anyOf", node, value, at)
            if not sub_errors:
                if not self.state.matched:
                    continue
                return ()
            errors.update(sub_errors)
        return errors

    def kw_oneOf(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        state = self.state
        state.complex = True
        subs = arg if isinstance(arg, list) else []
        valid = 0
        child: dict[Message, None] = {}
        for sub in subs:
            state.matched = True
            sub_errors = self.schema(sub, "oneOf", node, value, at)
            if not sub_errors:
                if not state.matched:
                    continue
                valid += 1
            if valid > 1:
                break
            child.update(sub_errors)
        errors: list[Message] = []
        if valid > 1:
            errors.append(_message("oneOf", at, vpath, "".join(_json_text(s) for s in subs)))
        elif valid < 1:
            chosen = list(child)
            not_required = [m for m in chosen if m.type != "required"]
            if not_required:  # Collectors.toSet(): a HashSet
                chosen = _java_hash_order(not_required, [_message_hash(m) for m in not_required])
            if len(chosen) > 1:
                narrowed = [m for m in chosen if m.type != "additionalProperties"]
                narrowed.sort(key=_one_of_rank)
                if narrowed:
                    chosen = narrowed
            errors.extend(chosen)
        if not errors:
            state.matched = True
        state.complex = False
        state.matched = True
        return dict.fromkeys(errors)

    def kw_not(self, arg: Any, vpath: str, node: dict, value: Any, at: str) -> Iterable[Message]:
        if self.schema(arg, "not", node, value, at):
            return ()
        return (_message("not", at, vpath, f'"not" : {_json_text(arg)}'),)


_PROPERTY_ORDERS: dict[tuple[str, ...], list[str]] = {}


def _properties_order(properties: dict) -> list[str]:
    """The names of a ``properties`` schema in the order networknt visits them: a ``java.util.HashMap``
    filled in the order of Snowplow's Jackson copy of the schema."""
    key = tuple(properties)
    order = _PROPERTY_ORDERS.get(key)
    if order is None:
        names = _fields(properties)
        order = _java_hash_order(names, [_java_string_hash(n) for n in names])
        if len(_PROPERTY_ORDERS) < 1024:
            _PROPERTY_ORDERS[key] = order
    return order


def _one_of_rank(m: Message) -> tuple:
    rank = _ONE_OF_PRIORITY.get(m.type)
    return (0, rank, "") if rank is not None else (1, 0, m.code)


def _nullable(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    flag = node.get("nullable")
    return flag is True or (isinstance(flag, str) and flag.lower() == "true") \
        or (isinstance(flag, (int, float)) and not isinstance(flag, bool) and flag != 0)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_arg(arg: Any, default: int) -> int:
    """``canConvertToExactIntegral`` then ``intValue`` (Java int overflow wraps)."""
    if isinstance(arg, bool) or not isinstance(arg, (int, float)):
        return default
    if isinstance(arg, float):
        if not arg.is_integer():
            return default
        arg = int(arg)
    arg &= _M32
    return arg - (1 << 32) if arg & 0x80000000 else arg


def _resolve(root: dict, ref: str) -> Any:
    """A local ``$ref`` (``#``, ``#/definitions/a``); a remote one is an empty schema for Snowplow."""
    import urllib.parse

    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = urllib.parse.unquote_plus(part)
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            node = node[index] if index < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
        if node is None:
            return None
    return node


def reports(schema: dict, instance: Any) -> list[Message]:
    """networknt 1.0.70's messages for ``instance`` against ``schema`` (a draft-4 schema), in its order.

    ``[]`` when there are none, or when the schema is too odd to walk (the caller then gives
    ``jsonschema_rs``'s account)."""
    try:
        return list(_Walker(schema).schema(schema, "#", None, instance, "$"))
    except Exception:  # RecursionError, a value of an unexpected type in an odd schema
        return []
