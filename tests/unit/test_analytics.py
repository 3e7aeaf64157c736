"""The analytics reader: parse_tsv against Snowplow's own Python analytics SDK.

``snowplow-analytics-sdk`` (PyPI, 0.2.x) is run as a black box on the same
lines.  Known, deliberate differences from that old package, which follow the
current SDKs instead, are normalised in :func:`sdk_transform`:

* column 121 is ``refr_dvce_tstamp`` (the package says ``refr_device_tstamp``);
* ``se_value`` is a float (the package leaves it a string);
* a schema present in both contexts and derived_contexts gets both lists
  concatenated (the package keeps only the derived one); the comparisons
  below use distinct schemas for the two fields, and that case is tested apart;
* vendors with ``-`` get ``_`` in keys (the package keeps ``-``); the
  comparisons use vendors without ``-``, and that case is tested apart;
* timestamps are validated (the package passes any text through).
"""
import json
import string
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.analytics import ParseError, parse_tsv, shredded_key
from processor.enriched import CONTEXTS_SCHEMA, FIELD_INDEX, FIELD_KINDS, FIELDS, EnrichedEvent, to_tsv

sdk = pytest.importorskip("snowplow_analytics_sdk.event_transformer")


def sdk_transform(line):
    out = sdk.transform(line)
    if "refr_device_tstamp" in out:
        out["refr_dvce_tstamp"] = out.pop("refr_device_tstamp")
    if "se_value" in out:
        out["se_value"] = float(out["se_value"])
    return out


def assert_same(line):
    ours = parse_tsv(line)
    theirs = sdk_transform(line)
    assert set(ours) == set(theirs)
    for key in ours:
        assert ours[key] == theirs[key], key
        assert type(ours[key]) is type(theirs[key]), key
    return ours


def ctx(schema, **data):
    return {"schema": schema, "data": data}


# --- fixed events compared field by field ----------------------------------------------


def page_view():
    return EnrichedEvent(
        app_id="web", platform="web", etl_tstamp=1795823923500, collector_tstamp=1795823923123,
        dvce_created_tstamp=1795823922001, event="page_view", event_id="c6ef3124-b53a-4b13-a233-0088f79dcbcb",
        name_tracker="cf", v_tracker="js-3.24.0", v_collector="snowmelt-0.1.0", v_etl="snowmelt-0.1.0",
        user_ipaddress="92.231.54.234", domain_userid="bc2e92ec6c204a14", domain_sessionidx=1,
        network_userid="ecdff4d0-9175-40ac-a8bb-325c49733607", page_url="https://example.com/p?q=1",
        page_title="Hello\tworld", page_urlscheme="https", page_urlhost="example.com", page_urlport=443,
        page_urlpath="/p", page_urlquery="q=1", useragent="Mozilla/5.0 (X11)", br_lang="en-GB",
        br_features_pdf=True, br_features_flash=False, br_features_java=False, br_features_director=False,
        br_features_quicktime=False, br_features_realplayer=False, br_features_windowsmedia=False,
        br_features_gears=False, br_features_silverlight=False, br_cookies=True, br_colordepth="24",
        br_viewwidth=1440, br_viewheight=900, os_timezone="Europe/London", dvce_screenwidth=2560,
        dvce_screenheight=1440, doc_charset="UTF-8", doc_width=1440, doc_height=6000,
        domain_sessionid="2b15e5c8-d3b1-11e4-b9d6-1681e6b88ec1", derived_tstamp=1795823923000,
        event_vendor="com.snowplowanalytics.snowplow", event_name="page_view", event_format="jsonschema",
        event_version="1-0-0",
    )


def test_page_view_without_json():
    out = assert_same(to_tsv(page_view()))
    assert out["br_cookies"] is True and out["br_features_flash"] is False
    assert out["page_title"] == "Hello world"


def test_contexts_multiple_schemas_unstruct_derived_and_geo():
    e = page_view()
    e.event = "unstruct"
    e.geo_country, e.geo_city, e.geo_latitude, e.geo_longitude = "GB", "London", 51.5142, -0.0931
    e.contexts = [
        ctx("iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0", id="0ab3"),
        ctx("iglu:org.schema/WebPage/jsonschema/1-0-0", genre="blog", keywords=["a", "b"]),
        ctx("iglu:com.acme/someContext/jsonschema/1-0-0", n=1),
        ctx("iglu:com.acme/someContext/jsonschema/1-2-0", n=2, s="☃"),
        ctx("iglu:com.acme/URI_redirect/jsonschema/2-0-0", uri="x"),
        ctx("iglu:com.acme/HTTPServerX9a/jsonschema/3-0-1", ok=True, none=None),
    ]
    e.unstruct_event = ctx("iglu:com.acme/clickEvent/jsonschema/2-1-0", target={"id": 3, "tags": []})
    e.derived_contexts = [
        ctx("iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0", useragentFamily="Firefox"),
        ctx("iglu:nl.basjes/yauaa_context/jsonschema/1-0-4", deviceClass="Desktop"),
    ]
    out = assert_same(to_tsv(e))
    assert out["geo_location"] == "51.5142,-0.0931"
    assert out["contexts_com_acme_some_context_1"] == [{"n": 1}, {"n": 2, "s": "☃"}]
    assert out["contexts_org_schema_web_page_1"] == [{"genre": "blog", "keywords": ["a", "b"]}]
    assert out["contexts_com_acme_uri_redirect_2"] == [{"uri": "x"}]
    assert out["contexts_com_acme_httpserver_x9a_3"] == [{"ok": True, "none": None}]
    assert out["contexts_nl_basjes_yauaa_context_1"] == [{"deviceClass": "Desktop"}]
    assert out["unstruct_event_com_acme_click_event_2"] == {"target": {"id": 3, "tags": []}}


def test_transaction_and_structured_event():
    e = EnrichedEvent(
        app_id="shop", platform="srv", collector_tstamp=datetime(2026, 1, 2, 3, 4, 5, 6000), event="transaction",
        event_id="e5b7b4a4-0000-4000-8000-000000000001", v_collector="c", v_etl="e", txn_id=-7,
        tr_orderid="o-1", tr_affiliation="aff", tr_total=Decimal("99.90"), tr_tax=Decimal("0.00"),
        tr_shipping=Decimal("5"), tr_city="Paris", tr_country="FR", tr_currency="EUR",
        tr_total_base=Decimal("104.7"), tr_tax_base=0, tr_shipping_base=5.25, base_currency="USD",
        ti_price=Decimal("1.10"), ti_quantity=3, ti_price_base=1.2, ti_currency="EUR",
        se_category="cat", se_action="act", se_label="lab", se_property="prop", se_value=10,
        pp_xoffset_min=-1, pp_xoffset_max=0, pp_yoffset_min=10, pp_yoffset_max=2000,
        dvce_ismobile=True, refr_dvce_tstamp=1, dvce_sent_tstamp=1795823923999, true_tstamp=1795823923999,
    )
    out = assert_same(to_tsv(e))
    assert out["tr_total"] == 99.9 and out["tr_tax"] == 0.0 and out["se_value"] == 10.0
    assert out["collector_tstamp"] == "2026-01-02T03:04:05.006Z"
    assert out["refr_dvce_tstamp"] == "1970-01-01T00:00:00.001Z"
    assert "geo_location" not in out


def test_geo_location_needs_both():
    e = page_view()
    e.geo_latitude = 10.0
    out = assert_same(to_tsv(e))
    assert "geo_location" not in out and out["geo_latitude"] == 10.0


def test_snowplow_written_line():
    """A line laid out as Snowplow's enrich writes it (Java number formats)."""
    v = [""] * 131
    v[0], v[1], v[2], v[3] = "pbzsite", "web", "2017-01-26 00:01:25.292", "2013-11-26 00:02:05"
    v[5], v[6], v[7] = "page_view", "c6ef3124-b53a-4b13-a233-0088f79dcbcb", "41828"
    v[22], v[23] = "37.443604", "-122.4124"
    v[61], v[57] = "1.0E7", "2.0"
    v[84], v[93], v[102] = "1", "0", "0"
    v[52] = json.dumps({"schema": CONTEXTS_SCHEMA, "data": [ctx("iglu:org.schema/WebPage/jsonschema/1-0-0", a=1)]})
    out = assert_same("\t".join(v))
    assert out["collector_tstamp"] == "2013-11-26T00:02:05Z"
    assert out["tr_total"] == 1.0e7
    assert parse_tsv("\t".join(v) + "\n") == out


# --- the deliberate differences ---------------------------------------------------------


def test_same_schema_in_contexts_and_derived_is_concatenated():
    e = EnrichedEvent(
        contexts=[ctx("iglu:com.acme/c/jsonschema/1-0-0", a=1)],
        derived_contexts=[ctx("iglu:com.acme/c/jsonschema/1-0-0", a=2)],
    )
    assert parse_tsv(to_tsv(e))["contexts_com_acme_c_1"] == [{"a": 1}, {"a": 2}]
    # the old SDK package keeps only the derived list
    assert sdk.transform(to_tsv(e))["contexts_com_acme_c_1"] == [{"a": 2}]


def test_key_naming():
    assert shredded_key("contexts", "iglu:com.acme-inc.My/someEventName/jsonschema/10-0-1") == (
        "contexts_com_acme_inc_my_some_event_name_10"
    )
    assert shredded_key("unstruct_event", "iglu:com.acme/web_Page-ABC/jsonschema/1-0-0") == (
        "unstruct_event_com_acme_web_page-_abc_1"
    )
    for bad in ("iglu:com.acme/only_two/1-0-0", "iglu:com.acme/a/jsonschema/0-1-0", "iglu:com.acme/a/jsonschema/1-01-0"):
        with pytest.raises(ValueError):
            shredded_key("contexts", bad)


# --- errors -------------------------------------------------------------------------------


def test_wrong_field_count():
    with pytest.raises(ParseError, match="Expected 131 fields, received 130"):
        parse_tsv("\t" * 129)
    with pytest.raises(ParseError, match="received 132"):
        parse_tsv("\t" * 131)


@pytest.mark.parametrize(
    "name,value",
    [
        ("txn_id", "abc"), ("page_urlport", "1.5"), ("geo_latitude", "north"), ("tr_total", "1,5"),
        ("br_cookies", "yes"), ("dvce_ismobile", "true"), ("collector_tstamp", "2013-11-26T00:02:05Z"),
        ("etl_tstamp", "2013-13-26 00:02:05.000"), ("true_tstamp", "yesterday"), ("contexts", "{bad"),
        ("contexts", '{"schema":"x","data":{}}'), ("contexts", '{"schema":"x","data":[{"schema":"nope","data":1}]}'),
        ("unstruct_event", '{"schema":"x","data":{"data":{}}}'), ("derived_contexts", "[]"),
    ],
)
def test_bad_field_raises_naming_it(name, value):
    v = [""] * 131
    v[FIELD_INDEX[name]] = value
    with pytest.raises(ParseError) as info:
        parse_tsv("\t".join(v))
    assert info.value.fields == [name]
    assert name in str(info.value)


def test_all_bad_fields_named_at_once():
    v = [""] * 131
    v[7], v[22], v[52] = "x", "y", "z"
    with pytest.raises(ParseError) as info:
        parse_tsv("\t".join(v))
    assert info.value.fields == ["txn_id", "geo_latitude", "contexts"]
    assert isinstance(info.value, ValueError)


# --- random events: to_tsv -> both parsers agree ----------------------------------------------

_ident = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
_vendor = st.lists(st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8), min_size=1, max_size=4).map(".".join)
_schema = st.builds(
    lambda v, n, a, b, c: f"iglu:{v}/{n}/jsonschema/{a}-{b}-{c}",
    _vendor, _ident, st.integers(1, 12), st.integers(0, 3), st.integers(0, 3),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_sd = st.builds(lambda s, d: {"schema": s, "data": d}, _schema, st.dictionaries(st.text(max_size=8), _json, max_size=4))
_tstamp = st.integers(0, 4102444800000) | st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.none() | st.just(timezone.utc)
)
_int32 = st.integers(-(2**31), 2**31 - 1)
_float = st.floats(allow_nan=False, allow_infinity=False)
_money = st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False) | _int32 | _float

_BY_KIND = {
    "string": st.text(min_size=1, max_size=30),
    "int": _int32,
    "bool": st.booleans(),
    "float": _float,
    "decimal": _money,
    "timestamp": _tstamp,
}


@st.composite
def events(draw):
    e = EnrichedEvent()
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=40)):
        kind = FIELD_KINDS[name]
        if kind != "json":
            setattr(e, name, draw(_BY_KIND[kind]))
    # contexts and derived contexts with disjoint vendors (see module doc)
    e.contexts = draw(st.lists(_sd.filter(lambda d: not d["schema"].startswith("iglu:derived")), max_size=4))
    e.derived_contexts = draw(st.lists(_sd.map(lambda d: {**d, "schema": d["schema"].replace("iglu:", "iglu:derived.")}), max_size=3))
    e.unstruct_event = draw(st.none() | _sd)
    return e


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_random_events_parsers_agree(event):
    line = to_tsv(event)
    assert len(line.split("\t")) == 131
    out = assert_same(line)
    for name, value in event.as_dict().items():
        kind = FIELD_KINDS[name]
        if kind == "int":
            assert out[name] == value
        elif kind == "bool":
            assert out[name] is value
        elif kind == "float":
            assert out[name] == float(value)
        elif kind == "string" and "\t" not in value and "\n" not in value and "\r" not in value:
            assert out[name] == value
