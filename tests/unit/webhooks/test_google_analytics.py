"""Google Analytics Measurement Protocol hits -> events of the hit type's schema with their contexts."""
import json
from pathlib import Path

import pytest

from ext import CollectorPayload, encode_collector_payload
from processor.adapters import ADAPTER_FAILURES, adapt
from processor.iglu import Resolver, builtin_registry
from processor.stage import Enricher

DATA = Path(__file__).parent / "data" / "google_analytics"
PATH = "/com.google.analytics/v1"  # 3.9.0's AdapterRegistry: vendor com.google.analytics, version v1
GA = "iglu:com.google.analytics.measurement-protocol/"


def uri(name):
    return f"{GA}{name}/jsonschema/1-0-0"


def payload(body, querystring=None, content_type="text/plain"):
    return CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0", ip_address="203.0.113.9",
        timestamp=1_764_288_000_123, encoding="UTF-8", collector="snowmelt-test", path=PATH,
        querystring=querystring, body=body, content_type=content_type)


def test_the_path_is_snowplows_and_the_measurement_protocol_vendor_is_not_a_path():
    # enrich 3.9.0 routes (com.google.analytics, v1) to its GoogleAnalyticsAdapter; the schemas' vendor
    # (com.google.analytics.measurement-protocol) names no adapter: "vendor/version combination is not supported"
    body = (DATA / "pageview.txt").read_text()
    assert adapt(payload(body)).failure is None
    other = CollectorPayload(schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
                             timestamp=1_764_288_000_123, collector="snowmelt-test", body=body, content_type="text/plain",
                             encoding="UTF-8", path="/com.google.analytics.measurement-protocol/v1")
    result = adapt(other)
    assert result.events == [] and result.failure.kind == ADAPTER_FAILURES
    assert "vendor/version combination is not supported" in json.dumps(result.failure.messages)


def one_event(fixture):
    result = adapt(payload((DATA / fixture).read_text()))
    assert result.failure is None, result.failure
    [event] = result.events
    assert (event["e"], event["p"], event["tv"]) == ("ue", "srv", "com.google.analytics.measurement-protocol-v1")
    inner = json.loads(event["ue_pr"])["data"]
    contexts = json.loads(event["co"]) if "co" in event else {"data": []}
    # 3.9.0 writes the 1-0-1 envelope
    assert contexts.get("schema", "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1").endswith(
        "contexts/jsonschema/1-0-1")
    by_schema = {}
    for ctx in contexts["data"]:
        by_schema.setdefault(ctx["schema"].removeprefix(GA).removesuffix("/jsonschema/1-0-0"), []).append(ctx["data"])
    return event, inner, by_schema


def test_pageview_event_contexts_and_direct_fields():
    event, inner, ctx = one_event("pageview.txt")
    assert inner == {"schema": uri("page_view"), "data": {
        "documentLocationUrl": "http://www.acme.com/home?a=b", "documentHostName": "www.acme.com",
        "documentPath": "/home", "documentTitle": "Home page"}}
    assert ctx["hit"] == [{"type": "pageview", "nonInteractionHit": False}]
    assert ctx["general"] == [{"protocolVersion": "1", "trackingId": "UA-12345-1", "anonymizeIp": True,
                               "queueTime": 560, "cacheBuster": "289372387623"}]
    assert ctx["user"] == [{"clientId": "35009a79-1a05-49d7-b876-2b884d0f825b", "userId": "u-42"}]
    assert ctx["session"] == [{"ipOverride": "198.51.100.7", "userAgentOverride": "Opera/9.80"}]
    assert ctx["traffic_source"] == [{"documentReferrer": "https://www.google.com/", "campaignName": "spring",
                                      "campaignSource": "newsletter", "campaignMedium": "email"}]
    assert ctx["system_info"] == [{"screenResolution": "1920x1080", "viewportSize": "1280x720",
                                   "documentEncoding": "UTF-8", "screenColors": "24-bits", "userLanguage": "en-us",
                                   "javaEnabled": False}]
    assert ctx["custom_dimension"] == [{"index": 1, "value": "gold"}]
    assert ctx["custom_metric"] == [{"index": 2, "value": 42.5}]
    assert ctx["content_group"] == [{"index": 1, "value": "Shoes"}]
    assert "page_view" not in ctx  # the page view is the event itself
    assert {k: event[k] for k in ("ip", "ua", "url", "page", "refr", "cs", "cd", "lang", "f_java")} == {
        "ip": "198.51.100.7", "ua": "Opera/9.80", "url": "http://www.acme.com/home?a=b", "page": "Home page",
        "refr": "https://www.google.com/", "cs": "UTF-8", "cd": "24-bits", "lang": "en-us", "f_java": "0"}
    assert "tid" not in event  # GA's tracking id is not Snowplow's txn_id


@pytest.mark.parametrize("fixture, schema, data", [
    ("screenview.txt", "screen_view", {"screenName": "Home"}),
    ("event.txt", "event", {"category": "video", "action": "play", "label": "holiday", "value": 300}),
    ("transaction.txt", "transaction", {"id": "12345", "affiliation": "westernWear", "revenue": 50.0,
                                        "shipping": 32.0, "tax": 12.0, "couponCode": "SUMMER",
                                        "currencyCode": "EUR"}),
    ("item.txt", "item", {"transactionId": "12345", "name": "sofa", "price": 300, "quantity": 2,
                          "code": "u3eqds43", "category": "furniture", "currencyCode": "EUR"}),
    ("social.txt", "social", {"network": "facebook", "action": "like", "actionTarget": "/home"}),
    ("exception.txt", "exception", {"description": "IOException", "isFatal": True}),
    ("timing.txt", "timing", {"userTimingCategory": "jsonLoader", "userTimingVariableName": "load",
                              "userTimingTime": 5000, "userTimingLabel": "jQuery", "pageLoadTime": 2500,
                              "dnsTime": 100, "pageDownloadTime": 20, "redirectResponseTime": 32,
                              "tcpConnectTime": 56, "serverResponseTime": 12, "domInteractiveTime": 700,
                              "contentLoadTime": 900}),
])
def test_every_hit_type_has_its_schema(fixture, schema, data):
    event, inner, ctx = one_event(fixture)
    assert inner == {"schema": uri(schema), "data": data}
    assert ctx["hit"][0]["type"] == fixture.removesuffix(".txt")
    assert ctx["general"] == [{"protocolVersion": "1", "trackingId": "UA-12345-1"}]
    assert ctx["user"] == [{"clientId": "555"}]


def test_hit_specific_contexts_and_transaction_fields():
    _, _, ctx = one_event("screenview.txt")
    assert ctx["app"] == [{"name": "funTimes", "id": "com.foo.App", "version": "1.5.0",
                           "installerId": "com.android.vending"}]
    _, _, ctx = one_event("event.txt")
    assert ctx["link"] == [{"id": "nav-1"}]
    assert ctx["content_experiment"] == [{"id": "Qp0gahJ3RAO3DJ18b0XoUQ", "variant": "1"}]
    event, _, _ = one_event("transaction.txt")
    assert {k: event[k] for k in ("tr_id", "tr_af", "tr_tt", "tr_sh", "tr_tx", "tr_cu")} == {
        "tr_id": "12345", "tr_af": "westernWear", "tr_tt": "50.00", "tr_sh": "32.00", "tr_tx": "12.00",
        "tr_cu": "EUR"}
    event, _, _ = one_event("item.txt")
    assert {k: event[k] for k in ("ti_id", "ti_nm", "ti_pr", "ti_qu", "ti_sk", "ti_ca", "ti_cu")} == {
        "ti_id": "12345", "ti_nm": "sofa", "ti_pr": "300", "ti_qu": "2", "ti_sk": "u3eqds43",
        "ti_ca": "furniture", "ti_cu": "EUR"}


def test_enhanced_ecommerce_indexed_contexts():
    _, _, ctx = one_event("ecommerce.txt")
    assert ctx["product_action"] == [{"productAction": "purchase", "productActionList": "Search Results",
                                      "checkoutStep": 2, "checkoutStepOption": "Visa"}]
    assert ctx["product"] == [{"index": 1, "sku": "P12345", "name": "Android Warhol T-Shirt", "brand": "Google",
                               "category": "Apparel", "variant": "Black", "price": 29.2, "quantity": 2,
                               "couponCode": "SUMMER", "position": 1, "currencyCode": "EUR"}]
    # 3.9.0 collects the cd/cm indexes of every family in one list (il1pi1cd1 comes before pr1cd2 once sorted),
    # so pr1cd2 gets dimension index 1 and pr1cm3 metric index 1
    assert ctx["product_custom_dimension"] == [{"productIndex": 1, "dimensionIndex": 1, "value": "Member"}]
    assert ctx["product_custom_metric"] == [{"productIndex": 1, "metricIndex": 1, "value": 28}]
    assert ctx["product_impression_list"] == [{"index": 1, "name": "Search Results"}]
    assert ctx["product_impression"] == [{"listIndex": 1, "productIndex": 1, "sku": "P67890", "name": "Hat",
                                          "position": 2, "price": 15.5, "currencyCode": "EUR"}]
    assert ctx["product_impression_custom_dimension"] == [
        {"listIndex": 1, "productIndex": 1, "customDimensionIndex": 1, "value": "Sale"}]
    assert ctx["product_impression_custom_metric"] == [
        {"listIndex": 1, "productIndex": 1, "customMetricIndex": 1, "value": 7}]
    assert ctx["promotion"] == [{"index": 1, "id": "PROMO_1234", "name": "Summer Sale",
                                 "creative": "summer_banner2", "position": "banner_slot1"}]
    assert ctx["promotion_action"] == [{"promotionAction": "view"}]


def test_batch_is_one_event_per_line():
    result = adapt(payload((DATA / "batch.txt").read_text()))
    schemas = [json.loads(e["ue_pr"])["data"]["schema"] for e in result.events]
    assert schemas == [uri("page_view"), uri("event")]


@pytest.mark.parametrize("body, expected", [
    # 3.9.0: a hit without t names the line; a context's bad value is named by its schema field, and the
    # event's own values are looked at only when the contexts are good
    ((DATA / "missing_t.txt").read_text(), [{"field": "body", "value": "v=1&tid=UA-12345-1&cid=555&dp=%2Fhome"}]),
    ((DATA / "bad_value.txt").read_text(), [{"field": "anonymizeIp", "value": "yes"}]),
    ("v=1&t=pageview&dp=%zz", [{"field": "body"}]),
    (None, [{"field": "body", "value": None}]),
])
def test_malformed_hits_name_the_field(body, expected):
    result = adapt(payload(body))
    assert result.events == [] and result.failure.kind == ADAPTER_FAILURES
    assert [{k: m[k] for k in e} for m, e in zip(result.failure.messages, expected)] == expected
    assert len(result.failure.messages) == len(expected)


def test_unknown_hit_type_is_a_schema_mapping_failure():
    result = adapt(payload((DATA / "unknown_hit_type.txt").read_text()))
    first, message = result.failure.messages   # 3.9.0: "no matching hit type", then the schema mapping
    assert first == {"field": "t", "value": "pageviews", "expectation": "no matching hit type"}
    assert message["actual"] == "pageviews"
    assert message["expectedMapping"]["pageview"] == uri("page_view")
    assert set(message["expectedMapping"]) == {"pageview", "screenview", "event", "transaction", "item", "social",
                                               "exception", "timing"}


def test_one_bad_hit_fails_the_whole_batch():
    body = (DATA / "event.txt").read_text() + (DATA / "unknown_hit_type.txt").read_text()
    result = adapt(payload(body))
    assert result.events == [] and result.failure.messages[1]["actual"] == "pageviews"


def test_every_fixture_validates_against_the_shipped_schemas():
    enricher = Enricher(Resolver([builtin_registry()]), clock=lambda: 1_764_288_005.0)
    for name in ("pageview", "screenview", "event", "transaction", "item", "social", "exception", "timing",
                 "ecommerce"):
        out = enricher.enrich(encode_collector_payload(payload((DATA / f"{name}.txt").read_text())))
        assert out.bad == [] and len(out.good) == 1, (name, out.bad)
