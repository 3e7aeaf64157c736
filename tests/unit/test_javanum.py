"""ext.javanum: Java's BigDecimal parsing, the plain form read by Decimal exactly as the general reader reads it."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext.javanum import JavaNumberFormat, _java_big_decimal, java_big_decimal

PLAIN = st.builds(lambda sign, whole, point, frac: sign + whole + point + frac,
                  st.sampled_from(["", "+", "-"]), st.text("0123456789", max_size=30), st.sampled_from(["", "."]),
                  st.text("0123456789", max_size=30)).filter(lambda v: any(c.isdigit() for c in v))


@settings(max_examples=2000, deadline=None)
@given(PLAIN)
def test_the_plain_form_reads_as_the_general_reader_reads_it(value):
    fast, general = java_big_decimal(value), _java_big_decimal(value)
    assert fast.as_tuple() == general.as_tuple()  # the same digits, sign and scale: the same text is written
    assert str(fast) == str(general)


@pytest.mark.parametrize("value, expected", [
    ("12.50", "12.50"), ("-0", "-0"), ("+7", "7"), (".5", "0.5"), ("5.", "5"), ("007.10", "7.10"),
    # not the plain form, so the general reader: an exponent, Arabic-Indic and full-width digits
    ("1e3", "1E+3"), ("\u0661\u0662", "12"), ("\uff11", "1"),
])
def test_decimals_are_read_as_java_reads_them(value, expected):
    assert str(java_big_decimal(value)) == expected


@pytest.mark.parametrize("value", ["", "+", "-", ".", "+.", "1.2.3", " 1", "1 ", "NaN", "1_0", "0x10", "1\n"])
def test_what_java_refuses_is_refused(value):
    with pytest.raises(JavaNumberFormat):
        java_big_decimal(value)


@pytest.mark.parametrize("value, message", [
    # Java reads a char at a time: a character beyond the BMP is two, its first half named (written "?"), and
    # the text's length counts both halves (found by the oracle's fuzz corpus)
    ("\U0001f600", 'Character ? is neither a decimal digit number, decimal point, nor "e" notation exponential mark.'),
    ("1\U0001f600" * 6, 'Character ? is neither a decimal digit number, decimal point, nor "e" notation exponential mark.'),
    ("1\U0001f600" * 7, "Character array is missing \"exponent\" mark 'e' or 'E'."),  # 21 chars: not the compact form
    ("\u00e9", 'Character \u00e9 is neither a decimal digit number, decimal point, nor "e" notation exponential mark.'),
])
def test_characters_beyond_the_bmp_are_two_java_chars(value, message):
    with pytest.raises(JavaNumberFormat) as refused:
        java_big_decimal(value)
    assert refused.value.message == message
