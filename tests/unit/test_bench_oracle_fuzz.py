"""bench.oracle_bench's fuzz and envelope corpora: the same requests for a seed, and none of them makes the stage raise."""
import pytest

from bench.oracle_bench import envelope_records, envelope_requests, fuzz_events, fuzz_records
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


@pytest.mark.parametrize("seed", [1, 2])
def test_no_envelope_makes_the_stage_raise(seed):
    enricher = Enricher(Resolver([], include_builtin=True))
    for record in envelope_records(seed, 1000):
        out = enricher.enrich(record)
        assert len(out.good) + len(out.bad) >= 1
