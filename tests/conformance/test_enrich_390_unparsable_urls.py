"""Page URLs and referrers java.net.URI refuses, through the whole stage, as Snowplow's enrich 3.9.0 handles them.

3.9.0's ``ConversionUtils.stringToUri`` reads a URL with java.net.URI (spaces as ``%20``), then with scala-uri
1.5.1, whose rewrite java.net.URI must take. A URL neither takes fails the event with an ``enrichment_failures``
row naming both parsers' reasons, at the place of its step (``getPageUri``, second; ``getRefererUri``, before
referer_parser): the last failing step's message first. The expected values are what Snowplow's enrich-kafka
3.9.0 wrote for the same requests of the oracle's edge corpus (``bench/oracle_bench.py``, ``edge-82`` to
``edge-97``; ``python -m bench.oracle_bench --corpus edge``).
"""
from __future__ import annotations

import pytest

from processor.stage import Enricher
from tests.conformance.test_enrich_390_protocol import bad_row, enrich, messages

PROVIDED = "Provided URI [{0}] could not be parsed, neither by Java parsing (error: [{1}]) nor by Scala parsing " \
           "(error: [{2}])."


@pytest.fixture(scope="module")
def enricher():
    return Enricher()


def unparsable(url: str, java: str, scala: str) -> dict:
    return {"error": PROVIDED.format(url, java, scala)}


@pytest.mark.parametrize("url, java, scala", [
    ("https://exa|mple.com/edge", "Illegal character in authority at index 8: https://exa|mple.com/edge",
     "Illegal character in authority at index 8: https://exa|mple.com/edge"),
    # scala-uri keeps a host as written, spaces too, and java.net.URI refuses its rewrite
    ("https://sh op.acme.com/p|q", "Illegal character in path at index 26: https://sh%20op.acme.com/p|q",
     "Illegal character in authority at index 8: https://sh op.acme.com/p%7Cq"),
    ("https://sh op|.acme.com/edge", "Illegal character in authority at index 8: https://sh%20op|.acme.com/edge",
     "Illegal character in authority at index 8: https://sh op|.acme.com/edge"),
    # scala-uri's own parse fails: its parser's (parboiled2's) words, or what a rule's action threw
    ("https://[::1]:8a/edge", "Illegal character in port number at index 15: https://[::1]:8a/edge",
     "Invalid URL could not be parsed. Invalid input 'a', expected Digit, _path_for_authority, _maybe_query_string,"
     " _fragment or 'EOI' (line 1, column 16):\nhttps://[::1]:8a/edge\n               ^"),
    ("https://[1::2::3]/edge", "Expected hex digits or IPv4 address at index 14: https://[1::2::3]/edge",
     "Invalid URL could not be parsed. Invalid input ':', expected _ip_v6_hex_piece (line 1, column 15):\n"
     "https://[1::2::3]/edge\n              ^"),
    ("https://shop.acme.com:99999999999/p|",
     "Illegal character in path at index 35: https://shop.acme.com:99999999999/p|", 'For input string: "9999999999"'),
    ("https://[1:2:3:4:5:6:7::]/p|", "Illegal character in path at index 27: https://[1:2:3:4:5:6:7::]/p|",
     "IPv6 has too many pieces. Must be either exactly eight hex pieces or fewer than six hex pieces with a '::'"),
])
def test_a_page_url_neither_parser_takes_fails_the_event_with_both_reasons(enricher, url, java, scala):
    row = bad_row(enricher, url=url)
    assert row["schema"].startswith("iglu:com.snowplowanalytics.snowplow.badrows/enrichment_failures/")
    assert messages(row) == [unparsable(url, java, scala)]
    enriched = row["data"]["payload"]["enriched"]
    assert enriched["page_url"] == url  # as it came: getPageUri sets it only when it parses
    assert enriched["page_urlhost"] is None and enriched["page_urlpath"] is None


def test_the_page_urls_failure_comes_after_the_failures_of_later_steps(enricher):
    url = "https://shop.acme.com:8x/p|q"
    row = bad_row(enricher, url=url, cv="")
    assert messages(row) == [
        unparsable(url, "Illegal character in path at index 26: https://shop.acme.com:8x/p|q",
                   "Invalid URL could not be parsed. Unexpected end of input, expected [^@] or '@' (line 1, column "
                   "29):\nhttps://shop.acme.com:8x/p|q\n                            ^"),
        {"field": "v_collector", "value": None, "expectation": "should be set"}]


def test_a_referrer_neither_parser_takes_fails_the_event_in_its_steps_place(enricher):
    refr = "http://exa mple|.com/a|b"
    row = bad_row(enricher, refr=refr)
    assert messages(row) == [unparsable(refr, "Illegal character in authority at index 7: http://exa%20mple|.com/a|b",
                                        "Illegal character in authority at index 7: http://exa mple|.com/a%7Cb")]
    assert row["data"]["payload"]["enriched"]["page_urlhost"] == "shop.acme.com"  # the page URL was read

    bad_referrer = unparsable("https://ref|errer.com/", "Illegal character in authority at index 8: "
                              "https://ref|errer.com/", "Illegal character in authority at index 8: "
                              "https://ref|errer.com/")
    bad_page = unparsable("https://exa|mple.com/edge", "Illegal character in authority at index 8: "
                          "https://exa|mple.com/edge", "Illegal character in authority at index 8: "
                          "https://exa|mple.com/edge")
    assert messages(bad_row(enricher, url="https://exa|mple.com/edge", refr="https://ref|errer.com/")) == [
        bad_referrer, bad_page]
    # getCrossDomain comes after getRefererUri
    assert messages(bad_row(enricher, url="https://shop.acme.com/edge?_sp=abc.def", refr="https://ref|errer.com/")) \
        == [{"field": "sp_dtm", "value": "def", "expectation": "not in the expected format: ms since epoch"},
            bad_referrer]


@pytest.mark.parametrize("url, page_url, host, port, path", [
    # user info decoded and encoded back, an IPv6 address in its shortest form, IPv4 octets and a port as numbers
    ("https://u s:p/w@shop.acme.com/p|q", "https://u%20s:p%2Fw@shop.acme.com/p%7Cq", "shop.acme.com", "443", "/p%7Cq"),
    ("https://[0:0:0:0:0:0:0:1]/p|q", "https://[::1]/p%7Cq", "[::1]", "443", "/p%7Cq"),
    ("https://001.002.3.4:080/p|q", "https://1.2.3.4:80/p%7Cq", "1.2.3.4", "80", "/p%7Cq"),
])
def test_scala_uri_writes_the_authority_back_too(enricher, url, page_url, host, port, path):
    fields = enrich(enricher, url=url)
    assert (fields["page_url"], fields["page_urlhost"], fields["page_urlport"], fields["page_urlpath"]) == (
        page_url, host, port, path)


def test_a_long_message_is_cut_to_the_512_characters_its_schema_allows(enricher):
    url = "https://exa|mple.com/" + "p" * 600
    [message] = messages(bad_row(enricher, url=url))
    assert message["error"] == PROVIDED.format(url, "Illegal character in authority at index 8: " + url,
                                               "Illegal character in authority at index 8: " + url)[:512]
