"""Tracker-protocol parameters to atomic fields, and the violations bad values become."""
import base64
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.protocol import SIMPLE, map_parameters
from tests.json_text import NUMBERS, documents


def mapped(params):
    event = SimpleNamespace()
    errors = map_parameters(params, event)
    return vars(event), errors


def b64(doc, pad=False):
    text = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    return text if pad else text.rstrip("=")


def test_a_full_page_view():
    fields, errors = mapped({
        "e": "pv", "eid": "0C9E1F6A-2B3C-4D5E-8F90-123456789ABC", "aid": "shop", "p": "web", "tv": "js-4.1.0",
        "tna": "sp1", "tid": "123456", "dtm": "1764288000000", "stm": "1764288000500", "ttm": "1764288000100",
        "uid": "alice", "duid": "d-1", "tnuid": "n-1", "vid": "3", "sid": "5A1E2C3D-0000-4000-8000-00000000000A", "fp": "99", "ip": "198.51.100.1",
        "ua": "UA", "res": "1920x1080", "vp": "1280x720", "ds": "1280x3400", "cd": "24", "cs": "UTF-8",
        "lang": "de-DE", "tz": "Europe/Berlin", "url": "https://acme.com/", "page": "Home", "refr": "https://g.co/",
        "cookie": "1", "f_pdf": "1", "f_qt": "0", "f_realp": "0", "f_wma": "0", "f_dir": "0", "f_fla": "1",
        "f_java": "0", "f_gears": "0", "f_ag": "0", "ctype": "wifi", "mac": "x", "unknown": "ignored",
    })
    assert errors == []
    assert fields["event"] == "page_view" and fields["event_id"] == "0c9e1f6a-2b3c-4d5e-8f90-123456789abc"
    assert fields["txn_id"] == 123456 and fields["domain_sessionidx"] == 3
    assert fields["dvce_created_tstamp"] == 1764288000000 and fields["true_tstamp"] == 1764288000100
    assert (fields["dvce_screenwidth"], fields["dvce_screenheight"]) == (1920, 1080)
    assert (fields["br_viewwidth"], fields["br_viewheight"]) == (1280, 720)
    assert (fields["doc_width"], fields["doc_height"]) == (1280, 3400)
    assert fields["br_cookies"] == 1 and fields["br_features_flash"] == 1 and fields["br_features_java"] == 0
    assert fields["network_userid"] == "n-1" and fields["user_ipaddress"] == "198.51.100.1"
    assert fields["domain_sessionid"] == "5a1e2c3d-0000-4000-8000-00000000000a"  # a UUID, lower-cased
    assert "unknown" not in fields and "ctype" not in fields


def test_structured_transaction_item_and_ping_fields():
    fields, errors = mapped({"e": "se", "se_ca": "c", "se_ac": "a", "se_la": "l", "se_pr": "p", "se_va": "19.5"})
    assert errors == [] and fields["event"] == "struct" and fields["se_value"] == Decimal("19.5")
    fields, errors = mapped({"e": "tr", "tr_id": "o1", "tr_af": "aff", "tr_tt": "100.10", "tr_tx": "5",
                             "tr_sh": "0.5", "tr_ci": "Berlin", "tr_st": "BE", "tr_co": "DE", "tr_cu": "EUR"})
    assert errors == [] and fields["tr_total"] == Decimal("100.10") and fields["tr_currency"] == "EUR"
    fields, errors = mapped({"e": "ti", "ti_id": "o1", "ti_sk": "sku", "ti_na": "Widget", "ti_ca": "w",
                             "ti_pr": "9.99", "ti_qu": "2", "ti_cu": "EUR"})
    assert errors == [] and fields["ti_name"] == "Widget" and fields["ti_quantity"] == 2
    fields, errors = mapped({"e": "pp", "pp_mix": "0", "pp_max": "-5", "pp_miy": "100", "pp_may": "2000"})
    assert errors == [] and fields["pp_xoffset_max"] == -5 and fields["pp_yoffset_max"] == 2000


def test_self_describing_json_plain_and_base64_with_or_without_padding():
    ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
          "data": {"schema": "iglu:com.acme/click/jsonschema/1-0-0", "data": {"x": "é"}}}
    co = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", "data": []}
    for params in ({"ue_pr": json.dumps(ue), "co": json.dumps(co)},
                   {"ue_px": b64(ue), "cx": b64(co, pad=True)}):
        fields, errors = mapped({"e": "ue", **params})
        assert errors == []
        assert fields["unstruct_event"] == ue and fields["contexts"] == co


def test_both_forms_of_a_json_parameter_are_read_and_the_later_in_scala_map_order_wins():
    # Snowplow's Transform maps ue_pr and ue_px (co and cx) to one field: both are checked, the one its
    # parameter map visits last is kept (insertion order up to 4 parameters, hash order beyond)
    ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
          "data": {"schema": "iglu:com.acme/click/jsonschema/1-0-0", "data": {}}}
    other = {**ue, "data": {**ue["data"], "data": {"x": 1}}}
    fields, errors = mapped({"e": "ue", "ue_px": b64(ue), "ue_pr": json.dumps(other)})
    assert errors == [] and fields["unstruct_event"] == other
    fields, errors = mapped({"e": "ue", "ue_pr": json.dumps(other), "ue_px": b64(ue)})
    assert errors == [] and fields["unstruct_event"] == ue
    _fields, errors = mapped({"e": "ue", "ue_px": b64(ue), "ue_pr": "not json"})
    assert [e["field"] for e in errors] == ["ue_pr"]


@pytest.mark.parametrize("name, value, expectation", [
    # the expectations of Snowplow enrich 3.9.0 (ConversionUtils, EventEnrichments, ClientEnrichments, JsonUtils)
    ("e", "zz", "not recognized as an event type"),
    ("e", "", "not recognized as an event type"),
    ("eid", "not-a-uuid", "not a valid UUID"),
    ("eid", "", "not a valid UUID"),
    ("p", "desktop", "not recognized as a tracking platform"),
    ("p", "", "not recognized as a tracking platform"),
    ("tid", "12a", "cannot be converted to java.lang.Integer"),
    ("tid", "", "cannot be converted to java.lang.Integer"),
    ("vid", "99999999999", "cannot be converted to java.lang.Integer"),
    ("dtm", "yesterday", "not in the expected format: ms since epoch"),
    ("dtm", "", "not in the expected format: ms since epoch"),
    ("dtm", "999999999999999999", "formatting as 31690708-07-05 01:46:39.999 is not Redshift-compatible"),
    ("se_va", "ten", "cannot be converted to java.math.BigDecimal. Error : Character t is neither a decimal digit "
                     "number, decimal point, nor \"e\" notation exponential mark."),
    ("se_va", "", "cannot be converted to java.math.BigDecimal. Error : null"),
    ("se_va", "NaN", "cannot be converted to java.math.BigDecimal. Error : Character N is neither"),
    ("se_va", " 1", "cannot be converted to java.math.BigDecimal. Error : Character   is neither"),
    ("se_va", "1_0", "cannot be converted to java.math.BigDecimal. Error : Character _ is neither"),
    ("se_va", "1.2.3", "cannot be converted to java.math.BigDecimal. Error : Character array contains more than "
                       "one decimal point."),
    ("se_va", "-", "cannot be converted to java.math.BigDecimal. Error : No digits found."),
    ("se_va", "1e", "cannot be converted to java.math.BigDecimal. Error : null"),
    ("se_va", "1234567890123456789x", "cannot be converted to java.math.BigDecimal. Error : Character array is "
                                      "missing \"exponent\" mark 'e' or 'E'."),
    ("tr_tt", "1,5", "cannot be converted to java.math.BigDecimal. Error : Character , is neither"),
    ("cookie", "yes", "cannot be converted to Boolean-like java.lang.Byte"),
    ("res", "1920*1080", "does not conform to regex (\\d+)x(\\d+)"),
    # circe's messages (JsonUtils.extractJson), as enrich 3.9.0's classpath gives them
    ("co", "{not json", "invalid json: expected \" got 'not js...' (line 1, column 2)"),
    ("co", '{"a" 1}', "invalid json: expected : got '1}' (line 1, column 6)"),
    ("co", "[1 2]", "invalid json: expected ] or , got '2]' (line 1, column 4)"),
    ("co", '{"a":1 "b"}', "invalid json: expected } or , got '\"b\"}' (line 1, column 8)"),
    ("co", "[1,]", "invalid json: expected json value got ']' (line 1, column 4)"),
    ("co", "[1.]", "invalid json: expected digit got '1.]' (line 1, column 2)"),
    ("co", "01", "invalid json: expected whitespace or eof got '1' (line 1, column 2)"),
    ("co", "nope", "invalid json: expected null got 'nope' (line 1, column 1)"),
    ("co", '"a\\q"', "invalid json: illegal escape sequence (\\q) got '\\...' (line 1, column 3)"),
    ("co", '"\\u12g4"', "invalid json: expected valid unicode escape got '12g4\"' (line 1, column 4)"),
    ("co", '{\n  x}', "invalid json: expected \" got 'x}' (line 2, column 3)"),
    ("co", '"\U0001f600" x', "invalid json: expected whitespace or eof got 'x' (line 1, column 6)"),
    ("co", "tru", "invalid json: exhausted input"),
    ("co", "[1,", "invalid json: exhausted input"),
    ("co", "", "invalid json: exhausted input"),
    ("ue_pr", " \n", "invalid json: exhausted input"),
    # commons-codec decodes leniently: what is not base64 is skipped
    ("cx", "***", "invalid json: exhausted input"),
    ("cx", "", "invalid json: exhausted input"),
    ("ue_px", "eyJ4Ijog!", "invalid json: exhausted input"),
])
def test_bad_values_become_input_data_messages(name, value, expectation):
    params = {"e": "pv", name: value}
    _fields, errors = mapped(params)
    assert len(errors) == 1, errors
    [error] = errors
    assert error["field"] == name and error["value"] == value[:1024]
    assert expectation in error["expectation"]


def test_several_errors_are_all_reported_and_a_missing_event_type_is_none_here():
    # no e is no Transform failure in Snowplow's enrich 3.9.0: the event fails later, when its schema is
    # extracted (processor.stage), and only if no parameter failed here
    _fields, errors = mapped({"tid": "x", "vid": "y"})
    assert {e["field"] for e in errors} == {"tid", "vid"}
    fields, errors = mapped({"p": "web"})
    assert errors == [] and "event" not in fields


def test_empty_string_values_are_no_value_and_override():
    # Snowplow's Transform converts every parameter present: makeTsvSafe("") is null, set on the field (an
    # empty ip, ua, cv or nuid parameter clears what the request set), as extractIp does for ip
    fields, errors = mapped({"e": "pv", "url": "", "ip": "", "ua": "\x01", "cv": "", "nuid": "", "tnuid": ""})
    assert errors == []
    assert {name: fields[name] for name in ("page_url", "user_ipaddress", "useragent", "v_collector",
                                            "network_userid")} == dict.fromkeys(
        ("page_url", "user_ipaddress", "useragent", "v_collector", "network_userid"))


def test_tnuid_overrides_nuid_whatever_their_order():
    # Transform's second pass sets network_userid from tnuid after the first pass's nuid
    for params in ({"e": "pv", "tnuid": "t", "nuid": "n"}, {"e": "pv", "nuid": "n", "tnuid": "t"}):
        assert mapped(params)[0]["network_userid"] == "t"


def test_messages_follow_scala_2_12_hash_map_order():
    # Snowplow enrich 3.9.0 on the edge corpus's request 50 (bench/results/oracle.md): the parameters sit in a
    # Scala immutable.HashMap, so its messages come as pp_may, pp_mix, pp_max
    params = {"e": "pp", "eid": "5a1e2c3d-0000-4000-8000-000000000001", "tv": "js-4.1.0", "p": "web", "aid": "edge",
              "dtm": "1764288000000", "url": "https://shop.acme.com/edge", "page": "Edge", "pp_mix": "1.5",
              "pp_max": "x", "pp_miy": "-3", "pp_may": "99999999999", "tna": "edge-50"}
    _fields, errors = mapped(params)
    assert [(e["field"], e["value"]) for e in errors] == [("pp_may", "99999999999"), ("pp_mix", "1.5"),
                                                          ("pp_max", "x")]
    # up to 4 parameters a Scala Map keeps their insertion order
    _fields, errors = mapped({"e": "pp", "pp_max": "x", "pp_mix": "y"})
    assert [e["field"] for e in errors] == ["pp_max", "pp_mix"]


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SIMPLE) + ["res", "vp", "ds", "co", "cx", "ue_pr", "ue_px", "zz"]),
                       st.text(max_size=40), max_size=12))
def test_random_parameters_never_raise(params):
    _fields, errors = mapped(params)
    for error in errors:
        assert set(error) == {"field", "value", "expectation"}


def test_json_nested_half_a_million_deep_is_refused_quickly_without_crashing_the_process():
    # in a process of its own: a parser without a depth limit overflows the C stack (a segfault, not an error)
    import subprocess
    import sys

    code = """
import time
from processor import jsontext
from processor.protocol import to_json
deep = "[" * 500_000 + "]" * 500_000
started = time.perf_counter()
try:
    jsontext.loads(deep)
except (ValueError, RecursionError):
    pass
assert to_json(deep) == deep  # too deep to be a document: left as text, which validation then refuses
print(round(time.perf_counter() - started, 3))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert float(done.stdout.split()[-1]) < 0.5


def test_integers_beyond_64_bits_stay_exact():
    # orjson 3.11 reads them as floats; Snowplow's enrich (circe) keeps them, in the output and for validation
    from processor import jsontext

    big = 123456789012345678901234567890
    assert jsontext.loads(f'{{"n": {big}, "s": "x"}}') == {"n": big, "s": "x"}
    assert jsontext.loads(f"[{2**64}]".encode()) == [2**64]
    assert jsontext.dumps(jsontext.loads(f'{{"n": {big}}}')) == f'{{"n":{big}}}'
    fields, errors = mapped({"e": "ue", "ue_pr": json.dumps({"schema": "iglu:a/b/jsonschema/1-0-0",
                                                              "data": {"schema": "iglu:c/d/jsonschema/1-0-0",
                                                                       "data": {"n": big}}})})
    assert errors == [] and fields["unstruct_event"]["data"]["data"]["n"] == big


def test_json_integers_beyond_64_bits_are_read_exactly_and_a_long_text_costs_c_passes():
    import time

    from processor.jsontext import loads

    assert loads('{"a":12345678901234567890123}') == {"a": 12345678901234567890123}
    assert loads(b"[18446744073709551616, -9223372036854775809]") == [18446744073709551616, -9223372036854775809]
    assert loads('{"s":"\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0663\u0664'
                 '\u0665\u0666\u0667\u0668\u0669", "n":1.5}')["n"] == 1.5  # digits of other scripts are not JSON's
    # a 900 KB body that is not JSON took 13 ms in a regular expression looking for long integers, and a full
    # queue of such requests got 503s; now the C parsers refuse it at once
    text = "{" + "x" * 900_000
    started = time.perf_counter()
    for _ in range(10):
        with pytest.raises(ValueError):
            loads(text)
    assert (time.perf_counter() - started) / 10 < 0.005


@given(documents(NUMBERS), st.booleans())
@settings(max_examples=300)
def test_json_numbers_are_written_back_as_the_tracker_wrote_them(text, as_bytes):
    # Snowplow's enrich 3.9.0 (circe) keeps a number's text: 1.0e0, 1.8E+2, 0.10 and Python's 1e-05 came out
    # of snowmelt as 1.0, 180.0, 0.1 and 1e-5, in contexts and self-describing events of good events and
    # bad rows; the values are the same numbers
    from processor import jsontext

    doc = jsontext.loads(text.encode() if as_bytes else text)
    assert jsontext.dumps(doc) == text
    assert doc == json.loads(text)  # a JsonFloat is the float its text reads as


def test_the_integer_minus_0_keeps_its_text_and_is_a_number_to_validators():
    # found by the oracle's body corpus: 3.9.0 writes -0 back as -0 (snowmelt wrote 0), and its validator
    # calls it a number ("$[0].tna: number found, string expected"; snowmelt said integer)
    from processor import jsontext
    from processor.adapters import parse_payload_data

    doc = jsontext.loads('{"n":-0,"m":[0,-0,-1]}')
    assert jsontext.dumps(doc) == '{"n":-0,"m":[0,-0,-1]}'
    assert type(doc["n"]) is jsontext.JsonFloat and type(doc["m"][0]) is int and type(doc["m"][2]) is int
    body = ('{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":'
            '[{"e":"pv","p":"web","tv":"js-4.1.0","tna":-0,"aid":5}]}')
    _, [message] = parse_payload_data(body)
    assert [report["message"] for report in message["error"]["dataReports"]] == [
        "$[0].tna: number found, string expected", "$[0].aid: integer found, string expected"]


def test_a_float_that_keeps_its_text_is_a_float_and_validators_get_plain_ones():
    from processor import jsontext

    doc = jsontext.loads('{"a":[1.0e0,0.10,1e400,1.5],"b":{"c":1E+2}}')
    assert [type(x).__name__ for x in doc["a"]] == ["JsonFloat", "JsonFloat", "JsonFloat", "float"]
    assert doc["a"][1] == 0.1 and isinstance(doc["a"][1], float) and doc["b"]["c"] == 100.0
    assert jsontext.dumps(doc) == '{"a":[1.0e0,0.10,1e400,1.5],"b":{"c":1E+2}}'
    assert jsontext.holds_number_text(doc) and not jsontext.holds_number_text(jsontext.plain(doc))
    assert jsontext.dumps(jsontext.plain(doc)) == '{"a":[1.0,0.1,null,1.5],"b":{"c":100.0}}'
    # beside what orjson cannot print (an integer beyond 64 bits, a lone surrogate), the text is kept too
    big = jsontext.loads('[123456789012345678901234567890,1.0e0,"\\ud800"]')
    assert jsontext.dumps(big) == '[123456789012345678901234567890,1.0e0,"\ud800"]'
    # documents of the common forms are orjson's own, with no float that remembers text
    assert not jsontext.holds_number_text(jsontext.loads('{"a":[1,1.5,-0.0,0.25,1.0]}'))


def test_a_megabyte_of_numbers_to_keep_costs_linear_time():
    import gc
    import time

    from processor import jsontext

    def seconds(count: int) -> float:
        text = "[" + ",".join(f"{k}.0e0" for k in range(count)) + "]"
        gc.disable()  # the collector's passes cost what the whole test process holds, not this text
        try:
            started = time.process_time()
            doc = jsontext.loads(text)
            assert jsontext.dumps(doc) == text
            return time.process_time() - started
        finally:
            gc.enable()

    small, large = min(seconds(10_000) for _ in range(3)), min(seconds(100_000) for _ in range(3))
    assert large < 20 * small + 0.05, (small, large)  # ten times the numbers, about ten times the time
    assert large < 2.0  # about 0.25 s here for 1.1 MB



@settings(max_examples=400, deadline=None)
@given(st.one_of(documents(NUMBERS), documents(st.integers().map(str)), st.text(max_size=60),
                 st.sampled_from(["null", " null ", "[" * 51 + "]" * 51, "[" * 50 + "]" * 50, '{"a":1.0}',
                                  '"\\ud800"', '{"schema":"s","data":{}} x', "{}"])),
       st.sampled_from(["co", "cx", "ue_pr", "ue_px"]), st.booleans())
def test_json_parameters_read_alike_by_the_compiled_shortcut_and_its_twin(text, name, padded):
    import ext
    from processor import protocol

    implementations = ext.implementations()
    if "compiled" not in implementations:
        pytest.skip("compiled extensions not built")
    value = text
    if name in ("cx", "ue_px"):
        value = base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode()
        value = value if padded else value.rstrip("=")
    table = {name: protocol._TABLE[name]}

    def typed(doc):  # the same types too: a number that keeps its text is a JsonFloat on both sides
        if isinstance(doc, dict):
            return {key: typed(item) for key, item in doc.items()}
        if isinstance(doc, list):
            return [typed(item) for item in doc]
        return type(doc).__name__, doc

    outcomes = []
    for implementation in (implementations["compiled"], implementations["python"]):
        target = SimpleNamespace()
        refused = implementation.map_params({name: value}, target, table)
        outcomes.append(({field: typed(doc) for field, doc in vars(target).items()}, refused))
    assert outcomes[0] == outcomes[1]
