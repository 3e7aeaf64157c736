"""Round-trip properties for the codecs whose own test files lack one (TSV, params, URLs).

Thrift (test_thrift.py), query strings (test_querystring.py) and base64url
(test_base64url.py) already have theirs.  Each property here builds the value
first, writes it the way a producer would, and requires the codec (both
implementations, through the ``codec`` fixture) to give the value back.
"""
import math
from datetime import datetime, timedelta
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from tests.param_tables import param_table

EPOCH = datetime(1970, 1, 1)
MIN_MS, MAX_MS = -62135596800000, 253402300799999

# ---------------------------------------------------------------- TSV: join_tsv, then split and parse back

tsv_fields = st.one_of(
    st.tuples(st.just(ext.KIND_STRING), st.none() | st.text(max_size=30)),
    st.tuples(st.just(ext.KIND_INT), st.none() | st.integers() | st.booleans()),
    st.tuples(st.just(ext.KIND_BOOL), st.booleans() | st.sampled_from([0, 1])),
    st.tuples(st.just(ext.KIND_FLOAT), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just(ext.KIND_DECIMAL), st.integers() | st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just(ext.KIND_TIMESTAMP), st.integers(MIN_MS, MAX_MS)),
)


def read_back(kind, text):
    """A field of the row as a consumer parses it."""
    if text == "":
        return None
    if kind == ext.KIND_INT:
        return int(text)
    if kind == ext.KIND_BOOL:
        return text == "1"
    if kind == ext.KIND_FLOAT:
        return float(text)
    if kind == ext.KIND_DECIMAL:
        return float(text) if any(c in text for c in ".eEn") else int(text)
    if kind == ext.KIND_TIMESTAMP:
        dt = datetime.strptime(text.rjust(23, "0"), "%Y-%m-%d %H:%M:%S.%f")
        return (dt - EPOCH) // timedelta(milliseconds=1)
    return text


def expected(kind, value):
    if value is None or value == "":  # TSV has no empty string apart from an absent value
        return None
    if kind == ext.KIND_STRING:
        return value.translate({9: " ", 10: " ", 13: " "})
    if kind in (ext.KIND_INT, ext.KIND_BOOL) and isinstance(value, bool):
        return int(value) if kind == ext.KIND_INT else value
    if kind == ext.KIND_BOOL:
        return bool(value)
    return value


@settings(max_examples=400, deadline=None)
@given(st.lists(tsv_fields, max_size=25))
def test_tsv_row_reads_back_field_by_field(codec, fields):
    kinds = tuple(k for k, _ in fields)
    values = tuple(v for _, v in fields)
    calls = []
    row = codec.join_tsv(values, kinds, lambda i, v: calls.append((i, v)) or "")
    assert calls == []  # everything here is formatted by the codec itself
    texts = row.split("\t") if fields else []
    if not fields:
        assert row == ""
    assert "\n" not in row and "\r" not in row and len(texts) == len(fields)
    for (kind, value), text in zip(fields, texts):
        got = read_back(kind, text)
        want = expected(kind, value)
        if isinstance(want, float):
            assert got == want and math.copysign(1, got) == math.copysign(1, want), (text, value)
        else:
            assert got == want and type(got) is type(want), (kind, value, text)


# ---------------------------------------------------------------- params: a record written as tracker parameters

TABLE = param_table({"pv": "page_view", "se": "struct", "ue": "unstruct"}, "an event type")
CODES = {"page_view": "pv", "struct": "se", "unstruct": "ue"}


@st.composite
def records(draw):
    """(fields the event should get, the parameters a tracker sends for them)."""
    fields, params = {}, {}
    if draw(st.booleans()):
        fields["event"] = draw(st.sampled_from(sorted(CODES)))
        params["e"] = CODES[fields["event"]]
    if draw(st.booleans()):
        params["aid"] = draw(st.text(min_size=1, max_size=20))
        # Snowplow's makeTsvSafe: a tab is four spaces, other control characters go; nothing left is no value
        cleaned = "".join("    " if c == "\t" else c for c in params["aid"] if c == "\t" or not (c < " " or c == "\x7f"))
        fields["app_id"] = cleaned or None  # stored as no value, as Snowplow sets its field to null
    if draw(st.booleans()):
        u = draw(st.uuids())
        fields["event_id"] = str(u)
        params["eid"] = draw(st.sampled_from([str(u), str(u).upper()]))
    if draw(st.booleans()):
        n = draw(st.integers(-(2**31), 2**31 - 1))
        fields["domain_sessionidx"], params["vid"] = n, str(n)
    if draw(st.booleans()):
        ms = draw(st.integers(0, 253_402_300_799_999))
        fields["dvce_created_tstamp"], params["dtm"] = ms, str(ms)
    if draw(st.booleans()):
        flag = draw(st.sampled_from([0, 1]))
        fields["br_cookies"], params["cookie"] = flag, str(flag)
    if draw(st.booleans()):
        x = draw(st.floats(allow_nan=False, allow_infinity=False))
        fields["se_value"] = x
        params["se_va"] = draw(st.sampled_from([repr(x), str(x), f"{x:.17g}"]))
    if draw(st.booleans()):
        w, h = draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))
        fields["dvce_screenwidth"], fields["dvce_screenheight"] = w, h
        params["res"] = f"{w}x{h}"  # Snowplow's (\\d+)x(\\d+): a lower-case x only
    order = draw(st.permutations(sorted(params)))
    return fields, {k: params[k] for k in order}


@settings(max_examples=400, deadline=None)
@given(records())
def test_params_written_by_a_tracker_map_back_to_the_record(codec, record):
    fields, params = record
    target = SimpleNamespace()
    assert codec.map_params(params, target, TABLE) == []
    assert vars(target) == fields
    assert {k: type(v) for k, v in vars(target).items()} == {k: type(v) for k, v in fields.items()}


# ---------------------------------------------------------------- URLs: built from parts, split back

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.lists(label, min_size=1, max_size=4).map(".".join)
# characters java.net.URI takes in each part (a '%' only in an escape)
path_chars = st.sampled_from(list("abcXYZ019-._~!$&'()*+,;=:@/") + ["%20", "%C3%A9"])
paths = st.lists(path_chars, max_size=15).map(lambda cs: "/" + "".join(cs))
query_chars = st.sampled_from(list("abcXYZ019-._~!$&'()*+,;=:@/?[]") + ["%20", "e=pv&aid=x"])
queries = st.lists(query_chars, min_size=1, max_size=15).map("".join)
fragments = st.lists(st.sampled_from(list("abc019-._~!$&'()*+,;=:@/?")), min_size=1, max_size=10).map("".join)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["http", "https", "HTTP", "Https", "ftp", "chrome-extension", "a+b.c"]),
       hosts, st.sampled_from(["lower", "upper"]), st.none() | st.integers(0, 65535),
       st.none() | paths, st.none() | queries, st.none() | fragments)
def test_url_built_from_parts_splits_back_into_them(codec, scheme, host, case, port, path, query, fragment):
    url = f"{scheme}://{host.upper() if case == 'upper' else host}"
    url += f":{port}" if port is not None else ""
    url += path or ""
    url += f"?{query}" if query is not None else ""
    url += f"#{fragment}" if fragment is not None else ""
    # java.net.URI's parts (Snowplow enrich 3.9.0): scheme and host as written, 443 for "https" else 80; a
    # host name whose last label starts with a digit (and is not an IPv4 address) is no host
    want_port = port if port is not None else 443 if scheme == "https" else 80
    labels = host.split(".")
    # java.net.URI's IPv4 address: four dot-separated numbers of 1 to 3 digits, each at most 255
    ipv4 = len(labels) == 4 and all(label.isdigit() and len(label) <= 3 and int(label) <= 255 for label in labels)
    want_host = host.upper() if case == "upper" else host
    if not ipv4 and len(labels) > 1 and not labels[-1][0].isalpha():
        want_host, want_port = None, 443 if scheme == "https" else 80  # registry-based: no host, no port
    assert codec.split_url(url) == (scheme, want_host, want_port, path, query, fragment)
