"""bench.oracle_bench's fuzz corpus: the same requests for a seed, and none of them makes the stage raise."""
import pytest

from bench.oracle_bench import fuzz_events, fuzz_records
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
