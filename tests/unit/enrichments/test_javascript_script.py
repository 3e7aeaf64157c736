"""The JavaScript enrichment: a real V8 (mini-racer) running Snowplow-style process(event) scripts."""
import json
import threading
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from processor.enriched import FIELD_INDEX, EnrichedEvent
from processor.enrichments import ConfigError, EnrichmentFailure, javascript_script
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher

from .conftest import b64, config_doc, js_config, raw_record, run

NAME = "javascript_script_config"
ENTITY = "iglu:com.acme/js_entity/jsonschema/1-0-0"


def test_getters_see_the_atomic_fields_as_snowplow_types(load):
    enrichment = load(js_config("""
        function process(event) {
          return [{schema: "iglu:com.acme/x/jsonschema/1-0-0", data: {
            app_id: event.getApp_id(), txn_id: event.getTxn_id(), lat: event.getGeo_latitude(),
            cookies: event.getBr_cookies(), tstamp: event.getCollector_tstamp(), total: event.getTr_total(),
            unset: event.getUser_id(), contexts: JSON.parse(event.getContexts()),
            sde: JSON.parse(event.getUnstruct_event()).data.data.id
          }}];
        }"""))
    event = EnrichedEvent(app_id="shop", txn_id=42, geo_latitude=52.5, br_cookies=True,
                          collector_tstamp=1_764_288_000_123, tr_total=Decimal("12.50"),
                          contexts=[{"schema": "iglu:com.acme/c/jsonschema/1-0-0", "data": {"a": 1}}],
                          unstruct_event={"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                                          "data": {"schema": "iglu:com.acme/click/jsonschema/1-0-0",
                                                   "data": {"id": "b1"}}})
    _, ctx = run(enrichment, event)
    data = ctx.derived[0]["data"]
    assert data["app_id"] == "shop" and data["txn_id"] == 42 and data["lat"] == 52.5
    assert data["cookies"] == 1 and data["tstamp"] == "2025-11-28 00:00:00.123" and data["total"] == "12.50"
    assert data["unset"] is None
    assert data["contexts"] == {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
                                "data": [{"schema": "iglu:com.acme/c/jsonschema/1-0-0", "data": {"a": 1}}]}
    assert data["sde"] == "b1"


def test_setters_change_the_event_with_the_field_types(load):
    enrichment = load(js_config("""
        function process(event) {
          event.setApp_id(event.getApp_id().toUpperCase());
          event.setTxn_id(7);
          event.setGeo_latitude(1.25);
          event.setUser_id(null);
          event.setCollector_tstamp("2025-01-02 03:04:05.678");
          event.setTr_total("9.90");
          event.setContexts(JSON.stringify({schema: "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                                            data: [{schema: "iglu:com.acme/c/jsonschema/1-0-0", data: {}}]}));
          return [];
        }"""))
    event, ctx = run(enrichment, EnrichedEvent(app_id="shop", user_id="u1"))
    assert event.app_id == "SHOP" and event.txn_id == 7 and event.geo_latitude == 1.25 and event.user_id is None
    assert event.collector_tstamp == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    assert event.tr_total == Decimal("9.90")
    assert event.contexts == [{"schema": "iglu:com.acme/c/jsonschema/1-0-0", "data": {}}]
    assert ctx.derived == []


def test_a_value_the_field_cannot_hold_fails_the_event(load):
    enrichment = load(js_config("function process(event) { event.setTxn_id('many'); return null; }"))
    with pytest.raises(EnrichmentFailure) as info:
        run(enrichment, EnrichedEvent())
    assert info.value.messages[0]["field"] == "txn_id" and info.value.messages[0]["value"] == "many"


def test_config_is_passed_as_second_argument_with_get(load):
    enrichment = load(js_config("""
        function process(event, params) {
          return [{schema: "iglu:com.acme/x/jsonschema/1-0-0",
                   data: {a: params.get("apiKey"), b: params.nested.x, c: params.get("nope")}}];
        }""", "1-0-1", config={"apiKey": "k-1", "nested": {"x": [1, 2]}}))
    _, ctx = run(enrichment, EnrichedEvent())
    assert ctx.derived[0]["data"] == {"a": "k-1", "b": [1, 2], "c": None}


def test_config_1_0_0_gets_empty_params(load):
    enrichment = load(js_config("""
        function process(event, params) {
          return [{schema: "iglu:com.acme/x/jsonschema/1-0-0", data: {keys: Object.keys(params).length}}];
        }"""))
    _, ctx = run(enrichment, EnrichedEvent())
    assert ctx.derived[0]["data"] == {"keys": 0}


def test_thrown_error_fails_the_event_with_its_message(load):
    enrichment = load(js_config("""
        function process(event) {
          if (event.getApp_id() === "bot") { throw new Error("Filtered bot traffic"); }
          return null;
        }"""))
    _, ctx = run(enrichment, EnrichedEvent(app_id="web"))  # other events pass
    assert ctx.derived == []
    with pytest.raises(EnrichmentFailure, match="Filtered bot traffic") as info:
        run(enrichment, EnrichedEvent(app_id="bot"))
    assert "error" in info.value.messages[0]


@pytest.mark.parametrize("body,match", [
    ("return 5;", "must return an array"),
    ("return [{data: {}}];", "index 0"),
    ("return [{schema: 'iglu:com.acme/x/jsonschema/1-0-0'}];", "index 0"),
    ("event.setDerived_contexts('[]'); return [];", "setDerived_contexts"),
])
def test_bad_return_values_fail_the_event(load, body, match):
    enrichment = load(js_config(f"function process(event) {{ {body} }}"))
    with pytest.raises(EnrichmentFailure, match=match):
        run(enrichment, EnrichedEvent())


@pytest.mark.parametrize("body", ["return null;", "return [];", "return;"])
def test_no_entities_is_fine(load, body):
    enrichment = load(js_config(f"function process(event) {{ {body} }}"))
    event, ctx = run(enrichment, EnrichedEvent(app_id="a"))
    assert ctx.derived == [] and event.app_id == "a"


def test_derived_contexts_of_earlier_enrichments_are_visible(load):
    enrichment = load(js_config("""
        function process(event) {
          var d = JSON.parse(event.getDerived_contexts()).data;
          return [{schema: "iglu:com.acme/x/jsonschema/1-0-0", data: {seen: d[0].data.browser}}];
        }"""))
    event = EnrichedEvent()
    from processor.enrichments import EventContext

    from .conftest import make_payload
    ctx = EventContext(make_payload(), {})
    # what the enrichments before it attached, as the stage hands it over (the last one's first)
    ctx.earlier = [{"schema": "iglu:com.acme/ua/jsonschema/1-0-0", "data": {"browser": "Firefox"}}]
    enrichment.enrich(event, ctx)
    assert ctx.derived == [{"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": {"seen": "Firefox"}}]


def test_top_level_helpers_and_modern_syntax_work(load):
    enrichment = load(js_config("""
        const SECRET = "Joshua";
        class Tagger { tag(x) { return `${x}!`; } }
        const helper = (x) => new Tagger().tag(x);
        function process(event) {
          return [{schema: "iglu:com.acme/x/jsonschema/1-0-0", data: {v: helper(SECRET)}}];
        }"""))
    _, ctx = run(enrichment, EnrichedEvent())
    assert ctx.derived[0]["data"] == {"v": "Joshua!"}


def test_a_runaway_script_is_stopped(load, monkeypatch):
    monkeypatch.setattr(javascript_script, "TIMEOUT_SECONDS", 0.2)
    enrichment = load(js_config("function process(event) { while (true) {} }"))
    with pytest.raises(EnrichmentFailure, match="longer than"):
        run(enrichment, EnrichedEvent())


def test_looping_events_cost_the_others_their_budget_not_a_stall(load):
    import time

    # three events make the script loop; forty others are enriched, and the whole run costs
    # about three budgets of CPU (it took three times ten seconds).  CPU time, not the clock's:
    # on a loaded machine the budgets still end on time, but the forty others wait for a core
    enrichment = load(js_config("""
        function process(event) {
          if (event.getApp_id() === "loop") { while (true) {} }
          return [{schema: "iglu:com.acme/x/jsonschema/1-0-0", data: {v: event.getApp_id()}}];
        }"""))
    started, cpu = time.monotonic(), time.process_time()
    outcomes = []
    for i in range(43):
        try:
            _, ctx = run(enrichment, EnrichedEvent(app_id="loop" if i in (3, 20, 40) else f"app{i}"))
            outcomes.append(ctx.derived[0]["data"]["v"])
        except EnrichmentFailure:
            outcomes.append(None)
    assert time.process_time() - cpu < 3 * javascript_script.TIMEOUT_SECONDS + 1.0
    assert time.monotonic() - started < 10.0  # one stall as before
    assert outcomes.count(None) == 3 and outcomes[4] == "app4" and outcomes[41] == "app41"


# a process that enriches events one by one and prints each outcome: every event's script
# runs ~30 ms of CPU, and an app_id "loop" then loops
_CHILD = r'''
import json, sys
from processor.enriched import EnrichedEvent
from processor.enrichments import EnrichmentFailure, parse_enrichment
from processor.enrichments.base import EventContext, LoadContext
from processor.iglu import Resolver
from tests.unit.enrichments.conftest import js_config, looping_script, make_payload
enrichment = parse_enrichment(js_config(looping_script(30)), Resolver([], include_builtin=True),
                              LoadContext(base_dir=".", source="t"))
print("ready", flush=True)
for i in range(int(sys.argv[1])):
    app_id = "loop" if i % 10 == 9 else "app"
    try:
        enrichment.enrich(EnrichedEvent(app_id=app_id), EventContext(make_payload(), {}))
        print(json.dumps([i, app_id, "ok"]), flush=True)
    except EnrichmentFailure as exc:
        print(json.dumps([i, app_id, str(exc)]), flush=True)
enrichment.close()
'''


def test_a_paused_process_fails_no_good_event_and_still_stops_loops():
    # the budget is of CPU, not wall time: a host that pauses the process (SIGSTOP here; a busy
    # machine or a throttled container alike) must not turn good events into bad rows, and a
    # looping script must still fail its event
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, "60"], cwd=root, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            child.send_signal(signal.SIGSTOP)
            time.sleep(0.15)  # longer than the 0.1 s budget: a wall-clock budget runs out in the pause
            child.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        out, _ = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        child.kill()
        child.wait()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 60
    assert [(i, outcome) for i, app_id, outcome in lines if app_id == "app" and outcome != "ok"] == []
    assert all("longer than" in outcome for _, app_id, outcome in lines if app_id == "loop")


def test_one_request_of_looping_events_costs_one_budget(load):
    import time

    from ext import CollectorPayload
    from processor.enrichments.base import EventContext

    enrichment = load(js_config("function process(event) { while (true) {} }"))
    request, other = CollectorPayload(body="fifty events"), CollectorPayload(body="another")
    # the budget is of the process's CPU (a starved run is run again for up to STARVED_SECONDS of wall
    # time, so wall time says nothing on a busy host); fifty budgets would be at least 50 * 0.05 s of it
    started = time.process_time()
    for _ in range(50):
        with pytest.raises(EnrichmentFailure):
            enrichment.enrich(EnrichedEvent(), EventContext(request, {}))
    assert time.process_time() - started < javascript_script.TIMEOUT_SECONDS + 0.5
    with pytest.raises(EnrichmentFailure, match="longer than"):  # another request gets its own budget
        enrichment.enrich(EnrichedEvent(), EventContext(other, {}))


@pytest.mark.parametrize("sleep", [
    "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300)",
    # the same wait in WebAssembly: a module whose function waits on shared memory (memory.atomic.wait32)
    # (i32.const 0, i32.const 0, i64.const 300 ms, memory.atomic.wait32, drop), which sleeps 0.3 s on its own
    "new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([0,97,115,109,1,0,0,0,1,4,1,96,0,0,2,9,1,1,"
    "109,1,109,2,3,1,1,3,2,1,0,7,5,1,1,119,0,0,10,19,1,17,0,65,0,65,0,66,128,198,134,143,1,254,1,2,0,26,11])),"
    " {m: {m: new WebAssembly.Memory({initial: 1, maximum: 1, shared: true})}}).exports.w()",
])
def test_a_script_cannot_sleep_so_a_starved_run_is_told_from_a_sleeping_one(load, sleep):
    import time

    from ext import CollectorPayload
    from processor.enrichments.base import EventContext

    # a run stopped with little CPU used is run again (the host starved it); were sleeping possible, a
    # script could make every event of every request wait STARVED_SECONDS: the ways to sleep are gone, at
    # the top level too, and the event fails at once with the script's error
    enrichment = load(js_config("""
        var top = (function () { try { %s; return "slept"; } catch (e) { return String(e); } })();
        function process(event) { event.setApp_id(top); %s; return []; }""" % (sleep, sleep)))
    started = time.monotonic()
    with pytest.raises(EnrichmentFailure, match="Error during execution of JavaScript function: "
                                                "(TypeError|ReferenceError)"):
        enrichment.enrich(EnrichedEvent(), EventContext(CollectorPayload(body="one event"), {}))
    assert time.monotonic() - started < javascript_script.TIMEOUT_SECONDS


def test_a_script_that_allocates_without_end_fails_its_event(load):
    enrichment = load(js_config("""
        function process(event) { const a = []; while (true) { a.push(new Array(100000).fill(1)); } }"""))
    with pytest.raises(EnrichmentFailure):
        run(enrichment, EnrichedEvent())


@pytest.mark.parametrize("parameters,match", [
    ({"script": "%%% not base64 %%%"}, r"parameters\.script: not base64"),
    ({"script": b64("function process(event) { return [; }")}, r"parameters\.script: the script does not compile"),
    ({"script": b64("function handle(event) { return []; }")}, r"parameters\.script: .*no function process"),
    ({}, "script"),
    ({"script": b64("function process(e) {}"), "extra": 1}, "extra"),
    ({"script": b64("function process(e) {}"), "config": {"a": 1}}, "config"),  # 1-0-0 has no config
])
def test_invalid_configs_are_refused_naming_the_field(load, parameters, match):
    with pytest.raises(ConfigError, match=match):
        load(config_doc(NAME, "1-0-0", parameters))


def test_disabled_config_is_skipped(load):
    assert load(config_doc(NAME, "1-0-1", {"script": b64("function process(e) {}")}, enabled=False)) is None


# --------------------------------------------------------------------------- through the stage

def _registry(tmp_path):
    path = tmp_path / "registry" / "com.acme" / "js_entity" / "jsonschema" / "1-0-0"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": "com.acme", "name": "js_entity", "format": "jsonschema", "version": "1-0-0"},
        "type": "object", "properties": {"app": {"type": "string"}, "width": {"type": "integer"}},
        "required": ["app"], "additionalProperties": False}))
    return Resolver([EmbeddedRepository("test registry", tmp_path / "registry")], include_builtin=True)


def _raw(querystring: str) -> bytes:
    return raw_record(
        user_agent="Mozilla/5.0", querystring=querystring, headers=["Host: c.acme.com"], hostname="c.acme.com")


def test_through_the_stage(load, tmp_path):
    resolver = _registry(tmp_path)
    enrichment = load(js_config(f"""
        function process(event, params) {{
          if (event.getApp_id() === params.get("blocked")) {{ throw new Error("blocked app"); }}
          event.setUser_id("js-" + event.getApp_id());
          return [{{schema: "{ENTITY}", data: {{app: event.getApp_id(), width: event.getDvce_screenwidth()}}}}];
        }}""", "1-0-1", config={"blocked": "spam"}))
    enricher = Enricher(resolver, enrichments=[enrichment], clock=lambda: 1_764_288_005.0)
    try:
        out = enricher.enrich(_raw("e=pv&aid=shop&p=web&tv=js-4.1.0&url=https%3A%2F%2Fshop.acme.com%2F&res=1920x1080"))
        assert out.bad == [] and len(out.good) == 1
        fields = out.good[0].split("\t")
        assert fields[FIELD_INDEX["user_id"]] == "js-shop"
        derived = json.loads(fields[FIELD_INDEX["derived_contexts"]])
        assert derived["data"] == [{"schema": ENTITY, "data": {"app": "shop", "width": 1920}}]
        for entity in derived["data"]:
            assert resolver.validate(entity).ok

        out = enricher.enrich(_raw("e=pv&aid=spam&p=web&tv=js-4.1.0&url=https%3A%2F%2Fshop.acme.com%2F"))
        assert out.good == [] and len(out.bad) == 1
        bad = json.loads(out.bad[0])
        assert bad["schema"].startswith("iglu:com.snowplowanalytics.snowplow.badrows/enrichment_failures/")
        assert "blocked app" in json.dumps(bad["data"]["failure"])

        # an entity whose schema does not validate fails the event too
        wrong = load(js_config(f"function process(e) {{ return [{{schema: '{ENTITY}', data: {{app: 1}}}}]; }}"))
        out = Enricher(resolver, enrichments=[wrong], clock=lambda: 1_764_288_005.0).enrich(
            _raw("e=pv&aid=shop&p=web&tv=js-4.1.0"))
        assert out.good == [] and len(out.bad) == 1
    finally:
        enricher.close()


def test_engines_answer_on_one_loop_of_the_process_that_outlives_them(load):
    # mini-racer closed each engine's own loop before freeing its V8 context, so a callback V8 made during the
    # free (a timed-out call's late stop) raised "Event loop is closed" in a ctypes callback
    script = js_config("function process(event) { return []; }")
    first, second = load(script), load(script)
    loop = javascript_script.engine_loop()
    assert {first._engine.racer._ctx.event_loop, second._engine.racer._ctx.event_loop} == {loop}
    first.close()
    second.close()
    assert loop.is_running() and not loop.is_closed()
    called = threading.Event()
    loop.call_soon_threadsafe(called.set)  # what a late V8 callback does
    assert called.wait(5)


def test_a_forked_child_gets_a_loop_of_its_own(monkeypatch):
    parent = javascript_script.engine_loop()
    monkeypatch.setattr(javascript_script.os, "getpid", lambda: -1)  # as a child of a fork sees itself
    child = javascript_script.engine_loop()
    try:
        assert child is not parent and javascript_script.engine_loop() is child
    finally:
        child.call_soon_threadsafe(child.stop)
        javascript_script._engine_loop_of.pop(-1)


def test_a_failing_script_comes_before_the_cross_domain_failure_of_the_step_before_it(load, resolver):
    # Snowplow's steps prepend their failures: the script (a later step) first, then getCrossDomain's, which
    # runs for every event after campaign_attribution
    enrichment = load(js_config('function process(event) { throw new Error("no"); }'))
    url = "https://shop.acme.com/?_sp=abc.def"
    out = Enricher(resolver, enrichments=[enrichment]).enrich(
        raw_record(querystring=f"e=pv&p=web&url={url.replace(':', '%3A').replace('/', '%2F').replace('?', '%3F')}"))
    [row] = [json.loads(b) for b in out.bad]
    messages = row["data"]["failure"]["messages"]
    assert [m["enrichment"]["identifier"] if m["enrichment"] else m["message"]["field"] for m in messages] == [
        "javascript_script_config", "sp_dtm"]
