"""ext.has_digit_run: both implementations, same answers, and the compiled one reads little of long text."""

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


@pytest.mark.parametrize("bad", [None, 12, ["1"]])
def test_type_errors(codec, bad):
    with pytest.raises(TypeError):
        codec.has_digit_run(bad, 19)


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
