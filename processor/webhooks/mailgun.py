"""Mailgun (legacy) webhooks at ``/com.mailgun/v1``.

What Mailgun sends: one ``POST`` per event, form-encoded
(``application/x-www-form-urlencoded``) or, when the original message had
attachments, ``multipart/form-data``.  Fields: ``event`` (``delivered``,
``dropped``, ``bounced``, ``complained``, ``unsubscribed``, ``clicked``,
``opened``), ``recipient``, ``domain``, ``message-headers`` (JSON text),
``Message-Id``, ``X-Mailgun-Sid``, ``attachment-count``, event details
(``code``, ``error``, ``reason``, ``url``, ``client-name`` ...) and the
signature fields ``timestamp`` (epoch seconds), ``token`` and ``signature``
(an HMAC the receiver may check with its API key).

What Snowplow does (and this module does): one self-describing event with
``com.mailgun/<schema>/jsonschema/1-0-0`` for ``event`` (delivered ->
``message_delivered``, dropped -> ``message_dropped``, bounced ->
``message_bounced``, complained -> ``message_complained``, unsubscribed ->
``recipient_unsubscribed``, clicked -> ``message_clicked``, opened ->
``message_opened``); field names become camelCase (``message-headers`` ->
``messageHeaders``, ``Message-Id`` -> ``messageId``, ``X-Mailgun-Sid`` ->
``xMailgunSid``) and ``timestamp`` ISO 8601.  The signature is carried
as data, not verified (snowmelt has no API key to check it with, nor has
Snowplow).  ``tv`` is ``com.mailgun-v1``, ``p`` the query string's or
``srv``, and the usual tracker parameters pass through.

Failures (``adapter_failures``): empty body, a content type other than the
two above, an undecodable body, no ``event`` or an unknown one, a missing
``timestamp``, ``token`` or ``signature``, a ``timestamp`` that is not epoch
seconds.  Difference: ``attachment-count`` (an integer in the schemas) is
converted to a number here; multipart file parts (attachments) are dropped.
"""
from __future__ import annotations

import re
from email.parser import BytesParser
from email.policy import HTTP

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    Adapted,
    check_request,
    decode_form,
    epoch_to_iso,
    failed,
    iglu_uri,
    input_error,
    lookup_schema,
    media_type,
    one_event,
)

VENDOR = "com.mailgun"
TRACKER_VERSION = "com.mailgun-v1"
MULTIPART_CONTENT_TYPE = "multipart/form-data"
SCHEMAS = {
    "delivered": iglu_uri(VENDOR, "message_delivered"),
    "dropped": iglu_uri(VENDOR, "message_dropped"),
    "bounced": iglu_uri(VENDOR, "message_bounced"),
    "complained": iglu_uri(VENDOR, "message_complained"),
    "unsubscribed": iglu_uri(VENDOR, "recipient_unsubscribed"),
    "clicked": iglu_uri(VENDOR, "message_clicked"),
    "opened": iglu_uri(VENDOR, "message_opened"),
}
SIGNATURE_FIELDS = ("timestamp", "token", "signature")


def mailgun_camel(name: str) -> str:
    """``X-Mailgun-Sid`` -> ``xMailgunSid``, ``message-headers`` -> ``messageHeaders``."""
    parts = [p for p in re.split(r"[-_]+", name) if p]
    if not parts:
        return name
    return parts[0][:1].lower() + parts[0][1:] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def parse_multipart(body: str, content_type: str) -> list[tuple[str, str]]:
    """The text fields of a ``multipart/form-data`` body (``ValueError`` when it has none)."""
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body.encode("utf-8", "surrogateescape")
    message = BytesParser(policy=HTTP).parsebytes(raw)
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename():
            continue  # attachments are not event data
        fields.append((name, part.get_content() if part.get_content_maintype() == "text" else
                       part.get_payload(decode=True).decode("utf-8", "replace")))
    if not fields:
        raise ValueError("no form fields in the multipart body")
    return fields


def _decode(payload: CollectorPayload) -> tuple[list[tuple[str, str]] | None, dict | None]:
    if media_type(payload.content_type) == MULTIPART_CONTENT_TYPE:
        try:
            return parse_multipart(payload.body, payload.content_type), None
        except (ValueError, LookupError) as exc:
            return None, input_error("body", payload.body[:1024], f"a multipart/form-data body: {exc}")
    return decode_form(payload.body)


@register(VENDOR, "v1")
def adapt_mailgun(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Mailgun webhook request -> one ``e=ue`` event."""
    problem = check_request(payload, "Mailgun", [FORM_CONTENT_TYPE, MULTIPART_CONTENT_TYPE])
    if problem:
        return failed(problem)
    pairs, problem = _decode(payload)
    if problem:
        return failed(problem)
    form = dict(pairs)
    schema, problem = lookup_schema(form.get("event"), SCHEMAS, "event",
                                    missing="no `event` parameter provided: cannot determine event type")
    if problem:
        return failed(problem)
    missing = [input_error(name, None, f"missing '{name}' (a Mailgun signature field)")
               for name in SIGNATURE_FIELDS if not form.get(name)]
    if missing:
        return failed(*missing)
    data = {mailgun_camel(k): v for k, v in form.items()}
    try:
        data["timestamp"] = epoch_to_iso(data["timestamp"])
    except ValueError:
        return failed(input_error("timestamp", form["timestamp"], "an epoch time in seconds"))
    if str(data.get("attachmentCount", "")).isdigit():
        data["attachmentCount"] = int(data["attachmentCount"])
    return one_event(schema, data, TRACKER_VERSION, querystring)
