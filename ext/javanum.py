"""Java's number parsing and Joda's timestamp printing, for the rare values the fast paths leave.

Shared by both twins of ``ext.map_params`` (``ext/_params.pyx`` and ``ext/params_py.py``): they
scan the common ASCII forms themselves and call these for the rest, so the two cannot disagree.

Snowplow's enrich 3.9.0 converts tracker parameters with the JVM's own parsers
(``Integer.parseInt``, ``Long.parseLong``, ``new java.math.BigDecimal(String)``) and prints
timestamps with Joda-Time; what they accept and the messages they give are reproduced here from
their documented behaviour (JDK 17, which the 3.9.0 images run).
"""
from __future__ import annotations

import calendar
import re
from decimal import Decimal

__all__ = ["java_integer", "java_uuid", "joda_timestamp", "java_big_decimal", "JavaNumberFormat",
           "YEAR_0_MS", "YEAR_9999_END_MS"]

#: the instants Joda-Time prints with a four-digit year and no sign (``yyyy``): years 0 to 9999, which Snowplow's
#: enrich 3.9.0 takes as Redshift-compatible timestamps
YEAR_0_MS = -62_167_219_200_000  # 0000-01-01T00:00:00.000Z
YEAR_9999_END_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class JavaNumberFormat(ValueError):
    """A ``NumberFormatException``: ``message`` is its ``getMessage()`` (``None`` when Java gives none)."""

    def __init__(self, message: str | None):
        super().__init__(message)
        self.message = message


def java_integer(value: str, bits: int) -> int | None:
    """``Integer.parseInt`` (bits=32) or ``Long.parseLong`` (bits=64): an optional ``+``/``-`` then one or
    more decimal digits of any script (``Character.digit``), within the signed range; else None."""
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not digits or not all(c.isdecimal() for c in digits):
        return None
    number = int("".join(str(int(c)) for c in digits))
    if value[:1] == "-":
        number = -number
    if not -(1 << (bits - 1)) <= number < (1 << (bits - 1)):
        return None
    return number


def _java_hex_long(text: str) -> int | None:
    """``Long.parseLong(text, 16)`` of a part of a UUID (no ``-`` in it): an optional ``+``, then one or more
    digits of radix 16 as ``Character.digit`` reads them (decimal digits of any script, ``a``-``f`` and
    ``A``-``F`` in ASCII or full width), below 2**63; else None."""
    digits = text[1:] if text[:1] == "+" else text
    if not digits:
        return None
    number = 0
    for c in digits:
        if c in _ASCII_HEX:
            value = int(c, 16)
        elif c.isdecimal():
            value = int(c)
        elif "\uff21" <= c <= "\uff26" or "\uff41" <= c <= "\uff46":
            value = (ord(c) & 0x1F) + 9
        else:
            return None
        number = number * 16 + value
    return number if number < (1 << 63) else None


_ASCII_HEX = frozenset("0123456789abcdefABCDEF")
_CANONICAL_UUID = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: the bits ``UUID.fromString`` keeps of each of the five parts
_UUID_PART_BITS = (32, 16, 16, 16, 48)


def java_uuid(text: str) -> str | None:
    """``UUID.fromString(text).toString()`` (JDK 17), or None where it throws.

    Five parts between exactly four dashes, at most 36 characters (UTF-16 units), each part read by
    ``Long.parseLong(part, 16)`` (a ``+`` sign, any number of digits) and cut to its bits: ``1-2-3-4-5`` is
    ``00000001-0002-0003-0004-000000000005``, ``123456789-0-0-0-0`` is ``23456789-0000-...``.  The result is
    written as ``UUID.toString`` writes it: lower-case hex in the 8-4-4-4-12 form."""
    if _CANONICAL_UUID.fullmatch(text):
        return text
    if len(text) > 36 or not text.isascii() and len(text.encode("utf-16-le", "surrogatepass")) > 72:
        return None
    parts = text.split("-")
    if len(parts) != 5:
        return None
    values = []
    for part, bits in zip(parts, _UUID_PART_BITS):
        number = _java_hex_long(part)
        if number is None:
            return None
        values.append(number & ((1 << bits) - 1))
    return "%08x-%04x-%04x-%04x-%012x" % tuple(values)


def civil_date(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (any year)."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def days_in_month(year: int, month: int) -> int:
    """The days of a month of the proleptic Gregorian calendar (any year, year 0 a leap year)."""
    return 29 if month == 2 and calendar.isleap(year) else calendar.mdays[month]


def days_from_civil(year: int, month: int, day: int) -> int:
    """The day count from 1970-01-01 of a proleptic Gregorian date (any year): :func:`civil_date` undone."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def joda_timestamp(ms: int) -> str:
    """``yyyy-MM-dd HH:mm:ss.SSS`` in UTC as Joda-Time prints any instant: the year padded to 4 digits,
    with a minus sign before year 0 (``-0001-12-31 ...``) and more digits after 9999."""
    days, rest = divmod(ms, 86_400_000)
    year, month, day = civil_date(days)
    seconds, millis = divmod(rest, 1000)
    year_text = f"-{-year:04d}" if year < 0 else f"{year:04d}"
    return (f"{year_text}-{month:02d}-{day:02d} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
            f"{seconds % 60:02d}.{millis:03d}")


_MAX_COMPACT_DIGITS = 18


def _exponent(text: str, at: int) -> int:
    """``BigDecimal.parseExp``: the exponent after the ``e`` at ``at``."""
    i = at + 1
    if i >= len(text):
        raise JavaNumberFormat(None)  # an array index out of bounds, rethrown without a message
    negative = text[i] == "-"
    if text[i] in "+-":
        i += 1
        if i >= len(text):
            raise JavaNumberFormat(None)
    digits = text[i:]
    stripped = digits
    while len(stripped) > 10 and stripped[0].isdecimal() and int(stripped[0]) == 0:
        stripped = stripped[1:]
    if len(stripped) > 10:
        raise JavaNumberFormat("Too many nonzero exponent digits.")
    if not all(c.isdecimal() for c in stripped):
        raise JavaNumberFormat("Not a digit.")
    exponent = int("".join(str(int(c)) for c in stripped))
    return -exponent if negative else exponent


#: the common form of a decimal parameter (``12.5``, ``-3``, ``.5``): ASCII digits, at most one point, no exponent
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def java_big_decimal(value: str) -> Decimal:
    """``new java.math.BigDecimal(value)`` as a :class:`Decimal`, or :class:`JavaNumberFormat` with the
    message JDK 17 gives: an optional sign, digits of any script with at most one ``.``, then an
    optional ``e``/``E`` exponent (a 32-bit int); nothing else (no spaces, ``_``, ``NaN``, ``Infinity``)."""
    if _PLAIN_DECIMAL.fullmatch(value) is not None:  # Decimal reads this form as Java does (0.3 us, not 1.3-2.5)
        return Decimal(value)
    return _java_big_decimal(value)


def _java_big_decimal(value: str) -> Decimal:
    """:func:`java_big_decimal` of any text, a character at a time: a Java ``char`` at a time, so a character
    beyond the BMP is two (its halves are no digits, and a message names the first)."""
    if not value:
        raise JavaNumberFormat(None)
    if not value.isascii() and max(value) > "\uffff":
        units = value.encode("utf-16-le", "surrogatepass")
        value = "".join(map(chr, (int.from_bytes(units[i:i + 2], "little") for i in range(0, len(units), 2))))
    i = 1 if value[0] in "+-" else 0
    compact = len(value) - i <= _MAX_COMPACT_DIGITS
    mantissa: list[str] = []
    dot = False
    exponent = 0
    while i < len(value):
        c = value[i]
        if c.isdecimal():
            mantissa.append(str(int(c)))
        elif c == ".":
            if dot:
                raise JavaNumberFormat("Character array contains more than one decimal point.")
            dot = True
            mantissa.append(".")
        elif c in "eE":
            exponent = _exponent(value, i)
            if not -(1 << 31) <= exponent < (1 << 31):
                raise JavaNumberFormat("Exponent overflow.")
            break
        elif compact:
            shown = "?" if "\ud800" <= c <= "\udfff" else c  # half a character: Java's encoder writes "?"
            raise JavaNumberFormat(f"Character {shown} is neither a decimal digit number, decimal point, nor"
                                   " \"e\" notation exponential mark.")
        else:
            raise JavaNumberFormat("Character array is missing \"exponent\" mark 'e' or 'E'.")
        i += 1
    if not any(c != "." for c in mantissa):
        raise JavaNumberFormat("No digits found.")
    sign = "-" if value[0] == "-" else ""
    return Decimal(f"{sign}{''.join(mantissa)}E{exponent}")
