"""ext.has_numbers_to_keep, ext.brackets_over and ext.iglu_uris: both implementations, same answers, and the compiled ones fast on long text."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from tests.json_text import ARRAYS
from tests.timing import fastest


@pytest.mark.parametrize("text, expected", [
    ("", False),
    ('{"a":1,"b":-2,"c":1.5,"d":[0.25,1.0,-0.0,0.0,100.5]}', False),  # written back as they are
    ('{"a":1.0e0}', True), ('[1E5]', True), ('[1e+21]', True),        # an exponent
    ('[0.10]', True), ('[1.50]', True), ('[0.00]', True),             # a trailing zero
    ('[-0]', True), ('[0]', False), ('[-1]', False),                  # -0 keeps its text
    ("[1234567890123456789]", True), ("[123456789012345678]", False),  # beyond 64 bits, or near it
    ("[123456789012345.5]", True), ("[12345678901234.5]", False),     # 16 significant digits
    ("[1234567890123456.0]", True), ("[123456789012345.0]", False),
    ("[0.00001]", False), ("[0.000001]", True), ("[0.0000123456789012345]", False),
    ("[0.00001234567890123456]", True),
    ('{"a":"1.0e0","b":"0.10","c":"-0"}', False),                    # inside strings: text, not numbers
    ('{"a\\"1e5":1}', False), ('{"a\\\\":1e5}', True),               # an escaped quote, an escaped backslash
    ('["\\\\\\"",0.10]', True), ('["\\\\\\\\",1]', False),
    ('"no end 1e5', False), ('"no end\\"1e5', False),                # a string that never ends
    ('{"é":1.0e0}', True), ('{"€":[0.10]}', True), ('{"😀":-0}', True),  # str of two and four bytes a character
    ('{"é":"1e5","x":1.5}', False), ('{"😀":"0.10"}', False),
    (b'{"a":1.0e0}', True), (b'{"\xc3\xa9":"1e5"}', False), (bytearray(b"[0.10]"), True),
])
def test_examples(codec, text, expected):
    assert codec.has_numbers_to_keep(text) is expected


@pytest.mark.parametrize("scan, argument", [("brackets_over", 50)])
@pytest.mark.parametrize("bad", [None, 12, ["1"], memoryview(b"{1")])
def test_type_errors(codec, scan, argument, bad):
    with pytest.raises(TypeError, match=f"{scan}\\(\\) needs str or bytes"):
        getattr(codec, scan)(bad, argument)


@pytest.mark.parametrize("bad", [None, 12, ["1"], memoryview(b"{1")])
def test_has_numbers_to_keep_type_errors(codec, bad):
    with pytest.raises(TypeError, match="has_numbers_to_keep\\(\\) needs str or bytes"):
        codec.has_numbers_to_keep(bad)


@pytest.mark.both_implementations
@given(ARRAYS, st.booleans())
@settings(max_examples=400)
def test_implementations_agree(text, as_bytes):
    text = text.encode() if as_bytes else text
    answers = {name: impl.has_numbers_to_keep(text) for name, impl in ext.implementations().items()}
    assert len(set(answers.values())) == 1, answers


@given(ARRAYS)
@settings(max_examples=400)
def test_a_text_said_to_hold_none_is_written_back_as_it_is(text):
    # what the parser relies on: no false "no" (a "yes" for a number written back anyway costs time only)
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:  # beyond a double: not this scan's to judge
        return
    if not ext.has_numbers_to_keep(text):
        assert orjson.dumps(doc).decode() == text


def test_long_text_costs_its_strings_not_its_characters():
    compiled = ext.implementations().get("compiled")
    if compiled is None:
        pytest.skip("the compiled extension is not built")
    body = b'{"a":"' + b"x1" * 500_000 + b'","b":[' + b"1.5," * 1000 + b'2]}'  # 1 MB, one long string
    seconds, found = fastest(lambda: compiled.has_numbers_to_keep(body))
    assert found is False
    assert seconds < 0.005  # 0.05 ms here: the string's end found by memchr


@pytest.mark.parametrize("text, limit, expected", [
    ("", 0, False),
    ("", -1, True),                             # no text holds fewer than none
    ("{[", 2, False),
    ("{[{", 2, True),
    ('{"a":[1,{"b":"}]"}]}', 2, True),          # inside a string or not: every bracket counts
    ("]}]}" * 10, 0, False),                    # closing brackets do not
    ("é{" * 3, 2, True),                        # two-byte str
    ("€[" * 2 + "x", 2, False),
    ("😀{" * 51, 50, True),                     # four-byte str
    (b"{" * 50, 50, False),
    (bytearray(b"[[["), 2, True),
    ("{" * 10, 10**30, False),                  # a limit past any length
])
def test_brackets_over_examples(codec, text, limit, expected):
    assert codec.brackets_over(text, limit) is expected


@pytest.mark.both_implementations
@given(st.one_of(st.text(alphabet="{[]}a€😀é", max_size=120), st.binary(max_size=120)),
       st.integers(-2, 60))
@settings(max_examples=1000)
def test_brackets_over_implementations_agree(text, limit):
    answers = {name: impl.brackets_over(text, limit) for name, impl in ext.implementations().items()}
    assert len(set(answers.values())) == 1, answers


URI = b"iglu:com.acme/checkout_started/jsonschema/1-0-2"


@pytest.mark.parametrize("data, expected", [
    (b"", set()),
    (b'{"schema":"' + URI + b'","data":{}}', {URI}),
    (b'{"schema":"' + URI + b'"}' * 3, {URI}),                       # found once
    (b'"schema":"iglu:a.b-c_D/N_a-m/jsonschema/10-2-33"', {b"iglu:a.b-c_D/N_a-m/jsonschema/10-2-33"}),
    (b'{"schema": "' + URI + b'"}', set()),                           # not the compact form enrich writes
    (b'"schema":"' + URI,  set()),                                    # no closing quote
    (b'"schema":"' + URI + b' "', set()),
    (b'"schema":"iglu:/b/jsonschema/1-0-0"', set()),                  # empty vendor
    (b'"schema":"iglu:a/b.c/jsonschema/1-0-0"', set()),               # a dot in the name
    (b'"schema":"iglu:a:b/c/jsonschema/1-0-0"', set()),
    (b'"schema":"iglu:a/b/jsonschemA/1-0-0"', set()),
    (b'"schema":"iglu:a/b/jsonschema/1-0-"', set()),
    (b'"schema":"iglu:a/b/jsonschema/1-0-x"', set()),
    (b'"schema":"iglu:a/b/jsonschema', set()),                       # cut short at the end
    (b'"schema":"iglu:a/b/jsonschema/', set()),
    (b'"schema":"iglu:"schema":"iglu:a/b/jsonschema/1-0-0"', {b"iglu:a/b/jsonschema/1-0-0"}),
    # the scan goes on after the closing quote, so a member starting on it is not one
    (b'"schema":"iglu:a/b/jsonschema/1-0-0"schema":"iglu:c/d/jsonschema/1-0-0"', {b"iglu:a/b/jsonschema/1-0-0"}),
    (memoryview(b'xx"schema":"' + URI + b'"')[2:], {URI}),
    (bytearray(b'"schema":"' + URI + b'"'), {URI}),
])
def test_iglu_uris_examples(codec, data, expected):
    assert codec.iglu_uris(data) == expected


def test_iglu_uris_needs_bytes(codec):
    with pytest.raises(TypeError):
        codec.iglu_uris('"schema":"iglu:a/b/jsonschema/1-0-0"')


def test_iglu_uris_past_the_last_few_distinct_ones_found(codec):
    # more distinct URIs than the compiled scan remembers, repeated out of order: every one is found
    uris = [f"iglu:com.acme/e{n}/jsonschema/{n}-0-0".encode() for n in range(40)]
    data = b",".join(b'{"schema":"' + uri + b'"}' for uri in uris * 3 + uris[::-1])
    assert codec.iglu_uris(data) == set(uris)


_PIECES = st.sampled_from([b'"schema":"', b"iglu:", b"com.acme", b"a-b_c", b"/", b"jsonschema/", b"jsonschema",
                           b"1", b"10", b"-", b'"', b".", b"x", b" ", b":", b"{", b"}"])


@pytest.mark.both_implementations
@given(st.lists(_PIECES, max_size=40).map(b"".join))
@settings(max_examples=2000)
def test_iglu_uris_implementations_agree(data):
    answers = [impl.iglu_uris(data) for impl in ext.implementations().values()]
    assert all(answer == answers[0] for answer in answers), answers


def test_iglu_uris_reads_megabytes_in_a_few_milliseconds():
    compiled = ext.implementations().get("compiled")
    if compiled is None:
        pytest.skip("the compiled extension is not built")
    entity = b'{"schema":"iglu:com.acme/product/jsonschema/1-0-0","data":{"sku":"' + b"x" * 60 + b'"}},'
    body = b'{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[' + entity * 60_000
    seconds, found = fastest(lambda: compiled.iglu_uris(body))  # 8 MB, 60,000 members
    assert found == {b"iglu:com.acme/product/jsonschema/1-0-0",
                     b"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"}
    assert seconds < 0.02  # 4.5 ms here; the pure-Python twin (a regular expression) takes 27
