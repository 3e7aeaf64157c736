"""Tracker-protocol parameters as Snowplow's enrich 3.9.0 maps them to atomic fields, through the whole stage.

The expected values are facts of Snowplow enrich 3.9.0 (Apache-2.0), read from
its sources and test suites: ``Transform.scala`` (which parameter fills which
field and how it is converted), ``ConversionUtils.scala`` (``makeTsvSafe``,
``stringToJInteger``, ``stringToJBigDecimal``, ``validateUuid``),
``MiscEnrichments.scala`` (``extractIp``, the contexts envelope),
``EventEnrichments.extractEventType``, ``EnrichmentManager.scala`` (the order of the
steps, ``getCollectorVersionSet``) and ``AtomicFieldsLengthValidator.scala``; the
edge cases are the outcomes Snowplow's enrich-kafka 3.9.0 gave on the edge corpus of
``bench/oracle_bench.py`` (``bench/results/oracle.md``).  No service is needed: each
case is one raw record through :class:`processor.stage.Enricher`, read back from the
TSV or the bad row.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from processor.stage import Enricher
from tests.unit.test_stage import raw

EID = "5a1e2c3d-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def enricher():
    return Enricher()


def enrich(enricher, **params) -> dict:
    out = enricher.enrich(raw("/i", urlencode({"e": "pv", "p": "web", "tv": "js-3.0.0", "eid": EID, **params})))
    assert out.bad == [], [json.loads(b) for b in out.bad]
    [line] = out.good
    return dict(zip(FIELD_INDEX, line.split("\t")))


def edge_request(**params) -> dict:
    """An edge-corpus page view (``bench.oracle_bench.edge_queries``) with ``params`` over it."""
    base = {"e": "pv", "eid": EID, "tv": "js-4.1.0", "p": "web", "aid": "edge", "dtm": "1764288000000",
            "url": "https://shop.acme.com/edge", "page": "Edge", "tna": "edge"}
    return {k: v for k, v in {**base, **params}.items() if v is not None}


def bad_row(enricher, **params) -> dict:
    out = enricher.enrich(raw("/i", urlencode(edge_request(**params))))
    assert out.good == []
    [row] = out.bad
    return json.loads(row)


def messages(row: dict) -> list[dict]:
    return [m["message"] for m in row["data"]["failure"]["messages"]]


def test_legacy_structured_event_parameters_fill_the_se_fields(enricher):
    # e=ev and ev_ca/ev_ac/ev_la/ev_pr/ev_va: "LEGACY tracker var. Leave for backwards compat"
    row = enrich(enricher, e="ev", ev_ca="shop", ev_ac="add", ev_la="sku-1", ev_pr="red", ev_va="2.50")
    assert (row["event"], row["se_category"], row["se_action"], row["se_label"], row["se_property"],
            row["se_value"]) == ("struct", "shop", "add", "sku-1", "red", "2.50")


def test_cv_sets_v_collector(enricher):
    assert enrich(enricher, cv="clj-1.1.0-tom-0.2.0")["v_collector"] == "clj-1.1.0-tom-0.2.0"


@pytest.mark.parametrize("sent, written", [
    ("42", "42"),              # BigDecimal("42").toString
    ("42.0", "42.0"),          # the scale is kept
    ("0.000001", "0.000001"),
    ("0.0000001", "1E-7"),     # Java's toString goes scientific below 10^-6
    ("1E+3", "1000"),          # a negative scale is set to 0: no exponent
    ("-0.00", "0.00"),         # BigDecimal has no negative zero
    ("null", ""),              # the JavaScript tracker's literal null: no value, a good event
])
def test_se_value_is_a_big_decimal_written_as_java_writes_it(enricher, sent, written):
    assert enrich(enricher, e="se", se_ca="c", se_ac="a", se_va=sent)["se_value"] == written


def test_the_literal_null_of_an_integer_parameter_is_no_value(enricher):
    row = enrich(enricher, vid="null", tid="NULL")
    assert (row["domain_sessionidx"], row["txn_id"]) == ("", "")


@pytest.mark.parametrize("sent, written", [
    ("198.51.100.1, 203.0.113.9", "198.51.100.1"),
    ("198.51.100.1|203.0.113.9", "198.51.100.1"),
    ("198.51.100.1 203.0.113.9", "198.51.100.1"),
])
def test_ip_keeps_the_first_of_a_list(enricher, sent, written):
    assert enrich(enricher, ip=sent)["user_ipaddress"] == written


def test_sid_is_a_uuid_written_in_lower_case(enricher):
    row = enrich(enricher, sid="5A1E2C3D-0000-4000-8000-0000000000AB")
    assert row["domain_sessionid"] == "5a1e2c3d-0000-4000-8000-0000000000ab"


def test_string_fields_are_made_tsv_safe_as_snowplow_does(enricher):
    # makeTsvSafe: a tab is four spaces, other control characters are removed, nothing left is null
    row = enrich(enricher, page="Tab\there\r\n", aid="\x01\x02", tna="a\x7fb")
    assert (row["page_title"], row["app_id"], row["name_tracker"]) == ("Tab    here", "", "ab")


def test_contexts_are_written_in_the_1_0_1_envelope_whatever_the_tracker_sent(enricher):
    contexts = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                "data": [{"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
                          "data": {"id": "0b3b2b5c-1a1c-4d0e-9f2a-1234567890ab"}}]}
    row = enrich(enricher, co=json.dumps(contexts))
    written = json.loads(row["contexts"])
    assert written["schema"] == "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
    assert written["data"] == contexts["data"]
    assert parse_tsv("\t".join(row.values()))["contexts_com_snowplowanalytics_snowplow_web_page_1"]


def test_a_schema_violation_shows_the_event_before_its_derived_fields(enricher):
    # Snowplow's enrich validates the self-describing JSON before deriving the page URL's parts, the
    # derived timestamp and the event's schema fields; its RawEvent's loaderName is the collector's name;
    # iglu-scala-client names its embedded registry "Iglu Client Embedded"
    ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
          "data": {"schema": "iglu:com.acme/missing/jsonschema/1-0-0", "data": {}}}
    out = enricher.enrich(raw("/i", urlencode({"e": "ue", "p": "web", "tv": "js-3.0.0", "eid": EID,
                                               "url": "https://shop.acme.com/p?x=1", "dtm": "1764287999000",
                                               "ue_pr": json.dumps(ue)})))
    [row] = [json.loads(b) for b in out.bad]
    assert row["schema"] == "iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-1"
    enriched = row["data"]["payload"]["enriched"]
    assert enriched["page_url"] == "https://shop.acme.com/p?x=1" and enriched["event_id"] == EID
    assert all(enriched[name] is None for name in (
        "page_urlscheme", "page_urlhost", "page_urlpath", "page_urlquery", "derived_tstamp",
        "event_vendor", "event_name", "event_format", "event_version"))
    assert row["data"]["payload"]["raw"]["loaderName"] == "snowmelt-0.1.0-kafka"
    [message] = row["data"]["failure"]["messages"]
    history = message["error"]["lookupHistory"]
    assert history[0]["repository"] == "Iglu Client Embedded"


# ---------------------------------------------------------------- the edge corpus, as Snowplow 3.9.0 enriched it


def test_an_empty_eid_is_not_a_uuid(enricher):
    row = bad_row(enricher, eid="")
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    assert messages(row) == [{"field": "eid", "value": "", "expectation": "not a valid UUID"}]


def test_an_empty_cv_leaves_v_collector_unset_which_fails(enricher):
    row = bad_row(enricher, cv="")
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    assert messages(row) == [{"field": "v_collector", "value": None, "expectation": "should be set"}]


def test_empty_string_parameters_clear_what_the_request_set(enricher):
    # makeTsvSafe("") is null and Transform sets it: no IP, user agent or network_userid from the request
    row = enrich(enricher, ip="", ua="", tnuid="")
    assert (row["user_ipaddress"], row["useragent"], row["network_userid"]) == ("", "", "")


@pytest.mark.parametrize("name, expectation", [
    ("e", "not recognized as an event type"),
    ("p", "not recognized as a tracking platform"),
    ("sid", "not a valid UUID"),
    ("tid", "cannot be converted to java.lang.Integer"),
    ("vid", "cannot be converted to java.lang.Integer"),
    ("ti_qu", "cannot be converted to java.lang.Integer"),
    ("pp_mix", "cannot be converted to java.lang.Integer"),
    ("dtm", "not in the expected format: ms since epoch"),
    ("stm", "not in the expected format: ms since epoch"),
    ("ttm", "not in the expected format: ms since epoch"),
    ("cookie", "cannot be converted to Boolean-like java.lang.Byte"),
    ("f_pdf", "cannot be converted to Boolean-like java.lang.Byte"),
    ("res", "does not conform to regex (\\d+)x(\\d+)"),
    ("vp", "does not conform to regex (\\d+)x(\\d+)"),
    ("se_va", "cannot be converted to java.math.BigDecimal. Error : null"),
    ("tr_tt", "cannot be converted to java.math.BigDecimal. Error : null"),
    ("co", "invalid json: exhausted input"),
    ("cx", "invalid json: exhausted input"),
    ("ue_pr", "invalid json: exhausted input"),
])
def test_an_empty_value_of_a_converted_parameter_is_refused(enricher, name, expectation):
    assert messages(bad_row(enricher, **{name: ""})) == [{"field": name, "value": "", "expectation": expectation}]


def test_a_timestamp_before_1970_is_accepted(enricher):
    row = enrich(enricher, stm="-1")
    assert row["dvce_sent_tstamp"] == "1969-12-31 23:59:59.999"


def test_an_atomic_field_too_long_is_an_enrichment_failure_naming_it(enricher):
    row = bad_row(enricher, duid="x" * 300)
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    assert row["data"]["failure"]["messages"] == [
        {"enrichment": None, "message": {"error": "Enriched event does not conform to atomic schema field's "
                                                  "length restrictions"}},
        {"enrichment": None, "message": {"error": "Field domain_userid longer than maximum allowed size 128"}}]


def test_atomic_lengths_are_counted_in_utf16_units_and_reported_in_snowplows_order(enricher):
    # Java's String.length: U+1F600 counts 2; the validator lists app_id, ..., user_id, ..., domain_sessionid
    row = bad_row(enricher, uid="\U0001f600" * 128, aid="a" * 256, tr_cu="EURO")
    assert [m["error"] for m in messages(row)][1:] == [
        "Field app_id longer than maximum allowed size 255", "Field user_id longer than maximum allowed size 255",
        "Field tr_currency longer than maximum allowed size 3"]


@pytest.mark.parametrize("params, field, sent", [
    ({"co": '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[]}'}, "contexts",
     '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[]}'),
    ({"ue_pr": "{}"}, "unstruct_event", "{}"),
])
def test_a_schema_violation_shows_the_json_as_the_tracker_sent_it(enricher, params, field, sent):
    row = bad_row(enricher, **params)
    assert row["schema"].endswith("/schema_violations/jsonschema/2-0-1")
    assert row["data"]["payload"]["enriched"][field] == sent


@pytest.mark.parametrize("params, expected", [
    ({"tid": "abc"}, [("tid", "abc", "cannot be converted to java.lang.Integer")]),
    ({"res": "1920x"}, [("res", "1920x", "does not conform to regex (\\d+)x(\\d+)")]),
    ({"ds": "10x10x10"}, [("ds", "10x10x10", "does not conform to regex (\\d+)x(\\d+)")]),
    ({"e": "zz"}, [("e", "zz", "not recognized as an event type")]),
    ({"e": "se", "se_ca": "cat", "se_ac": "act", "se_va": "abc"},
     [("se_va", "abc", 'cannot be converted to java.math.BigDecimal. Error : Character a is neither a decimal '
                       'digit number, decimal point, nor "e" notation exponential mark.')]),
    ({"p": "zz"}, [("p", "zz", "not recognized as a tracking platform")]),
    ({"dtm": "abc"}, [("dtm", "abc", "not in the expected format: ms since epoch")]),
    ({"cookie": "yes"}, [("cookie", "yes", "cannot be converted to Boolean-like java.lang.Byte")]),
    ({"vid": "99999999999"}, [("vid", "99999999999", "cannot be converted to java.lang.Integer")]),
    ({"cx": "!!!"}, [("cx", "!!!", "invalid json: exhausted input")]),
    ({"co": "{not json"}, [("co", "{not json", "invalid json: expected \" got 'not js...' (line 1, column 2)")]),
    ({"e": "pp", "pp_mix": "1.5", "pp_max": "x", "pp_miy": "-3", "pp_may": "99999999999"},
     [("pp_may", "99999999999", "cannot be converted to java.lang.Integer"),
      ("pp_mix", "1.5", "cannot be converted to java.lang.Integer"),
      ("pp_max", "x", "cannot be converted to java.lang.Integer")]),
])
def test_input_data_messages_are_worded_and_ordered_as_snowplows(enricher, params, expected):
    assert [(m["field"], m["value"], m["expectation"]) for m in messages(bad_row(enricher, **params))] == expected


def test_bad_rows_list_the_raw_parameters_in_scala_map_order(enricher):
    row = bad_row(enricher, tid="abc", tna="edge-0")
    assert [p["name"] for p in row["data"]["payload"]["raw"]["parameters"]] == [
        "e", "eid", "url", "aid", "tna", "page", "tv", "p", "dtm", "tid"]


@pytest.mark.parametrize("url, parts", [
    # java.net.URI, then ConversionUtils.explodeUri: a relative reference has a path and port 80
    ("not a url", ("not%20a%20url", "", "", "80", "not%20a%20url", "")),
    # the port is any int java.net.URI reads
    ("https://shop.acme.com:99999/", ("https://shop.acme.com:99999/", "https", "shop.acme.com", "99999", "/", "")),
    # refused by java.net.URI (a bad escape), read by scala-uri ignoring it and written back re-encoded
    ("https://[::1]/x?a=%zz", ("https://[::1]/x?a=%25zz", "https", "[::1]", "443", "/x", "a=%25zz")),
])
def test_page_url_parts_are_java_uri_parts(enricher, url, parts):
    row = enrich(enricher, url=url)
    assert (row["page_url"], row["page_urlscheme"], row["page_urlhost"], row["page_urlport"], row["page_urlpath"],
            row["page_urlquery"]) == parts


def test_an_android_app_referrer_has_port_80(enricher):
    row = enrich(enricher, refr="android-app://com.google.android.gm")
    assert (row["refr_urlscheme"], row["refr_urlhost"], row["refr_urlport"], row["refr_urlpath"]) == (
        "android-app", "com.google.android.gm", "80", "")


def test_a_failing_enrichment_step_shows_the_event_before_anon_ip_and_derived_contexts():
    # EnrichmentManager: runEnrichments fails (getCollectorVersionSet, cv=) before the derived contexts are
    # attached and before anonIp runs; Snowplow 3.9.0 with the std enrichments wrote the collector's IP
    # and no derived_contexts in that row (bench/results/oracle.md, edge request 29)
    from processor.enrichments import parse_enrichment
    from processor.iglu import Resolver

    resolver = Resolver.default()
    docs = [{"schema": "iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1",
             "data": {"name": "anon_ip", "vendor": "com.snowplowanalytics.snowplow", "enabled": True,
                      "parameters": {"anonOctets": 1}}},
            {"schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_config/jsonschema/1-0-0",
             "data": {"name": "ua_parser_config", "vendor": "com.snowplowanalytics.snowplow", "enabled": True,
                      "parameters": {}}}]
    enricher = Enricher(resolver, enrichments=[parse_enrichment(doc, resolver) for doc in docs])
    out = enricher.enrich(raw("/i", urlencode(edge_request(cv=""))))
    [row] = [json.loads(b) for b in out.bad]
    assert messages(row) == [{"field": "v_collector", "value": None, "expectation": "should be set"}]
    enriched = row["data"]["payload"]["enriched"]
    assert enriched["derived_contexts"] is None and not enriched["user_ipaddress"].endswith(".x")
    good = enricher.enrich(raw("/i", urlencode(edge_request())))
    assert good.bad == [] and dict(zip(FIELD_INDEX, good.good[0].split("\t")))["user_ipaddress"].endswith(".x")


# ---------------------------------------------------------------- the event type: no e, e=zz, e=, e=ad
# Transform maps ``e`` with EventEnrichments.extractEventType: an unknown or empty code fails there, in
# setupEnrichedEvent, before any enrichment.  No ``e`` at all is no failure there: the event type stays null,
# every step of runEnrichments runs, and SchemaEnrichment.extractSchema (the extractSchemaFields step, after
# YAUAA and before the IP lookups and the scripts) fails on it -- an InputData message without enrichment,
# its expectation a Scala multi-line literal, line break and indentation included.  Its failure is prepended
# to those of the steps before it, as every step's; ``ad_impression`` (``e=ad``) has no schema there either.
# SchemaEnrichmentSpec (3.9.0): "unknown event" and "missing event" must fail.

def no_schema_for(event_type: str) -> str:
    return (f"trying to extract the schema of the enriched event but event type [{event_type}] doesn't match\n"
            "          any of page_view, page_ping, struct, transaction, transaction_item and unstruct\n"
            "          ")


GEO_IP = "81.2.69.160"  # GeoLite2-City (2018): GB, Willesden


@pytest.fixture(scope="module")
def configured():
    """The stage with ip_lookups, event_fingerprint, ua_parser and a script that fails on app_id "js-fails"."""
    import base64
    from pathlib import Path

    from _maxminddb_geolite2 import geolite2_database
    from processor.enrichments import parse_enrichment
    from processor.iglu import Resolver

    resolver = Resolver.default()
    vendor = "com.snowplowanalytics.snowplow"

    def doc(name, version, parameters):
        return {"schema": f"iglu:{vendor}/{name}/jsonschema/{version}",
                "data": {"name": name, "vendor": vendor, "enabled": True, "parameters": parameters}}

    script = 'function process(event) { if (event.getApp_id() === "js-fails") { throw new Error("no"); } return []; }'
    docs = [doc("ip_lookups", "2-0-0", {"geo": {"database": "GeoLite2-City.mmdb",
                                                "uri": str(Path(geolite2_database()).parent)}}),
            doc("event_fingerprint_config", "1-0-1", {"hashAlgorithm": "MD5", "excludeParameters": ["eid"]}),
            doc("ua_parser_config", "1-0-0", {}),
            doc("javascript_script_config", "1-0-0", {"script": base64.b64encode(script.encode()).decode()})]
    return Enricher(resolver, enrichments=[parse_enrichment(d, resolver) for d in docs])


def configured_row(enricher, query: str) -> dict:
    from tests.unit.test_stage import validate_bad_row

    out = enricher.enrich(raw("/i", query, ip_address=GEO_IP))
    assert out.good == []
    [row] = [validate_bad_row(b) for b in out.bad]
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    return row


def test_an_event_without_e_fails_when_its_schema_is_extracted_after_the_enrichments(configured):
    row = configured_row(configured, "tv=js-3&p=web&tna=no-e&url=https%3A%2F%2Fshop.acme.com%2Fp%3Fa%3D1")
    assert row["data"]["failure"]["messages"] == [
        {"enrichment": None, "message": {"field": "event", "value": None, "expectation": no_schema_for("null")}}]
    enriched = row["data"]["payload"]["enriched"]
    # the enrichments and derived fields before and after that step are in the partial event
    assert (enriched["geo_country"], enriched["geo_city"], enriched["geo_timezone"]) == (
        "GB", "Willesden", "Europe/London")
    assert enriched["event_fingerprint"] and enriched["derived_tstamp"] and enriched["collector_tstamp"]
    assert (enriched["page_urlhost"], enriched["page_urlquery"]) == ("shop.acme.com", "a=1")
    assert (enriched["event"], enriched["event_vendor"], enriched["event_name"]) == (None, None, None)
    assert enriched["name_tracker"] == "no-e"
    # getJsScript wrote the entities of the steps before it (ua_parser's) into the event for the script
    assert [c["schema"] for c in json.loads(enriched["derived_contexts"])["data"]] == [
        "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0"]


@pytest.mark.parametrize("e", ["zz", ""])
def test_an_unknown_or_empty_e_fails_before_the_enrichments(configured, e):
    row = configured_row(configured, f"e={e}&tv=js-3&p=web&tna=bad-e")
    assert messages(row) == [{"field": "e", "value": e, "expectation": "not recognized as an event type"}]
    enriched = row["data"]["payload"]["enriched"]
    assert enriched["geo_country"] is None and enriched["event_fingerprint"] is None
    assert enriched["derived_tstamp"] is None and enriched["name_tracker"] == "bad-e"


def test_without_e_an_invalid_parameter_fails_alone_before_the_enrichments(configured):
    row = configured_row(configured, "tv=js-3&p=web&tna=no-e&tid=abc")
    assert messages(row) == [
        {"field": "tid", "value": "abc", "expectation": "cannot be converted to java.lang.Integer"}]
    assert row["data"]["payload"]["enriched"]["geo_country"] is None


def test_without_e_the_failures_of_the_steps_come_last_step_first(configured):
    # getCollectorVersionSet (the first step) fails on cv=, extractSchemaFields on the event type, the script
    # (after it) throws: each step's failures are prepended to the list
    row = configured_row(configured, "tv=js-3&p=web&cv=&aid=js-fails")
    failures = row["data"]["failure"]["messages"]
    assert [m["enrichment"] and m["enrichment"]["identifier"] for m in failures] == [
        "javascript_script_config", None, None]
    assert [m["message"] for m in failures[1:]] == [
        {"field": "event", "value": None, "expectation": no_schema_for("null")},
        {"field": "v_collector", "value": None, "expectation": "should be set"}]
    assert row["data"]["payload"]["enriched"]["geo_country"] == "GB"


def test_an_ad_impression_has_no_schema_to_extract(configured):
    row = configured_row(configured, "e=ad&tv=js-3&p=web")
    assert messages(row) == [
        {"field": "event", "value": "ad_impression", "expectation": no_schema_for("ad_impression")}]
    enriched = row["data"]["payload"]["enriched"]
    assert enriched["event"] == "ad_impression" and enriched["event_vendor"] is None
    assert enriched["geo_country"] == "GB" and enriched["event_fingerprint"]
