"""Enriched-TSV row assembly (``join_tsv``) and length checks (``oversized``): both implementations.

Expected rows are written out by hand or computed with the per-kind formatters
of ``processor.enriched`` (``format_timestamp`` etc.), which share no code with
the codecs' fast paths; random rows are checked against the formatting
``to_tsv`` did before it called the codec (re-implemented here as ``reference_row``).
"""

import random
import struct
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from ext import tsv_py
from processor import enriched
from processor.enriched import (
    FIELDS,
    EnrichedEvent,
    format_timestamp,
    oversized_fields,
    to_tsv,
)

S, I, B, F, D, T, J = (
    tsv_py.KIND_STRING,
    tsv_py.KIND_INT,
    tsv_py.KIND_BOOL,
    tsv_py.KIND_FLOAT,
    tsv_py.KIND_DECIMAL,
    tsv_py.KIND_TIMESTAMP,
    tsv_py.KIND_JSON,
)
KIND_NAMES = {"string": S, "int": I, "bool": B, "float": F, "decimal": D, "timestamp": T, "json": J}

MIN_MS = -62135596800000  # 0001-01-01 00:00:00.000
MAX_MS = 253402300799999  # 9999-12-31 23:59:59.999


def no_fallback(index, value):
    raise AssertionError(f"fallback called for {index}: {value!r}")


class Recorder:
    """A fallback that records its calls and formats as ``<i:repr>``."""

    def __init__(self):
        self.calls = []

    def __call__(self, index, value):
        self.calls.append((index, value))
        return f"<{index}:{value!r}>"


def row(codec, values, kinds, fallback=no_fallback):
    return codec.join_tsv(tuple(values), tuple(kinds), fallback)


def outcome(function, *args):
    try:
        return ("ok", function(*args))
    except (TypeError, ValueError, OverflowError) as exc:
        return ("error", type(exc).__name__, str(exc))


# ---------------------------------------------------------------- the module itself


def test_same_names_and_codes(codec):
    for name in tsv_py.__all__:
        assert hasattr(codec, name)
        if name.startswith("KIND_"):
            assert getattr(codec, name) == getattr(tsv_py, name)
    codes = [getattr(tsv_py, n) for n in tsv_py.__all__ if n.startswith("KIND_")]
    assert sorted(codes) == list(range(7))


def test_enriched_uses_the_chosen_implementation():
    assert enriched._join_tsv is ext.join_tsv
    assert enriched._oversized is ext.oversized
    assert len(enriched._KINDS) == len(enriched._LIMITS) == 131


# ---------------------------------------------------------------- exact examples


@pytest.mark.parametrize("kind", [S, I, B, F, D, T, J])
def test_none_is_empty(codec, kind):
    assert row(codec, [None, None], [kind, kind]) == "\t"


def test_empty_row(codec):
    assert row(codec, [], []) == ""


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", ""),
        ("plain", "plain"),
        ("a\tb", "a b"),
        ("a\nb\rc\r\nd", "a b c  d"),
        ("\t\n\r", "   "),
        ("\x0b\x0c\x00\x1f", "\x0b\x0c\x00\x1f"),  # only tab, newline, CR are replaced
        ("café\tau lait", "café au lait"),
        ("\u2603\n\u2603", "\u2603 \u2603"),
        ("\U0001f600\t\U0001f600", "\U0001f600 \U0001f600"),
        ("\u2028\x85", "\u2028\x85"),  # other line breaks are kept, as before
        ("x" * 10000 + "\t", "x" * 10000 + " "),
    ],
)
@pytest.mark.parametrize("kind", [S, I, B, F, D, T, J])
def test_strings_are_made_tsv_safe_in_every_kind(codec, value, expected, kind):
    assert row(codec, [value], [kind]) == expected


@pytest.mark.parametrize(
    "value",
    [0, 1, -1, 7, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**40, -(10**40)],
)
@pytest.mark.parametrize("kind", [S, I, D])
def test_ints(codec, value, kind):
    assert row(codec, [value], [kind]) == str(value)


def test_bools(codec):
    assert row(codec, [True, False, True, False, 1, 0], [B, B, I, I, B, B]) == "1\t0\t1\t0\t1\t0"


def test_floats(codec):
    values = [0.0, -0.0, 1.5, 51.5074, -0.1278, 1e300, 5e-324, 12.0]
    assert row(codec, values, [F] * 8) == "\t".join(repr(v) for v in values)
    assert row(codec, values, [D] * 8) == "\t".join(repr(v) for v in values)


def test_floats_written_again_are_their_own_text(codec):
    """The compiled writer keeps the text of the floats it wrote last by their bits: a float of other bits in
    the same place, written after, is its own text (0.0 and -0.0 included), every time."""
    rng = random.Random(7)
    values = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(3000)]
    values += [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 51.5074, -0.1278]
    for _ in range(3):  # written again, in another order: the kept texts are read back or replaced
        rng.shuffle(values)
        for start in range(0, len(values), 100):
            chunk = values[start:start + 100]
            assert row(codec, chunk, [F] * len(chunk)) == "\t".join(repr(v) for v in chunk)


@pytest.mark.parametrize(
    "ms",
    [0, 1, -1, 999, 1000, 86399999, 86400000, -86400000, -86400001, 1700000000123, 951782400000,
     4107542400000, 253402300799999, 253402300799000, -62135596800000, -62135596799999,
     -2208988800000, 946684799999, 946684800000],
)
def test_timestamps_from_epoch_ms(codec, ms):
    assert row(codec, [ms], [T]) == format_timestamp(ms)


def test_timestamp_examples(codec):
    assert row(codec, [0], [T]) == "1970-01-01 00:00:00.000"
    assert row(codec, [-1], [T]) == "1969-12-31 23:59:59.999"
    assert row(codec, [1700000000123], [T]) == "2023-11-14 22:13:20.123"
    assert row(codec, [951782400000], [T]) == "2000-02-29 00:00:00.000"
    assert row(codec, [MAX_MS], [T]) == "9999-12-31 23:59:59.999"
    assert row(codec, [MIN_MS], [T]) == "0001-01-01 00:00:00.000"


def test_timestamps_every_year_1970_to_9999(codec):
    # Jan 1, Feb 28/29, Mar 1 and Dec 31 (last ms) of every year, plus a midday instant
    values = []
    for year in range(1970, 10000):
        start = datetime(year, 1, 1)
        for dt in (start, datetime(year, 2, 28, 12, 34, 56, 789000), datetime(year, 3, 1),
                   datetime(year, 12, 31, 23, 59, 59, 999000)):
            values.append((dt - datetime(1970, 1, 1)) // timedelta(milliseconds=1))
    got = row(codec, values, [T] * len(values)).split("\t")
    assert got == [format_timestamp(ms) for ms in values]


@given(st.integers(MIN_MS, MAX_MS))
@settings(max_examples=500, deadline=None)
def test_timestamps_random(codec, ms):
    assert row(codec, [ms], [T]) == format_timestamp(ms)


def test_values_not_handled_natively_go_to_fallback(codec):
    dt = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    values = [Decimal("12.50"), dt, [{"schema": "s", "data": {}}], {"a": 1}, True, 1.5, 2, 5,
              MAX_MS + 1, MIN_MS - 1, 2**64, "x", 3.0, b"bytes", 7]
    kinds = [D, T, J, J, S, S, F, B, T, T, T, S, T, S, F]
    rec = Recorder()
    out = row(codec, values, kinds, rec)
    expected_fallback = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14]
    assert [i for i, _ in rec.calls] == expected_fallback
    assert out.split("\t") == [
        "x" if i == 11 else f"<{i}:{values[i]!r}>" for i in range(len(values))
    ]


def test_str_subclass_goes_to_fallback(codec):
    class Name(str):
        pass

    rec = Recorder()
    assert row(codec, [Name("a\tb")], [S], rec) == "<0:'a\\tb'>"
    assert rec.calls == [(0, "a\tb")]


def test_fallback_errors_propagate(codec):
    def boom(index, value):
        raise TypeError(f"bad {index}")

    with pytest.raises(TypeError, match="bad 1"):
        row(codec, ["a", Decimal(1)], [S, D], boom)


def test_fallback_must_return_str(codec):
    assert outcome(codec.join_tsv, ("a", Decimal(1)), (S, D), lambda i, v: 5) == outcome(
        tsv_py.join_tsv, ("a", Decimal(1)), (S, D), lambda i, v: 5
    )
    with pytest.raises(TypeError):
        codec.join_tsv(("a", Decimal(1)), (S, D), lambda i, v: 5)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((["a"], (S,)), TypeError, "values must be a tuple, not list"),
        ((("a",), [S]), TypeError, "kinds must be a tuple, not list"),
        ((("a", "b"), (S,)), ValueError, "2 values but 1 kinds"),
        ((("a",), (7,)), ValueError, "unknown field kind 7 at index 0"),
        ((("a", "b"), (S, -1)), ValueError, "unknown field kind -1 at index 1"),
        ((("a",), (True,)), ValueError, "unknown field kind True at index 0"),
        ((("a",), ("0",)), ValueError, "unknown field kind '0' at index 0"),
        ((("a",), (2**70,)), ValueError, f"unknown field kind {2**70} at index 0"),
        # kinds are all checked before any value is formatted
        (((Decimal(1), "b"), (D, 9)), ValueError, "unknown field kind 9 at index 1"),
    ],
)
def test_join_tsv_argument_errors(codec, args, error, message):
    with pytest.raises(error) as info:
        codec.join_tsv(*args, no_fallback)
    assert str(info.value) == message


# ---------------------------------------------------------------- oversized


def test_oversized_examples(codec):
    values = ("abc", "abcd", None, 12345, "", "x" * 5, "\U0001f600" * 3, "\U0001f600" * 4, "é" * 3, "\u2603" * 2)
    limits = (3, 3, 0, 1, 0, -1, 3, 3, 2, 2)
    assert codec.oversized(values, limits) == [1, 7, 8]


def test_oversized_counts_code_points(codec):
    for s in ["\U0001f600", "a\U0001f600b", "\u2603" * 10, "é", "\U00010000\U0010ffff"]:
        assert codec.oversized((s,), (len(s),)) == []
        assert codec.oversized((s,), (len(s) - 1,)) == [0]


def test_oversized_ignores_non_str_and_subclasses(codec):
    class Name(str):
        pass

    assert codec.oversized((Name("abcdef"), b"abcdef", 123456, ["a"] * 9), (1, 1, 1, 1)) == []


def test_oversized_huge_and_negative_limits(codec):
    assert codec.oversized(("abc", "abc", "abc"), (2**70, -(2**70), -5)) == []


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((["a"], (1,)), TypeError, "values must be a tuple, not list"),
        ((("a",), [1]), TypeError, "limits must be a tuple, not list"),
        ((("a",), (1, 2)), ValueError, "1 values but 2 limits"),
        ((("a",), (1.0,)), TypeError, "limit at index 0 must be an int, not float"),
        ((("a",), (True,)), TypeError, "limit at index 0 must be an int, not bool"),
    ],
)
def test_oversized_argument_errors(codec, args, error, message):
    with pytest.raises(error) as info:
        codec.oversized(*args)
    assert str(info.value) == message


# ---------------------------------------------------------------- against the previous formatting


def reference_row(values):
    """How to_tsv formatted a row before the codec: the per-kind formatter of each column."""
    return "\t".join("" if v is None else fmt(v) for v, fmt in zip(values, enriched._FORMATTERS))


def reference_oversized(values):
    return [
        (name, len(v), limit)
        for name, v, limit in zip(FIELDS, values, enriched._LIMITS)
        if limit >= 0 and v.__class__ is str and len(v) > limit
    ]


texts = st.text(alphabet=st.sampled_from("ab \t\n\r\x00é\u2603\U0001f600"), max_size=12) | st.text(max_size=8)
ints = st.integers(-(2**70), 2**70) | st.integers(-5, 5)


def value_for(kind):
    common = st.none() | texts
    if kind == "string":
        return common | ints | st.booleans()
    if kind == "int":
        return common | ints | st.booleans()
    if kind == "bool":
        return common | st.booleans() | st.sampled_from([0, 1])
    if kind == "float":
        return common | st.floats(allow_nan=False) | st.integers(-(10**6), 10**6)
    if kind == "decimal":
        return common | st.decimals(allow_nan=False, allow_infinity=False, places=2) | ints \
            | st.floats(allow_nan=False, allow_infinity=False)
    if kind == "timestamp":
        return common | st.integers(MIN_MS, MAX_MS) | st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none() | st.just(timezone.utc)
        )
    return common | st.lists(st.fixed_dictionaries({"schema": st.just("iglu:a/b/jsonschema/1-0-0"),
                                                       "data": st.dictionaries(texts, ints, max_size=2)}), max_size=2)


rows = st.tuples(*(
    (st.none() | texts | st.fixed_dictionaries({"schema": st.just("iglu:a/b/jsonschema/1-0-0"), "data": st.just({})}))
    if name == "unstruct_event" else value_for(kind)
    for name, kind in zip(FIELDS, (enriched.FIELD_KINDS[n] for n in FIELDS))
))


@pytest.mark.both_implementations
@given(rows)
@settings(max_examples=200, deadline=None)
def test_random_rows_agree_with_previous_formatting(values):
    expected = reference_row(values)
    results = {name: impl.join_tsv(values, enriched._KINDS, enriched._format_by_column)
               for name, impl in ext.implementations().items()}
    assert set(results.values()) == {expected}
    oversized = {name: impl.oversized(values, enriched._LIMITS) for name, impl in ext.implementations().items()}
    assert len({tuple(v) for v in oversized.values()}) == 1
    found = next(iter(oversized.values()))
    assert [(FIELDS[i], len(values[i]), enriched._LIMITS[i]) for i in found] == reference_oversized(values)


@pytest.mark.both_implementations
@given(st.lists(st.tuples(st.sampled_from([S, I, B, F, D, T, J]),
                          st.none() | texts | ints | st.booleans() | st.floats() | st.decimals()), max_size=20))
@settings(max_examples=300, deadline=None)
def test_random_tuples_both_implementations_agree(pairs):
    kinds = tuple(k for k, _ in pairs)
    values = tuple(v for _, v in pairs)
    recorders = {}
    results = {}
    for name, impl in ext.implementations().items():
        recorders[name] = Recorder()
        results[name] = outcome(impl.join_tsv, values, kinds, recorders[name])
    assert len(set(results.values())) == 1
    assert len({repr(r.calls) for r in recorders.values()}) == 1


@pytest.mark.both_implementations
@given(st.lists(st.tuples(st.none() | texts | st.text(max_size=300) | ints, st.integers(-1, 20)), max_size=20))
@settings(max_examples=300, deadline=None)
def test_random_oversized_agree(pairs):
    values = tuple(v for v, _ in pairs)
    limits = tuple(n for _, n in pairs)
    expected = [i for i, (v, n) in enumerate(pairs) if n >= 0 and type(v) is str and len(v) > n]
    for impl in ext.implementations().values():
        assert impl.oversized(values, limits) == expected


# ---------------------------------------------------------------- through processor.enriched


def test_to_tsv_and_oversized_fields_end_to_end():
    e = EnrichedEvent(app_id="a\tb", collector_tstamp=1700000000123, txn_id=-(2**70),
                      br_cookies=True, dvce_ismobile=0, geo_latitude=1.25, tr_total=Decimal("12.50"),
                      etl_tstamp=datetime(2024, 1, 2, 3, 4, 5, 6000), geo_country="FRA",
                      event_id="\U0001f600" * 36, page_title="é" * 2001)
    values = to_tsv(e).split("\t")
    assert values[0] == "a b"
    assert values[3] == "2023-11-14 22:13:20.123"
    assert values[2] == "2024-01-02 03:04:05.006"
    assert values[7] == str(-(2**70))
    assert values[enriched.FIELD_INDEX["br_cookies"]] == "1"
    assert values[enriched.FIELD_INDEX["dvce_ismobile"]] == "0"
    assert values[enriched.FIELD_INDEX["geo_latitude"]] == "1.25"
    assert values[enriched.FIELD_INDEX["tr_total"]] == "12.50"
    assert oversized_fields(e) == [("geo_country", 3, 2), ("page_title", 2001, 2000)]


def test_a_row_after_rows_of_other_kinds_is_formatted_by_its_own(codec):
    """The compiled codec keeps the last kinds and limits it read: a tuple of other kinds, even of equal
    contents or read again after others, is its own; a bad kind is refused whatever came before."""
    values = (1764288000000, 12, "a\tb")
    assert codec.join_tsv(values, (T, I, S), str) == "2025-11-28 00:00:00.000\t12\ta b"
    assert codec.join_tsv(values, (I, S, S), str) == "1764288000000\t12\ta b"
    assert codec.join_tsv(values, tuple([T, I, S]), str) == "2025-11-28 00:00:00.000\t12\ta b"
    with pytest.raises(ValueError, match="unknown field kind 99 at index 1"):
        codec.join_tsv(values, (T, 99, S), str)
    assert codec.oversized(("abc", "abc"), (2, 5)) == [0]
    assert codec.oversized(("abc", "abc"), (5, 2)) == [1]
    assert codec.oversized(("abc", "abc"), tuple([2, -1])) == [0]
    with pytest.raises(TypeError, match="limit at index 1 must be an int, not float"):
        codec.oversized(("abc", "abc"), (2, 1.5))
    for _ in range(3):  # the same tuple again and again
        assert codec.oversized(("abcdef", "ab"), LIMITS_TWO) == [0]


LIMITS_TWO = (3, 3)


# ---------------------------------------------------------------- join_lines


def test_join_lines_examples(codec):
    assert codec.join_lines([]) == b""
    assert codec.join_lines([b""]) == b"\n"
    assert codec.join_lines((b"a\tb", b"c")) == b"a\tb\nc\n"
    assert codec.join_lines([b"a\tb", b"c\nd", b"e\r\nf", b"\n", b"g\r"]) == b"a\tb\nc d\ne  f\n \ng \n"
    assert codec.join_lines(iter([b"x" * 70_000, b"y"])) == b"x" * 70_000 + b"\ny\n"


@pytest.mark.parametrize("values, message", [
    ([b"a", "b"], "value at index 1 must be bytes, not str"),
    ([bytearray(b"a")], "value at index 0 must be bytes, not bytearray"),
    ([None], "value at index 0 must be bytes, not NoneType"),
])
def test_join_lines_refuses_what_is_not_bytes(codec, values, message):
    with pytest.raises(TypeError, match=message):
        codec.join_lines(values)


@pytest.mark.both_implementations
@given(st.lists(st.binary(max_size=60) | st.sampled_from([b"\n", b"\r", b"a\r\nb", b"\n\n"]), max_size=30))
@settings(max_examples=300, deadline=None)
def test_join_lines_both_implementations_agree(values):
    expected = b"".join(v.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n" for v in values)
    for implementation in ext.implementations().values():
        assert implementation.join_lines(values) == expected


def ticks_during(join, values, calls: int, enough: int) -> int:
    """How often a thread that sleeps 0.2 ms at a time woke and ran while ``join(values)`` ran up to ``calls``
    times (until it had run ``enough`` times), with the interpreter's switch interval at 10 s: only code that lets
    go of the interpreter's lock lets it run."""
    import sys
    import threading

    ticks, done = [0], threading.Event()

    def tick():
        while not done.is_set():
            time.sleep(0.0002)
            ticks[0] += 1

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=tick)
    thread.start()
    sys.setswitchinterval(10)
    try:
        before = ticks[0]
        for _ in range(calls):
            join(values)
            if ticks[0] - before >= enough:
                break
        during = ticks[0] - before
    finally:
        sys.setswitchinterval(interval)
        done.set()
        thread.join()
    return during


def test_join_lines_lets_other_threads_run():
    """The compiled join copies and scans without the interpreter's lock, so the S3 loader's loop reads on
    while a batch is joined on its writer's side; the twin holds the lock throughout (the control)."""
    compiled = ext.implementations().get("compiled")
    if compiled is None:
        pytest.skip("compiled extensions not built")
    values = [b"v" * 1024] * 512  # one chunk of gzip_lines: below the 1 MB over which bytes.join lets go itself
    assert ticks_during(tsv_py.join_lines, values, 300, 3) <= 2
    assert ticks_during(compiled.join_lines, values, 20_000, 20) >= 20
