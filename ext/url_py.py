"""URL parts for the enriched ``page_url*`` and ``refr_url*`` fields, pure Python.

The twin of ``ext/_url.pyx``.  ``split_url(url)`` returns
``(scheme, host, port, path, query, fragment)`` or ``None`` when the URL has
no scheme or no host (or does not parse):

- spaces are read as ``%20`` (as Snowplow's enrich does before parsing);
- the scheme is lower-cased; the host is lower-cased, without userinfo or
  port (IPv6 hosts without brackets), as ``urllib.parse`` reads it;
- the port is the URL's (0-65535), else the scheme's default (80 for http,
  443 for https), else ``None``; a port that is not a number makes the URL
  unparseable;
- an empty path, query or fragment is ``None``.

This module is the specification: the compiled twin reads the common shape
(``scheme://host[:port][/path][?query][#fragment]`` in printable ASCII, no
userinfo, no brackets) itself and hands everything else to this function.
"""
from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["split_url", "DEFAULT_PORTS"]

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_url(url: str):
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url.replace(" ", "%20"))
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    return (scheme, parts.hostname, port if port is not None else DEFAULT_PORTS.get(scheme),
            parts.path or None, parts.query or None, parts.fragment or None)
