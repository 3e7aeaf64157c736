"""CloudFront web distribution access logs: ``/com.amazon.aws.cloudfront/wd_access_log``.

What arrives
    A POST whose body is a CloudFront *standard* (web distribution) access log
    line, as AWS writes them to S3: fields separated by tabs.  Over the years AWS
    appended fields to the line; each layout has its own schema version of
    ``iglu:com.amazon.aws.cloudfront/wd_access_log``:

    ======  =========  ==========================================================
    fields  version    fields added at the end of the line
    ======  =========  ==========================================================
    12      1-0-0      date time x-edge-location sc-bytes c-ip cs-method cs(Host)
                       cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query
    15      1-0-1      cs(Cookie) x-edge-result-type x-edge-request-id
    18      1-0-2      x-host-header cs-protocol cs-bytes
    19      1-0-3      time-taken
    23      1-0-4      x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type
    24      1-0-5      cs-protocol-version
    26      1-0-6      fle-status fle-encrypted-fields
    ======  =========  ==========================================================

What Snowplow's enrich 3.9.0 does (and this module)
    The line becomes one self-describing event: ``tv=com.amazon.aws.cloudfront/wd_access_log``,
    ``e=ue``, ``p=srv``, ``ue_pr``, and ``url`` = the logged referer as written
    (the request's query string is not read).  Its data has the fields in
    camelCase, in log order:

    * ``date`` and ``time`` joined as written into ``dateTime`` (``<date>T<time>Z``);
    * an empty field is ``null`` (a ``-`` stays the text ``-``);
    * ``sc-bytes`` / ``cs-bytes`` as ``Integer.parseInt`` reads them, ``time-taken``
      as ``Double.parseDouble`` (written as Java writes a double);
    * ``cs(Referer)`` and ``cs(User-Agent)`` decoded once from their double
      encoding: ``%25XX`` made ``%XX``, then ``URLDecoder`` (``+`` is a space),
      line breaks removed and tabs made four spaces;
    * ``cs-uri-query`` with ``%25XX`` made ``%XX`` only.

    The event's request context is the log line's, not the collector's: the
    collector timestamp is the line's date and time, the client address
    ``c-ip``, the user agent ``cs(User-Agent)`` with ``%25XX`` made ``%XX``; no
    referer, headers or network user id.

    A bad line is an ``adapter_failures`` bad row with 3.9.0's messages: the
    wrong number of fields (``access log contained 5 fields, expected 12, 15,
    18, 19, 23, 24 or 26``), a date and time Joda cannot read (``could not convert
    access log timestamp: Invalid format: "aTb+00:00"``), then the fields that do
    not convert (last field first, as 3.9.0 collects them): ``cannot be
    converted to Int`` / ``Double``, ``exception URL-decoding (encoding UTF-8):
    ...``.  No body is ``empty body``.

Differences
    3.9.0 reads the whole body as one line (its TSV loader gives it one log line
    per payload).  A body of several lines is read here one line at a time
    (``#`` header lines and empty lines skipped), one event per line, the
    messages of every bad line in one row; with no line left it is refused as
    3.9.0 refuses an empty line.  Joda's date parser is followed for the
    ``yyyy-MM-dd`` / ``HH:mm:ss[.SSS]`` forms CloudFront writes; its other ISO
    forms (week and ordinal dates) are refused here.  A body of one line
    ending in a line break is read as 3.9.0 reads it: the break stays in the
    last field (``cs-bytes`` ``"23\\n"`` is no Int, ``cs-protocol-version``
    ``"HTTP/1.1\\n"`` too long for its schema; ``time-taken`` is read as Java
    reads a double, whitespace trimmed).
"""
from __future__ import annotations

import calendar
import re

from ext import CollectorPayload
from ext.javanum import java_integer
from processor.adapters import Adapted, register
from processor.webhooks._common import JavaDouble, failed, iglu_uri, input_error, json_text

VENDOR = "com.amazon.aws.cloudfront"
NAME = "wd_access_log"
TRACKER_VERSION = "com.amazon.aws.cloudfront/wd_access_log"
UNSTRUCT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"

FIELDS = (
    "dateTime", "xEdgeLocation", "scBytes", "cIp", "csMethod", "csHost", "csUriStem", "scStatus", "csReferer",
    "csUserAgent", "csUriQuery", "csCookie", "xEdgeResultType", "xEdgeRequestId", "xHostHeader",
    "csProtocol", "csBytes", "timeTaken", "xForwardedFor", "sslProtocol", "sslCipher",
    "xEdgeResponseResultType", "csProtocolVersion", "fleStatus", "fleEncryptedFields",
)
#: field count of a line -> schema version
VERSIONS = {12: "1-0-0", 15: "1-0-1", 18: "1-0-2", 19: "1-0-3", 23: "1-0-4", 24: "1-0-5", 26: "1-0-6"}
_COUNTS = "expected 12, 15, 18, 19, 23, 24 or 26"
_PAYLOAD_FIELDS = ("schema", "ip_address", "timestamp", "encoding", "collector", "user_agent", "referer_uri", "path",
                   "querystring", "body", "headers", "content_type", "hostname", "network_user_id")


# -- Java's readings ---------------------------------------------------------------------

_DOUBLE_PCT = re.compile(r"%25([0-9a-fA-F][0-9a-fA-F])")
_JAVA_DOUBLE = re.compile(
    r"[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?)", re.ASCII)


def single_encode_pcts(text: str) -> str:
    """``ConversionUtils.singleEncodePcts``: ``%25XX`` -> ``%XX``."""
    return _DOUBLE_PCT.sub(r"%\1", text)


def java_url_decode(text: str) -> str:
    """``URLDecoder.decode(text, "UTF-8")``; ``ValueError`` with its message."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "+":
            out.append(" ")
            i += 1
        elif c == "%":
            data = bytearray()
            while i + 2 < n and text[i] == "%":
                digits = text[i + 1:i + 3]
                value = _java_parse_hex(digits)
                if value < 0:
                    raise ValueError("URLDecoder: Illegal hex characters in escape (%) pattern - negative value")
                data.append(value)
                i += 3
            if i < n and text[i] == "%":
                raise ValueError("URLDecoder: Incomplete trailing escape (%) pattern")
            out.append(data.decode("utf-8", "replace"))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _java_parse_hex(digits: str) -> int:
    """``Integer.parseInt(s, i, i + 2, 16)`` of the two characters after a ``%``."""
    body = digits[1:] if digits[:1] in "+-" else digits
    for index, ch in enumerate(body):
        if ch.lower() not in "0123456789abcdef" and not (ch.isdecimal()):
            at = index + (len(digits) - len(body))
            raise ValueError(f'URLDecoder: Illegal hex characters in escape (%) pattern - Error at index {at} in: "{digits}"')
    if not body:
        raise ValueError(f'URLDecoder: Illegal hex characters in escape (%) pattern - Error at index 0 in: "{digits}"')
    value = int("".join(str(int(ch)) if ch.isdecimal() else ch for ch in body), 16)
    return -value if digits[0] == "-" else value


def double_decode(text: str) -> tuple[str | None, str | None]:
    """``ConversionUtils.doubleDecode``: ``(decoded, None)`` or ``(None, message)``."""
    try:
        decoded = java_url_decode(single_encode_pcts(text))
    except ValueError as exc:
        return None, f"exception URL-decoding (encoding UTF-8): {exc}"
    return decoded.replace("\r", "").replace("\n", "").replace("\t", "    "), None


def java_parse_double(text: str) -> float | None:
    """``Double.parseDouble`` (outer whitespace ignored), or None when it refuses."""
    stripped = text.strip("".join(chr(c) for c in range(33)))
    if not _JAVA_DOUBLE.fullmatch(stripped):
        return None
    core = stripped.rstrip("fFdD") if "Infinity" not in stripped and "NaN" not in stripped else stripped
    return float(core.replace("Infinity", "inf"))


# -- Joda's DateTime.parse, for the forms CloudFront writes ------------------------------------

_DATE_TIME = re.compile(
    r"(?P<year>[+-]?\d{1,9})(?:-(?P<month>\d{1,2})(?:-(?P<day>\d{1,2}))?)?"
    r"(?:T(?P<hour>\d{1,2})(?::(?P<minute>\d{1,2})(?::(?P<second>\d{1,2})(?:[.,](?P<fraction>\d{1,9}))?)?)?)?",
    re.ASCII)
_OFFSET = re.compile(r"Z|[+-]\d{2}(?::?\d{2})?", re.ASCII)


def joda_parse_millis(text: str) -> int:
    """Epoch ms of ``text`` (``2013-10-07T23:35:30+00:00``); ``ValueError`` with Joda's message."""
    match = _DATE_TIME.match(text)
    end = match.end() if match else 0
    offset = _OFFSET.match(text, end) if match and match.group("hour") is not None else None
    if offset is not None:
        end = offset.end()
    if end == 0:
        raise ValueError(f'Invalid format: "{text}"')
    if end < len(text) or offset is None:
        if end >= len(text):
            raise ValueError(f'Invalid format: "{text}" is too short')
        raise ValueError(f'Invalid format: "{text}" is malformed at "{text[end:]}"')
    year = int(match.group("year"))
    month, day = int(match.group("month") or 1), int(match.group("day") or 1)
    hour, minute = int(match.group("hour") or 0), int(match.group("minute") or 0)
    second = int(match.group("second") or 0)
    millis = int((match.group("fraction") or "0").ljust(3, "0")[:3])
    days_in_month = calendar.monthrange(year, month)[1] if 1 <= month <= 12 and 1 <= year <= 9999 else 31
    for value, name, low, high in ((month, "monthOfYear", 1, 12), (day, "dayOfMonth", 1, days_in_month),
                                   (hour, "hourOfDay", 0, 23), (minute, "minuteOfHour", 0, 59),
                                   (second, "secondOfMinute", 0, 59)):
        if not low <= value <= high:
            raise ValueError(f'Cannot parse "{text}": Value {value} for {name} must be in the range [{low},{high}]')
    zone = offset.group(0)
    shift = 0
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        shift = (int(digits[:2]) * 60 + int(digits[2:4] or 0)) * 60_000 * (1 if zone[0] == "+" else -1)
    days = _days_from_civil(year, month, day)
    return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis - shift


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


# -- the adapter -------------------------------------------------------------------------

def adapt_line(line: str, payload: CollectorPayload) -> tuple[dict, CollectorPayload] | list[dict]:
    """``(parameters, request context)`` of one log line, or 3.9.0's messages."""
    fields = line.split("\t")
    version = VERSIONS.get(len(fields))
    if version is None:
        return [input_error("body", line, f"access log contained {len(fields)} fields, {_COUNTS}")]
    values = [f"{fields[0]}T{fields[1]}Z"] + fields[2:]
    data: dict = {}
    errors: list[dict] = []
    for name, value in zip(FIELDS, values):
        if value == "":
            data[name] = None
        elif name == "timeTaken":
            number = java_parse_double(value)
            if number is None or number != number or number in (float("inf"), float("-inf")):
                errors.insert(0, input_error(name, value, "cannot be converted to Double"))
            else:
                data[name] = JavaDouble(number)
        elif name in ("scBytes", "csBytes"):
            number = java_integer(value, 32)
            if number is None:
                errors.insert(0, input_error(name, value, "cannot be converted to Int"))
            else:
                data[name] = number
        elif name in ("csReferer", "csUserAgent"):
            decoded, problem = double_decode(value)
            if problem is not None:
                errors.insert(0, input_error(name, value, problem))
            else:
                data[name] = decoded
        elif name == "csUriQuery":
            data[name] = single_encode_pcts(value)
        else:
            data[name] = value
    try:
        collected = joda_parse_millis(f"{fields[0]}T{fields[1]}+00:00")
    except ValueError as exc:
        errors.insert(0, input_error("dateTime", f"{fields[0]} {fields[1]}",
                                     f"could not convert access log timestamp: {exc}"))
    if errors:
        return errors
    params = {"tv": TRACKER_VERSION, "e": "ue", "p": "srv",
              "ue_pr": json_text({"schema": UNSTRUCT_SCHEMA, "data": {"schema": iglu_uri(VENDOR, NAME, version),
                                                                      "data": data}})}
    if values[8]:
        params["url"] = values[8]
    context = CollectorPayload(**{name: getattr(payload, name) for name in _PAYLOAD_FIELDS})
    context.timestamp = collected
    context.ip_address = values[3] or None
    context.user_agent = single_encode_pcts(values[9]) if values[9] else None
    context.referer_uri, context.headers, context.network_user_id = None, [], None
    return params, context


def body_lines(body: str) -> list[str]:
    """The body as 3.9.0 reads it (one line), or its log lines when it holds several."""
    if "\n" not in body and "\r" not in body or len(body.splitlines()) == 1:
        return [body]  # one line, with its line break if any: kept in the last field as 3.9.0 keeps it
    lines = [line for line in body.splitlines() if line and not line.startswith("#")]
    return lines or [""]


@register(VENDOR, NAME)
def adapt_cloudfront_access_log(payload: CollectorPayload, querystring: list) -> Adapted:
    """One ``wd_access_log`` event per access-log line of the body, each with the line's own context."""
    if payload.body is None:
        return failed(input_error("body", None, "empty body"))
    events, contexts, errors = [], [], []
    for line in body_lines(payload.body):
        adapted = adapt_line(line, payload)
        if isinstance(adapted, list):
            errors.extend(adapted)
            continue
        events.append(adapted[0])
        contexts.append(adapted[1])
    if errors:
        return failed(*errors)
    return Adapted(events=events, payloads=contexts)
