"""Snowplow's ``ConversionUtils.stringToUri``: a page URL or referrer read as enrich 3.9.0 reads it.

The URL is read by java.net.URI, spaces as ``%20`` (:func:`ext.split_url` gives its parts as
``ConversionUtils.explodeUri`` sets them); a URL it refuses is read by scala-uri 1.5.1 and written back
(:func:`processor.lenient_url.scala_uri_url`), and java.net.URI must take what was written (as it is: no
space read as ``%20`` there). :func:`read_url` gives the URL as 3.9.0 writes it and its parts, or, when
neither reading takes it, the message 3.9.0 fails the event with: java.net.URI's reason (:mod:`ext.java_uri`)
beside scala-uri's (:mod:`processor.scala_uri_parse`) or java.net.URI's for what scala-uri wrote.
"""
from __future__ import annotations

import ext
from ext.java_uri import uri_syntax_error
from processor.lenient_url import scala_uri_url
from processor.scala_uri_parse import scala_uri_refusal

__all__ = ["read_url"]

#: the message of ``stringToUri``'s failure
_UNPARSABLE = ("Provided URI [{}] could not be parsed, neither by Java parsing (error: [{}]) nor by Scala parsing "
               "(error: [{}]).")

_split_url = ext.split_url


def read_url(url: str) -> tuple[str, tuple | None, str | None]:
    """(the URL as Snowplow writes it, its ``(scheme, host, port, path, query, fragment)``, None); when neither
    reading takes the URL, (the URL as it came, None, the message of ``stringToUri``'s failure)."""
    parts = _split_url(url)
    if parts is not None:
        return (url.replace(" ", "%20") if " " in url else url), parts, None
    fixed = scala_uri_url(url)
    if fixed is not None and " " not in fixed:  # java.net.URI takes no space (only the first reading reads %20)
        fixed_parts = _split_url(fixed)
        if fixed_parts is not None:
            return fixed, fixed_parts, None
    scala = scala_uri_refusal(url) if fixed is None else uri_syntax_error(fixed)
    return url, None, _UNPARSABLE.format(url, uri_syntax_error(url.replace(" ", "%20")), scala)
