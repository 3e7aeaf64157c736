"""processor.lenient_url: a URL java.net.URI refuses, written back as Snowplow's enrich 3.9.0 (scala-uri 1.5.1)
writes it.  Each expectation below was checked against 3.9.0 itself by the oracle's edge corpus
(``python -m bench.oracle_bench --corpus edge``) or follows from scala-uri's encoder and decoder."""
import gc
import time

import pytest

from processor.lenient_url import scala_uri_url


@pytest.mark.parametrize("url, expected", [
    ("https://a.example/%E0%A4%A", "https://a.example/%EF%BF%BD%25A"),
    ("https://a.example/?q=a%20b&r=%", "https://a.example/?q=a%20b&r=%25"),
    ("https://shop.acme.com/edge?u=http://b.example/x|y&v=a(b)!&w",
     "https://shop.acme.com/edge?u=http%3A%2F%2Fb.example%2Fx%7Cy&v=a%28b%29%21&w"),
    ("https://a.example/?a=b=c&&d=", "https://a.example/?a=b%3Dc&&d="),  # the first '=' splits, later ones are data
    ("https://a.example/%41%2f|", "https://a.example/A%2F%7C"),         # an escape of an unreserved character is read
    ("https://a.example/a+b|?c+d#e+f", "https://a.example/a+b%7C?c+d#e+f"),  # '+' is never encoded
    ("https://a.example:080/p|q", "https://a.example:80/p%7Cq"),
    ("https://[::1]:8080/x|", "https://[::1]:8080/x%7C"),
    ("https://a.example/\U0001f600|", "https://a.example/%3F%3F%7C"),    # two UTF-16 halves, each '?'
    ("https://a.example/p?%-1=%+F|", "https://a.example/p?%EF%BF%BD=%0F%7C"),
    ("https://a.example/x|#a/b?c", "https://a.example/x%7C#a%2Fb%3Fc"),
    ("https://a.example/x|?", "https://a.example/x%7C?"),
    ("//host/a|b", "//host/a%7Cb"),                                     # no scheme: from the authority on
    ("\u2028", "%E2%80%A8"),
    ("https://a.example/\x01\x7f|", "https://a.example/%01%7F%7C"),
    # the authority as scala-uri reads it: user info up to the first '@' (a password may hold '/'), decoded and
    # encoded; IPv4 octets and the port as numbers; an IPv6 address in its shortest form; any other host as written
    ("https://u s:p/w@shop.acme.com/p|q", "https://u%20s:p%2Fw@shop.acme.com/p%7Cq"),
    ("https://u@a.example/|", "https://u@a.example/%7C"),
    ("https://:@a.example/|", "https://:@a.example/%7C"),
    ("https://001.002.3.4:080/p|q", "https://1.2.3.4:80/p%7Cq"),
    ("https://1.2.3.456/p|q", "https://1.2.3.456/p%7Cq"),                # not an address: a host as written
    ("https://[0:0:0:0:0:0:0:1]/p|q", "https://[::1]/p%7Cq"),
    ("https://[1:0:0:2:0:0:0:3]/|", "https://[1:0:0:2::3]/%7C"),          # the longest run of zeros
    ("https://[1:0:0:2:0:0:3:4]/|", "https://[1::2:0:0:3:4]/%7C"),        # the first of two as long
    ("https://[ABCD:0:0:0:0:0:0:1]/|", "https://[abcd::1]/%7C"),
    ("https://[1::]/|", "https://[1::]/%7C"),
    ("https://[zz]/|", "https://[zz]/%7C"),
    ("https://sh op.acme.com/p|q", "https://sh op.acme.com/p%7Cq"),
    # scala-uri reads a URN before a URL: its specific string decoded and encoded as a path segment is
    ("urn:ab:%zz", "urn:ab:%25zz"),
    ("urn:ab:%41%zz/c:d@e", "urn:ab:A%25zz%2Fc%3Ad%40e"),
    # not a URN to scala-uri (a namespace of one character or ending in '-', a '|' or '#', 'URN'): a URL
    ("urn:a:%zz", "urn:a%3A%25zz"),
    ("urn:-ab:%zz", "urn:-ab%3A%25zz"),
    ("urn:isbn:0451450523|", "urn:isbn%3A0451450523%7C"),
    ("urn:ab:x%zz#f", "urn:ab%3Ax%25zz#f"),
    ("URN:ab:%zz", "URN:ab%3A%25zz"),
])
def test_a_url_is_written_back_as_scala_uri_writes_it(url, expected):
    assert scala_uri_url(url) == expected


@pytest.mark.parametrize("unit", ["a=%41&", "a=%zz&", "%E0%A4|", "\u00e9|"])
def test_a_long_url_costs_linear_time(unit):
    def seconds(count: int) -> float:
        url = "https://a.example/p|?" + unit * count
        gc.disable()  # the collector's passes cost what the whole test process holds, not this URL
        try:
            started = time.process_time()
            scala_uri_url(url)
            return time.process_time() - started
        finally:
            gc.enable()

    small, large = min(seconds(5_000) for _ in range(3)), min(seconds(50_000) for _ in range(3))
    assert large < 20 * small + 0.05, (small, large)  # ten times the text, about ten times the time


@pytest.mark.parametrize("url", ["https://[::1]x/", "https://a.example:8x/", "https://a.example:99999999999/",
                                 "https://[1:2:3:4:5:6:7::]/", "https://a|b:12x"])
def test_what_scala_uri_refuses_has_no_rewrite(url):
    assert scala_uri_url(url) is None
