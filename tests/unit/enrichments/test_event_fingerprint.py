"""Event fingerprint enrichment: Snowplow's digest of the sorted tracker parameters."""
import hashlib
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enrichments import ConfigError
from processor.stage import Enricher

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
