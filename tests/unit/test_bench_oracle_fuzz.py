"""bench.oracle_bench's fuzz, envelope and body corpora: the same requests for a seed, none making the stage raise."""
import json

import pytest

from bench.oracle_bench import (body_records, body_requests, envelope_records, envelope_requests, fuzz_events,
                                fuzz_records)
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


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("records", [envelope_records, body_records])
def test_no_envelope_or_body_makes_the_stage_raise(records, seed):
    enricher = Enricher(Resolver([], include_builtin=True))
    for record in records(seed, 1000):
        out = enricher.enrich(record)
        assert len(out.good) + len(out.bad) >= 1
