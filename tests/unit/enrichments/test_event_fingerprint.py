"""Event fingerprint enrichment: Snowplow's digest of the sorted tracker parameters."""
import hashlib
import json
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enrichments import ConfigError
from processor.stage import Enricher
from tests.services.payloads import PAYLOAD_DATA

from .conftest import config_doc, raw_record, run

PARAMS = {"e": "pv", "aid": "shop", "eid": "0c9e1f6a-2b3c-4d5e-8f90-123456789abc", "stm": "1764287999500",
          "tv": "js-4.1.0", "url": "https://shop.acme.com/p?id=1", "p": "web"}


def fingerprint_config(algorithm="MD5", exclude=("eid", "stm"), version="1-0-1"):
    return config_doc("event_fingerprint_config", version,
                      {"hashAlgorithm": algorithm, "excludeParameters": list(exclude)})


def expected(params, exclude, digest=hashlib.md5):
    # Snowplow's algorithm, spelled out independently: sort by name, append name US value US
    text = ""
    for name in sorted(params):
        if name not in exclude and params[name] is not None:
            text += name + "\x1f" + params[name] + "\x1f"
    return digest(text.encode("utf-8")).hexdigest()


def test_md5_of_sorted_name_value_pairs(load):
    enrichment = load(fingerprint_config())
    event, _ = run(enrichment, params=dict(PARAMS))
    assert event.event_fingerprint == expected(PARAMS, {"eid", "stm"})
    # the literal string for this input, so that a change of ordering or joining is caught
    assert event.event_fingerprint == hashlib.md5(
        b"aid\x1fshop\x1fe\x1fpv\x1fp\x1fweb\x1ftv\x1fjs-4.1.0\x1furl\x1fhttps://shop.acme.com/p?id=1\x1f").hexdigest()


def test_snowplow_hashes_fifteen_characters_for_its_own_example(load, monkeypatch):
    # Snowplow enrich 3.9.0's EventFingerprintEnrichmentSpec (Apache-2.0), case e1: with the length of
    # the string as the "digest", {stm: 1000000000000, e: se, se_ac: buy} minus stm gives "15"
    from processor.enrichments import event_fingerprint

    enrichment = load(fingerprint_config(exclude=["stm"]))

    class Length:
        def __init__(self, data):
            self.data = data

        def hexdigest(self):
            return str(len(self.data))

    monkeypatch.setitem(event_fingerprint.ALGORITHMS, "MD5", Length)
    assert enrichment.fingerprint({"stm": "1000000000000", "e": "se", "se_ac": "buy"}) == "15"


@pytest.mark.parametrize("algorithm,digest,length", [
    ("MD5", hashlib.md5, 32), ("SHA1", hashlib.sha1, 40), ("SHA256", hashlib.sha256, 64),
    ("SHA384", hashlib.sha384, 96), ("SHA512", hashlib.sha512, 128),
])
def test_each_algorithm_lower_hex(load, algorithm, digest, length):
    enrichment = load(fingerprint_config(algorithm))
    event, _ = run(enrichment, params=dict(PARAMS))
    assert event.event_fingerprint == expected(PARAMS, {"eid", "stm"}, digest)
    assert len(event.event_fingerprint) == length and event.event_fingerprint == event.event_fingerprint.lower()


def test_excluded_parameters_do_not_change_the_fingerprint(load):
    enrichment = load(fingerprint_config(exclude=["eid", "stm", "nuid", "cv"]))
    first, _ = run(enrichment, params=dict(PARAMS))
    retried, _ = run(enrichment, params={**PARAMS, "stm": "1764287999999", "eid": "another", "nuid": "x"})
    changed, _ = run(enrichment, params={**PARAMS, "url": "https://shop.acme.com/p?id=2"})
    assert first.event_fingerprint == retried.event_fingerprint
    assert first.event_fingerprint != changed.event_fingerprint


def test_nothing_is_excluded_by_default(load):
    enrichment = load(fingerprint_config(exclude=[]))
    event, _ = run(enrichment, params=dict(PARAMS))
    assert event.event_fingerprint == expected(PARAMS, set())
    other, _ = run(enrichment, params={**PARAMS, "stm": "1"})
    assert other.event_fingerprint != event.event_fingerprint


def test_parameter_order_does_not_matter_and_a_parameter_without_value_is_left_out(load):
    enrichment = load(fingerprint_config())
    a, _ = run(enrichment, params=dict(sorted(PARAMS.items())))
    b, _ = run(enrichment, params=dict(reversed(list(PARAMS.items()))))
    assert a.event_fingerprint == b.event_fingerprint
    c, _ = run(enrichment, params={"e": "pv", "x": None})
    assert c.event_fingerprint == hashlib.md5(b"e\x1fpv\x1f").hexdigest()


def test_config_1_0_0_accepts_md5_only(load):
    assert load(fingerprint_config("MD5", version="1-0-0")) is not None
    with pytest.raises(ConfigError, match="hashAlgorithm"):
        load(fingerprint_config("SHA256", version="1-0-0"))


@pytest.mark.parametrize("parameters,field", [
    ({"hashAlgorithm": "SHA-256", "excludeParameters": []}, "hashAlgorithm"),
    ({"hashAlgorithm": "MD5"}, "excludeParameters"),
    ({"excludeParameters": []}, "hashAlgorithm"),
    ({"hashAlgorithm": "MD5", "excludeParameters": "eid"}, "excludeParameters"),
    ({"hashAlgorithm": "MD5", "excludeParameters": [], "salt": "x"}, "salt"),
])
def test_invalid_config_is_refused_naming_the_field(load, parameters, field):
    with pytest.raises(ConfigError, match=field):
        load(config_doc("event_fingerprint_config", "1-0-1", parameters))


def test_disabled_config_is_skipped(load):
    doc = fingerprint_config()
    doc["data"]["enabled"] = False
    assert load(doc) is None


def test_through_the_stage(load, resolver):
    enrichment = load(fingerprint_config(exclude=["eid", "stm", "cv", "nuid"]))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[enrichment])
    params = {**PARAMS, "stm": "1764287999500"}
    raw = raw_record(querystring=urlencode(params), headers=["Host: c.acme.com"], hostname="c.acme.com")
    out = enricher.enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    row = parse_tsv(out.good[0])
    assert row["event_fingerprint"] == expected(out.sources[0], {"eid", "stm", "cv", "nuid"})
    assert row["event_fingerprint"] == expected(PARAMS, {"eid", "stm"})


def test_a_lone_surrogate_in_a_value_is_hashed_as_java_writes_it(load, resolver):
    # found by the oracle's body corpus: a tp2 value holding the JSON escape \ud800 made the enrichment raise
    # (UnicodeEncodeError, an enrichment_failures row) where 3.9.0 hashes String.getBytes(UTF_8), "?" in its place
    enrichment = load(fingerprint_config(exclude=["eid", "stm"]))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[enrichment])
    event = {k: v for k, v in PARAMS.items() if k != "stm"}
    body = '{"schema":"%s","data":[%s]}' % (PAYLOAD_DATA, json.dumps({**event, "tna": "a\ud800b"}))  # "\\ud800"
    out = enricher.enrich(raw_record(path="/com.snowplowanalytics.snowplow/tp2", body=body,
                                     content_type="application/json"))
    assert out.bad == [] and len(out.good) == 1
    assert parse_tsv(out.good[0])["event_fingerprint"] == expected({**event, "tna": "a?b"}, {"eid", "stm"})


# -- a megabyte of parameters: the digest is computed only where it is written (2 ms a megabyte)


def post_record(event: dict) -> bytes:
    body = json.dumps({"schema": PAYLOAD_DATA, "data": [event]})
    return raw_record(path="/com.snowplowanalytics.snowplow/tp2", body=body, content_type="application/json")


def get_record(event: dict) -> bytes:
    """A GET: any parameter name (payload_data refuses those it does not list)."""
    return raw_record(querystring=urlencode(event))


def hashed_text(params) -> str:
    return "".join(name + "\x1f" + params[name] + "\x1f" for name in sorted(params))


@pytest.fixture
def counted(monkeypatch):
    """MD5 that counts the bytes it hashes (``counted`` is the list of their lengths)."""
    from processor.enrichments import event_fingerprint

    lengths: list[int] = []

    def md5(data=b""):
        lengths.append(len(data))
        return hashlib.md5(data)

    monkeypatch.setitem(event_fingerprint.ALGORITHMS, "MD5", md5)
    return lengths


@pytest.fixture
def fixed_ids(monkeypatch):
    """The same event id and bad row timestamps on every run, so that two runs' rows compare byte for byte."""
    from processor import badrows, stage

    monkeypatch.setattr(stage, "random_uuid", lambda: "0c9e1f6a-2b3c-4d5e-8f90-123456789abc")
    monkeypatch.setattr(badrows, "iso_timestamp", lambda ms=None: "2026-12-02T00:00:00.000Z")


def enrich_both_ways(enricher, record, monkeypatch):
    """The output with deferral, then with every digest computed at once (the threshold out of reach)."""
    from processor.enrichments import event_fingerprint

    deferred = enricher.enrich(record)
    with monkeypatch.context() as m:
        m.setattr(event_fingerprint, "DEFER_CHARS", 10**12)
        eager = enricher.enrich(record)
    return deferred, eager


def test_a_megabyte_url_whose_row_is_cut_before_the_fingerprint_is_not_hashed(load, resolver, counted, fixed_ids,
                                                                              monkeypatch):
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[load(fingerprint_config())])
    url = "https://shop.acme.com/?" + "&".join(f"k{i}=v" for i in range(150_000))  # 1.3 MB
    deferred, eager = enrich_both_ways(enricher, post_record({"e": "pv", "p": "web", "tv": "js", "url": url}),
                                       monkeypatch)
    assert counted == [len(hashed_text({"e": "pv", "p": "web", "tv": "js", "url": url}))]  # the eager run's only
    # the same row either way: a size_violation holding the row's first 100 KB, which ends in page_url
    assert deferred.bad == eager.bad and not deferred.good
    [row] = deferred.bad
    doc = json.loads(row)
    assert doc["schema"].endswith("/size_violation/jsonschema/1-0-0")
    assert '"event_fingerprint"' not in doc["data"]["payload"]


def test_a_row_that_shows_the_fingerprint_has_it(load, resolver, counted, fixed_ids, monkeypatch):
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[load(fingerprint_config())])
    # a too-long page title fails the event; the megabyte parameter is only in the row's raw part, after the
    # fingerprint, so the size_violation's first 100 KB show it
    event = {"e": "pv", "p": "web", "tv": "js", "page": "t" * 3000, "zz": "y" * 1_100_000}
    deferred, eager = enrich_both_ways(enricher, get_record(event), monkeypatch)
    assert deferred.bad == eager.bad and len(counted) == 2
    text = json.loads(deferred.bad[0])["data"]["payload"]
    assert f'"event_fingerprint":"{expected(event, ())}"' in text
    # a 150 KB page URL: a whole enrichment_failures row, with the fingerprint
    counted.clear()
    event = {"e": "pv", "p": "web", "tv": "js", "url": "https://shop.acme.com/?q=" + "x" * 150_000}
    deferred, eager = enrich_both_ways(enricher, post_record(event), monkeypatch)
    assert deferred.bad == eager.bad and len(counted) == 2
    row = json.loads(deferred.bad[0])
    assert row["schema"].endswith("/enrichment_failures/jsonschema/2-0-1")
    assert row["data"]["payload"]["enriched"]["event_fingerprint"] == expected(event, ())


def test_a_good_event_with_a_megabyte_parameter_has_its_fingerprint(load, resolver, counted):
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[load(fingerprint_config())])
    event = {"e": "pv", "p": "web", "tv": "js", "zz": "y" * 1_100_000}
    out = enricher.enrich(get_record(event))
    assert out.bad == [] and len(counted) == 1
    assert parse_tsv(out.good[0])["event_fingerprint"] == expected(event, ())


def test_a_script_after_the_fingerprint_sees_it_even_for_a_megabyte(load, resolver, counted):
    from .test_javascript_script import js_config

    script = load(js_config("function process(event) { if (!event.getEvent_fingerprint()) throw 'none'; return []; }"))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[load(fingerprint_config()), script])
    event = {"e": "pv", "p": "web", "tv": "js", "zz": "y" * 1_100_000}
    out = enricher.enrich(get_record(event))
    assert out.bad == [] and len(counted) == 1
    assert parse_tsv(out.good[0])["event_fingerprint"] == expected(event, ())
