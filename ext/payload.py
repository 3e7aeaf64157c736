"""The raw event as the collector sees it: Snowplow's ``CollectorPayload``.

Snowplow's collectors write every HTTP request they accept to the raw stream as a
Thrift struct, ``CollectorPayload``, schema
``iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0``::

    struct CollectorPayload {
      31337: string schema
      100: string ipAddress
      200: i64 timestamp            // milliseconds since the epoch
      210: string encoding          // of querystring and body, e.g. "UTF-8"
      220: string collector         // name and version of the collector
      300: optional string userAgent
      310: optional string refererUri
      320: optional string path
      330: optional string querystring
      340: optional string body
      350: optional list<string> headers   // "Name: value", one per header
      360: optional string contentType
      400: optional string hostname
      410: optional string networkUserId
    }

:class:`CollectorPayload` is the Python side of that struct; ``ext`` encodes it to
and decodes it from Thrift's binary protocol (see ``ext.thrift_py`` and
``ext._thrift``).  Both implementations build instances of this one class.

:class:`ThriftDecodeError` is what every decoder in ``ext`` raises for bytes that
are not a valid encoding; it is a :class:`ValueError`, so callers that turn bad
input into bad rows can catch either.
"""

from __future__ import annotations

__all__ = ["CollectorPayload", "ThriftDecodeError", "SCHEMA"]

SCHEMA = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0"


class ThriftDecodeError(ValueError):
    """Bytes that are not a valid Thrift binary encoding of the expected struct.

    Raised for truncated input, negative or oversized lengths, a known field
    carrying the wrong Thrift type, unknown type codes, nesting deeper than the
    decoder's limit, a missing STOP byte and trailing bytes after the struct.  The
    message says what was wrong and at which byte offset.
    """


class CollectorPayload:
    """One raw collector event (Snowplow ``CollectorPayload`` 1-0-0).

    Attributes, in Thrift field order (Thrift name and field id in brackets):

    - ``schema`` (schema, 31337): normally :data:`SCHEMA`.
    - ``ip_address`` (ipAddress, 100)
    - ``timestamp`` (timestamp, 200): ``int``, milliseconds since the epoch.
    - ``encoding`` (encoding, 210): character set of querystring and body.
    - ``collector`` (collector, 220): e.g. ``"snowmelt-0.1.0-kafka"``.
    - ``user_agent`` (userAgent, 300)
    - ``referer_uri`` (refererUri, 310)
    - ``path`` (path, 320): the request path, e.g. ``"/com.snowplowanalytics.snowplow/tp2"``.
    - ``querystring`` (querystring, 330): raw, still percent-encoded.
    - ``body`` (body, 340)
    - ``headers`` (headers, 350): ``list`` of ``"Name: value"`` strings.
    - ``content_type`` (contentType, 360)
    - ``hostname`` (hostname, 400)
    - ``network_user_id`` (networkUserId, 410)

    Every attribute defaults to ``None``, which the encoders write as "field
    absent".  Decoders produce ``str`` for every string field (UTF-8, undecodable
    bytes kept as lone surrogates by ``errors="surrogateescape"``, so any byte
    string round-trips), a ``list`` of ``str`` for ``headers`` and an ``int`` for
    ``timestamp``.  Encoders accept ``str`` or ``bytes``/``bytearray`` (written as
    is) for every string field and header.

    Instances compare equal when every attribute is equal; they are mutable and
    therefore unhashable.
    """

    __slots__ = (
        "schema",
        "ip_address",
        "timestamp",
        "encoding",
        "collector",
        "user_agent",
        "referer_uri",
        "path",
        "querystring",
        "body",
        "headers",
        "content_type",
        "hostname",
        "network_user_id",
    )

    SCHEMA = SCHEMA

    def __init__(
        self,
        *,
        schema=None,
        ip_address=None,
        timestamp=None,
        encoding=None,
        collector=None,
        user_agent=None,
        referer_uri=None,
        path=None,
        querystring=None,
        body=None,
        headers=None,
        content_type=None,
        hostname=None,
        network_user_id=None,
    ):
        self.schema = schema
        self.ip_address = ip_address
        self.timestamp = timestamp
        self.encoding = encoding
        self.collector = collector
        self.user_agent = user_agent
        self.referer_uri = referer_uri
        self.path = path
        self.querystring = querystring
        self.body = body
        self.headers = headers
        self.content_type = content_type
        self.hostname = hostname
        self.network_user_id = network_user_id

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        for name in CollectorPayload.__slots__:
            if getattr(self, name) != getattr(other, name):
                return False
        return True

    __hash__ = None  # mutable

    def __repr__(self):
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in CollectorPayload.__slots__
            if getattr(self, name) is not None
        )
        return f"CollectorPayload({shown})"
