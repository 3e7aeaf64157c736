"""The enriched TSV writer: field list, per-kind formatting, one-line rows, round trip."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from processor.analytics import parse_tsv
from processor.enriched import (
    CONTEXTS_SCHEMA,
    FIELD_INDEX,
    FIELD_KINDS,
    FIELD_MAX_LENGTHS,
    FIELDS,
    UNSTRUCT_EVENT_SCHEMA,
    EnrichedEvent,
    format_timestamp,
    oversized_fields,
    to_tsv,
)


def cols(event):
    row = to_tsv(event)
    assert "\n" not in row and "\r" not in row
    values = row.split("\t")
    assert len(values) == 131
    return values


def col(event, name):
    return cols(event)[FIELD_INDEX[name]]


# --- the field list -------------------------------------------------------------------


def test_field_count_and_uniqueness():
    assert len(FIELDS) == 131
    assert len(set(FIELDS)) == 131
    assert set(FIELD_KINDS) == set(FIELDS)


@pytest.mark.parametrize(
    "index,name",
    [
        (0, "app_id"), (1, "platform"), (2, "etl_tstamp"), (3, "collector_tstamp"),
        (4, "dvce_created_tstamp"), (5, "event"), (6, "event_id"), (7, "txn_id"),
        (13, "user_ipaddress"), (16, "domain_sessionidx"), (17, "network_userid"),
        (22, "geo_latitude"), (23, "geo_longitude"), (29, "page_url"), (52, "contexts"),
        (57, "se_value"), (58, "unstruct_event"), (61, "tr_total"), (77, "useragent"),
        (84, "br_features_pdf"), (93, "br_cookies"), (102, "dvce_ismobile"),
        (108, "tr_currency"), (114, "base_currency"), (118, "etl_tags"),
        (119, "dvce_sent_tstamp"), (121, "refr_dvce_tstamp"), (122, "derived_contexts"),
        (123, "domain_sessionid"), (124, "derived_tstamp"), (125, "event_vendor"),
        (129, "event_fingerprint"), (130, "true_tstamp"),
    ],
)
def test_known_positions(index, name):
    assert FIELDS[index] == name
    assert FIELD_INDEX[name] == index


def test_field_order_matches_snowplow_analytics_sdk():
    sdk = pytest.importorskip("snowplow_analytics_sdk.event_transformer")
    names = [name for name, _ in sdk.ENRICHED_EVENT_FIELD_TYPES]
    # the old Python SDK names column 121 refr_device_tstamp; Snowplow's canonical name is refr_dvce_tstamp
    names[121] = "refr_dvce_tstamp" if names[121] == "refr_device_tstamp" else names[121]
    assert tuple(names) == FIELDS


def test_kinds():
    assert [f for f in FIELDS if FIELD_KINDS[f] == "json"] == ["contexts", "unstruct_event", "derived_contexts"]
    assert [f for f in FIELDS if FIELD_KINDS[f] == "timestamp"] == [
        "etl_tstamp", "collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp",
        "refr_dvce_tstamp", "derived_tstamp", "true_tstamp",
    ]
    bools = [f for f in FIELDS if FIELD_KINDS[f] == "bool"]
    assert len(bools) == 11 and "br_cookies" in bools and "dvce_ismobile" in bools
    assert FIELD_KINDS["br_colordepth"] == "string"
    assert FIELD_KINDS["tr_total"] == "decimal"
    assert FIELD_KINDS["geo_latitude"] == "float"


def test_max_lengths():
    assert FIELD_MAX_LENGTHS["event_id"] == 36
    assert FIELD_MAX_LENGTHS["app_id"] == 255
    assert FIELD_MAX_LENGTHS["page_url"] == 4096
    assert FIELD_MAX_LENGTHS["geo_country"] == 2
    assert FIELD_MAX_LENGTHS["tr_currency"] == 3
    assert all(FIELD_KINDS[f] == "string" for f in FIELD_MAX_LENGTHS)
    assert len(FIELD_MAX_LENGTHS) == sum(1 for k in FIELD_KINDS.values() if k == "string")
    e = EnrichedEvent(event_id="x" * 37, app_id="y" * 255, geo_country="USA")
    assert oversized_fields(e) == [("event_id", 37, 36), ("geo_country", 3, 2)]


# --- the event class -----------------------------------------------------------------


def test_event_defaults_and_slots():
    e = EnrichedEvent()
    assert all(getattr(e, f) is None for f in FIELDS)
    with pytest.raises(AttributeError):
        e.not_a_field = 1
    with pytest.raises(TypeError):
        EnrichedEvent(not_a_field=1)
    assert EnrichedEvent(app_id="a") == EnrichedEvent(app_id="a")
    assert EnrichedEvent(app_id="a") != EnrichedEvent(app_id="b")
    assert EnrichedEvent(app_id="a").as_dict() == {"app_id": "a"}


def test_empty_event_is_130_tabs():
    assert to_tsv(EnrichedEvent()) == "\t" * 130


# --- formatting per kind ---------------------------------------------------------------


def test_strings_and_unicode():
    e = EnrichedEvent(app_id="shop", page_title="Café – ☃ 日本")
    assert col(e, "app_id") == "shop"
    assert col(e, "page_title") == "Café – ☃ 日本"


@pytest.mark.parametrize("raw", ["a\tb", "a\nb", "a\rb", "a\r\nb"])
def test_tabs_and_newlines_become_spaces(raw):
    e = EnrichedEvent(page_title=raw, useragent=raw, se_label=raw)
    values = cols(e)
    expected = raw.replace("\r\n", "  ").replace("\t", " ").replace("\n", " ").replace("\r", " ")
    for name in ("page_title", "useragent", "se_label"):
        assert values[FIELD_INDEX[name]] == expected


def test_ints():
    e = EnrichedEvent(txn_id=123456, domain_sessionidx=3, page_urlport=443, pp_yoffset_max=-5, doc_width=0)
    v = cols(e)
    assert v[FIELD_INDEX["txn_id"]] == "123456"
    assert v[FIELD_INDEX["domain_sessionidx"]] == "3"
    assert v[FIELD_INDEX["page_urlport"]] == "443"
    assert v[FIELD_INDEX["pp_yoffset_max"]] == "-5"
    assert v[FIELD_INDEX["doc_width"]] == "0"
    with pytest.raises(TypeError):
        to_tsv(EnrichedEvent(txn_id=1.5))


def test_bools():
    e = EnrichedEvent(br_cookies=True, dvce_ismobile=False, br_features_pdf=1, br_features_java=0)
    v = cols(e)
    assert v[FIELD_INDEX["br_cookies"]] == "1"
    assert v[FIELD_INDEX["dvce_ismobile"]] == "0"
    assert v[FIELD_INDEX["br_features_pdf"]] == "1"
    assert v[FIELD_INDEX["br_features_java"]] == "0"
    with pytest.raises(TypeError):
        to_tsv(EnrichedEvent(br_cookies=2))


def test_floats_and_decimals():
    e = EnrichedEvent(
        geo_latitude=37.386, geo_longitude=-122, se_value=2.5,
        tr_total=Decimal("12.50"), tr_tax=Decimal("0.000001"), tr_shipping=3, ti_price=9.99,
        tr_total_base=Decimal("1E+2"),
    )
    v = cols(e)
    assert v[FIELD_INDEX["geo_latitude"]] == "37.386"
    assert v[FIELD_INDEX["geo_longitude"]] == "-122.0"
    assert v[FIELD_INDEX["se_value"]] == "2.5"
    assert v[FIELD_INDEX["tr_total"]] == "12.50"
    assert v[FIELD_INDEX["tr_tax"]] == "0.000001"  # plain notation, never 1E-6
    assert v[FIELD_INDEX["tr_shipping"]] == "3"
    assert v[FIELD_INDEX["ti_price"]] == "9.99"
    assert v[FIELD_INDEX["tr_total_base"]] == "100"


def test_timestamps():
    ms = 1795823923123  # 2026-11-27 23:58:43.123 UTC
    naive = datetime(2026, 11, 27, 23, 58, 43, 123999)
    aware = datetime(2026, 11, 28, 0, 58, 43, 123000, tzinfo=timezone(timedelta(hours=1)))
    e = EnrichedEvent(collector_tstamp=ms, etl_tstamp=naive, derived_tstamp=aware, true_tstamp=0)
    v = cols(e)
    assert v[FIELD_INDEX["collector_tstamp"]] == "2026-11-27 23:58:43.123"
    assert v[FIELD_INDEX["etl_tstamp"]] == "2026-11-27 23:58:43.123"  # truncated to ms
    assert v[FIELD_INDEX["derived_tstamp"]] == "2026-11-27 23:58:43.123"
    assert v[FIELD_INDEX["true_tstamp"]] == "1970-01-01 00:00:00.000"
    assert format_timestamp(datetime(2001, 2, 3, 4, 5, 6)) == "2001-02-03 04:05:06.000"
    with pytest.raises(TypeError):
        format_timestamp(1.5)


@pytest.mark.parametrize("ms, text", [
    (-62135596800000, "0001-01-01 00:00:00.000"),
    (-62135596800001, "0000-12-31 23:59:59.999"),  # year 0, which Snowplow's enrich writes and accepts
    (-62167219200000, "0000-01-01 00:00:00.000"),
    (253402300799999, "9999-12-31 23:59:59.999"),
])
def test_timestamps_at_the_ends_of_the_range_a_tracker_may_send(ms, text):
    assert format_timestamp(ms) == text
    assert cols(EnrichedEvent(dvce_created_tstamp=ms))[FIELD_INDEX["dvce_created_tstamp"]] == text


def test_json_fields():
    ctx = [
        {"schema": "iglu:com.acme/a/jsonschema/1-0-0", "data": {"x": 1, "s": "t\tab\nnl"}},
        {"schema": "iglu:com.acme/b/jsonschema/2-0-0", "data": {"é": "☃"}},
    ]
    ue = {"schema": "iglu:com.acme/ev/jsonschema/1-0-0", "data": {"k": [1, 2]}}
    e = EnrichedEvent(contexts=ctx, unstruct_event=ue, derived_contexts=ctx[:1])
    v = cols(e)
    assert v[52] == (
        '{"schema":"' + CONTEXTS_SCHEMA + '","data":['
        '{"schema":"iglu:com.acme/a/jsonschema/1-0-0","data":{"x":1,"s":"t\\tab\\nnl"}},'
        '{"schema":"iglu:com.acme/b/jsonschema/2-0-0","data":{"é":"☃"}}]}'
    )
    assert v[58] == (
        '{"schema":"' + UNSTRUCT_EVENT_SCHEMA + '","data":'
        '{"schema":"iglu:com.acme/ev/jsonschema/1-0-0","data":{"k":[1,2]}}}'
    )
    assert v[122] == (
        '{"schema":"' + CONTEXTS_SCHEMA + '","data":['
        '{"schema":"iglu:com.acme/a/jsonschema/1-0-0","data":{"x":1,"s":"t\\tab\\nnl"}}]}'
    )
    assert col(EnrichedEvent(contexts=[]), "contexts") == ""


def test_preformatted_strings_pass_through():
    e = EnrichedEvent(collector_tstamp="2020-01-01 00:00:00.000", txn_id="42", tr_total="1.50")
    v = cols(e)
    assert v[3] == "2020-01-01 00:00:00.000"
    assert v[7] == "42"
    assert v[FIELD_INDEX["tr_total"]] == "1.50"


# --- round trip ------------------------------------------------------------------------


def rich_event():
    return EnrichedEvent(
        app_id="shop", platform="web", etl_tstamp=1795823923500, collector_tstamp=1795823923123,
        dvce_created_tstamp=1795823922000, event="unstruct", event_id="c6ef3124-b53a-4b13-a233-0088f79dcbcb",
        txn_id=41828, name_tracker="sp", v_tracker="js-3.24.0", v_collector="snowmelt-0.1.0",
        v_etl="snowmelt-0.1.0", user_id="jon.doe@example.com", user_ipaddress="92.231.54.234",
        domain_userid="bc2e92ec6c204a14", domain_sessionidx=3, network_userid="ecdff4d0-9175-40ac-a8bb-325c49733607",
        geo_country="US", geo_region="TX", geo_city="New York", geo_zipcode="94109",
        geo_latitude=37.443604, geo_longitude=-122.4124, geo_region_name="Florida",
        page_url="http://www.example.com/a?b=c#d", page_title="A\ttitle", page_urlscheme="http",
        page_urlhost="www.example.com", page_urlport=80, page_urlpath="/a", page_urlquery="b=c",
        page_urlfragment="d", refr_medium="search", refr_source="Google", refr_term="foo",
        se_category="c", se_value=1.5, tr_total=Decimal("12.50"), ti_quantity=2,
        pp_xoffset_min=0, pp_xoffset_max=100, useragent="Mozilla/5.0", br_cookies=True,
        br_features_pdf=False, br_colordepth="24", br_viewwidth=1024, dvce_ismobile=False,
        dvce_screenwidth=1900, doc_charset="UTF-8", doc_height=6015,
        contexts=[
            {"schema": "iglu:org.schema/WebPage/jsonschema/1-0-0", "data": {"genre": "blog", "keywords": ["a", "b"]}},
            {"schema": "iglu:com.acme/someContext/jsonschema/1-0-0", "data": {"n": 1}},
            {"schema": "iglu:com.acme/someContext/jsonschema/1-1-0", "data": {"n": 2}},
        ],
        unstruct_event={"schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
                        "data": {"targetUrl": "http://x"}},
        derived_contexts=[{"schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0",
                           "data": {"useragentFamily": "IE"}}],
        domain_sessionid="2b15e5c8-d3b1-11e4-b9d6-1681e6b88ec1", derived_tstamp=1795823923123,
        event_vendor="com.snowplowanalytics.snowplow", event_name="link_click", event_format="jsonschema",
        event_version="1-0-1", true_tstamp=datetime(2026, 11, 27, 23, 58, 43, tzinfo=timezone.utc),
    )


def test_round_trip_rich_event():
    out = parse_tsv(to_tsv(rich_event()))
    assert out["app_id"] == "shop"
    assert out["collector_tstamp"] == "2026-11-27T23:58:43.123Z"
    assert out["true_tstamp"] == "2026-11-27T23:58:43.000Z"
    assert out["txn_id"] == 41828
    assert out["page_title"] == "A title"
    assert out["geo_location"] == "37.443604,-122.4124"
    assert out["tr_total"] == 12.5
    assert out["se_value"] == 1.5
    assert out["br_cookies"] is True and out["br_features_pdf"] is False and out["dvce_ismobile"] is False
    assert out["br_colordepth"] == "24"
    assert out["contexts_org_schema_web_page_1"] == [{"genre": "blog", "keywords": ["a", "b"]}]
    assert out["contexts_com_acme_some_context_1"] == [{"n": 1}, {"n": 2}]
    assert out["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"] == [{"useragentFamily": "IE"}]
    assert out["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"] == {"targetUrl": "http://x"}
    assert "user_fingerprint" not in out and "contexts" not in out
    # every set scalar field comes back
    event = rich_event()
    for name, value in event.as_dict().items():
        if FIELD_KINDS[name] != "json":
            assert name in out, name
