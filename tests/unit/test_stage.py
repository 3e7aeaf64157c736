"""The enrichment stage end to end, without Kafka: raw record in, TSV and bad rows out."""
import base64
import json
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snowplow_analytics_sdk.event_transformer import transform

from ext import CollectorPayload, encode_collector_payload
from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from tests.timing import fastest

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
NOW = 1_764_288_005.0
COLLECTED = 1_764_288_000_123
TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
PRODUCT = "iglu:com.acme/product/jsonschema/1-0-0"
CLICK = "iglu:com.acme/button_click/jsonschema/1-0-0"


def write_schema(root: Path, uri: str, body: dict) -> None:
    vendor, name, fmt, version = uri.removeprefix("iglu:").split("/")
    path = root / vendor / name / fmt / version
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
           "self": {"vendor": vendor, "name": name, "format": fmt, "version": version}, **body}
    path.write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def enricher(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    write_schema(root, PRODUCT, {"type": "object", "properties": {
        "sku": {"type": "string", "maxLength": 20}, "price": {"type": "number", "minimum": 0}},
        "required": ["sku"], "additionalProperties": False})
    write_schema(root, CLICK, {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]})
    resolver = Resolver([EmbeddedRepository("test registry", root)])
    return Enricher(resolver, clock=lambda: NOW)


def raw(path="/i", querystring=None, body=None, content_type=None, **extra):
    fields = dict(schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
                  ip_address="203.0.113.9", timestamp=COLLECTED, encoding="UTF-8", collector="snowmelt-0.1.0-kafka",
                  user_agent="Mozilla/5.0 (X11; Linux x86_64)\tFirefox", referer_uri="https://shop.acme.com/ref",
                  path=path, querystring=querystring, body=body, content_type=content_type,
                  headers=["Host: c.acme.com"], hostname="c.acme.com",
                  network_user_id="11111111-1111-4111-8111-111111111111")
    fields.update(extra)
    return encode_collector_payload(CollectorPayload(**fields))


def b64(doc) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def validate_bad_row(row_bytes) -> dict:
    row = json.loads(row_bytes)
    vendor, name, fmt, version = row["schema"].removeprefix("iglu:").split("/")
    schema = json.loads((SCHEMAS / vendor / name / fmt / version).read_text())
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(row["data"])
    return row


@pytest.mark.parametrize("agent, expected", [
    ("Mozilla/5.0 (X11; Linux x86_64)\tFirefox", "Mozilla/5.0 (X11; Linux x86_64)    Firefox"),
    ("Agent\r\n/1.0\t\tX\r", "Agent/1.0        X"),
    ("\n", ""),
    ("Mozilla/5.0 Firefox/120.0", "Mozilla/5.0 Firefox/120.0"),
])
def test_the_request_user_agent_is_cleaned_as_snowplow_cleans_it(enricher, agent, expected):
    """Snowplow's setUseragent: CR and LF removed, a tab four spaces."""
    out = enricher.enrich(raw("/i", "e=pv&p=web&tv=js-4.1.0", user_agent=agent))
    assert out.bad == []
    assert parse_tsv(out.good[0]).get("useragent", "") == expected  # empty: the field is empty


def test_page_view_get_becomes_one_enriched_event(enricher):
    qs = ("e=pv&eid=0c9e1f6a-2b3c-4d5e-8f90-123456789abc&aid=shop&p=web&tv=js-4.1.0&tna=sp1"
          "&url=https%3A%2F%2Fshop.acme.com%2Fp%3Fid%3D1%23top&page=Widget&refr=https%3A%2F%2Fwww.google.com%2F"
          "&dtm=1764287999000&stm=1764287999500&res=1920x1080&vp=1280x720&ds=1280x3400&cookie=1&lang=de-DE"
          "&duid=d1&sid=5a1e2c3d-0000-4000-8000-00000000000a&vid=2")
    out = enricher.enrich(raw("/i", qs))
    assert out.bad == [] and len(out.good) == 1
    line = out.good[0]
    assert line.count("\t") == 130
    e = parse_tsv(line)
    assert e["event"] == "page_view" and e["event_id"] == "0c9e1f6a-2b3c-4d5e-8f90-123456789abc"
    assert e["app_id"] == "shop" and e["platform"] == "web" and e["v_tracker"] == "js-4.1.0"
    assert e["v_collector"] == "snowmelt-0.1.0-kafka" and e["v_etl"].startswith("snowmelt-")
    assert e["collector_tstamp"] == "2025-11-28T00:00:00.123Z"
    assert e["etl_tstamp"] == "2025-11-28T00:00:05.000Z"
    assert e["dvce_created_tstamp"] == "2025-11-27T23:59:59.000Z"
    # derived = collector - (sent - created)
    assert e["derived_tstamp"] == "2025-11-27T23:59:59.623Z"
    assert (e["page_urlscheme"], e["page_urlhost"], e["page_urlport"]) == ("https", "shop.acme.com", 443)
    assert (e["page_urlpath"], e["page_urlquery"], e["page_urlfragment"]) == ("/p", "id=1", "top")
    assert e["refr_urlhost"] == "www.google.com"
    assert e["user_ipaddress"] == "203.0.113.9" and e["network_userid"] == "11111111-1111-4111-8111-111111111111"
    assert e["useragent"] == "Mozilla/5.0 (X11; Linux x86_64)    Firefox"  # a tab is four spaces, as in Snowplow
    assert (e["dvce_screenwidth"], e["br_viewheight"], e["doc_height"]) == (1920, 720, 3400)
    assert e["br_cookies"] is True and e["domain_sessionidx"] == 2
    assert (e["event_vendor"], e["event_name"], e["event_format"], e["event_version"]) == (
        "com.snowplowanalytics.snowplow", "page_view", "jsonschema", "1-0-0")
    assert transform(line)["event_id"] == e["event_id"]  # Snowplow's own SDK reads it


def test_post_batch_with_self_describing_event_and_contexts(enricher):
    contexts = {"schema": CONTEXTS, "data": [{"schema": PRODUCT, "data": {"sku": "W-1", "price": 9.5}},
                                             {"schema": PRODUCT, "data": {"sku": "W-2"}}]}
    ue = {"schema": UNSTRUCT, "data": {"schema": CLICK, "data": {"id": "buy"}}}
    body = json.dumps({"schema": PAYLOAD_DATA, "data": [
        {"e": "ue", "ue_px": b64(ue), "cx": b64(contexts), "tv": "js-3", "p": "web", "dtm": "1764287999000",
         "ttm": "1764287998000"},
        {"e": "se", "se_ca": "shop", "se_ac": "add", "se_va": "2.5", "tv": "js-3", "p": "web",
         "co": json.dumps(contexts)},
        {"e": "pp", "pp_mix": "0", "pp_max": "10", "pp_miy": "0", "pp_may": "300", "tv": "js-3", "p": "web",
         "url": "https://a.com/"},
    ]})
    out = enricher.enrich(raw(TP2, "aid=shop", body, "application/json; charset=utf-8"))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    ue_event, se_event, pp_event = (parse_tsv(line) for line in out.good)
    assert ue_event["app_id"] == se_event["app_id"] == "shop"  # merged from the query string
    assert ue_event["unstruct_event_com_acme_button_click_1"] == {"id": "buy"}
    assert ue_event["contexts_com_acme_product_1"] == [{"sku": "W-1", "price": 9.5}, {"sku": "W-2"}]
    assert (ue_event["event_vendor"], ue_event["event_name"]) == ("com.acme", "button_click")
    assert ue_event["derived_tstamp"] == "2025-11-27T23:59:58.000Z"  # the true timestamp wins
    assert se_event["se_value"] == 2.5 and se_event["event_vendor"] == "com.google.analytics"
    assert pp_event["pp_yoffset_max"] == 300
    assert pp_event["page_urlport"] == 443
    for line in out.good:
        transform(line)


def test_spaces_in_the_page_url_are_percent_encoded_as_snowplow_does(enricher):
    [line] = enricher.enrich(raw("/i", "e=pv&p=web&url=https%3A%2F%2Fa.com%2Fs%3Fq%3Dcr%C3%A8me+br%C3%BBl%C3%A9e")).good
    e = parse_tsv(line)
    assert e["page_url"] == "https://a.com/s?q=crème%20brûlée"
    assert e["page_urlquery"] == "q=crème%20brûlée"


@pytest.mark.parametrize("param, text, fields", [
    # java.net.URI refuses characters beyond ASCII that Java counts as spaces or controls; Snowplow's fallback
    # reading percent-encodes them (found by the oracle's fuzz corpus: a referer of one U+2028)
    ("refr", "\u2028", {"refr_urlport": 80, "refr_urlpath": "%E2%80%A8"}),
    ("url", "https://a.com/x\u00a0y?q=\u3000", {"page_url": "https://a.com/x%C2%A0y?q=%E3%80%80",
                                                  "page_urlpath": "/x%C2%A0y", "page_urlquery": "q=%E3%80%80"}),
    ("url", "https://a.com/\u0085", {"page_urlpath": "/%C2%85"}),
])
def test_urls_with_what_java_uri_refuses_beyond_ascii_are_read_leniently(enricher, param, text, fields):
    [line] = enricher.enrich(raw("/i", urlencode({"e": "pv", "p": "web", param: text}))).good
    e = parse_tsv(line)
    assert {name: e.get(name) for name in fields} == fields


@pytest.mark.parametrize("param, text, fields", [
    # 3.9.0 hands a URL java.net.URI refuses to scala-uri 1.5.1, which decodes each path segment, query key and
    # value and the fragment and encodes them back (reserved characters too); snowmelt only escaped what Java
    # refused, so a tracking link with a | and a URL in its query differed in page_url and page_urlquery
    ("url", "https://shop.acme.com/edge?u=http://b.example/x|y&v=a(b)!&w",
     {"page_url": "https://shop.acme.com/edge?u=http%3A%2F%2Fb.example%2Fx%7Cy&v=a%28b%29%21&w",
      "page_urlquery": "u=http%3A%2F%2Fb.example%2Fx%7Cy&v=a%28b%29%21&w"}),
    ("url", "https://shop.acme.com/a|b/c(d);e?x=%zz&=y#top/1?z",
     {"page_urlpath": "/a%7Cb/c%28d%29%3Be", "page_urlquery": "x=%25zz&=y", "page_urlfragment": "top%2F1%3Fz"}),
    # escapes of bytes that are not UTF-8: U+FFFD, written %EF%BF%BD (found by the fuzz corpus)
    ("url", "https://shop.acme.com/%E0%A4%A", {"page_urlpath": "/%EF%BF%BD%25A"}),
    ("url", "https://shop.acme.com:0443/p|q", {"page_urlport": 443, "page_url": "https://shop.acme.com:443/p%7Cq"}),
    # a character beyond the BMP is two UTF-16 halves to scala-uri's decoder, each written '?'
    ("url", "https://shop.acme.com/\U0001f600|\u00e9", {"page_urlpath": "/%3F%3F%7C%C3%A9"}),
    # Java's Integer.parseInt reads a sign: %-1 is the byte 0xFF, %+F the byte 0x0F
    ("url", "https://shop.acme.com/p?%-1=%+F|", {"page_urlquery": "%EF%BF%BD=%0F%7C"}),
    ("refr", "https://www.google.com/url?q=https://shop.acme.com/|&sa=t",
     {"refr_urlquery": "q=https%3A%2F%2Fshop.acme.com%2F%7C&sa=t", "refr_urlhost": "www.google.com"}),
])
def test_urls_java_refuses_are_written_back_as_scala_uri_writes_them(enricher, param, text, fields):
    [line] = enricher.enrich(raw("/i", urlencode({"e": "pv", "p": "web", param: text}))).good
    e = parse_tsv(line)
    assert {name: e.get(name) for name in fields} == fields


def test_pixel_without_url_takes_the_referer(enricher):
    [line] = enricher.enrich(raw("/i", "e=pv&p=web")).good
    assert parse_tsv(line)["page_url"] == "https://shop.acme.com/ref"


@pytest.mark.parametrize("params, error", [
    ({"cx": b64({"schema": CONTEXTS, "data": [{"schema": "iglu:com.acme/unknown/jsonschema/1-0-0", "data": {}}]})},
     "ResolutionError"),
    ({"cx": b64({"schema": CONTEXTS, "data": [{"schema": PRODUCT, "data": {"price": -1}}]})}, "ValidationError"),
    ({"co": json.dumps({"schema": "iglu:com.acme/not_contexts/jsonschema/1-0-0", "data": []})}, "schemaCriterion"),
    ({"co": '{"schema": "nope", "data": []}'}, "INVALID_IGLUURI"),
    ({"co": '{"schema": 1}'}, "INVALID_DATA_PAYLOAD"),
    # JSON's null is a document Iglu refuses, not an absent one (it was taken as no contexts, a good event)
    ({"co": "null"}, '{"json": null, "error": "INVALID_DATA_PAYLOAD"}'),
    ({"cx": b64(None)}, '{"json": null, "error": "INVALID_DATA_PAYLOAD"}'),
    ({"e": "ue", "ue_pr": " null "}, '[{"json": null, "error": "INVALID_DATA_PAYLOAD"}]'),
    ({"ue_px": b64(None)}, '[{"json": null, "error": "INVALID_DATA_PAYLOAD"}]'),
    ({"e": "ue", "ue_pr": json.dumps({"schema": UNSTRUCT, "data": {"schema": CLICK, "data": {}}})}, "ValidationError"),
])
def test_iglu_failures_are_schema_violations(enricher, params, error):
    params = {"e": "pv", "p": "web", **params}
    out = enricher.enrich(raw("/i", urlencode(params)))
    assert out.good == []
    [row_bytes] = out.bad
    row = validate_bad_row(row_bytes)
    assert row["schema"] == "iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-1"
    assert error in json.dumps(row["data"]["failure"]["messages"])
    raw_event = row["data"]["payload"]["raw"]
    assert {"name": "e", "value": params["e"]} in raw_event["parameters"]
    assert row["data"]["payload"]["enriched"]["collector_tstamp"] == "2025-11-28 00:00:00.123"


@pytest.mark.parametrize("param, field", [("ue_pr", "unstruct_event"), ("co", "contexts")])
@pytest.mark.parametrize("doc", ["1", "-2147483649", "1.5", "true", "[]", "[1]", '[{"a":1}]'])
@pytest.mark.parametrize("refused", ["", "&tid=x"])
def test_self_describing_json_that_is_no_object_is_a_bad_row_showing_it_as_sent(enricher, param, field, doc,
                                                                               refused):
    # the stage raised on these while writing the bad row's event (the worker then made the whole request one
    # generic_error row, its other events lost); a refused parameter makes it an enrichment_failures row, the
    # JSON not yet validated, as in Snowplow's enrich
    out = enricher.enrich(raw("/i", urlencode({"e": "ue", "p": "web", param: doc}) + refused))
    assert out.good == []
    [row_bytes] = out.bad
    row = validate_bad_row(row_bytes)
    assert ("/enrichment_failures/" if refused else "/schema_violations/") in row["schema"]
    assert row["data"]["payload"]["enriched"][field] == doc


@pytest.mark.parametrize("sp, text, expectation", [
    ("abc.def", "def", "not in the expected format: ms since epoch"),
    ("abc..123", "", "not in the expected format: ms since epoch"),
    ("abc.253402300800000", "253402300800000",
     "formatting as 10000-01-01 00:00:00.000 is not Redshift-compatible"),
])
def test_a_cross_domain_timestamp_that_is_none_fails_the_event_as_snowplow_fails_it(enricher, sp, text, expectation):
    # 3.9.0's getCrossDomain runs for every event: an enrichment failure, the referrer's ids not set; it was
    # ignored, the event good
    url = "https://shop.acme.com/?" + urlencode({"_sp": sp})
    out = enricher.enrich(raw("/i", urlencode({"e": "pv", "p": "web", "url": url, "cv": ""})))
    assert out.good == []
    row = validate_bad_row(out.bad[0])
    assert "/enrichment_failures/" in row["schema"]
    # each failing step's messages before those of the steps before it: getCrossDomain's, then v_collector's
    assert [m["message"] for m in row["data"]["failure"]["messages"]] == [
        {"field": "sp_dtm", "value": text, "expectation": expectation},
        {"field": "v_collector", "value": None, "expectation": "should be set"}]
    assert row["data"]["payload"]["enriched"]["refr_domain_userid"] is None


def test_the_contexts_failures_come_before_the_events_as_snowplow_accumulates_them(enricher):
    # found by the oracle's fuzz corpus: both invalid, 3.9.0 lists the contexts' messages first
    out = enricher.enrich(raw("/i", urlencode({"e": "ue", "p": "web", "co": "{}", "ue_pr": json.dumps(
        {"schema": CONTEXTS, "data": []})})))
    [row] = [validate_bad_row(b) for b in out.bad]
    assert [("json" in m, "schemaCriterion" in m) for m in row["data"]["failure"]["messages"]] == [
        (True, False), (False, True)]


def test_numbers_keep_the_text_the_tracker_wrote_in_good_events_and_bad_rows(enricher):
    # Snowplow's enrich 3.9.0 writes contexts and self-describing events back with each number's text as sent
    # (circe keeps it); snowmelt wrote the shortest form of the same number (1.0, 0.1, 1e-5, 180.0)
    def contexts(price):
        return ('{"schema":"%s","data":[{"schema":"%s","data":{"sku":"W-1","price":%s}},'
                '{"schema":"%s","data":{"sku":"W-2","price":0.10}}]}' % (CONTEXTS, PRODUCT, price, PRODUCT))
    ue = ('{"schema":"%s","data":{"schema":"%s","data":{"id":"x","n":[1e-05,1.8E+2,-0.0,2.5,'
          '123456789012345678901234567890]}}}' % (UNSTRUCT, CLICK))
    out = enricher.enrich(raw("/i", urlencode({"e": "ue", "p": "web", "co": contexts("1.0e0"), "ue_pr": ue})))
    assert out.bad == []
    [line] = out.good
    fields = line.split("\t")
    assert fields[FIELD_INDEX["contexts"]] == contexts("1.0e0").replace("contexts/jsonschema/1-0-0",
                                                                         "contexts/jsonschema/1-0-1")
    assert fields[FIELD_INDEX["unstruct_event"]] == ue
    # validated as the numbers they are: a price below the minimum, written -1.0e0, fails as -1.0 does
    out = enricher.enrich(raw("/i", urlencode({"e": "ue", "p": "web", "co": contexts("-1.0e0"), "ue_pr": ue})))
    assert out.good == []
    [row_bytes] = out.bad
    row = validate_bad_row(row_bytes)
    assert row["data"]["failure"]["messages"] == [{
        "schemaKey": PRODUCT, "error": {"error": "ValidationError", "dataReports": [{
            "message": "$.price: must have a minimum value of 0", "path": "$.price", "keyword": "minimum",
            "targets": ["0"]}]}}]
    assert row["data"]["payload"]["enriched"]["contexts"] == contexts("-1.0e0")
    assert row["data"]["payload"]["enriched"]["unstruct_event"] == ue


def test_over_long_atomic_field_is_an_enrichment_failure_not_a_truncation(enricher):
    # Snowplow enrich 3.9.0's AtomicFieldsLengthValidator (acceptInvalid off): an enrichment_failures row
    out = enricher.enrich(raw("/i", "e=pv&p=web&aid=" + "a" * 256))
    assert out.good == []
    row = validate_bad_row(out.bad[0])
    assert "/enrichment_failures/" in row["schema"]
    assert [m["message"]["error"] for m in row["data"]["failure"]["messages"]] == [
        "Enriched event does not conform to atomic schema field's length restrictions",
        "Field app_id longer than maximum allowed size 255"]
    assert row["data"]["payload"]["enriched"]["app_id"] == "a" * 256


def test_every_event_has_an_id_its_eid_or_a_new_random_one(enricher):
    eid = "0c9e1f6a-2b3c-4d5e-8f90-123456789abc"
    [kept] = enricher.enrich(raw("/i", f"e=pv&p=web&eid={eid}")).good
    assert kept.split("\t")[FIELD_INDEX["event_id"]] == eid
    made = {line.split("\t")[FIELD_INDEX["event_id"]]
            for _ in range(3) for line in enricher.enrich(raw("/i", "e=pv&p=web")).good}
    # a refused eid leaves the random one, which the bad row's event shows (as Snowplow's enrich does)
    [row_bytes] = enricher.enrich(raw("/i", "e=pv&p=web&eid=not-a-uuid&tid=x")).bad
    refused = validate_bad_row(row_bytes)["data"]["payload"]["enriched"]["event_id"]
    assert len(made | {refused}) == 4
    for made_id in made | {refused}:
        assert uuid.UUID(made_id).version == 4 and str(uuid.UUID(made_id)) == made_id


@pytest.mark.parametrize("record, schema", [
    (b"\x00\x01 not thrift", "collector_payload_format_violation"),
    (raw("/a/b/c", "e=pv"), "collector_payload_format_violation"),
    (raw("/i", "e=pv", schema="iglu:com.acme/other/thrift/1-0-0"), "collector_payload_format_violation"),
    (raw("/com.acme/v9", "e=pv"), "adapter_failures"),
    (raw(TP2, None, "not json", "application/json"), "tracker_protocol_violations"),
    (raw("/i", "e=pv&tid=abc&vid=x"), "enrichment_failures"),  # as Snowplow enrich 3.9.0
])
def test_bad_records_become_bad_rows_matching_their_schemas(enricher, record, schema):
    out = enricher.enrich(record)
    assert out.good == []
    [row_bytes] = out.bad
    row = validate_bad_row(row_bytes)
    assert f"/{schema}/" in row["schema"]
    assert row["data"]["processor"]["artifact"] == "snowmelt-enrich"


def test_one_bad_event_in_a_batch_does_not_take_the_others(enricher):
    # the batch conforms to payload_data; the second event's tid fails only when it is enriched
    body = json.dumps({"schema": PAYLOAD_DATA, "data": [
        {"e": "pv", "tv": "js-3", "p": "web"}, {"e": "pv", "tv": "js-3", "p": "web", "tid": "x"},
        {"e": "se", "se_ca": "c", "se_ac": "a", "tv": "js-3", "p": "web"}]})
    out = enricher.enrich(raw(TP2, None, body, "application/json"))
    assert len(out.good) == 2 and len(out.bad) == 1


def test_one_event_against_the_payload_data_schema_takes_the_whole_batch(enricher):
    # as Snowplow's enrich 3.9.0: the body is validated whole, before any event is read
    body = json.dumps({"schema": PAYLOAD_DATA, "data": [{"e": "pv", "tv": "js-3", "p": "web"}, {"e": "pv"}]})
    out = enricher.enrich(raw(TP2, None, body, "application/json"))
    assert out.good == []
    [row] = [json.loads(b) for b in out.bad]
    assert row["schema"].endswith("/tracker_protocol_violations/jsonschema/1-0-1")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=st.one_of(
    st.binary(max_size=200),
    st.builds(lambda path, qs, body: raw(path, qs, body, "application/json"),
              st.sampled_from(["/i", TP2, "/r/tp2", "/com.acme/v1", "/x"]),
              st.one_of(st.none(), st.text(max_size=60)),
              st.one_of(st.none(), st.text(max_size=120))),
))
def test_random_records_never_raise(enricher, record):
    out = enricher.enrich(record)
    assert out.good or out.bad
    for line in out.good:
        assert line.count("\t") == 130


@pytest.mark.parametrize("name,sp,duid,tstamp", [
    ("_sp", "c6ef3124-b53a-4b13-a233-0088f79dcbcb.1680681134458",
     "c6ef3124-b53a-4b13-a233-0088f79dcbcb", "2023-04-05 07:52:14.458"),
    ("_sp", "c6ef3124-b53a-4b13-a233-0088f79dcbcb.1680681134458.abc.dXNlcg.c3Jj.web.cmVhc29u",
     "c6ef3124-b53a-4b13-a233-0088f79dcbcb", "2023-04-05 07:52:14.458"),
    # split on dots as Java splits (trailing empty parts dropped), the id made TSV-safe, the time read as Long
    ("_sp", "abc.", "abc", None), ("_sp", ".1680681134458", None, "2023-04-05 07:52:14.458"),
    ("_sp", "a\tb.+12", "a    b", "1970-01-01 00:00:00.012"),
    # Snowplow reads the page query's names decoded (URLEncodedUtils.parse): ``%5Fsp`` is ``_sp``
    *((name, "c6ef3124.1680681134458", "c6ef3124", "2023-04-05 07:52:14.458")
      for name in ("%5Fsp", "%5fsp", "_%73%70", "%5F%73p")),
])
def test_cross_domain_sp_parameter_fills_refr_fields_without_any_enrichment(enricher, name, sp, duid, tstamp):
    url = f"https://shop.acme.com/landing?a=1&{name}={quote(sp, safe='')}"
    out = enricher.enrich(raw(querystring=urlencode({"e": "pv", "url": url, "p": "web", "tv": "js-3"})))
    assert out.bad == []
    columns = out.good[0].split("\t")
    assert columns[FIELD_INDEX["refr_domain_userid"]] == (duid or "")
    assert columns[FIELD_INDEX["refr_dvce_tstamp"]] == (tstamp or "")


def test_cross_domain_sp_in_a_long_page_query_is_found_without_parsing_it_whole():
    from processor.enrichments.cross_navigation import sp_from_query

    # a page query of 60,000 parameters (a 1 MB URL fits in one POST) with _sp among them: its value is
    # found in one pass, not by a 40 ms parse of the whole query
    query = "&".join(f"utm_source{i}=x" for i in range(60_000)) + "&_sp=c6ef3124.1680681134458&b=2"
    from processor.enrichments.querystrings import query_pairs

    seconds, value = fastest(lambda: sp_from_query(query))
    assert value == "c6ef3124.1680681134458"
    # against parsing the whole query with the same implementation (compiled or its twin)
    whole, _ = fastest(lambda: query_pairs(query), runs=2)
    assert seconds < whole / 2, (seconds, whole)


def test_failing_events_of_a_batch_cost_linear_not_quadratic(enricher):
    # N events breaking the tracker protocol: N bad rows, each with its own parameters and not
    # the whole body, so the bad rows together stay within a small multiple of the request
    for n in (100, 2000):
        body = json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                           "data": [{"e": "pv", "p": "web", "tv": "js", "res": "x" * 20}] * n})
        out = enricher.enrich(raw("/com.snowplowanalytics.snowplow/tp2", body=body, content_type="application/json"))
        assert len(out.bad) == n and not out.good
        total = sum(len(row) for row in out.bad)
        # each row holds its event as far as it got (131 fields) and its own parameters: linear
        assert total < 3 * len(body) + 5000 * n, (n, total, len(body))
        row = validate_bad_row(out.bad[0])
        assert row["data"]["payload"]["raw"]["parameters"] == [
            {"name": "e", "value": "pv"}, {"name": "p", "value": "web"}, {"name": "tv", "value": "js"},
            {"name": "res", "value": "x" * 20}]


def test_a_bad_row_over_the_maximum_becomes_a_size_violation():
    from processor import badrows

    row = badrows.bad_row(badrows.TRACKER_PROTOCOL_VIOLATIONS, "snowmelt-enrich", {"messages": []},
                          {"body": "x" * (badrows.MAX_BAD_ROW_BYTES + 10)})
    doc = json.loads(row)
    assert len(row) < badrows.MAX_BAD_ROW_BYTES // 5
    assert doc["schema"] == badrows.SIZE_VIOLATION
    assert doc["data"]["failure"]["actualSizeBytes"] > badrows.MAX_BAD_ROW_BYTES


# -- the query string as 3.9.0's loader reads it (URLEncodedUtils.parse(URI.create("http://localhost/?" + q)))

EID = "0c9e1f6a-2b3c-4d5e-8f90-123456789abc"


def good_event(enricher, qs, path="/i"):
    out = enricher.enrich(raw(path, qs))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    [line] = out.good
    return parse_tsv(line)


def test_semicolons_separate_parameters_as_in_snowplow(enricher):
    e = good_event(enricher, f"e=pv;eid={EID};tna=x&p=web;tv=js-3")
    assert (e["event"], e["event_id"], e["name_tracker"], e["platform"]) == ("page_view", EID, "x", "web")


def test_escaped_bytes_that_are_not_utf8_are_replaced(enricher):
    assert good_event(enricher, "e=pv&p=web&tv=t&uid=m%FCller")["user_id"] == "m\ufffdller"


def test_raw_non_ascii_is_read_a_byte_a_character(enricher):
    # each character is the low 8 bits of its UTF-16 code units, read as UTF-8
    e = good_event(enricher, "e=pv&p=web&tv=t&uid=caf\u00e9&tna=\u00c3\u00a9&aid=\u0142")
    assert (e["user_id"], e["name_tracker"], e["app_id"]) == ("caf\ufffd", "\u00e9", "B")


def test_the_query_ends_at_a_hash(enricher):
    e = good_event(enricher, "e=pv&p=web&tv=t&tna=a#b&uid=x")
    assert e["name_tracker"] == "a" and e.get("user_id") is None


def test_pieces_without_a_name_are_left_out(enricher):
    assert good_event(enricher, "=x&e=pv;=&p=web&&tv=t&=")["event"] == "page_view"


def test_a_parameter_without_a_value_is_none(enricher):
    # 3.9.0 maps only the parameters that have a value: `&ip` leaves the request's address, `ip=` clears it
    e = good_event(enricher, "e=pv&p=web&tv=t&ip&uid&cv")
    assert e["user_ipaddress"] == "203.0.113.9" and e.get("user_id") is None
    assert e["v_collector"] == "snowmelt-0.1.0-kafka"
    assert good_event(enricher, "e=pv&p=web&tv=t&ip=").get("user_ipaddress") is None
    # and a bad row lists it with a null value
    out = enricher.enrich(raw("/i", "e=pv&p=web&tv=t&tid=abc&uid"))
    [row] = [json.loads(b) for b in out.bad]
    assert {"name": "uid", "value": None} in row["data"]["payload"]["raw"]["parameters"]


def cpfv_messages(enricher, record):
    out = enricher.enrich(record)
    assert out.good == []
    rows = [validate_bad_row(b) for b in out.bad]
    assert all("/collector_payload_format_violation/" in row["schema"] for row in rows)
    return [row["data"]["failure"]["message"] for row in rows]


PREFIX = "could not extract name-value pairs from querystring with encoding UTF-8: "


@pytest.mark.parametrize("qs, expectation", [
    ("e=pv&tna=a|b", "Illegal character in query at index 28: http://localhost/?e=pv&tna=a|b"),
    ("e=pv&tna=a b", "Illegal character in query at index 28: http://localhost/?e=pv&tna=a b"),
    ('e=pv&tna="x"', 'Illegal character in query at index 27: http://localhost/?e=pv&tna="x"'),
    ("e=pv&tna=a\tb", "Illegal character in query at index 28: http://localhost/?e=pv&tna=a    b"),  # stripInstanceEtc
    # (each expected message as java.net.URI of JDK 17 writes it, run on the same query)
    ("e=pv&url=%zz", "Malformed escape pair at index 27: http://localhost/?e=pv&url=%zz"),
    ("e=pv&url=%E", "Malformed escape pair at index 27: http://localhost/?e=pv&url=%E"),
    ("e=pv#a#b", "Illegal character in fragment at index 24: http://localhost/?e=pv#a#b"),
    ("\U0001F600=1&a=b c", "Illegal character in query at index 26: http://localhost/?\U0001F600=1&a=b c"),
])
def test_a_query_java_net_uri_refuses_is_a_collector_payload_format_violation(enricher, qs, expectation):
    assert cpfv_messages(enricher, raw("/i", qs)) == [
        {"payloadField": "querystring", "value": qs, "expectation": PREFIX + expectation}]


def test_a_bad_query_and_a_bad_path_are_two_rows_query_first(enricher):
    # ThriftLoader: (querystring, api, networkUserId).mapN, a CPFormatViolation row per message
    assert cpfv_messages(enricher, raw("/a/b/c", "a=%zz")) == [
        {"payloadField": "querystring", "value": "a=%zz",
         "expectation": PREFIX + "Malformed escape pair at index 20: http://localhost/?a=%zz"},
        {"payloadField": "path", "value": "/a/b/c",
         "expectation": "path does not match (/)vendor/version(/) nor is a legacy /i(ce.png) request"}]


def test_a_long_refused_query_is_cut_in_the_expectation_only(enricher):
    qs = "e=pv&tna=" + "x" * 500 + " "
    [message] = cpfv_messages(enricher, raw("/i", qs))
    assert message["value"] == qs and len(message["expectation"]) == 256


def _partial_by_every_field(enricher: Enricher, event) -> dict:
    """A bad row's partial event as made by reading each of the 131 fields in turn: the reference
    ``Enricher._partial`` must equal, which reads only the fields the event set."""
    from processor.enriched import FIELDS, field_values, tsv_row
    from processor.stage import _tsv_text

    out = dict.fromkeys(FIELDS)
    values = field_values(event)
    others = tsv_row(tuple(None if type(value) is str else value for value in values)).split("\t")
    for (name, read), value, other in zip(enricher._partial_readers, values, others):
        text = _tsv_text(value) if type(value) is str else other
        if text or type(value) is str:  # a text field set empty is "", an unset one null
            try:
                out[name] = text if read is None else read(text)
            except ValueError:
                out[name] = text
    return out


def test_a_bad_rows_partial_event_holds_every_field_the_event_set_as_its_row_writes_it(monkeypatch, tmp_path):
    from bench.bench_enrich import write_registry
    from bench.oracle_bench import bench_records, fuzz_records, hostile_records

    compared, differing = [], []
    partial = Enricher._partial

    def checked(self, event):
        made = partial(self, event)
        expected = _partial_by_every_field(self, event)
        compared.append(made)
        if list(made.items()) != list(expected.items()):  # the values, and the fields' order
            differing.append({k: (made[k], expected[k]) for k in made if made[k] != expected[k]})
        return made

    monkeypatch.setattr(Enricher, "_partial", checked)
    write_registry(tmp_path)
    enricher = Enricher(Resolver([EmbeddedRepository("bench", str(tmp_path))], include_builtin=True))
    for record in hostile_records() + fuzz_records(3, 600) + bench_records(1000)[-20:]:
        enricher.enrich(record)
    assert len(compared) > 1000 and not differing, differing[:3]
    kinds = {type(value).__name__ for made in compared for value in made.values()}
    assert {"NoneType", "str", "int"} <= kinds <= {"NoneType", "str", "int", "float"}, kinds  # unset, text, numbers
