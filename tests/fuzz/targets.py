"""Fuzz targets for the ``ext`` codecs, the adapters and the enrichment stage.

Each target is a function of one fuzzer input (``bytes``) that raises when it
finds a bug:

- codec targets call the compiled codec and its pure-Python twin on the same
  arguments and require the same result, or the same exception type and
  message (:class:`Disagreement` otherwise); an exception the codec does not
  document for that input (say an ``IndexError`` from the Thrift decoder) is
  re-raised with its traceback;
- ``adapt`` and ``enrich`` require that ``processor.adapters.adapt(payload)``
  and ``Enricher.enrich(raw)`` return (never raise) and that what they return
  is well formed (131-field TSV lines, bad rows that are JSON).

Structured inputs (TSV rows, parameter dicts, payloads) are built from the bytes
with :class:`atheris.FuzzedDataProvider`.  When the compiled extension is not
built, the codec targets still run the pure twin and its documented errors.

Run one with the runner below (``python -m tests.fuzz.targets --target thrift
--seconds 10``; ``bench/fuzz.py`` is the same runner for long runs).  libFuzzer
writes a crashing input to ``crash-*`` in ``--artifacts`` and exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.parse
from decimal import Decimal
from types import SimpleNamespace

import atheris

with atheris.instrument_imports(include=["ext", "processor"]):
    import ext
    from ext import Base64Error, CollectorPayload, QueryStringError, ThriftDecodeError
    from ext.thrift_py import FIELDS as thrift_fields
    from processor import adapters
    from processor.enriched import FIELDS
    from processor.iglu import Resolver
    from processor.stage import Enricher
    from tests.param_tables import param_table  # inside: its ext import must come instrumented

    adapters.load_webhooks()  # imported here so that the webhook adapters are instrumented too


IMPLEMENTATIONS = ext.implementations()
PYTHON = IMPLEMENTATIONS["python"]
COMPILED = IMPLEMENTATIONS.get("compiled")


class Disagreement(AssertionError):
    """The compiled codec and its pure-Python twin did not agree."""


def _outcome(function, args):
    try:
        return ("ok", function(*args)), None
    except Exception as exc:  # noqa: BLE001 -- compared below; unexpected ones are re-raised
        return ("error", type(exc).__name__, str(exc)), exc


def agree(name: str, *args, allowed: tuple = ()):
    """``ext.<name>(*args)`` on both implementations, which must agree; returns the
    outcome, ``("ok", result)`` or ``("error", type name, message)``.  An exception
    that is not an instance of one of ``allowed`` is re-raised (from the twin)."""
    python, exc = _outcome(getattr(PYTHON, name), args)
    if COMPILED is not None:
        compiled, _ = _outcome(getattr(COMPILED, name), args)
        if compiled != python:
            raise Disagreement(f"{name}{args!r}:\n  compiled: {compiled!r}\n  python:   {python!r}")
    if exc is not None and not isinstance(exc, allowed):
        raise exc
    return python


# ---------------------------------------------------------------- text builders

def pieces_text(fdp: atheris.FuzzedDataProvider, pieces: list, max_pieces: int = 40) -> str:
    """Text made of the interesting ``pieces`` and arbitrary characters."""
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, max_pieces)):
        if fdp.ConsumeIntInRange(0, 3) == 0:
            out.append(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 4)))
        else:
            out.append(fdp.PickValueInList(pieces))
    return "".join(out)


def text(fdp: atheris.FuzzedDataProvider, pieces: list, max_len: int = 200) -> str:
    """Either arbitrary text (surrogates included) or text built from ``pieces``."""
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, max_len))
    if mode == 1:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, max_len))
    return pieces_text(fdp, pieces)


QS_PIECES = ["%", "%2", "%20", "%C3%A9", "%C3", "%A9", "%E2%82%AC", "%F0%9F%98%80", "%ED%A0%80",
             "%zz", "%G1", "%80", "%FF", "&", "=", "==", "+", "a", "e=pv", "aid", "é", "\U0001f600",
             "%25", "%26", "%3D", "%2B", "&&", " "]
B64_PIECES = ["A", "Q", "z", "9", "-", "_", "+", "/", "=", "==", "AAAA", "QQ", "eyJ", "\n", " ", "é", "*"]
URL_PIECES = ["http", "https", "HTTP", "ftp", "a+b", "1x", "://", ":/", ":", "//", "/", "?", "#", "@",
              "[", "]", "[::1]", "%", "%20", ".", "-", "_", "~", "=", "&", "\\", "\t", " ", "é",
              "\u2028", "example.com", "Shop.ACME.com", ":80", ":443", ":65535", ":65536", ":0",
              ":-1", ":x", "user:pw@", "\x00", "\x7f"]


# ---------------------------------------------------------------- codec targets

def fuzz_thrift(data: bytes) -> None:
    """Thrift decode of arbitrary bytes; a decoded payload re-encodes identically
    on both implementations and decodes back to itself."""
    outcome = agree("decode_collector_payload", data, allowed=(ThriftDecodeError,))
    if outcome[0] != "ok":
        return
    payload = outcome[1]
    encoded = agree("encode_collector_payload", payload)
    assert encoded[0] == "ok", encoded
    again = agree("decode_collector_payload", encoded[1])
    assert again == ("ok", payload), (payload, again)


def fuzz_querystring(data: bytes) -> None:
    """``parse_query_string``, ``parse_uri_query`` and ``percent_decode`` of the same text."""
    fdp = atheris.FuzzedDataProvider(data)
    s = text(fdp, QS_PIECES)
    parsed = agree("parse_query_string", s, allowed=(QueryStringError,))
    decoded = agree("percent_decode", s, allowed=(QueryStringError,))
    if parsed[0] == "ok":
        assert all(type(k) is str and type(v) is str for k, v in parsed[1]), parsed
    if decoded[0] == "ok":
        assert type(decoded[1]) is str
    java = agree("parse_uri_query", s, allowed=(QueryStringError,))
    if java[0] == "ok":
        assert all(type(k) is str and k and (v is None or type(v) is str) for k, v in java[1]), java
    names = [text(fdp, QS_PIECES, max_len=8) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    for last in (True, False):
        found = agree("find_parameters", s, names, last, allowed=(QueryStringError,))
        assert found[0] == "ok", found
        assert all(piece.partition("=")[0] == name for name, piece in found[1].items()), found


def fuzz_base64url(data: bytes) -> None:
    """``decode_base64url`` of text; ``encode_base64url`` of bytes round-trips."""
    fdp = atheris.FuzzedDataProvider(data)
    s = text(fdp, B64_PIECES)
    agree("decode_base64url", s, allowed=(Base64Error,))
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    for pad in (False, True):
        encoded = agree("encode_base64url", raw, pad)
        assert agree("decode_base64url", encoded[1]) == ("ok", raw)


class Fallback:
    """The ``fallback`` of ``join_tsv``: records its calls; raises for one index."""

    def __init__(self, raise_at: int):
        self.calls = []
        self.raise_at = raise_at

    def __call__(self, index, value):
        self.calls.append((index, repr(value)))
        if index == self.raise_at:
            raise ValueError(f"no format for column {index}")
        return f"<{index}:{type(value).__name__}>"


def _tsv_value(fdp: atheris.FuzzedDataProvider):
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice == 0:
        return None
    if choice == 1:
        return text(fdp, ["\t", "\n", "\r", "a", "é", "\x00", "\\t"], 40)
    if choice == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 10))
    if choice == 3:  # around the timestamp range (years 1 to 9999)
        return fdp.PickValueInList([-62135596800000, 253402300799999, 0, -1]) + fdp.ConsumeIntInRange(-2, 2)
    if choice == 4:
        return fdp.ConsumeBool()
    if choice == 5:
        return fdp.ConsumeFloat()
    if choice == 6:
        return fdp.PickValueInList([0, 1, 2, -1])
    if choice == 7:
        return Decimal(fdp.ConsumeIntInRange(-10**6, 10**6)).scaleb(-fdp.ConsumeIntInRange(0, 4))
    if choice == 8:
        return [{"schema": "iglu:a/b/jsonschema/1-0-0", "data": {}}]
    return b"bytes"


def fuzz_tsv(data: bytes) -> None:
    """``join_tsv`` and ``oversized`` on fuzzed rows of mixed kinds and values; ``join_lines`` on fuzzed bytes."""
    fdp = atheris.FuzzedDataProvider(data)
    n = fdp.ConsumeIntInRange(0, 12)
    values, kinds, limits = [], [], []
    for _ in range(n):
        kinds.append(fdp.ConsumeIntInRange(0, 7) if fdp.ConsumeIntInRange(0, 30) else fdp.ConsumeInt(2))
        values.append(_tsv_value(fdp))
        limits.append(fdp.ConsumeIntInRange(-1, 20))
    if n and fdp.ConsumeIntInRange(0, 20) == 0:
        kinds.pop()  # a length mismatch
    raise_at = fdp.ConsumeIntInRange(-1, n)
    values, kinds, limits = tuple(values), tuple(kinds), tuple(limits)
    recorders = {}
    results = {}
    for name, impl in IMPLEMENTATIONS.items():
        recorders[name] = Fallback(raise_at)
        results[name], exc = _outcome(impl.join_tsv, (values, kinds, recorders[name]))
        if exc is not None and not isinstance(exc, ValueError):
            raise exc
    if len(set(results.values())) != 1 or len({repr(r.calls) for r in recorders.values()}) != 1:
        raise Disagreement(f"join_tsv{(values, kinds)!r} raise_at={raise_at}:\n  {results!r}\n  "
                           f"{ {k: r.calls for k, r in recorders.items()}!r}")
    outcome = next(iter(results.values()))
    if outcome[0] == "ok":
        assert outcome[1].count("\t") == max(len(values) - 1, 0) and "\n" not in outcome[1], outcome
    if len(limits) == len(values):
        found = agree("oversized", values, limits)
        assert found == ("ok", [i for i, (v, m) in enumerate(zip(values, limits))
                                if m >= 0 and type(v) is str and len(v) > m]), found
    lines = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    joined = agree("join_lines", lines)
    assert joined[0] == "ok" and joined[1].count(b"\n") == len(lines) and b"\r" not in joined[1], joined


class Refusal(Exception):
    def __init__(self, expectation):
        super().__init__(expectation)
        self.expectation = expectation


def _call_converter(value: str):
    if value.startswith("!"):
        raise Refusal("no exclamations")
    return len(value)


PARAM_TABLE = param_table({"pv": "page_view", "se": "struct"}, "not recognised as an event type", _call_converter)
PARAM_PIECES = ["0", "1", "9", "-", "+", "x", "X", "e", "E", ".", "inf", "nan", "pv", "se", "!",
                "2147483647", "2147483648", "-2147483648", "253402300799999", "253402300800000",
                "a1b2c3d4-", "ABCDEF", "0x10", " ", "\u0663", "\uff11", "_", "1_000", "é"]


def fuzz_params(data: bytes) -> None:
    """``map_params`` on a fuzzed parameter dict (every kind of conversion)."""
    fdp = atheris.FuzzedDataProvider(data)
    params = {}
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        name = fdp.PickValueInList(sorted(PARAM_TABLE) + ["other"])
        params[name] = text(fdp, PARAM_PIECES, 40)

    def run(impl):
        target = SimpleNamespace()
        refused = impl.map_params(params, target, PARAM_TABLE)
        return vars(target), refused

    outcomes = {name: _outcome(run, (impl,)) for name, impl in IMPLEMENTATIONS.items()}
    if len({repr(o) for o, _ in outcomes.values()}) != 1:
        raise Disagreement(f"map_params({params!r}):\n  {outcomes!r}")
    _, exc = outcomes["python"]
    if exc is not None:
        raise exc


def fuzz_url(data: bytes) -> None:
    """``split_url`` on fuzzed URLs."""
    fdp = atheris.FuzzedDataProvider(data)
    outcome = agree("split_url", text(fdp, URL_PIECES))
    result = outcome[1]
    if result is not None:
        # java.net.URI's parts: a port is always given (80 or 443 when the URL has none, else any Java int it
        # has); scheme and host may be missing ("//host/path", "/path", "not a url")
        port = result[2]
        assert isinstance(port, int) and 0 <= port < 2**31, result


# ---------------------------------------------------------------- adapters and the stage

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PATHS = ["/i", "/ice.png", TP2, "/r/tp2", "/com.snowplowanalytics.iglu/v1", "/", "", "//", "/a/b/c",
         "/com.acme/v9", "i"] + [f"/{v}/{ver}" for v, ver in [
             ("com.amazon.aws.cloudfront", "wd_access_log"), ("com.callrail", "v1"), ("com.getvero", "v1"),
             ("com.google.analytics.measurement-protocol", "v1"), ("com.hubspot", "v1"),
             ("com.mailchimp", "v1"), ("com.mailgun", "v1"), ("com.mandrill", "v1"), ("com.marketo", "v1"),
             ("com.olark", "v1"), ("com.pagerduty", "v1"), ("com.pingdom", "v1"), ("com.sendgrid", "v3"),
             ("com.statusgator", "v1"), ("com.unbounce", "v1"), ("com.urbanairship.connect", "v1")]]
CONTENT_TYPES = [None, "application/json", "application/json; charset=utf-8",
                 "application/x-www-form-urlencoded", "text/plain", "multipart/form-data", ""]
JSON_PIECES = ["{", "}", "[", "]", ",", ":", '"', '"e"', '"pv"', '"schema"', '"data"', '"ue_px"', '"cx"',
               '"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"',
               '"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"',
               '"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"',
               "1", "-1e999", "1e400", "null", "true", "\\u0000", "\\ud800", '"eyJ9"', "NaN", " "]
QUERY_PARAMS = ["e=pv", "e=se", "e=ue", "e=pp", "e=tr", "e=ti", "e=xx", "aid=a", "p=web", "tv=js-3",
                "eid=11111111-1111-4111-8111-111111111111", "eid=x", "dtm=1764288000000", "dtm=-1", "dtm=0",
                "stm=253402300799999", "stm=1764288000000", "ttm=1", "dtm=253402300799999",
                "res=1920x1080", "res=9999999999x1", "url=https%3A%2F%2Fa.com%2Fp%3Fq%3D1",
                "refr=http%3A%2F%2Fb", "ue_px=eyJ9", "ue_pr=%7B%7D", "cx=e30", "co=%7B%7D", "u=https%3A%2F%2Fx",
                "tr_tt=1.5", "tr_tt=nan", "se_va=1e309", "vid=2147483648", "cookie=2", "page=%FF", "%",
                "duid=abc", "sid=abc", "ip=1.2.3.4", "ua=x", "tz=Europe%2FParis"]


WEBHOOK_KEYS = ["timestamp", "version", "vendor", "schema", "message", "messages", "mandrill_events", "type",
                "url", "ts", "transaction", "text", "event", "events", "id", "eid", "data", "error", "ms",
                "lead", "data[email]", "data[merges][EMAIL]", "fired_at", "data.json", "page_id", "v", "t",
                "tid", "cid", "dl", "cu", "co", "e", "se_ca", "attachmentCount", "occurred", "created_at"]


def json_value(fdp: atheris.FuzzedDataProvider, depth: int = 0):
    """A JSON value built of the keys the webhook adapters read."""
    choice = fdp.ConsumeIntInRange(0, 7 if depth < 4 else 4)
    if choice == 0:
        return None
    if choice == 1:
        return fdp.ConsumeBool()
    if choice == 2:
        return fdp.PickValueInList([0, -1, 1764288000, 1764288000123, 2**63, 1.5, 1e308])
    if choice in (3, 4):
        return text(fdp, QUERY_PARAMS + ["iglu:com.acme/x/jsonschema/1-0-0", "2024-01-02T03:04:05Z"], 30)
    if choice == 5:
        return [json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {fdp.PickValueInList(WEBHOOK_KEYS): json_value(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 5))}


def fuzz_body(fdp: atheris.FuzzedDataProvider):
    mode = fdp.ConsumeIntInRange(0, 5)
    if mode == 0:
        return None
    if mode == 1:
        return pieces_text(fdp, JSON_PIECES, 60)
    if mode == 2:
        events = [dict(p.split("=", 1) for p in (fdp.PickValueInList(QUERY_PARAMS)
                                                 for _ in range(fdp.ConsumeIntInRange(0, 6))) if "=" in p)
                  for _ in range(fdp.ConsumeIntInRange(0, 3))]
        return json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                           "data": events})
    if mode == 3:  # JSON, as most webhooks post
        return json.dumps(json_value(fdp), allow_nan=False)
    if mode == 4:  # a form, as Mailchimp, Mandrill, Pingdom... post
        values = (json.dumps(json_value(fdp)) if fdp.ConsumeBool() else text(fdp, QS_PIECES, 20)
                  for _ in range(fdp.ConsumeIntInRange(0, 5)))
        return "&".join(f"{fdp.PickValueInList(WEBHOOK_KEYS)}={urllib.parse.quote(v, errors='surrogatepass')}"
                        for v in values)
    return text(fdp, QS_PIECES + JSON_PIECES, 300)


def fuzz_payload(fdp: atheris.FuzzedDataProvider) -> CollectorPayload:
    """A CollectorPayload shaped like what a collector writes, its parts fuzzed."""
    path = fdp.PickValueInList(PATHS) if fdp.ConsumeIntInRange(0, 10) else fdp.ConsumeUnicode(20)
    querystring = "&".join(fdp.PickValueInList(QUERY_PARAMS) for _ in range(fdp.ConsumeIntInRange(0, 8)))
    if fdp.ConsumeIntInRange(0, 4) == 0:
        querystring += text(fdp, QS_PIECES, 40)
    body = fuzz_body(fdp)
    return CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
        ip_address=fdp.PickValueInList(["203.0.113.9", "::1", "", "not an ip", "1.2.3.4, 5.6.7.8"]),
        timestamp=fdp.PickValueInList([1_764_288_000_123, 0, 1, -1, 2**63 - 1, 253_402_300_799_999]),
        encoding=fdp.PickValueInList(["UTF-8", "ISO-8859-1", "bogus"]),
        collector="snowmelt-fuzz",
        user_agent=fdp.PickValueInList([None, "Mozilla/5.0", "\t"]),
        referer_uri=fdp.PickValueInList([None, "https://a.com/r?q=1", "::"]),
        path=path, querystring=querystring or None, body=body,
        headers=[fdp.PickValueInList(["Host: c.acme.com", "Cookie: sp=abc", "X-Forwarded-For: 1.2.3.4", "bad"])
                 for _ in range(fdp.ConsumeIntInRange(0, 3))],
        content_type=fdp.PickValueInList(CONTENT_TYPES),
        hostname="c.acme.com",
        network_user_id=fdp.PickValueInList([None, "11111111-1111-4111-8111-111111111111", "x"]),
    )


def fuzz_adapt(data: bytes) -> None:
    """``adapt(payload)`` returns an ``Adapted`` for any payload: events or a failure."""
    payload = fuzz_payload(atheris.FuzzedDataProvider(data))
    adapted = adapters.adapt(payload)
    assert isinstance(adapted, adapters.Adapted), adapted
    assert adapted.failure is not None or isinstance(adapted.events, list), adapted


_ENRICHER = None


def enricher() -> Enricher:
    """The stage with the shipped schemas only (no network) and a fixed clock."""
    global _ENRICHER
    if _ENRICHER is None:
        _ENRICHER = Enricher(Resolver([]), clock=lambda: 1_764_288_005.0)
    return _ENRICHER


def fuzz_enrich(data: bytes) -> None:
    """``Enricher.enrich(raw)`` returns for any record: 131-field TSV lines and JSON bad rows."""
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeIntInRange(0, 7) == 0:
        raw = fdp.ConsumeBytes(atheris.ALL_REMAINING)
    else:
        payload = fuzz_payload(fdp)
        for _fid, _thrift_name, name, _ttype in thrift_fields:  # any text, as bytes a client could send
            value = getattr(payload, name)
            if isinstance(value, str):
                setattr(payload, name, value.encode("utf-8", "surrogatepass"))
        raw = ext.encode_collector_payload(payload)
    out = enricher().enrich(raw)
    for line in out.good:
        assert isinstance(line, str) and len(line.split("\t")) == len(FIELDS) and "\n" not in line, line
    for row in out.bad:
        doc = json.loads(row)
        assert isinstance(doc, dict) and doc.get("schema", "").startswith("iglu:"), doc


TARGETS = {
    "thrift": fuzz_thrift,
    "querystring": fuzz_querystring,
    "base64url": fuzz_base64url,
    "tsv": fuzz_tsv,
    "params": fuzz_params,
    "url": fuzz_url,
    "adapt": fuzz_adapt,
    "enrich": fuzz_enrich,
}


def seeds(target: str) -> list[bytes]:
    """Valid inputs to start from (the Thrift targets get real payloads)."""
    if target != "thrift":
        return []
    full = CollectorPayload(
        schema=ext.SCHEMA, ip_address="203.0.113.9", timestamp=1_764_288_000_123, encoding="UTF-8",
        collector="snowmelt", user_agent="Mozilla/5.0", referer_uri="https://a.com/", path=TP2,
        querystring="e=pv&aid=a", body='{"a":1}', headers=["Host: c.acme.com", "Cookie: sp=1"],
        content_type="application/json", hostname="c.acme.com", network_user_id="n")
    return [ext.encode_collector_payload(full), ext.encode_collector_payload(CollectorPayload()),
            ext.encode_collector_payload(CollectorPayload(schema=ext.SCHEMA, path="/i"))]


def main(argv: list[str] | None = None) -> None:
    """Fuzz one target: ``--target NAME --seconds N`` (or ``--runs N``); libFuzzer
    options after ``--``.  Exits 0 when the time or runs are used up without a
    crash; otherwise libFuzzer prints the traceback, writes the input to
    ``--artifacts``/crash-* and exits non-zero."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=-1, help="stop after this many inputs (-1: no limit)")
    parser.add_argument("--corpus", help="a folder kept between runs (default: a temporary one)")
    parser.add_argument("--artifacts", default=".", help="where libFuzzer writes crash-*/timeout-* inputs")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take (a hang)")
    parser.add_argument("libfuzzer", nargs="*", help="more libFuzzer flags, after --")
    args = parser.parse_args(argv)
    corpus = args.corpus or tempfile.mkdtemp(prefix=f"snowmelt-fuzz-{args.target}-")
    os.makedirs(corpus, exist_ok=True)
    for i, seed in enumerate(seeds(args.target)):
        with open(os.path.join(corpus, f"seed-{i}"), "wb") as f:
            f.write(seed)
    artifacts = os.path.join(os.path.abspath(args.artifacts), "")
    flags = [sys.argv[0], f"-max_total_time={args.seconds}", f"-timeout={args.timeout}",
             f"-artifact_prefix={artifacts}", "-rss_limit_mb=2048", "-print_final_stats=1"]
    if args.runs >= 0:
        flags.append(f"-runs={args.runs}")
    atheris.Setup(flags + args.libfuzzer + [corpus], TARGETS[args.target])
    print(f"fuzzing {args.target} ({'compiled and python' if COMPILED else 'python only'}) "
          f"for {args.seconds}s, corpus {corpus}", flush=True)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
