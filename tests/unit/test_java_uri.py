"""ext.java_uri: java.net.URI's parse of a text, and why it refuses one, in JDK 17's words.

Each expected message is what ``new java.net.URI(text)`` threw on OpenJDK 17.0.15 (the JDK Snowplow's enrich
3.9.0 ran on beside the oracle), for the same text."""
import time

import pytest

import ext
from ext import url_py
from bench.oracle_urls import urls
from ext.java_uri import uri_syntax_error


@pytest.mark.parametrize("text, message", [
    ("http://exa|mple.com/", "Illegal character in authority at index 7: http://exa|mple.com/"),  # the authority's start
    ("http://u|@a.com/", "Illegal character in authority at index 7: http://u|@a.com/"),
    ("http://a%zz/", "Malformed escape pair at index 8: http://a%zz/"),
    ("http://[::1", "Expected closing bracket for IPv6 address at index 11: http://[::1"),
    ("http://[zz]/", "Malformed IPv6 address at index 8: http://[zz]/"),
    ("http://[1::2::3]/", "Expected hex digits or IPv4 address at index 13: http://[1::2::3]/"),
    ("http://[1:2:3:4:5:6:7:8:9]/", "IPv6 address too long at index 8: http://[1:2:3:4:5:6:7:8:9]/"),
    ("http://[1:2]/", "IPv6 address too short at index 8: http://[1:2]/"),
    ("http://[12345::]/", "IPv6 hexadecimal digit sequence too long at index 8: http://[12345::]/"),
    ("http://[1:]/", "Expected digits for an IPv6 address at index 10: http://[1:]/"),
    ("http://[::1.2.3]/", "Malformed IPv4 address at index 15: http://[::1.2.3]/"),
    ("http://[fe80::1%]/", "scope id expected: http://[fe80::1%]/"),  # no place named
    ("http://[fe80::1%e|]/", "Illegal character in authority at index 7: http://[fe80::1%e|]/"),
    ("http://a.com:2147483648/x|", "Illegal character in path at index 25: http://a.com:2147483648/x|"),
    ("1http://a/", "Illegal character in scheme name at index 0: 1http://a/"),
    (":x", "Expected scheme name at index 0: :x"),
    ("http:", "Expected scheme-specific part at index 5: http:"),
    ("http://", "Expected authority at index 7: http://"),
    ("mailto:a b", "Illegal character in opaque part at index 8: mailto:a b"),
    ("http://a.com/a b", "Illegal character in path at index 14: http://a.com/a b"),
    ("http://a.com/?q|", "Illegal character in query at index 15: http://a.com/?q|"),
    ("http://a.com/#f#g", "Illegal character in fragment at index 15: http://a.com/#f#g"),
    ("http://a.com/\U0001f600 ", "Illegal character in path at index 15: http://a.com/\U0001f600 "),  # UTF-16 units
    # registry-based authorities: not a server, still a URI
    ("http://a-.com:80x/", None), ("http://a.com:8a/", None), ("http://a.com:99999999999/", None),
    ("http://a.com/ok", None),
])
def test_the_message_is_jdk_17s(text, message):
    assert uri_syntax_error(text) == message


@pytest.mark.parametrize("split_url", [ext.split_url, url_py.split_url], ids=["ext", "python"])
def test_it_refuses_exactly_what_split_url_refuses(split_url):
    # split_url reads a space as %20 first, as Snowplow does before java.net.URI sees it; random texts of
    # bench.oracle_urls's three kinds (characters, pieces of URLs, IPv6 references)
    for text in urls(3, 6000):
        assert (uri_syntax_error(text.replace(" ", "%20")) is None) == (split_url(text) is not None), text


def test_a_long_text_costs_linear_time():
    def seconds(count: int) -> float:
        text = "http://[" + "1:" * count + "/" + "%41|" * count
        started = time.process_time()
        uri_syntax_error(text)
        return time.process_time() - started

    small, large = min(seconds(5_000) for _ in range(3)), min(seconds(50_000) for _ in range(3))
    assert large < 20 * small + 0.05, (small, large)
