"""CloudFront access logs and GA Measurement Protocol hits through a real ``snowmelt up``.

Every fixture of tests/unit/webhooks/data/{cloudfront,google_analytics} is
POSTed over HTTP to its vendor path; the events (``/micro/good``: schema,
contexts, the analytics-SDK event) and the adapter_failures bad rows
(``/micro/bad``) that come out are checked.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.services.up import UpProcess
from tests.services.wait import wait_until

DATA = Path(__file__).resolve().parents[1] / "unit" / "webhooks" / "data"
CLOUDFRONT = "/com.amazon.aws.cloudfront/wd_access_log"
GA = "/com.google.analytics/v1"
GA_PREFIX = "iglu:com.google.analytics.measurement-protocol/"
CF_SCHEMA = "iglu:com.amazon.aws.cloudfront/wd_access_log/jsonschema/"
CF_VERSIONS = {12: "1-0-0", 15: "1-0-1", 18: "1-0-2", 19: "1-0-3", 23: "1-0-4", 24: "1-0-5", 26: "1-0-6"}
GA_HITS = {"pageview": "page_view", "screenview": "screen_view", "event": "event", "transaction": "transaction",
           "item": "item", "social": "social", "exception": "exception", "timing": "timing", "ecommerce": "event"}
CF_BAD = {"bad_field_count.tsv": '"field":"body"', "bad_date.tsv": '"field":"dateTime"',
          "bad_sc_bytes.tsv": '"field":"scBytes"'}
# 3.9.0's messages: a hit without t names the line; a bad context value is named by its schema field
GA_BAD = {"missing_t.txt": '"expectation":"no t parameter provided', "unknown_hit_type.txt": '"actual":"pageviews"',
          "bad_value.txt": '"field":"anonymizeIp"'}
EXPECTED_GOOD = len(CF_VERSIONS) + 2 + len(GA_HITS) + 2
EXPECTED_BAD = len(CF_BAD) + len(GA_BAD)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    up = UpProcess(tmp_path_factory.mktemp("webhooks-logs")).start()
    try:
        # 3.9.0 reads no query string for CloudFront (the events are told apart by their field counts), and a "-"
        # byte count refuses a line: the file's second line gets a number. A body of one line is sent without
        # its line break, as CloudFront's lines reach the collector (3.9.0 keeps a break in the last field).
        for count in CF_VERSIONS:
            assert up.send(CLOUDFRONT, (DATA / "cloudfront" / f"wd_access_log_{count}_fields.tsv").read_text()
                           .rstrip("\n"), "text/plain") == 200
        log_file = (DATA / "cloudfront" / "log_file_with_headers.tsv").read_text().replace("\tLAX1\t-\t", "\tLAX1\t0\t")
        assert up.send(CLOUDFRONT, log_file, "text/plain") == 200
        for name in CF_BAD:
            assert up.send(CLOUDFRONT, (DATA / "cloudfront" / name).read_text().rstrip("\n"), "text/plain") == 200
        for name in [*GA_HITS, "batch"]:
            assert up.send(GA, (DATA / "google_analytics" / f"{name}.txt").read_text(),
                           "text/plain;charset=UTF-8") == 200
        for name in GA_BAD:
            assert up.send(GA, (DATA / "google_analytics" / name).read_text(), "text/plain;charset=UTF-8") == 200

        def all_in():
            summary = up.get("/micro/all")
            # every request's outcome, good or bad, so a wrong outcome fails an assertion, not the wait
            return summary if summary["total"] >= EXPECTED_GOOD + EXPECTED_BAD else None

        summary = wait_until(all_in, 45, "every webhook request to be enriched",
                             done=lambda value: value is not None)
        yield {"summary": summary, "good": up.get("/micro/good"), "bad": up.get("/micro/bad")}
    finally:
        up.kill()
        up.remove_log()


def test_counts(results):
    assert results["summary"] == {"total": EXPECTED_GOOD + EXPECTED_BAD, "good": EXPECTED_GOOD,
                                   "bad": EXPECTED_BAD}, json.dumps(results["bad"])[:3000]


def _api(item, path):
    return item["rawEvent"]["api"] == {"vendor": path.split("/")[1], "version": path.split("/")[2]}


def test_cloudfront_every_version(results):
    events = [g for g in results["good"] if _api(g, CLOUDFRONT)]
    data_of = lambda g: g["event"]["unstruct_event_com_amazon_aws_cloudfront_wd_access_log_1"]  # noqa: E731
    from_file = [g for g in events if data_of(g)["dateTime"] == "2019-12-04T21:02:32Z"]
    nineteen = [g for g in events if len(data_of(g)) == 18 and g not in from_file]
    assert len(nineteen) == 2  # the 19-field fixture and the file's first line: the same line
    from_file.append(nineteen[1])
    singles = [g for g in events if g not in from_file]
    by_count = {len(data_of(g)) + 1: g for g in singles}
    assert len(singles) == len(CF_VERSIONS)
    for count, version in CF_VERSIONS.items():
        item = by_count[count]
        assert item["schema"] == CF_SCHEMA + version
        event = item["event"]
        data = event["unstruct_event_com_amazon_aws_cloudfront_wd_access_log_1"]
        assert len(data) == count - 1 and data["dateTime"] == "2019-12-04T21:02:31Z"
        assert data["scBytes"] == 392 and data["csUserAgent"].startswith("Mozilla/5.0 (Windows NT 10.0;")
        assert (event["platform"], event["v_tracker"], event["event"]) == (
            "srv", "com.amazon.aws.cloudfront/wd_access_log", "unstruct")
        assert event["user_ipaddress"] == "192.0.2.100"
        assert event["page_url"] == "https://www.acme.com/products/shoes?size=42"
        # as 3.9.0: the line's time is the collector's
        assert str(event["collector_tstamp"]).startswith("2019-12-04")
    assert sorted(g["event"]["unstruct_event_com_amazon_aws_cloudfront_wd_access_log_1"]["dateTime"]
                  for g in from_file) == ["2019-12-04T21:02:31Z", "2019-12-04T21:02:32Z"]
    assert {g["schema"] for g in from_file} == {CF_SCHEMA + "1-0-3"}


def test_google_analytics_hits_and_contexts(results):
    events = [g for g in results["good"] if _api(g, GA)]
    assert sorted(g["schema"].removeprefix(GA_PREFIX).split("/")[0] for g in events) == sorted(
        [*GA_HITS.values(), "page_view", "event"])
    pageviews = [g for g in events if g["schema"] == GA_PREFIX + "page_view/jsonschema/1-0-0"]
    assert len(pageviews) == 2
    pv = pageviews[0]["event"]
    assert pv["unstruct_event_com_google_analytics_measurement_protocol_page_view_1"]["documentPath"] == "/home"
    assert pv["contexts_com_google_analytics_measurement_protocol_general_1"] == [
        {"protocolVersion": "1", "trackingId": "UA-12345-1", "anonymizeIp": True, "queueTime": 560,
         "cacheBuster": "289372387623"}]
    assert pv["contexts_com_google_analytics_measurement_protocol_hit_1"] == [
        {"type": "pageview", "nonInteractionHit": False}]
    assert pv["contexts_com_google_analytics_measurement_protocol_custom_dimension_1"] == [
        {"index": 1, "value": "gold"}]
    assert (pv["page_url"], pv["page_title"], pv["user_ipaddress"], pv["useragent"]) == (
        "http://www.acme.com/home?a=b", "Home page", "198.51.100.7", "Opera/9.80")
    assert (pv["platform"], pv["v_tracker"]) == ("srv", "com.google.analytics.measurement-protocol-v1")

    ecommerce = next(g for g in events
                     if "contexts_com_google_analytics_measurement_protocol_product_1" in g["event"])
    assert GA_PREFIX + "promotion/jsonschema/1-0-0" in ecommerce["contexts"]
    [product] = ecommerce["event"]["contexts_com_google_analytics_measurement_protocol_product_1"]
    assert (product["sku"], product["price"], product["quantity"]) == ("P12345", 29.2, 2)

    transaction = next(g["event"] for g in events if g["schema"] == GA_PREFIX + "transaction/jsonschema/1-0-0")
    assert (transaction["tr_orderid"], transaction["tr_total"], transaction["tr_currency"]) == ("12345", 50.0, "EUR")
    item = next(g["event"] for g in events if g["schema"] == GA_PREFIX + "item/jsonschema/1-0-0")
    assert (item["ti_orderid"], item["ti_quantity"], item["ti_price"]) == ("12345", 2, 300.0)
    timing = next(g["event"] for g in events if g["schema"] == GA_PREFIX + "timing/jsonschema/1-0-0")
    assert timing["unstruct_event_com_google_analytics_measurement_protocol_timing_1"]["pageLoadTime"] == 2500


@pytest.mark.parametrize("path, expected", [(CLOUDFRONT, CF_BAD), (GA, GA_BAD)])
def test_malformed_requests_are_adapter_failures(results, path, expected):
    bad = [b for b in results["bad"] if b["collectorPayload"]["api"]["vendor"] == path.split("/")[1]]
    assert len(bad) == len(expected)
    errors = [" ".join(b["errors"]) for b in bad]
    assert all(e.startswith("adapter_failures") for e in errors), errors
    for fixture, fragment in expected.items():
        assert sum(fragment in e for e in errors) == 1, (fixture, fragment, errors)
