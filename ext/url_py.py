"""URL parts for the enriched ``page_url*`` and ``refr_url*`` fields, pure Python.

The twin of ``ext/_url.pyx``.  ``split_url(url)`` returns
``(scheme, host, port, path, query, fragment)`` as Snowplow's enrich 3.9.0 sets
them (``ConversionUtils.explodeUri`` of a ``java.net.URI``), or ``None`` when
``java.net.URI`` refuses the URL:

- spaces are read as ``%20`` (as Snowplow's ``stringToUri`` does before parsing);
- the URL is parsed by ``java.net.URI``'s grammar (RFC 2396 with Java's
  deviations: :func:`ext.java_uri.parse_uri`): a relative reference
  (``not%20a%20url``) has no scheme and no host, an opaque one (``mailto:x@y``)
  no host and no path; an authority that is not a valid server (``my_host``, a
  port beyond an int, a non-ASCII name) is registry-based: no host, no port;
- the scheme and the host are kept as written (no lower-casing); an IPv6 host
  keeps its brackets (``[::1]``) and its scope id (``[fe80::1%eth0]``);
- the port is the URL's (any int: ``99999`` is kept), else 443 when the scheme
  is exactly ``https``, else 80 (``android-app://x`` and relative URLs too);
- the path, query and fragment are the raw (still percent-encoded) text; an
  empty one is ``None``.

This module is the specification: the compiled twin reads the common shape
(``scheme://name[:port][/path][?query][#fragment]`` in printable ASCII, a host
name Java takes as a server name) itself and hands everything else to this
function.
"""
from __future__ import annotations

from ext.java_uri import URISyntaxError, parse_uri

__all__ = ["split_url", "DEFAULT_PORTS"]

DEFAULT_PORTS = {"https": 443}


def split_url(url: str):
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        scheme, host, port, path, query, fragment = parse_uri(url.replace(" ", "%20"))
    except URISyntaxError:
        return None
    if port == -1:
        port = 443 if scheme == "https" else 80
    # ConversionUtils.fixTabsNewlines: a tab is four spaces, control characters go, nothing left is null
    return (scheme, host, port, _fix(path), _fix(query), _fix(fragment))


def _fix(text: str | None) -> str | None:
    return text or None  # java.net.URI admits no tab or control character: nothing to replace
