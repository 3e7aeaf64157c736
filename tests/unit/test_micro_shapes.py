"""The Micro API's good events: kept as their line and raw event, shaped when read, the same as shaped at once."""
from __future__ import annotations

import pickle

import pytest

from bench.bench_enrich import build_records, write_registry
from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from snowmelt.micro import MicroStore
from snowmelt.micro_shapes import (_PARAM_FIELDS, _URL_FIELDS, GoodEntry, PrivacyView, _event_schema, _schema_uris,
                                   json_bytes, raw_event)


def good_event(line: str, raw: dict | None) -> dict:
    """Micro's ``GoodEvent`` shaped at once, as the stage process made it before ``GoodEntry``."""
    values = line.split("\t")
    event_type = values[FIELD_INDEX["event"]] or None
    return {"event": parse_tsv(line), "eventType": event_type, "schema": _event_schema(values, event_type),
            "contexts": _schema_uris(values[FIELD_INDEX["contexts"]]), "rawEvent": raw}


VIEWS = {
    "no privacy enrichment": PrivacyView(),
    "anon_ip": PrivacyView(anon_ip=True),
    "pii on every field, JSON too": PrivacyView(frozenset(_PARAM_FIELDS.values()) | _URL_FIELDS, True, True),
    "pii on user_id and the IP": PrivacyView(frozenset({"user_id", "user_ipaddress"})),
}


@pytest.fixture(scope="module")
def enriched(tmp_path_factory) -> list[tuple[str, dict]]:
    """(line, raw event) of the bench corpus's tracker traffic: GET page views and POSTs of ten events of every
    kind, three contexts each."""
    registry = tmp_path_factory.mktemp("registry")
    write_registry(registry)
    enricher = Enricher(Resolver([EmbeddedRepository("bench", str(registry))], include_builtin=True))
    records, _ = build_records(60)
    out = []
    for record in records:
        result = enricher.enrich(record)
        assert not result.bad
        out += [(line, raw_event(result.payload, result.vendor, result.version, params))
                for line, params in zip(result.good, result.sources)]
    assert len(out) == 330
    return out


@pytest.mark.parametrize("view", VIEWS, ids=list(VIEWS))
def test_an_entry_read_is_the_good_event_shaped_at_once(enriched, view):
    privacy = VIEWS[view]
    for line, raw in enriched:
        then = good_event(line, raw)
        then["rawEvent"] = privacy.apply(then["rawEvent"], then["event"])
        entry = pickle.loads(pickle.dumps(GoodEntry.of(line, raw, privacy)))  # as it crosses from the stage
        assert json_bytes(entry.shaped()) == json_bytes(then)
        assert (entry.event_type, entry.schema, list(entry.contexts)) == (
            then["eventType"], then["schema"], then["contexts"])


def test_text_that_is_not_utf8_in_the_raw_event_reads_back_as_it_was(enriched):
    line, raw = enriched[0]
    raw = {**raw, "parameters": {**raw["parameters"], "page": "caf\udce9"}}
    assert GoodEntry.of(line, raw, PrivacyView()).shaped()["rawEvent"] == raw


def test_the_store_filters_entries_and_skips_one_whose_line_cannot_be_read(enriched):
    store = MicroStore(max_events=1000)
    entries = [GoodEntry.of(line, raw, PrivacyView()) for line, raw in enriched]
    broken = GoodEntry.of(enriched[0][0].replace("\t", "\t\t", 1), enriched[0][1], PrivacyView())
    store.add([entries[0], broken, *entries[1:]], b"", [])
    assert store.summary()["good"] == len(entries) + 1
    ids = [e["event"]["event_id"] for e in store.query_good()]
    assert ids == [parse_tsv(line)["event_id"] for line, _ in enriched]
    page_views = [e for e in store.query_good(event_type="page_view")]
    assert page_views and all(e["eventType"] == "page_view" for e in page_views)
    assert len(page_views) == sum(1 for line, _ in enriched if line.split("\t")[FIELD_INDEX["event"]] == "page_view")
    [last] = store.query_good(limit=1)
    assert last["event"]["event_id"] == parse_tsv(enriched[-1][0])["event_id"]
    schemas = {e.schema for e in entries if e.event_type == "unstruct"}
    assert schemas, "the corpus has self-describing events"
    schema = sorted(schemas)[0]
    assert {e["schema"] for e in store.query_good(schema=schema)} == {schema}
    context = entries[0].contexts[0]
    assert all(context in e["contexts"] for e in store.query_good(contexts=[context]))


def test_an_entry_costs_two_thirds_of_the_good_event_s_memory_and_pickle_or_less(enriched):
    """What ``up`` keeps of each of the last ``up.max_events`` good events (the line and the raw event included),
    and what crosses from its stage process beside the line (which crosses for the files anyway)."""
    import copy
    import tracemalloc

    line, raw = enriched[1]

    def kept(make) -> int:
        tracemalloc.start()
        try:
            held = [make(line[:-1] + line[-1], copy.deepcopy(raw)) for _ in range(50)]
            assert len(held) == 50
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    entry_bytes = kept(lambda line, raw: GoodEntry.of(line, raw, PrivacyView()))
    event_bytes = kept(good_event)
    assert entry_bytes * 1.5 < event_bytes, (entry_bytes, event_bytes)
    entry_pickle = len(pickle.dumps((line, GoodEntry.of(line, raw, PrivacyView()))))
    event_pickle = len(pickle.dumps((line, good_event(line, raw))))
    assert entry_pickle - len(line) < 0.6 * (event_pickle - len(line)), (entry_pickle, event_pickle, len(line))
