"""CloudFront web distribution access logs: ``/com.amazon.aws.cloudfront/wd_access_log``.

What arrives
    A POST whose body is CloudFront *standard* (web distribution) access log
    lines, as AWS writes them to S3: one request per line, fields separated by
    tabs, ``-`` for an empty field, and ``#Version`` / ``#Fields`` header lines
    at the top of each file.  Over the years AWS appended fields to the line;
    each layout has its own schema version of
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

What Snowplow does (and this module)
    Every line becomes one self-describing event (``e=ue``, ``p=srv`` unless the
    query string gives ``p``, ``tv=com.amazon.aws.cloudfront/wd_access_log``,
    ``nuid aid cv eid ttm url`` passed through from the query string) whose
    data has the fields in camelCase (``cs(User-Agent)`` -> ``csUserAgent``),
    with ``date`` and ``time`` joined into one ISO 8601 ``dateTime``
    (``2013-10-07T23:35:30Z``), ``sc-bytes`` / ``cs-bytes`` as integers,
    ``time-taken`` as a number, and the user agent percent-decoded (CloudFront
    writes it percent-encoded).  The request's client IP, user agent and
    referer replace the collector's: here as the ``ip``, ``ua`` and ``url``
    parameters.  Header lines (``#...``) and blank lines are skipped.

    A line with any other number of fields is an ``adapter_failures`` bad row
    whose message names the count; so is an unreadable date/time or a byte
    count that is not a number.  One bad line fails the whole request (all the
    messages are reported), as Snowplow fails the whole payload.

Differences
    Snowplow also replaces the collector timestamp with the log line's time;
    snowmelt's stage keeps ``collector_tstamp`` from the collector (the log
    time is in the event's ``dateTime``).  Numeric fields holding ``-`` become
    ``null`` rather than a failure.
"""
from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote

from ext import CollectorPayload
from processor.adapters import Adapted, register
from processor.webhooks._common import events_or_failure, failed, iglu_uri, input_error, require_body, ue_event

VENDOR = "com.amazon.aws.cloudfront"
NAME = "wd_access_log"
TRACKER_VERSION = "com.amazon.aws.cloudfront/wd_access_log"

# The fields after date and time, in log order (the newest layout).
FIELDS = (
    "xEdgeLocation", "scBytes", "cIp", "csMethod", "csHost", "csUriStem", "scStatus", "csReferer",
    "csUserAgent", "csUriQuery", "csCookie", "xEdgeResultType", "xEdgeRequestId", "xHostHeader",
    "csProtocol", "csBytes", "timeTaken", "xForwardedFor", "sslProtocol", "sslCipher",
    "xEdgeResponseResultType", "csProtocolVersion", "fleStatus", "fleEncryptedFields",
)
#: field count of a line -> schema version
VERSIONS = {12: "1-0-0", 15: "1-0-1", 18: "1-0-2", 19: "1-0-3", 23: "1-0-4", 24: "1-0-5", 26: "1-0-6"}
_INTEGERS = frozenset({"scBytes", "csBytes"})
_NUMBERS = frozenset({"timeTaken"})
_EXPECTED_COUNTS = ", ".join(str(n) for n in VERSIONS)


def parse_line(line: str) -> tuple[str, dict] | list[dict]:
    """``(schema uri, event data)`` for one log line, or the failure messages."""
    values = line.split("\t")
    version = VERSIONS.get(len(values))
    if version is None:
        return [input_error("body", line[:1024],
                            f"access log TSV line contained {len(values)} fields, expected {_EXPECTED_COUNTS}")]
    date, time, rest = values[0], values[1], values[2:]
    try:
        moment = datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return [input_error("dateTime", f"{date} {time}", "a date (yyyy-MM-dd) and time (HH:mm:ss) in UTC")]
    data: dict = {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}
    errors = []
    for name, value in zip(FIELDS, rest):
        if name in _INTEGERS or name in _NUMBERS:
            if value in ("-", ""):
                data[name] = None
                continue
            try:
                data[name] = int(value) if name in _INTEGERS else float(value)
            except ValueError:
                kind = "an integer" if name in _INTEGERS else "a number"
                errors.append(input_error(name, value, f"{kind} (or -)"))
        elif name == "csUserAgent":
            data[name] = unquote(value)
        else:
            data[name] = value
    if errors:
        return errors
    return iglu_uri(VENDOR, NAME, version), data


@register(VENDOR, NAME)
def adapt_cloudfront_access_log(payload: CollectorPayload, querystring: list) -> Adapted:
    """One ``wd_access_log`` event per access-log line of the body."""
    missing = require_body(payload.body, "CloudFront access log")
    if missing:
        return failed(missing)
    events, errors = [], []
    for line in payload.body.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parsed = parse_line(line)
        if isinstance(parsed, list):
            errors.extend(parsed)
            continue
        schema, data = parsed
        # The logged request's own client, agent and page stand in for the collector's.
        extra = {key: data[field] for key, field in (("ip", "cIp"), ("ua", "csUserAgent"), ("url", "csReferer"))
                 if data.get(field) not in (None, "", "-")}
        events.append(ue_event(schema, data, TRACKER_VERSION, querystring, extra=extra))
    return events_or_failure(events, errors, empty=input_error(
        "body", payload.body[:1024], "at least one access log line (only headers found)"))
