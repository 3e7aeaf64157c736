"""What Snowplow's enrich 3.9.0 makes of a CollectorPayload's envelope, its loader (``ThriftLoader``) first.

Found by the oracle's envelope corpus (``python -m bench.oracle_bench --corpus envelope``), each expected
value as 3.9.0 wrote it there: the network user id read by ``UUID.fromString`` (written back in its
canonical form, or the record refused), the encoding by ``Charset.forName`` (a name the JDK does not
know refuses the record before anything else is read), an empty referer or user agent kept as text.
"""
import json

import pytest

from ext import SCHEMA, CollectorPayload, encode_collector_payload
from processor.enriched import FIELD_INDEX
from processor.iglu import Resolver
from processor.stage import Enricher

NUID = "22222222-2222-4222-8222-222222222222"


@pytest.fixture(scope="module")
def enricher():
    return Enricher(Resolver([], include_builtin=True), clock=lambda: 1_764_288_005.0)


def raw(**fields):
    base = {"schema": SCHEMA, "ip_address": "203.0.113.9", "timestamp": 1_764_288_000_123, "encoding": "UTF-8",
            "collector": "snowmelt-test", "path": "/i", "querystring": "e=pv&aid=shop", "network_user_id": NUID}
    base.update(fields)
    return encode_collector_payload(CollectorPayload(**base))


def rows(out) -> list[dict]:
    return [json.loads(row) for row in out.bad]


def format_violations(out) -> list[dict]:
    found = rows(out)
    assert out.good == [] and found, (out.good, found)
    assert all(row["schema"].endswith("/collector_payload_format_violation/jsonschema/1-0-0") for row in found)
    return [row["data"]["failure"]["message"] for row in found]


@pytest.mark.parametrize("nuid,written", [
    (NUID, NUID),
    ("AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA", "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"),
    # UUID.fromString: five parts of any length, each Long.parseLong(part, 16) cut to its bits
    ("1-2-3-4-5", "00000001-0002-0003-0004-000000000005"),
    ("+2222222-2222-4222-8222-222222222222", "02222222-2222-4222-8222-222222222222"),
    ("123456789-0-0-0-0", "23456789-0000-0000-0000-000000000000"),
])
def test_the_network_user_id_is_written_as_java_writes_the_uuid_it_reads(enricher, nuid, written):
    out = enricher.enrich(raw(network_user_id=nuid))
    assert out.bad == [] and len(out.good) == 1
    assert out.good[0].split("\t")[17] == written  # network_userid


@pytest.mark.parametrize("nuid", ["", "not-a-uuid", NUID[:-1] + "Z", NUID + " ", "1-2-3-4-5-6",
                                  "ffffffffffffffff-0-0-0-0", NUID + "0"])
def test_a_network_user_id_that_is_no_uuid_refuses_the_record(enricher, nuid):
    assert format_violations(enricher.enrich(raw(network_user_id=nuid))) == [
        {"payloadField": "networkUserId", "value": nuid, "expectation": "not valid UUID"}]


def test_the_network_user_ids_message_comes_after_the_query_strings_and_the_paths(enricher):
    messages = format_violations(enricher.enrich(raw(network_user_id="x", path="/nope", querystring="a=%zz")))
    assert [m["payloadField"] for m in messages] == ["querystring", "path", "networkUserId"]


def test_an_adapters_bad_row_shows_the_network_user_id_in_its_canonical_form(enricher):
    [row] = rows(enricher.enrich(raw(network_user_id=NUID.upper(), path="/com.acme/v1")))
    assert row["schema"].endswith("/adapter_failures/jsonschema/1-0-0")
    assert row["data"]["payload"]["networkUserId"] == NUID


@pytest.mark.parametrize("encoding,message", [
    ("nonsense", "error deserializing raw event: nonsense"),
    ("", "error deserializing raw event: "),
    (None, "error deserializing raw event: Null charset name"),
    ("utf_8", "error deserializing raw event: utf_8"),  # Python's name, not Java's
])
def test_an_encoding_the_jdk_does_not_know_refuses_the_record_before_anything_else(enricher, encoding, message):
    # the query string, path and network user id are not read: their own faults add nothing
    for fields in ({}, {"querystring": "a=%zz", "path": "/nope", "network_user_id": "x"}):
        assert format_violations(enricher.enrich(raw(encoding=encoding, **fields))) == [{"error": message}]


@pytest.mark.parametrize("encoding", ["utf8", "Unicode-1-1-UTF-8", "ISO-8859-1", "latin1", "US-ASCII", "cp1252"])
def test_an_encoding_the_jdk_knows_is_read(enricher, encoding):
    out = enricher.enrich(raw(encoding=encoding))
    assert out.bad == [] and len(out.good) == 1


def test_an_empty_referer_is_the_page_of_a_request_without_url(enricher):
    # 3.9.0 reads "" as a URI: page_url "" (an empty TSV field) with the default port
    [line] = enricher.enrich(raw(referer_uri="", querystring="e=pv&aid=shop")).good
    fields = line.split("\t")
    assert fields[FIELD_INDEX["page_url"]] == "" and fields[FIELD_INDEX["page_urlport"]] == "80"


def test_an_event_s_bad_row_shows_an_empty_referer_and_user_agent_as_empty_text(enricher):
    # a POST to /i reads only the query string: no e, the event fails once its fields are derived
    [row] = rows(enricher.enrich(raw(referer_uri="", user_agent="", querystring="aid=shop")))
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    enriched = row["data"]["payload"]["enriched"]
    assert (enriched["page_url"], enriched["page_urlport"], enriched["useragent"]) == ("", 80, "")
    assert enriched["page_urlpath"] is None and enriched["page_title"] is None  # unset fields stay null


def test_a_lone_surrogate_a_json_escape_made_is_written_as_java_writes_it_in_a_bad_row(enricher):
    # found by the body corpus: Java's UTF-8 encoder writes a lone surrogate of a string as "?" (snowmelt
    # wrote U+FFFD, which is what an undecodable input byte became when Java read it)
    body = ('{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",'
            '"data":[{"e":"\\ud800","p":"web","tv":"js"}]}')
    [row] = rows(enricher.enrich(raw(path="/com.snowplowanalytics.snowplow/tp2", querystring=None, body=body,
                                     content_type="application/json")))
    [message] = row["data"]["failure"]["messages"]
    assert message["message"]["field"] == "e" and message["message"]["value"] == "?"
    # a byte that is not UTF-8 in a field the collector recorded is U+FFFD, as 3.9.0 read it
    [row] = rows(enricher.enrich(raw(user_agent=b"a\xffb", path="/com.acme/v1")))
    assert row["data"]["payload"]["useragent"] == "a\ufffdb"
