"""CloudFront web distribution access logs -> wd_access_log events (every field-count version)."""
import json
from pathlib import Path

import pytest

from ext import CollectorPayload, encode_collector_payload
from processor.adapters import ADAPTER_FAILURES, adapt
from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from processor.iglu import Resolver, builtin_registry
from processor.stage import Enricher

DATA = Path(__file__).parent / "data" / "cloudfront"
PATH = "/com.amazon.aws.cloudfront/wd_access_log"
SCHEMA = "iglu:com.amazon.aws.cloudfront/wd_access_log/jsonschema/"
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/78.0.3904.108 Safari/537.36")
FULL = {
    "dateTime": "2019-12-04T21:02:31Z", "xEdgeLocation": "LAX1", "scBytes": 392, "cIp": "192.0.2.100",
    "csMethod": "GET", "csHost": "d111111abcdef8.cloudfront.net", "csUriStem": "/i", "scStatus": "200",
    "csReferer": "https://www.acme.com/products/shoes?size=42", "csUserAgent": UA,
    "csUriQuery": "e=pv&page=Shoes&aid=shop", "csCookie": "-", "xEdgeResultType": "Hit",
    "xEdgeRequestId": "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
    "xHostHeader": "d111111abcdef8.cloudfront.net", "csProtocol": "https", "csBytes": 23, "timeTaken": 0.001,
    "xForwardedFor": "-", "sslProtocol": "TLSv1.2", "sslCipher": "ECDHE-RSA-AES128-GCM-SHA256",
    "xEdgeResponseResultType": "Hit", "csProtocolVersion": "HTTP/2.0", "fleStatus": "-", "fleEncryptedFields": "-",
}
UA_LOGGED = UA.replace(" ", "%20")  # as the log line has it
VERSIONS = {12: "1-0-0", 15: "1-0-1", 18: "1-0-2", 19: "1-0-3", 23: "1-0-4", 24: "1-0-5", 26: "1-0-6"}


def payload(body, querystring=None, content_type="text/plain"):
    return CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0", ip_address="203.0.113.9",
        timestamp=1_764_288_000_123, encoding="UTF-8", collector="snowmelt-test", path=PATH,
        querystring=querystring, body=body, content_type=content_type)


def unstruct(event):
    envelope = json.loads(event["ue_pr"])
    assert envelope["schema"] == "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
    return envelope["data"]["schema"], envelope["data"]["data"]


@pytest.mark.parametrize("count, version", sorted(VERSIONS.items()))
def test_each_field_count_maps_to_its_schema_version(count, version):
    result = adapt(payload((DATA / f"wd_access_log_{count}_fields.tsv").read_text().rstrip("\n")))
    assert result.failure is None, result.failure
    [event] = result.events
    schema, data = unstruct(event)
    assert schema == SCHEMA + version
    # the first count-2 fields of the full line, nothing more
    expected_names = list(FULL)[:count - 1]
    assert data == {name: FULL[name] for name in expected_names}
    assert (event["e"], event["p"], event["tv"]) == ("ue", "srv", "com.amazon.aws.cloudfront/wd_access_log")
    assert event["url"] == FULL["csReferer"] and "ip" not in event and "ua" not in event
    # as 3.9.0: the address and the user agent (its %25XX made %XX only) are the event's request context
    [context] = result.payloads
    assert (context.ip_address, context.user_agent, context.timestamp) == ("192.0.2.100", UA_LOGGED, 1_575_493_351_000)


def test_headers_are_skipped_and_each_line_is_an_event():
    text = (DATA / "log_file_with_headers.tsv").read_text()
    # as 3.9.0: "-" is not a byte count
    result = adapt(payload(text))
    assert result.failure.messages == [{"field": "scBytes", "value": "-", "expectation": "cannot be converted to Int"}]
    result = adapt(payload(text.replace("\tLAX1\t-\t", "\tLAX1\t0\t")))
    assert result.failure is None
    assert len(result.events) == 2
    (_, first), (schema, second) = map(unstruct, result.events)
    assert schema == SCHEMA + "1-0-3"
    assert first["dateTime"] == "2019-12-04T21:02:31Z" and second["dateTime"] == "2019-12-04T21:02:32Z"
    # each event has its own line's time; a "-" referer is a url parameter as written
    assert [c.timestamp for c in result.payloads] == [1_575_493_351_000, 1_575_493_352_000]
    assert second["scBytes"] == 0 and result.events[1]["url"] == "-"


def test_query_string_is_not_read():
    # as 3.9.0: the platform is srv and nothing passes through from the query string
    result = adapt(payload((DATA / "wd_access_log_12_fields.tsv").read_text().rstrip("\n"), "p=web&aid=cdn&nuid=n-1&foo=bar"))
    [event] = result.events
    assert event["p"] == "srv" and not {"aid", "nuid", "foo"} & set(event)


@pytest.mark.parametrize("fixture, field, fragment", [
    # 3.9.0's messages
    ("bad_field_count.tsv", "body", "access log contained 13 fields, expected 12, 15, 18, 19, 23, 24 or 26"),
    ("bad_date.tsv", "dateTime", 'could not convert access log timestamp: Invalid format: "04/12/2019T21:02:31+00:00" '
                                 'is malformed at "/12/2019T21:02:31+00:00"'),
    ("bad_sc_bytes.tsv", "scBytes", "cannot be converted to Int"),
])
def test_malformed_lines_are_adapter_failures(fixture, field, fragment):
    result = adapt(payload((DATA / fixture).read_text().rstrip("\n")))
    assert result.events == []
    assert result.failure.kind == ADAPTER_FAILURES
    [message] = result.failure.messages
    assert message["field"] == field and fragment in message["expectation"]


def test_one_bad_line_fails_the_request_and_empty_bodies_fail():
    body = (DATA / "wd_access_log_26_fields.tsv").read_text() + "just\tthree\tfields\n"
    result = adapt(payload(body))
    assert result.events == [] and "contained 3 fields" in result.failure.messages[0]["expectation"]
    assert "empty body" in adapt(payload(None)).failure.messages[0]["expectation"]
    only_headers = adapt(payload("#Version: 1.0\n#Fields: date time\n"))
    # read as the empty line 3.9.0 would have been given
    assert only_headers.failure.messages[0]["expectation"] == (
        "access log contained 1 fields, expected 12, 15, 18, 19, 23, 24 or 26")


def test_every_version_validates_against_the_shipped_schemas():
    enricher = Enricher(Resolver([builtin_registry()]), clock=lambda: 1_764_288_005.0)
    for count, version in VERSIONS.items():
        body = (DATA / f"wd_access_log_{count}_fields.tsv").read_text().rstrip("\n")
        out = enricher.enrich(encode_collector_payload(payload(body)))
        assert out.bad == [] and len(out.good) == 1, (count, out.bad)
        ue = json.loads(out.good[0].split("\t")[FIELD_INDEX["unstruct_event"]])
        assert ue["data"]["schema"] == SCHEMA + version
        event = parse_tsv(out.good[0])
        assert event["unstruct_event_com_amazon_aws_cloudfront_wd_access_log_1"]["csUserAgent"] == UA
        assert (event["user_ipaddress"], event["useragent"]) == ("192.0.2.100", UA_LOGGED)  # as 3.9.0
        assert event["collector_tstamp"].startswith("2019-12-04")
        assert event["page_urlhost"] == "www.acme.com"


def test_one_line_with_its_line_break_is_read_as_390_reads_it():
    # the oracle (bench/oracle_bench.py, webhooks corpus): 3.9.0 splits the whole body on tabs, so the line
    # break stays in the last field
    body18 = (DATA / "wd_access_log_18_fields.tsv").read_text()
    assert body18.endswith("\t23\n")
    assert adapt(payload(body18)).failure.messages == [
        {"field": "csBytes", "value": "23\n", "expectation": "cannot be converted to Int"}]
    [event] = adapt(payload((DATA / "wd_access_log_24_fields.tsv").read_text())).events
    assert unstruct(event)[1]["csProtocolVersion"] == "HTTP/2.0\n"  # 9 characters: too long for its schema
    [event] = adapt(payload((DATA / "wd_access_log_19_fields.tsv").read_text())).events
    assert isinstance(unstruct(event)[1]["timeTaken"], float)  # Double.parseDouble trims the line break
    [event] = adapt(payload((DATA / "wd_access_log_12_fields.tsv").read_text())).events
    assert unstruct(event)[1]["csUriQuery"].endswith("\n")
