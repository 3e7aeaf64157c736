"""ext.has_digit_run, ext.brackets_over and ext.iglu_uris: both implementations, same answers, and the compiled ones fast on long text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from tests.timing import fastest


@pytest.mark.parametrize("text, length, expected", [
    ("", 19, False),
    ("1" * 19, 19, True),
    ("1" * 18, 19, False),
    ("a" + "1" * 18 + "b" + "1" * 18, 19, False),
    ("x" * 40 + "9" * 19, 19, True),           # the run at the very end
    ("é" + "1" * 19, 19, True),                # two-byte str
    ("€" + "0" * 18 + "€", 19, False),
    ("😀" + "5" * 20, 19, True),               # four-byte str
    ("١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠", 19, False),       # digits, but not ASCII ones
    (b"1" * 19, 19, True),
    (bytearray(b"12345"), 5, True),
    (b"123", 0, True),                          # a length below 1 counts as 1
])
def test_examples(codec, text, length, expected):
    assert codec.has_digit_run(text, length) is expected


@pytest.mark.parametrize("scan, argument", [("has_digit_run", 19), ("brackets_over", 50)])
@pytest.mark.parametrize("bad", [None, 12, ["1"], memoryview(b"{1")])
def test_type_errors(codec, scan, argument, bad):
    with pytest.raises(TypeError, match=f"{scan}\\(\\) needs str or bytes"):
        getattr(codec, scan)(bad, argument)


@given(st.one_of(st.text(alphabet="0123456789a€😀é", max_size=80),
                 st.binary(max_size=80).map(lambda b: bytes(48 + x % 12 for x in b))),
       st.integers(1, 25))
@settings(max_examples=1000)
def test_implementations_agree(text, length):
    answers = {name: impl.has_digit_run(text, length) for name, impl in ext.implementations().items()}
    assert len(set(answers.values())) == 1, answers


def test_long_text_is_probed_not_read_whole():
    compiled = ext.implementations().get("compiled")
    if compiled is None:
        pytest.skip("the compiled extension is not built")
    body = b'{"a":"' + b"x1" * 500_000 + b'"}'  # 1 MB, half of it digits, no run
    seconds, found = fastest(lambda: compiled.has_digit_run(body, 19))
    assert found is False
    assert seconds < 0.005  # 0.3 ms here; translating it took 1.1 ms, a regex 13


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
