"""Query strings and percent-decoding: both implementations, same tests.

Expected values are written out by hand from the rules in
``ext/querystring_py.py`` (split on ``&``, first ``=``, ``+`` is a space,
``%XX`` runs are UTF-8); interoperability is checked against
``urllib.parse.quote``/``urlencode``, which share no code with ours.
"""

import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from ext import QueryStringError
from tests.timing import fastest


def outcome(function, *args):
    try:
        return ("ok", function(*args))
    except QueryStringError as exc:
        return ("error", str(exc), exc.position, exc.parameter)


# ---------------------------------------------------------------- exact examples


@pytest.mark.parametrize(
    "qs, expected",
    [
        ("", []),
        ("&", []),
        ("&&&", []),
        ("e=pv", [("e", "pv")]),
        ("e=pv&&tv=js-3.17.0&", [("e", "pv"), ("tv", "js-3.17.0")]),
        ("&e=pv", [("e", "pv")]),
        ("flag", [("flag", "")]),
        ("flag&e=pv", [("flag", ""), ("e", "pv")]),
        ("e=", [("e", "")]),
        ("=v", [("", "v")]),
        ("=", [("", "")]),
        ("a=b=c", [("a", "b=c")]),
        ("a=1&a=2&a=1", [("a", "1"), ("a", "2"), ("a", "1")]),
        ("page=Caf%C3%A9+au+lait", [("page", "Café au lait")]),
        ("page=caf%c3%a9", [("page", "café")]),
        ("s=%E2%98%83", [("s", "\u2603")]),
        ("s=%F0%9F%98%80", [("s", "\U0001f600")]),
        ("plus=a%2Bb+c", [("plus", "a+b c")]),
        ("amp=a%26b%3Dc", [("amp", "a&b=c")]),
        ("pct=100%25", [("pct", "100%")]),
        ("k%20ey=v", [("k ey", "v")]),
        ("k+ey=v+", [("k ey", "v ")]),
        ("url=https%3A%2F%2Fexample.com%2Fa%3Fb%3D1", [("url", "https://example.com/a?b=1")]),
        ("raw=caf\u00e9&x=\U0001f600", [("raw", "caf\u00e9"), ("x", "\U0001f600")]),
        ("mix=\u00e9%C3%A9", [("mix", "\u00e9\u00e9")]),
        ("nul=%00", [("nul", "\x00")]),
        ("e=%7e%7E", [("e", "~~")]),
    ],
)
def test_parse_examples(codec, qs, expected):
    assert codec.parse_query_string(qs) == expected


@pytest.mark.parametrize(
    "s, expected",
    [
        ("", ""),
        ("plain", "plain"),
        ("a+b", "a b"),
        ("a%2Bb", "a+b"),
        ("%C3%A9t%C3%A9", "été"),
        ("a&b=c", "a&b=c"),  # percent_decode does not split
        ("caf\u00e9+%E2%82%AC", "caf\u00e9 \u20ac"),
    ],
)
def test_percent_decode_examples(codec, s, expected):
    assert codec.percent_decode(s) == expected


def test_result_types(codec):
    pairs = codec.parse_query_string("a=1&b")
    assert type(pairs) is list
    assert all(type(p) is tuple and len(p) == 2 and all(type(x) is str for x in p) for p in pairs)


def test_str_subclass_gives_str(codec):
    class S(str):
        pass

    assert type(codec.percent_decode(S("abc"))) is str
    assert [tuple(map(type, p)) for p in codec.parse_query_string(S("a=b"))] == [(str, str)]


@pytest.mark.parametrize("bad", [b"a=b", None, 1, ["a=b"]])
def test_type_errors(codec, bad):
    with pytest.raises(TypeError, match=r"^parse_query_string\(\) argument must be str, not "):
        codec.parse_query_string(bad)
    with pytest.raises(TypeError, match=r"^percent_decode\(\) argument must be str, not "):
        codec.percent_decode(bad)


# ---------------------------------------------------------------- malformed input

MALFORMED = [
    ("a=%zz", "malformed percent escape '%zz' at position 2 in parameter 'a'", 2, "a"),
    ("a=%4g", "malformed percent escape '%4g' at position 2 in parameter 'a'", 2, "a"),
    ("a=%g4", "malformed percent escape '%g4' at position 2 in parameter 'a'", 2, "a"),
    ("a=% 41", "malformed percent escape '% 4' at position 2 in parameter 'a'", 2, "a"),
    ("a=%%41", "malformed percent escape '%%4' at position 2 in parameter 'a'", 2, "a"),
    ("a=%4%41", "malformed percent escape '%4%' at position 2 in parameter 'a'", 2, "a"),
    ("a=%41%zz", "malformed percent escape '%zz' at position 5 in parameter 'a'", 5, "a"),
    ("a=%\u00e9\u00e9", "malformed percent escape '%\u00e9\u00e9' at position 2 in parameter 'a'", 2, "a"),
    ("a=%4", "truncated percent escape '%4' at position 2 in parameter 'a'", 2, "a"),
    ("a=%", "truncated percent escape '%' at position 2 in parameter 'a'", 2, "a"),
    ("a=x%4&b=1", "truncated percent escape '%4' at position 3 in parameter 'a'", 3, "a"),
    ("a=%&b=1", "truncated percent escape '%' at position 2 in parameter 'a'", 2, "a"),
    ("ok=1&k%=v", "truncated percent escape '%' at position 6 in parameter 'k%'", 6, "k%"),
    ("ok=1&k%zz=v", "malformed percent escape '%zz' at position 6 in parameter 'k%zz'", 6, "k%zz"),
    ("flag%", "truncated percent escape '%' at position 4 in parameter 'flag%'", 4, "flag%"),
    # bytes that are not UTF-8: reported at the escape of the bad sequence's first byte
    ("a=%C3", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%C3') at position 2 in parameter 'a'", 2, "a"),
    ("a=%C3x", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%C3') at position 2 in parameter 'a'", 2, "a"),
    ("a=%C3+%A9", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%C3') at position 2 in parameter 'a'", 2, "a"),
    ("a=%C3%28", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%C3') at position 2 in parameter 'a'", 2, "a"),
    ("a=x%A9", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%A9') at position 3 in parameter 'a'", 3, "a"),
    ("a=%41%FF", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%FF') at position 5 in parameter 'a'", 5, "a"),
    ("a=%C0%80", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%C0') at position 2 in parameter 'a'", 2, "a"),
    ("a=%E0%80%80", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%E0') at position 2 in parameter 'a'", 2, "a"),
    ("a=%ED%A0%80", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%ED') at position 2 in parameter 'a'", 2, "a"),
    ("a=%E2%82", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%E2') at position 2 in parameter 'a'", 2, "a"),
    ("a=%F4%90%80%80", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%F4') at position 2 in parameter 'a'", 2, "a"),
    ("a=%F5%80%80%80", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%F5') at position 2 in parameter 'a'", 2, "a"),
    ("a=%C3%A9%E2%82%41", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%E2') at position 8 in parameter 'a'", 8, "a"),
    # the first problem wins
    ("a=%C3%zz", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%C3') at position 2 in parameter 'a'", 2, "a"),
    ("a=%zz%C3", "malformed percent escape '%zz' at position 2 in parameter 'a'", 2, "a"),
    ("k%zz=%C3", "malformed percent escape '%zz' at position 1 in parameter 'k%zz'", 1, "k%zz"),
    # lone surrogates in the text itself
    ("a=\ud800", "lone surrogate U+D800 at position 2 in parameter 'a'", 2, "a"),
    ("\udfff=1", "lone surrogate U+DFFF at position 0 in parameter '\\udfff'", 0, "\udfff"),
    ("a=%41\udc80%zz", "lone surrogate U+DC80 at position 5 in parameter 'a'", 5, "a"),
    ("a=\udc80%zz", "lone surrogate U+DC80 at position 2 in parameter 'a'", 2, "a"),
    ("a=%zz\udc80", "malformed percent escape '%zz' at position 2 in parameter 'a'", 2, "a"),
]


@pytest.mark.parametrize("qs, message, position, parameter", MALFORMED)
def test_parse_malformed(codec, qs, message, position, parameter):
    with pytest.raises(QueryStringError) as info:
        codec.parse_query_string(qs)
    assert str(info.value) == message
    assert info.value.position == position
    assert info.value.parameter == parameter
    assert isinstance(info.value, ValueError)
    str(info.value).encode("utf-8")  # the message itself holds no surrogate


def test_long_parameter_name_is_cut_in_message(codec):
    name = "n" * 80
    with pytest.raises(QueryStringError) as info:
        codec.parse_query_string(name + "=%zz")
    assert str(info.value) == f"malformed percent escape '%zz' at position 81 in parameter '{'n' * 50}...'"
    assert info.value.parameter == name


@pytest.mark.parametrize(
    "s, message",
    [
        ("%zz", "malformed percent escape '%zz' at position 0"),
        ("ab%4", "truncated percent escape '%4' at position 2"),
        ("a&b%", "truncated percent escape '%' at position 3"),
        ("x%C3", "percent-escaped bytes are not valid UTF-8 (invalid sequence starting with '%C3') at position 1"),
        ("\ud83d", "lone surrogate U+D83D at position 0"),
    ],
)
def test_percent_decode_malformed(codec, s, message):
    with pytest.raises(QueryStringError) as info:
        codec.percent_decode(s)
    assert str(info.value) == message
    assert info.value.parameter is None


@pytest.mark.both_implementations
def test_error_class_is_shared():
    impls = ext.implementations()
    assert ext.QueryStringError is ext.errors.QueryStringError
    for impl in impls.values():
        with pytest.raises(ext.QueryStringError):
            impl.percent_decode("%")


# ---------------------------------------------------------------- properties

# Text without surrogates (not UTF-8-encodable), as hypothesis gives by default.
texts = st.text(max_size=40)
pairs_strategy = st.lists(st.tuples(texts, texts), max_size=8)


@given(pairs_strategy, st.sampled_from(["", "/", ":/?@,;"]))
@settings(max_examples=300)
def test_urlencode_round_trip(codec, pairs, safe):
    qs = urllib.parse.urlencode(pairs, safe=safe)
    # urlencode keeps pairs with an empty name and value as "=", which we keep too
    assert codec.parse_query_string(qs) == pairs


@given(pairs_strategy)
@settings(max_examples=200)
def test_quote_round_trip(codec, pairs):
    qs = "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in pairs)
    assert codec.parse_query_string(qs) == pairs


@given(texts)
@settings(max_examples=300)
def test_percent_decode_matches_unquote_plus(codec, s):
    assert codec.percent_decode(urllib.parse.quote_plus(s)) == s
    assert codec.percent_decode(urllib.parse.quote(s, safe="")) == s


@given(st.binary(max_size=30))
@settings(max_examples=300)
def test_escaped_bytes_are_utf8_or_error(codec, data):
    s = "".join(f"%{b:02X}" for b in data)
    try:
        expected = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        with pytest.raises(QueryStringError) as info:
            codec.percent_decode(s)
        assert info.value.position == 3 * exc.start
    else:
        assert codec.percent_decode(s) == expected


# Text built from the characters that matter, plus arbitrary ones (surrogates included).
alphabet = st.one_of(
    st.sampled_from(list("%&=+aF09zZ") + ["%C3", "%A9", "%E2%82", "%zz", "%F0", "%80", "%ED%A0%80"]),
    st.characters(),
)
messy = st.lists(alphabet, max_size=30).map("".join)


@pytest.mark.both_implementations
@given(messy)
@settings(max_examples=500)
def test_random_text_never_crashes_and_implementations_agree(qs):
    results = {
        name: (outcome(impl.parse_query_string, qs), outcome(impl.percent_decode, qs))
        for name, impl in ext.implementations().items()
    }
    values = list(results.values())
    assert all(v == values[0] for v in values), results
    parsed, decoded = values[0]
    for result in (parsed, decoded):
        if result[0] == "ok":
            text = repr(result[1])
            # no surrogates in any result
            for item in result[1] if isinstance(result[1], list) else [(result[1], "")]:
                for part in item:
                    part.encode("utf-8")
            assert text


@given(messy)
@settings(max_examples=300)
def test_parse_is_split_then_percent_decode(codec, qs):
    expected = []
    try:
        for piece in qs.split("&"):
            if piece:
                name, _, value = piece.partition("=")
                expected.append((codec.percent_decode(name), codec.percent_decode(value)))
    except QueryStringError:
        with pytest.raises(QueryStringError):
            codec.parse_query_string(qs)
    else:
        assert codec.parse_query_string(qs) == expected


# ---------------------------------------------------------------- find_parameters


@pytest.mark.parametrize(
    "qs, names, last, expected",
    [
        ("", ["a"], True, {}),
        ("a=1&b=2&a=3&&c&b=4", ["b", "a", "c", "z"], True, {"a": "a=3", "c": "c", "b": "b=4"}),
        ("a=1&b=2&a=3&&c&b=4", ["b", "a", "c", "z"], False, {"a": "a=1", "b": "b=2", "c": "c"}),
        ("%61=1&a+=2&xa=3&a", ["a"], True, {"a": "a"}),  # names as written: nothing is decoded
        ("=x&a==b", ["", "a"], True, {"": "=x", "a": "a==b"}),
        ("é=1&€=%zz&a=€", ["€", "é", "a"], True, {"é": "é=1", "€": "€=%zz", "a": "a=€"}),
        ("k" * 70 + "=v&k=w", ["k" * 70, "k"], True, {"k" * 70: "k" * 70 + "=v", "k": "k=w"}),
    ],
)
def test_find_parameters_examples(codec, qs, names, last, expected):
    found = codec.find_parameters(qs, names, last)
    assert found == expected
    assert list(found) == list(expected)  # in the order of the pieces in the query


@given(messy, st.lists(st.sampled_from(["a", "b", "", "é", "a=", "%61"]), max_size=4), st.booleans())
@settings(max_examples=300)
def test_find_parameters_is_the_pieces_named(codec, qs, names, last):
    pieces = [(i, piece) for i, piece in enumerate(qs.split("&")) if piece and piece.partition("=")[0] in names]
    chosen: dict = {}
    for i, piece in (reversed(pieces) if not last else pieces):
        chosen[piece.partition("=")[0]] = (i, piece)
    assert codec.find_parameters(qs, names, last) == {n: p for n, (i, p) in sorted(chosen.items(), key=lambda kv: kv[1][0])}


def test_find_parameters_is_linear_in_a_long_query():
    compiled = ext.implementations().get("compiled")
    if compiled is None:
        pytest.skip("the compiled extension is not built")
    query = "&".join(f"utm_source{i}=x" for i in range(60_000)) + "&_sp=a.1"
    seconds, found = fastest(lambda: compiled.find_parameters(query, ("utm_source", "utm_medium", "_sp")))
    assert found == {"_sp": "_sp=a.1"}
    assert seconds < 0.01  # 0.5 ms here; parsing the whole query takes 17
