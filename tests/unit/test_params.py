"""ext.map_params: tracker-protocol values checked and converted, on both implementations."""
import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from tests.param_tables import param_table

TABLE = param_table({"pv": "page_view"}, "not recognised as an event type", lambda v: len(v))


def run(codec, params):
    target = SimpleNamespace()
    refused = codec.map_params(params, target, TABLE)
    return vars(target), refused


@pytest.mark.parametrize("params,fields", [
    ({"e": "pv", "aid": "shop", "zz": "ignored"}, {"event": "page_view", "app_id": "shop"}),
    ({"eid": "A1B2C3D4-0000-4000-8000-00000000000F"}, {"event_id": "a1b2c3d4-0000-4000-8000-00000000000f"}),
    ({"vid": "-2147483648", "dtm": "0"}, {"domain_sessionidx": -2147483648, "dvce_created_tstamp": 0}),
    ({"dtm": "253402300799999"}, {"dvce_created_tstamp": 253402300799999}),
    ({"cookie": "1", "se_va": " 1e3 "}, {"br_cookies": 1, "se_value": 1000.0}),
    ({"res": "1920x1080"}, {"dvce_screenwidth": 1920, "dvce_screenheight": 1080}),
    ({"res": "0x0"}, {"dvce_screenwidth": 0, "dvce_screenheight": 0}),
    # Java's Integer.parseInt / Long.parseLong: a + sign, digits of any script
    ({"vid": "+1", "dtm": "\u0661\u0662"}, {"domain_sessionidx": 1, "dvce_created_tstamp": 12}),
    ({"vid": "NULL"}, {"domain_sessionidx": None}),
    # Snowplow's extractTimestamp: any instant Joda prints with a year from 0 to 9999
    ({"dtm": "-1"}, {"dvce_created_tstamp": -1}),
    ({"dtm": "-62167219200000"}, {"dvce_created_tstamp": -62167219200000}),
    # an empty string is stored as no value, overriding what was there (Snowplow's makeTsvSafe gives null)
    ({"aid": ""}, {"app_id": None}),
    ({"aid": "\x01\x7f"}, {"app_id": None}),
    ({"tr_tt": "12.50"}, {"tr_total": 5}),
])
def test_accepted_values_are_converted_and_stored(codec, params, fields):
    assert run(codec, params) == (fields, [])


@pytest.mark.parametrize("name,value,expectation", [
    # the expectations of Snowplow enrich 3.9.0 (ConversionUtils, EventEnrichments, ClientEnrichments)
    ("e", "", "not recognised as an event type"),
    ("e", "xx", "not recognised as an event type"),
    ("eid", "", "not a valid UUID"),
    ("eid", "a1b2c3d4-0000-4000-8000-00000000000", "not a valid UUID"),
    ("eid", "a1b2c3d4x0000-4000-8000-00000000000f", "not a valid UUID"),
    ("eid", "g1b2c3d4-0000-4000-8000-00000000000f", "not a valid UUID"),
    ("vid", "", "cannot be converted to java.lang.Integer"),
    ("vid", "12a", "cannot be converted to java.lang.Integer"),
    ("vid", "1\n", "cannot be converted to java.lang.Integer"),
    ("vid", " 1", "cannot be converted to java.lang.Integer"),
    ("vid", "1_0", "cannot be converted to java.lang.Integer"),
    ("vid", "-", "cannot be converted to java.lang.Integer"),
    ("vid", "+-1", "cannot be converted to java.lang.Integer"),
    ("vid", "2147483648", "cannot be converted to java.lang.Integer"),
    ("vid", "99999999999999999999999999", "cannot be converted to java.lang.Integer"),
    ("dtm", "", "not in the expected format: ms since epoch"),
    ("dtm", "1.5", "not in the expected format: ms since epoch"),
    ("dtm", "9223372036854775808", "not in the expected format: ms since epoch"),
    ("dtm", "253402300800000", "formatting as 10000-01-01 00:00:00.000 is not Redshift-compatible"),
    ("dtm", "-62167219200001", "formatting as -0001-12-31 23:59:59.999 is not Redshift-compatible"),
    ("dtm", "9223372036854775807",
     "formatting as 292278994-08-17 07:12:55.807 is not Redshift-compatible"),
    ("cookie", "", "cannot be converted to Boolean-like java.lang.Byte"),
    ("cookie", "true", "cannot be converted to Boolean-like java.lang.Byte"),
    ("se_va", "abc", "not a valid number"),
    ("se_va", "nan", "a finite number"),
    ("se_va", "-inf", "a finite number"),
    ("res", "", "does not conform to regex (\\d+)x(\\d+)"),
    ("res", "1920*1080", "does not conform to regex (\\d+)x(\\d+)"),
    ("res", "1920x", "does not conform to regex (\\d+)x(\\d+)"),
    ("res", "0X0", "does not conform to regex (\\d+)x(\\d+)"),
    ("res", "-1x5", "does not conform to regex (\\d+)x(\\d+)"),
    ("res", "1x2x3", "does not conform to regex (\\d+)x(\\d+)"),
    ("res", "2147483648x1", "could not be converted to java.lang.Integer s"),
    ("res", "1x99999999999999999999", "could not be converted to java.lang.Integer s"),
])
def test_refused_values_are_reported_not_stored(codec, name, value, expectation):
    assert run(codec, {name: value}) == ({}, [(name, value, expectation)])


def test_a_converter_failure_with_an_expectation_is_refused(codec):
    class Refused(ValueError):
        expectation = "a money amount"

    def convert(value):
        raise Refused(value)

    table = {"tr_tt": (ext.PARAM_CALL, "tr_total", convert)}
    assert codec.map_params({"tr_tt": "x"}, SimpleNamespace(), table) == [("tr_tt", "x", "a money amount")]


def test_wrong_argument_types_are_type_errors(codec):
    with pytest.raises(TypeError):
        codec.map_params([("e", "pv")], SimpleNamespace(), TABLE)
    with pytest.raises(TypeError):
        codec.map_params({"aid": 5}, SimpleNamespace(), TABLE)


values = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[-+]?[0-9]{1,20}", fullmatch=True),
    st.from_regex(r"-?[0-9\u0660-\u0669]{1,20}", fullmatch=True),
    st.from_regex(r"[0-9]{1,11}[xX][0-9]{1,11}", fullmatch=True),
    st.uuids().map(str),
    st.sampled_from(["pv", "1", "0", "1e308", "1e309", "-0", ""]),
)


@pytest.mark.both_implementations
@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(TABLE) + ["other"]), values, max_size=12))
def test_compiled_and_python_agree(params):
    impls = ext.implementations()
    if "compiled" not in impls:
        pytest.skip("compiled extension not available")
    assert run(impls["compiled"], params) == run(impls["python"], params)


@pytest.mark.parametrize("params,names,expected", [
    ({"e": "pv", "aid": "shop"}, ["aid", "e"], b"aid\x1fshop\x1fe\x1fpv\x1f"),
    ({"e": "pv", "aid": "shop"}, ("e",), b"e\x1fpv\x1f"),
    ({"e": "pv"}, [], b""),
    ({"page": "caf\u00e9 \u2603 \U0001f600", "e": ""}, ["page", "e"],
     "page\x1fcaf\u00e9 \u2603 \U0001f600\x1fe\x1f\x1f".encode()),
    ({"e": "pv", "tid": None}, ["e", "tid"], None),  # a value that is not text: the caller's own way
    ({"e": "pv", "tid": 12}, ["tid"], None),
    ({"e": "bad \udc80"}, ["e"], None),  # a lone surrogate is no UTF-8
    ({"\udc80": "x"}, ["\udc80"], None),
])
def test_separated_pairs_are_the_utf8_of_name_and_value_each_followed_by_a_unit_separator(
        codec, params, names, expected):
    assert codec.separated_pairs(params, names) == expected


def test_separated_pairs_of_a_name_absent_or_a_params_not_a_dict_raise(codec):
    with pytest.raises(KeyError):
        codec.separated_pairs({"e": "pv"}, ["e", "aid"])
    with pytest.raises(TypeError):
        codec.separated_pairs([("e", "pv")], ["e"])


def test_separated_pairs_read_the_names_in_turn_a_value_not_text_before_an_absent_name_is_none(codec):
    # the twin's order: a value that is not text ends it before a name further on is looked up
    assert codec.separated_pairs({"e": None, "p": "web"}, ["e", "aid"]) is None
    with pytest.raises(KeyError):
        codec.separated_pairs({"e": "pv", "p": None}, ["e", "aid", "p"])


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=40), st.none(), st.integers()),
                       max_size=12))
def test_separated_pairs_compiled_and_twin_agree(params):
    from ext import params_py

    names = sorted(params)
    expected = params_py.separated_pairs(params, names)
    assert ext.separated_pairs(params, names) == expected
    if expected is not None:
        assert expected == "".join(f"{k}\x1f{params[k]}\x1f" for k in names).encode("utf-8")


ALLOWED = frozenset({"e", "p", "tv", "aid", "url"})
REQUIRED = ("e", "p", "tv")


class Text(str):
    pass


@pytest.mark.parametrize("items,expected", [
    ([{"e": "pv", "p": "web", "tv": "js-3"}, {"e": "se", "p": "mob", "tv": "t", "aid": "a", "url": ""}], True),
    ([], True),
    ([{"e": "pv", "p": "web"}], False),  # tv missing
    ([{"e": "pv", "p": "web", "tv": "js-3", "other": "x"}], False),  # a property the schema does not have
    ([{"e": "pv", "p": "web", "tv": "js-3", "aid": 1}], False),  # not a string
    ([{"e": "pv", "p": "web", "tv": "js-3", "aid": None}], False),
    ([{"e": "pv", "p": "web", "tv": "js-3", "aid": Text("a")}], False),  # a str subclass is not one
    ([{"e": "pv", "p": "web", "tv": "js-3"}, "not an object"], False),
    ([{"e": "pv", "p": "web", "tv": "js-3"}, ["e", "p", "tv"]], False),
    (({"e": "pv", "p": "web", "tv": "js-3"},), False),  # not a list
    ({"e": "pv", "p": "web", "tv": "js-3"}, False),
])
def test_string_objects_are_lists_of_objects_with_the_required_and_allowed_names_and_only_strings(
        codec, items, expected):
    assert codec.string_objects(items, ALLOWED, REQUIRED) is expected


def test_string_objects_needs_the_allowed_names_as_a_set(codec):
    with pytest.raises(TypeError):
        codec.string_objects([{"e": "pv", "p": "web", "tv": "js-3"}], ["e", "p", "tv"], REQUIRED)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(
    st.dictionaries(st.sampled_from(sorted(ALLOWED) + ["x", "tv "]), st.one_of(st.text(max_size=5), st.none(),
                                                                               st.integers()), max_size=6),
    st.text(max_size=3)), max_size=4))
def test_string_objects_compiled_and_twin_agree(items):
    from ext import params_py

    assert ext.string_objects(items, ALLOWED, REQUIRED) is params_py.string_objects(items, ALLOWED, REQUIRED)


KNOWN = frozenset({"iglu:com.acme/a/jsonschema/1-0-0", "iglu:com.acme/b/jsonschema/1-0-0"})
A, B = sorted(KNOWN)


@pytest.mark.parametrize("items,expected", [
    ([{"schema": A, "data": {"x": 1}}, {"data": None, "schema": B}], True),
    ([], True),
    ([{"schema": A, "data": {}}, {"schema": "iglu:com.acme/c/jsonschema/1-0-0", "data": {}}], False),  # unknown
    ([{"schema": A}], False),  # no data
    ([{"schema": A, "data": 1, "other": 2}], False),  # a key the envelope does not allow
    ([{"data": 1, "other": A}], False),
    ([{"schema": Text(A), "data": 1}], False),  # a str subclass is not one
    ([{"schema": None, "data": 1}], False),
    ([{"schema": A, "data": 1}, A], False),  # not an object
    (({"schema": A, "data": 1},), False),  # not a list
    ({"schema": A, "data": 1}, False),
])
def test_known_entities_are_lists_of_schema_and_data_objects_naming_known_schemas(codec, items, expected):
    assert codec.known_entities(items, KNOWN) is expected


def test_known_entities_needs_the_known_uris_as_a_set(codec):
    with pytest.raises(TypeError):
        codec.known_entities([{"schema": A, "data": 1}], [A])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["schema", "data", "x"]),
                    st.one_of(st.sampled_from([A, B, "iglu:com.acme/c/jsonschema/1-0-0"]), st.none(), st.integers()),
                    max_size=3),
    st.text(max_size=3)), max_size=4))
def test_known_entities_compiled_and_twin_agree(items):
    from ext import params_py

    assert ext.known_entities(items, KNOWN) is params_py.known_entities(items, KNOWN)


class Equal:
    """Equal to everything, None included: ``holds_none`` asks for None itself."""

    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


@pytest.mark.parametrize("params,expected", [
    ({}, False),
    ({"e": "pv", "p": "web"}, False),
    ({"e": "pv", "nuid": None}, True),
    ({"nuid": None, "e": "pv"}, True),
    ({"e": "", "p": 0, "f": False}, False),  # empty and false values are values
    ({"e": Equal()}, False),
])
def test_holds_none_is_whether_a_parameter_has_no_value(codec, params, expected):
    assert codec.holds_none(params) is expected


def test_holds_none_needs_a_dict(codec):
    for not_a_dict in (None, [("e", None)], {("e", None)}):
        with pytest.raises(TypeError):
            codec.holds_none(not_a_dict)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=4), st.none()), max_size=30))
def test_holds_none_compiled_and_twin_agree(params):
    from ext import params_py

    assert ext.holds_none(params) is params_py.holds_none(params) is (None in params.values())


def test_a_json_parameter_is_what_its_converter_makes_of_it_ordinary_json_parsed_in_place(codec):
    calls = []

    def convert(value):
        calls.append(value)
        return {"converted": value}

    extra = (False, 2, json.loads, convert)
    table = {"co": (ext.PARAM_JSON, "contexts", extra), "ue_pr": (ext.PARAM_JSON, "unstruct_event", extra)}
    target = SimpleNamespace()
    params = {"co": '{"a":[1,2]}', "ue_pr": '{"deeper":[[1]]}'}  # three brackets: over the limit of 2
    assert codec.map_params(params, target, table) == []
    assert target.unstruct_event == {"converted": '{"deeper":[[1]]}'}
    if codec.name == "compiled":
        assert target.contexts == {"a": [1, 2]} and calls == ['{"deeper":[[1]]}']
    else:  # the twin always asks the converter
        assert target.contexts == {"converted": '{"a":[1,2]}'}


@pytest.mark.parametrize("extra", [None, (True, 50, json.loads), [True, 50, json.loads, str]])
def test_a_json_parameter_without_its_four_settings_is_a_type_error(codec, extra):
    with pytest.raises(TypeError, match="PARAM_JSON"):
        codec.map_params({"co": "{}"}, SimpleNamespace(), {"co": (ext.PARAM_JSON, "contexts", extra)})
