"""Base64url: both implementations, same tests.

Expected values are written out by hand (RFC 4648 test vectors, section 10,
and the alphabet table) and checked against Python's ``base64`` module, which
shares no code with the compiled decoder.
"""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from ext import Base64Error

RFC4648 = [
    (b"", ""),
    (b"f", "Zg"),
    (b"fo", "Zm8"),
    (b"foo", "Zm9v"),
    (b"foob", "Zm9vYg"),
    (b"fooba", "Zm9vYmE"),
    (b"foobar", "Zm9vYmFy"),
]


def outcome(function, *args):
    try:
        return ("ok", function(*args))
    except Base64Error as exc:
        return ("error", str(exc))


def padded(s):
    return s + "=" * (-len(s) % 4)


# ---------------------------------------------------------------- exact examples


@pytest.mark.parametrize("data, text", RFC4648)
def test_rfc4648_vectors(codec, data, text):
    assert codec.encode_base64url(data) == text
    assert codec.encode_base64url(data, pad=True) == padded(text)
    assert codec.encode_base64url(data, True) == padded(text)
    assert codec.decode_base64url(text) == data
    assert codec.decode_base64url(padded(text)) == data


@pytest.mark.parametrize(
    "text, data",
    [
        ("-_-_", b"\xfb\xff\xbf"),  # URL-safe alphabet
        ("+/+/", b"\xfb\xff\xbf"),  # standard alphabet
        ("-/+_", b"\xfb\xff\xbf"),  # mixed
        ("__8", b"\xff\xff"),
        ("__8=", b"\xff\xff"),
        ("AAAA", b"\x00\x00\x00"),
        ("QR", b"A"),  # leftover bits ignored, as base64.urlsafe_b64decode does
        ("QUI", b"AB"),
        ("QUJ", b"AB"),
        (
            "eyJzY2hlbWEiOiJpZ2x1OmNvbS5zbm93cGxvdyJ9",
            b'{"schema":"iglu:com.snowplow"}',
        ),
    ],
)
def test_decode_examples(codec, text, data):
    assert codec.decode_base64url(text) == data
    assert type(codec.decode_base64url(text)) is bytes


def test_encode_uses_urlsafe_alphabet(codec):
    data = bytes(range(256))
    assert codec.encode_base64url(data) == base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert "+" not in codec.encode_base64url(b"\xfb\xff") and "/" not in codec.encode_base64url(b"\xff\xff")
    assert type(codec.encode_base64url(b"abc")) is str


@pytest.mark.parametrize(
    "value", [bytearray(b"foob"), memoryview(b"foob"), memoryview(b"xfoobx")[1:5], memoryview(b"fxoxoxbx")[::2]]
)
def test_encode_accepts_bytes_like(codec, value):
    assert codec.encode_base64url(value) == "Zm9vYg"


@pytest.mark.parametrize("bad", ["abc", None, 3, [1, 2]])
def test_encode_type_errors(codec, bad):
    with pytest.raises(TypeError, match=r"^encode_base64url\(\) argument must be a bytes-like object, not "):
        codec.encode_base64url(bad)


@pytest.mark.parametrize("bad", [b"Zm9v", None, 3, bytearray(b"Zm9v")])
def test_decode_type_errors(codec, bad):
    with pytest.raises(TypeError, match=r"^decode_base64url\(\) argument must be str, not "):
        codec.decode_base64url(bad)


# ---------------------------------------------------------------- malformed input

MALFORMED = [
    ("Zm9v YmFy", "invalid base64 character ' ' at position 4"),
    ("Zm9v\nYmFy", "invalid base64 character '\\n' at position 4"),
    ("Zm9v.", "invalid base64 character '.' at position 4"),
    ("Zm9vZ.", "invalid base64 character '.' at position 5"),  # in the last two or three characters
    ("Zm9vZm.", "invalid base64 character '.' at position 6"),
    ("Zm9v\u00ffm9v", "invalid base64 character '\u00ff' at position 4"),  # Latin-1: one byte a character
    ("*", "invalid base64 character '*' at position 0"),
    ("Zm\u00e9v", "invalid base64 character '\u00e9' at position 2"),
    ("Zm\U0001f600v", "invalid base64 character '\U0001f600' at position 2"),
    ("Zm\ud800v", "invalid base64 character '\\ud800' at position 2"),
    ("Zm9v\x00", "invalid base64 character '\\x00' at position 4"),
    ("Zg==Zg==", "misplaced base64 padding '=' at position 2 (padding must come last)"),
    ("Z=g", "misplaced base64 padding '=' at position 1 (padding must come last)"),
    ("=Zg", "misplaced base64 padding '=' at position 0 (padding must come last)"),
    ("Z=g.", "misplaced base64 padding '=' at position 1 (padding must come last)"),
    ("Z.=g", "invalid base64 character '.' at position 1"),
    ("Z", "invalid base64 length: 1 characters without padding (a length of 4n+1 cannot encode whole bytes)"),
    ("Zm9vY", "invalid base64 length: 5 characters without padding (a length of 4n+1 cannot encode whole bytes)"),
    ("Zm9vY===", "invalid base64 length: 5 characters without padding (a length of 4n+1 cannot encode whole bytes)"),
    ("Zg=", "incorrect base64 padding: 1 '=' after 2 characters (expected 2 or none)"),
    ("Zg===", "incorrect base64 padding: 3 '=' after 2 characters (expected 2 or none)"),
    ("Zm8==", "incorrect base64 padding: 2 '=' after 3 characters (expected 1 or none)"),
    ("Zm9v=", "incorrect base64 padding: 1 '=' after 4 characters (expected none)"),
    ("Zm9v====", "incorrect base64 padding: 4 '=' after 4 characters (expected none)"),
    ("=", "incorrect base64 padding: 1 '=' after 0 characters (expected none)"),
    ("==", "incorrect base64 padding: 2 '=' after 0 characters (expected none)"),
]


@pytest.mark.parametrize("text, message", MALFORMED)
def test_decode_malformed(codec, text, message):
    with pytest.raises(Base64Error) as info:
        codec.decode_base64url(text)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.both_implementations
def test_error_class_is_shared():
    assert ext.Base64Error is ext.errors.Base64Error
    for impl in ext.implementations().values():
        with pytest.raises(ext.Base64Error):
            impl.decode_base64url("Z")


# ---------------------------------------------------------------- properties


@given(st.binary(max_size=200), st.booleans())
@settings(max_examples=500)
def test_round_trip(codec, data, pad):
    text = codec.encode_base64url(data, pad=pad)
    assert text == base64.urlsafe_b64encode(data).decode("ascii").rstrip("=" if not pad else "")
    assert codec.decode_base64url(text) == data
    # the standard alphabet decodes to the same bytes
    assert codec.decode_base64url(base64.b64encode(data).decode("ascii")) == data


b64_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/", max_size=80)


@given(b64_text, st.booleans())
@settings(max_examples=500)
def test_agrees_with_stdlib_on_valid_input(codec, text, pad):
    if len(text) % 4 == 1:
        with pytest.raises(Base64Error):
            codec.decode_base64url(text)
        return
    given_text = padded(text) if pad else text
    urlsafe = text.replace("+", "-").replace("/", "_")
    assert codec.decode_base64url(given_text) == base64.urlsafe_b64decode(padded(urlsafe))


messy = st.lists(
    st.one_of(st.sampled_from(list("Zm9v=-_+/ \n") + ["=="]), st.characters()), max_size=30
).map("".join)


@pytest.mark.both_implementations
@given(messy)
@settings(max_examples=500)
def test_random_text_never_crashes_and_implementations_agree(text):
    results = {name: outcome(impl.decode_base64url, text) for name, impl in ext.implementations().items()}
    values = list(results.values())
    assert all(v == values[0] for v in values), results
    if values[0][0] == "ok":
        assert type(values[0][1]) is bytes


@pytest.mark.both_implementations
@given(st.binary(max_size=100), st.booleans())
def test_encoders_agree(data, pad):
    results = {name: impl.encode_base64url(data, pad) for name, impl in ext.implementations().items()}
    assert len(set(results.values())) == 1, results
