"""processor.scala_uri_parse: why scala-uri 1.5.1 refuses a URL, in its parser's words.

Each expected message is the scala-uri part of the ``enrichment_failures`` message Snowplow's enrich 3.9.0
wrote (``ConversionUtils.stringToUri``, run on the JVM beside the oracle) for the same URL."""
import time

import pytest

from processor.lenient_url import scala_uri_url
from processor.scala_uri_parse import scala_uri_refusal

INVALID = "Invalid URL could not be parsed. "


@pytest.mark.parametrize("url, message", [
    # where the parse got furthest, and what every alternative expected there: the rule starting there, else
    # the character or class it tried
    ("http://[::1]x/", "Invalid input 'x', expected _port, _path_for_authority, _maybe_query_string, _fragment or "
                       "'EOI' (line 1, column 13):\nhttp://[::1]x/\n            ^"),
    ("http://[::1/", "Invalid input '/', expected HexDigit, ':' or ']' (line 1, column 12):\nhttp://[::1/\n"
                     "           ^"),
    ("//[1:]:-1", "Invalid input ']', expected _ip_v6_hex_piece, ':' or _int (line 1, column 6):\n//[1:]:-1\n     ^"),
    ("https://[1:2:3:4:5:6:7:8:9]:21/a", "Invalid input ']', expected HexDigit or ':' (line 1, column 27):\n"
                                         "https://[1:2:3:4:5:6:7:8:9]:21/a\n                          ^"),
    ("//]ffff:ab::ffff:1.2.3.4", "Invalid input 'a', expected _int (line 1, column 9):\n//]ffff:ab::ffff:1.2.3.4\n"
                                 "        ^"),
    # a password runs to the first '@': without one it ran to the end
    ("//:80a.1ba.b.[v1.x]#", "Unexpected end of input, expected [^@] or '@' (line 1, column 21):\n"
                             "//:80a.1ba.b.[v1.x]#\n                    ^"),
    ("http://a|b:12\nc:x/", "Unexpected end of input, expected [^@] or '@' (line 2, column 5):\nc:x/\n    ^"),
    ("http://[::1]:8\tx/", "Invalid input '\\t', expected Digit, _path_for_authority, _maybe_query_string, "
                           "_fragment or 'EOI' (line 1, column 15):\nhttp://[::1]:8\tx/\n              ^"),
])
def test_a_parse_failure_is_worded_as_parboiled2_words_it(url, message):
    assert scala_uri_refusal(url) == INVALID + message
    assert scala_uri_url(url) is None


@pytest.mark.parametrize("url, message", [
    ("https://shop.acme.com:99999999999/p|", 'For input string: "9999999999"'),  # ten digits, beyond an Int
    ("https://[1:2:3:4:5:6:7::]/p|",
     "IPv6 has too many pieces. Must be either exactly eight hex pieces or fewer than six hex pieces with a '::'"),
])
def test_what_a_rules_action_throws_ends_the_parse(url, message):
    assert scala_uri_refusal(url) == message
    assert scala_uri_url(url) is None


@pytest.mark.parametrize("url", ["https://exa|mple.com/p", "https://[zz]/p|", "not a url", "x:y|z", "//a b/",
                                 "https://u s:p/w@shop.acme.com/p|q", "https://a.com:8/p#|"])
def test_what_it_parses_it_also_writes_back(url):
    assert scala_uri_refusal(url) is None
    assert scala_uri_url(url) is not None


@pytest.mark.parametrize("url", ["http://[" + "1:" * 300_000, "http://a:" + "x" * 600_000,
                                 "http://" + "a" * 600_000 + ":x"])
def test_a_long_url_costs_about_what_reading_it_for_the_rewrite_costs(url):
    # the parse takes each run of pieces, of user info or of host in one step, as the rewrite's reading does:
    # character by character it cost 3 to 40 times that reading on these
    def seconds(read) -> float:
        started = time.process_time()
        read(url)
        return time.process_time() - started

    refusal, rewrite = min(seconds(scala_uri_refusal) for _ in range(3)), min(seconds(scala_uri_url) for _ in range(3))
    assert refusal < 2 * rewrite + 0.1, (refusal, rewrite)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_parse_and_the_rewrite_refuse_the_same_urls(seed):
    # two readings of one grammar: processor.lenient_url's, which writes a URL back, and this module's, which
    # says why it fails; random URLs of bench.oracle_urls's three kinds (characters, pieces, IPv6 references)
    from bench.oracle_urls import urls

    for url in urls(seed, 6000):
        assert (scala_uri_url(url) is None) == (scala_uri_refusal(url) is not None), url
