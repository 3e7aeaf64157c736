"""``snowmelt up`` in-process: collector -> queue -> stage -> files + Snowplow-Micro API."""
import asyncio
import base64
import dataclasses
import json
import time
from pathlib import Path

import pytest
from snowplow_analytics_sdk.event_transformer import transform

from collector.sink import QueueSink, SinkUnavailable
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from snowmelt.config import load_config
from snowmelt.up import Pipeline
from tests.unit.test_stage import write_schema

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CLICK = "iglu:com.acme/button_click/jsonschema/1-0-0"
USER = "iglu:com.acme/user/jsonschema/1-0-0"
PAGE = "iglu:com.acme/page/jsonschema/1-0-0"


@pytest.fixture(scope="module")
def enricher(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    write_schema(root, CLICK, {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"],
                               "additionalProperties": False})
    write_schema(root, USER, {"type": "object", "properties": {"tier": {"type": "string"}}})
    write_schema(root, PAGE, {"type": "object", "properties": {"section": {"type": "string"}}})
    return Enricher(Resolver([EmbeddedRepository("test registry", root)]))


def b64(doc) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


@pytest.fixture
def make_client(aiohttp_client, enricher, tmp_path):
    async def make(**env):
        cfg = load_config(None, env={f"SNOWMELT_{k.upper()}": str(v) for k, v in env.items()})
        cfg = dataclasses.replace(cfg, up=dataclasses.replace(cfg.up, data_dir=str(tmp_path / "data"),
                                                               progress_interval=0.0))
        pipeline = Pipeline(cfg, enricher)
        client = await aiohttp_client(pipeline.make_app())
        client.pipeline = pipeline
        client.data_dir = tmp_path / "data"
        return client
    return make


async def wait_counts(client, good, bad, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        summary = await (await client.get("/micro/all")).json()
        if summary["good"] >= good and summary["bad"] >= bad:
            assert summary == {"total": good + bad, "good": good, "bad": bad}
            return summary
        assert time.monotonic() < deadline, f"timed out waiting for good={good} bad={bad}: {summary}"
        await asyncio.sleep(0.01)


def tp2_body(events):
    return json.dumps({"schema": PAYLOAD_DATA, "data": events})


async def post_batch(client, events):
    return await client.post(TP2, data=tp2_body(events).encode(), headers={"Content-Type": "application/json"})


def sample_events():
    return [
        {"e": "pv", "eid": "00000000-0000-4000-8000-000000000001", "url": "https://shop.acme.com/a?b=1",
         "page": "Shop", "tv": "py-1.1.0", "p": "web", "aid": "shop",
         "cx": b64({"schema": CONTEXTS, "data": [{"schema": USER, "data": {"tier": "gold"}},
                                                 {"schema": PAGE, "data": {"section": "shoes"}}]})},
        {"e": "se", "eid": "00000000-0000-4000-8000-000000000002", "se_ca": "shop", "se_ac": "add",
         "se_la": "sku-1", "se_va": "2.5", "tv": "py-1.1.0", "p": "web", "aid": "shop",
         "co": json.dumps({"schema": CONTEXTS, "data": [{"schema": USER, "data": {"tier": "silver"}}]})},
        {"e": "ue", "eid": "00000000-0000-4000-8000-000000000003", "tv": "py-1.1.0", "p": "web", "aid": "shop",
         "ue_pr": json.dumps({"schema": UNSTRUCT, "data": {"schema": CLICK, "data": {"id": "buy"}}})},
        # invalid against its schema: a schema_violations bad row
        {"e": "ue", "eid": "00000000-0000-4000-8000-000000000004", "tv": "py-1.1.0", "p": "web",
         "ue_pr": json.dumps({"schema": UNSTRUCT, "data": {"schema": CLICK, "data": {"id": 7}}})},
    ]


async def test_post_batch_and_pixel_reach_micro_api_and_files(make_client):
    client = await make_client()
    resp = await client.post(TP2, data=tp2_body(sample_events()).encode(),
                             headers={"Content-Type": "application/json; charset=UTF-8"})
    assert resp.status == 200 and await resp.text() == "ok"
    resp = await client.get("/i?e=pv&eid=00000000-0000-4000-8000-000000000005&url=https%3A%2F%2Facme.com%2Fx"
                            "&tv=js-4&p=web&aid=site")
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/gif"
    await wait_counts(client, good=4, bad=1)

    good = await (await client.get("/micro/good")).json()
    assert [g["event"]["event_id"][-1] for g in good] == ["1", "2", "3", "5"]
    pv, se, ue, pixel = good
    assert pv["eventType"] == "page_view"
    assert pv["schema"] == "iglu:com.snowplowanalytics.snowplow/page_view/jsonschema/1-0-0"
    assert pv["contexts"] == [USER, PAGE]
    assert pv["event"]["page_url"] == "https://shop.acme.com/a?b=1"
    assert pv["event"]["contexts_com_acme_user_1"] == [{"tier": "gold"}]
    assert pv["rawEvent"]["api"] == {"vendor": "com.snowplowanalytics.snowplow", "version": "tp2"}
    assert pv["rawEvent"]["parameters"]["page"] == "Shop"
    assert pv["rawEvent"]["contentType"] == "application/json; charset=utf-8"
    assert se["eventType"] == "struct" and se["event"]["se_value"] == 2.5
    assert se["schema"] == "iglu:com.google.analytics/event/jsonschema/1-0-0"
    assert ue["eventType"] == "unstruct" and ue["schema"] == CLICK
    assert ue["event"]["unstruct_event_com_acme_button_click_1"] == {"id": "buy"}
    assert pixel["rawEvent"]["api"] == {"vendor": "com.snowplowanalytics.snowplow", "version": "tp1"}
    assert pixel["event"]["app_id"] == "site"
    assert pixel["event"]["v_collector"].endswith("-up")

    [bad] = await (await client.get("/micro/bad")).json()
    assert bad["collectorPayload"]["api"] == {"vendor": "com.snowplowanalytics.snowplow", "version": "tp2"}
    assert json.loads(bad["collectorPayload"]["body"])["data"][3]["eid"].endswith("4")
    assert bad["rawEvent"]["parameters"]["eid"] == "00000000-0000-4000-8000-000000000004"
    assert bad["errors"] and bad["errors"][0].startswith("schema_violations")

    # files: the TSV is Snowplow's (its analytics SDK reads it), bad rows one JSON per line
    [tsv] = (client.data_dir / "enriched").glob("*.tsv")
    lines = tsv.read_text(encoding="utf-8").splitlines()
    assert [transform(line)["event_id"][-1] for line in lines] == ["1", "2", "3", "5"]
    [jsonl] = (client.data_dir / "bad").glob("*.jsonl")
    [row] = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert row["schema"].endswith("/schema_violations/jsonschema/2-0-1")


async def test_good_filters(make_client):
    client = await make_client()
    await post_batch(client, sample_events())
    await wait_counts(client, good=3, bad=1)

    async def good(filters):
        resp = await client.post("/micro/good", json=filters)
        assert resp.status == 200
        return [g["event"]["event_id"][-1] for g in await resp.json()]

    assert await good({}) == ["1", "2", "3"]
    assert await good({"event_type": "struct"}) == ["2"]
    assert await good({"schema": CLICK}) == ["3"]
    assert await good({"contexts": [USER]}) == ["1", "2"]
    assert await good({"contexts": [USER, PAGE]}) == ["1"]
    assert await good({"limit": 2}) == ["2", "3"]
    assert await good({"event_type": "page_view", "contexts": [PAGE], "limit": 5}) == ["1"]
    assert await good({"event_type": "transaction"}) == []
    resp = await client.post("/micro/good", json={"nonsense": 1})
    assert resp.status == 400
    resp = await client.post("/micro/good", json={"limit": "2"})
    assert resp.status == 400


async def test_bad_filters_and_collector_size_violations(make_client):
    client = await make_client(collector__max_payload_size=2000)
    await post_batch(client, sample_events())
    resp = await client.get("/com.acme/v1?a=1")  # no adapter for com.acme/v1: adapter_failures
    assert resp.status == 200
    resp = await client.get("/i?e=pv&x=" + "a" * 3000)  # too large: the collector's size_violation
    assert resp.status == 200
    await wait_counts(client, good=3, bad=3)

    bad = await (await client.get("/micro/bad")).json()
    kinds = sorted(b["errors"][0].split(":")[0] for b in bad)
    assert kinds == ["adapter_failures", "schema_violations", "size_violation"]
    acme = await (await client.post("/micro/bad", json={"vendor": "com.acme"})).json()
    assert [b["collectorPayload"]["api"] for b in acme] == [{"vendor": "com.acme", "version": "v1"}]
    assert acme[0]["rawEvent"] is None
    tp2 = await (await client.post("/micro/bad", json={"vendor": "com.snowplowanalytics.snowplow",
                                                        "version": "tp2"})).json()
    assert len(tp2) == 1
    assert len(await (await client.post("/micro/bad", json={"limit": 1})).json()) == 1
    rows = [json.loads(line) for f in (client.data_dir / "bad").glob("*.jsonl")
            for line in f.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["schema"].split("/")[1] for r in rows) == ["adapter_failures", "schema_violations",
                                                               "size_violation"]


async def test_a_request_over_the_record_limit_is_queued_whole_and_split_by_the_stage(make_client):
    # The collector of `snowmelt up` does not split (seconds of CPU for a megabyte of events, on the
    # process that answers trackers): the record is logged whole and the stage splits it as the
    # collector would have for Kafka, its oversized event a size_violation bad row.
    client = await make_client(collector__max_payload_size=3000)
    events = [{"e": "pv", "eid": f"00000000-0000-4000-8000-{i:012d}", "url": f"https://acme.com/{i}",
               "tv": "py-1.1.0", "p": "web"} for i in range(40)]
    events.insert(7, {"e": "pv", "tv": "py-1.1.0", "p": "web", "url": "https://acme.com/" + "x" * 4000})
    resp = await post_batch(client, events)
    assert resp.status == 200
    assert client.pipeline.sink.accepted_raw == 1
    await wait_counts(client, good=40, bad=1)
    [bad] = await (await client.get("/micro/bad")).json()
    assert bad["errors"][0].startswith("size_violation")
    [tsv] = (client.data_dir / "enriched").glob("*.tsv")
    eids = sorted(line.split("\t")[6] for line in tsv.read_text().splitlines())
    assert eids == sorted(e["eid"] for e in events if "eid" in e)


async def test_reset_clears_memory_not_files(make_client):
    client = await make_client()
    await post_batch(client, sample_events())
    await wait_counts(client, good=3, bad=1)
    # state changes only by a POST a page of another site cannot send without a preflight
    assert (await client.get("/micro/reset")).status == 405
    assert (await client.post("/micro/reset", data="x", headers={"Content-Type": "text/plain"})).status == 415
    assert (await client.get("/micro/all")).status == 200 and (await (await client.get("/micro/all")).json())["good"] == 3
    resp = await client.post("/micro/reset", json={})
    assert await resp.json() == {"total": 0, "good": 0, "bad": 0}
    assert await (await client.get("/micro/good")).json() == []
    assert await (await client.get("/micro/bad")).json() == []
    assert await (await client.post("/micro/all")).json() == {"total": 0, "good": 0, "bad": 0}
    [tsv] = (client.data_dir / "enriched").glob("*.tsv")
    assert len(tsv.read_text().splitlines()) == 3
    await client.get("/i?e=pv&url=https%3A%2F%2Facme.com%2F")
    await wait_counts(client, good=1, bad=0)


async def test_full_queue_answers_503_and_nothing_is_lost(make_client, monkeypatch):
    client = await make_client(up__queue_max_records=2)
    pipeline = client.pipeline
    # Hold the consumer: nothing leaves the queue until released.
    release = asyncio.Event()
    original = pipeline._consume

    async def held():
        await release.wait()
        await original()

    pipeline._consumer.cancel()
    pipeline._consumer = asyncio.create_task(held())
    statuses = [(await client.get(f"/i?e=pv&url=https%3A%2F%2Facme.com%2F{i}")).status for i in range(3)]
    assert statuses == [200, 200, 503]
    resp = await post_batch(client, sample_events()[:1])
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    release.set()
    await wait_counts(client, good=2, bad=0)
    assert (await client.get("/i?e=pv&url=https%3A%2F%2Facme.com%2F3")).status == 200
    await wait_counts(client, good=3, bad=0)


async def test_queue_sink_refuses_whole_requests_and_after_close():
    sink = QueueSink(max_records=3)
    await sink.send([(b"k", b"a"), (b"k", b"b")])
    with pytest.raises(SinkUnavailable):
        await sink.send([(b"k", b"c")], [b"bad"])  # 2 items, 1 place: refused whole
    assert sink.buffer_fill() == 2
    await sink.send([], [b"bad"])
    assert sink.queue.full() and not sink.healthy
    assert [sink.queue.get_nowait() for _ in range(3)] == [("raw", b"a", 0), ("raw", b"b", 0), ("bad", b"bad", 0)]
    await sink.close(0)
    with pytest.raises(SinkUnavailable):
        await sink.send([(b"k", b"d")])


async def test_shutdown_drains_the_queue_into_the_files(enricher, tmp_path):
    cfg = load_config(None, env={})
    cfg = dataclasses.replace(cfg, up=dataclasses.replace(cfg.up, data_dir=str(tmp_path), batch_size=2,
                                                           progress_interval=0.0))
    pipeline = Pipeline(cfg, enricher)
    await pipeline.start()
    # Queue records, then drain at once.
    sends = []
    for i in range(7):
        payload = tp2_body([{"e": "pv", "url": f"https://acme.com/{i}", "tv": "t", "p": "web"}])
        from ext import CollectorPayload, encode_collector_payload
        raw = encode_collector_payload(CollectorPayload(
            schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0", ip_address="1.2.3.4",
            timestamp=int(time.time() * 1000), encoding="UTF-8", collector="c", path=TP2, body=payload,
            content_type="application/json", headers=[],
                network_user_id="22222222-2222-4222-8222-222222222222"))
        sends.append(pipeline.sink.send([(b"k", raw)]))
    await asyncio.gather(*sends)
    await pipeline.drain()
    [tsv] = Path(tmp_path, "enriched").glob("*.tsv")
    urls = sorted(transform(line)["page_url"] for line in tsv.read_text().splitlines())
    assert urls == [f"https://acme.com/{i}" for i in range(7)]
    with pytest.raises(SinkUnavailable):
        await pipeline.sink.send([(b"k", b"x")])


async def test_micro_routes_do_not_shadow_other_vendor_paths(make_client):
    client = await make_client()
    resp = await client.options("/micro/good", headers={"Origin": "https://a.com",
                                                        "Access-Control-Request-Method": "POST"})
    # unlike the tracking routes, no permission for a page of another origin
    assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/micro/all", headers={"Origin": "https://a.com"})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
    assert (await client.get("/health")).status == 200


def test_the_micro_store_keeps_the_latest_bad_rows_and_counts_them_all():
    from processor.badrows import generic_error
    from snowmelt.micro import MicroStore

    store = MicroStore(max_events=3)
    rows = [generic_error(f"payload {i}".encode(), [f"error {i}"]) for i in range(5)]
    store.add([], b"".join(row + b"\n" for row in rows[:4]), [None, {"api": {"vendor": "a"}}, None, None])
    store.add([], rows[4] + b"\n", [{"api": {"vendor": "b", "version": "v1"}}])
    assert store.summary() == {"total": 5, "good": 0, "bad": 5}
    kept = store.query_bad()
    assert [e["errors"] for e in kept] == [[f"generic_error: error {i}"] for i in (2, 3, 4)]
    assert [e["collectorPayload"] for e in store.query_bad(vendor="b")] == [{"api": {"vendor": "b", "version": "v1"}}]
    assert store.query_bad()[0] is kept[0]  # shaped once


async def test_the_client_address_comes_from_x_forwarded_for_as_snowplow_reads_it(make_client):
    # collector -> stage: "[v6]:port" gives the address, "localhost" is none (the peer's is used)
    client = await make_client()
    for eid, forwarded in (("6", "[2001:DB8::1]:8080"), ("7", "localhost"), ("8", "198.51.100.7:443, 10.0.0.1")):
        resp = await client.get(f"/i?e=pv&eid=00000000-0000-4000-8000-00000000000{eid}&tv=js-4&p=web",
                                headers={"X-Forwarded-For": forwarded})
        assert resp.status == 200
    await wait_counts(client, good=3, bad=0)
    good = await (await client.get("/micro/good")).json()
    assert [g["event"]["user_ipaddress"] for g in good] == ["2001:db8::1", "127.0.0.1", "198.51.100.7"]
