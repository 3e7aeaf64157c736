"""bench.oracle_bench's fuzz, envelope, body and webhook-envelope corpora: the same requests for a seed, none making
the stage raise."""
import json

import pytest

from bench.oracle_bench import (WEBHOOK_TSTAMP, body_records, body_requests, envelope_records, envelope_requests,
                                fuzz_events, fuzz_records, webhook_envelope_records, webhook_envelope_requests,
                                webhook_requests)
from ext import decode_collector_payload
from processor.iglu import Resolver
from processor.stage import Enricher


def test_a_seed_makes_the_same_requests_each_named_by_its_tracker_name():
    assert fuzz_records(7, 300) == fuzz_records(7, 300)
    assert fuzz_records(7, 300) != fuzz_records(8, 300)
    events = fuzz_events(7, 300)
    assert [params["tna"] for _, params, _ in events] == [f"fuzz-{i}" for i in range(300)]
    assert {method for method, _, _ in events} == {"GET", "POST"}
    payloads = [decode_collector_payload(record) for record in fuzz_records(7, 300)]
    assert all((p.querystring is None) == (p.body is not None) for p in payloads)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_fuzzed_event_makes_the_stage_raise(seed):
    # a raise is a generic_error row for the whole request in the worker: its other events lost (a timestamp in
    # year 0 and self-describing JSON that was a number or an array did, found by this corpus)
    enricher = Enricher(Resolver([], include_builtin=True))
    for record in fuzz_records(seed, 1500):
        out = enricher.enrich(record)
        assert len(out.good) + len(out.bad) == 1


def test_an_envelope_seed_makes_the_same_requests_each_event_named_by_its_request():
    assert envelope_records(3, 200) == envelope_records(3, 200)
    assert envelope_records(3, 200) != envelope_records(4, 200)
    requests = envelope_requests(3, 400)
    paths = {fields["path"] for fields in requests}
    assert {"/i", "/com.snowplowanalytics.snowplow/tp2", "/r/tp2"} <= paths
    assert any(any(h.lower().startswith("x-forwarded-for") for h in fields["headers"]) for fields in requests)
    for i, fields in enumerate(requests):
        text = fields.get("body") or fields["querystring"]
        assert f"envelope-{i}" in text


def test_a_body_seed_makes_the_same_bodies_most_of_them_json_each_event_named_by_its_request():
    assert body_records(3, 200) == body_records(3, 200)
    assert body_requests(3, 200) != body_requests(4, 200)
    bodies = body_requests(3, 400)
    parsed = []
    for body in bodies:
        try:
            parsed.append(json.loads(body))
        except ValueError:
            pass
    assert len(bodies) // 2 < len(parsed) < len(bodies)  # some are not JSON, on purpose
    named = [i for i, body in enumerate(bodies) if f'"body-{i}"' in body]
    assert len(named) > 0.7 * len(bodies)  # the others had their name or their events changed away
    assert not any(f'"body-{j}"' in body for i, body in enumerate(bodies) for j in (i - 1, i + 1))


def test_a_webhook_envelope_seed_makes_the_same_requests_each_told_apart_by_its_timestamp():
    assert webhook_envelope_records(3, 200) == webhook_envelope_records(3, 200)
    assert webhook_envelope_records(3, 200) != webhook_envelope_records(4, 200)
    requests = webhook_envelope_requests(3, 600)
    names = {name for name, _, _, _, _ in webhook_requests()}
    assert {name for name, _ in requests} <= names and len({name for name, _ in requests}) > 100
    base_paths = {path for _, path, _, _, _ in webhook_requests()}
    paths = {fields["path"] for _, fields in requests}
    assert paths & base_paths and paths - base_paths  # most paths as sent, others changed
    assert any(fields["encoding"] != "UTF-8" for _, fields in requests)
    payloads = [decode_collector_payload(record) for record in webhook_envelope_records(3, 600)]
    assert [p.timestamp for p in payloads] == [WEBHOOK_TSTAMP + 1000 * i for i in range(600)]
    assert all(f"X-Oracle-Request: {i} {name}" in p.headers for i, ((name, _), p) in enumerate(zip(requests, payloads)))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("records", [envelope_records, body_records, webhook_envelope_records])
def test_no_request_of_the_envelope_body_or_webhook_envelope_corpus_makes_the_stage_raise(records, seed):
    enricher = Enricher(Resolver([], include_builtin=True))
    for record in records(seed, 1000):
        out = enricher.enrich(record)
        assert len(out.good) + len(out.bad) >= 1
