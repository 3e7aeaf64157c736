"""The enrich worker's batching and commit ordering, without a broker."""
from __future__ import annotations

import asyncio
import base64

import pytest

from processor.stage import StageOutput
from processor.worker import (
    BatchWriter,
    DeliveryFailed,
    enrich_batch,
    kafka_security_settings,
    run_batch,
)
from snowmelt.metrics import METRIC_NAMES, EnrichStats
from tests.unit.test_badrows import validate_row


def tsv(event_id: str) -> str:
    fields = [""] * 131
    fields[6] = event_id
    return "\t".join(fields)


class FakeEnricher:
    """Record b"good:N" -> N good events, b"bad" -> a bad row, b"boom" -> raises."""

    def batch(self):
        import contextlib

        return contextlib.nullcontext()

    def enrich(self, raw: bytes) -> StageOutput:
        if raw == b"boom":
            raise KeyError("stage bug")
        if raw == b"bad":
            return StageOutput(bad=[b'{"schema":"bad"}'])
        n = int(raw.split(b":")[1])
        return StageOutput(good=[tsv(f"{raw.decode()}-{i}") for i in range(n)])


def test_enrich_batch_keys_good_lines_by_event_id_and_passes_bad_rows():
    stats = EnrichStats()
    out = enrich_batch(FakeEnricher(), [b"good:2", b"bad", b"good:1"], stats)
    assert [k for k, _ in out.good] == [b"good:2-0", b"good:2-1", b"good:1-0"]
    assert all(v.decode().split("\t")[6] == k.decode() for k, v in out.good)
    assert out.bad == [b'{"schema":"bad"}']
    assert stats.records == 3 and stats.stage_errors == 0


def test_a_stage_exception_becomes_a_generic_error_and_the_batch_goes_on():
    stats = EnrichStats()
    out = enrich_batch(FakeEnricher(), [b"good:1", b"boom", b"good:1"], stats)
    assert len(out.good) == 2
    [row_bytes] = out.bad
    row = validate_row(row_bytes)  # against schemas/.../generic_error/jsonschema/1-0-0
    assert row["schema"] == "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0"
    assert base64.b64decode(row["data"]["payload"]) == b"boom"
    assert "KeyError" in row["data"]["failure"]["errors"][0]
    assert stats.stage_errors == 1


class FakeTopic:
    """send() hands back a future that the test resolves (the broker's acknowledgement)."""

    def __init__(self):
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.futures: list[asyncio.Future] = []

    async def send(self, key, value):
        self.sent.append((key, value))
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    def ack_all(self, error: Exception | None = None):
        for fut in self.futures:
            if not fut.done():
                fut.set_exception(error) if error else fut.set_result("metadata")


async def test_write_returns_only_after_every_output_record_is_acknowledged():
    good, bad, stats = FakeTopic(), FakeTopic(), EnrichStats()
    writer = BatchWriter(FakeEnricher(), good.send, bad.send, stats)
    task = asyncio.ensure_future(writer.write([b"good:3", b"bad"]))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(good.sent) == 3 and len(bad.sent) == 1
    assert not task.done(), "write returned before the broker acknowledged"
    good.ack_all()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done(), "write returned before the bad rows were acknowledged"
    bad.ack_all()
    routed = await asyncio.wait_for(task, 1)
    assert len(routed.good) == 3
    assert (stats.good, stats.bad, stats.batch_latency.count) == (3, 1, 1)


async def test_an_unacknowledged_record_fails_the_batch():
    good, bad, stats = FakeTopic(), FakeTopic(), EnrichStats()
    writer = BatchWriter(FakeEnricher(), good.send, bad.send, stats)
    task = asyncio.ensure_future(writer.write([b"good:2"]))
    await asyncio.sleep(0)
    good.futures[0].set_result("ok")
    good.futures[1].set_exception(RuntimeError("NotEnoughReplicas"))
    with pytest.raises(DeliveryFailed, match="1 of 2"):
        await task
    assert stats.good == 0  # nothing counted as written


async def test_cancelling_the_agent_mid_batch_waits_for_the_batch_to_be_written():
    good, bad, stats = FakeTopic(), FakeTopic(), EnrichStats()
    writer = BatchWriter(FakeEnricher(), good.send, bad.send, stats)
    agent = asyncio.ensure_future(run_batch(writer, [b"good:2"]))
    await asyncio.sleep(0.01)
    agent.cancel()
    await asyncio.sleep(0.01)
    assert not agent.done(), "the batch in hand was abandoned"
    good.ack_all()
    with pytest.raises(asyncio.CancelledError):
        await agent
    assert stats.good == 2


def test_enrich_metrics_are_declared():
    stats = EnrichStats()
    stats.lag[("raw", 0)] = 5
    names = {m.name for m in stats.collect()}
    declared = set(METRIC_NAMES)
    for name in names:
        assert name in declared or name + "_total" in declared, name
    assert {n for n in declared if n.startswith("snowmelt_enrich_")} == {
        n if n in declared else n + "_total" for n in names}


def test_only_understood_kafka_security_settings_are_accepted():
    assert kafka_security_settings({}) == {}
    assert kafka_security_settings({"security.protocol": "PLAINTEXT"}) == {}
    creds = kafka_security_settings({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                                     "sasl.username": "u", "sasl.password": "p"})["broker_credentials"]
    assert creds.username == "u"
    with pytest.raises(ValueError, match="kafka.common.socket.timeout.ms"):
        kafka_security_settings({"socket.timeout.ms": 100})


async def test_output_too_large_for_a_record_becomes_a_size_violation():
    good, bad, stats = FakeTopic(), FakeTopic(), EnrichStats()
    writer = BatchWriter(FakeEnricher(), good.send, bad.send, stats, max_record_bytes=200)
    task = asyncio.ensure_future(writer.write([b"good:1"]))  # a 131-field line of ~140 bytes fits
    await asyncio.sleep(0)
    good.ack_all()
    await task
    writer.max_record_bytes = 50
    task = asyncio.ensure_future(writer.write([b"good:1"]))
    await asyncio.sleep(0)
    bad.ack_all()
    routed = await task
    assert routed.good == [] and len(bad.sent) == 1
    row = validate_row(bad.sent[0][1])
    assert row["schema"].endswith("/size_violation/jsonschema/1-0-0")
    assert row["data"]["failure"]["maximumAllowedSizeBytes"] == 50


async def test_json_topic_gets_each_good_event_as_analytics_json():
    import json

    from processor.enriched import FIELDS

    good, bad, as_json, stats = FakeTopic(), FakeTopic(), FakeTopic(), EnrichStats()

    class OneEvent(FakeEnricher):
        def enrich(self, raw):
            fields = [""] * len(FIELDS)
            fields[FIELDS.index("app_id")] = "shop"
            fields[FIELDS.index("event_id")] = "e-1"
            fields[FIELDS.index("se_value")] = "2.5"
            fields[FIELDS.index("contexts")] = json.dumps({
                "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                "data": [{"schema": "iglu:com.acme/product/jsonschema/1-0-0", "data": {"sku": "W"}}]})
            return StageOutput(good=["\t".join(fields)])

    writer = BatchWriter(OneEvent(), good.send, bad.send, stats, send_json=as_json.send)
    task = asyncio.create_task(writer.write([b"r"]))
    while not (good.futures and as_json.futures):
        await asyncio.sleep(0)
    assert not task.done()  # the JSON record's acknowledgement is awaited too
    good.ack_all()
    as_json.ack_all()
    await task
    [(key, value)] = as_json.sent
    doc = json.loads(value)
    assert key == b"e-1"
    assert doc["app_id"] == "shop" and doc["se_value"] == 2.5
    assert doc["contexts_com_acme_product_1"] == [{"sku": "W"}]


class FakeGroupSender:
    """send_all as the worker's producer gives it: one future per batch."""

    def __init__(self):
        self.batches: list[list] = []
        self.futures: list[asyncio.Future] = []

    async def send_all(self, records):
        self.batches.append(list(records))
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


async def test_grouped_output_waits_for_the_group_and_routes_every_record():
    good, bad, stats = FakeTopic(), FakeTopic(), EnrichStats()
    group = FakeGroupSender()
    writer = BatchWriter(FakeEnricher(), good.send, bad.send, stats, send_all=group.send_all)
    task = asyncio.ensure_future(writer.write([b"good:3", b"bad"]))
    for _ in range(5):
        await asyncio.sleep(0)
    [batch] = group.batches
    assert [kind for kind, _, _ in batch] == ["enriched"] * 3 + ["bad"]
    assert not good.sent and not bad.sent  # nothing went through the per-record path
    assert not task.done(), "write returned before the broker acknowledged"
    group.futures[0].set_result(None)
    routed = await asyncio.wait_for(task, 1)
    assert len(routed.good) == 3 and (stats.good, stats.bad) == (3, 1)


async def test_a_failed_group_fails_the_batch():
    good, bad, stats = FakeTopic(), FakeTopic(), EnrichStats()
    group = FakeGroupSender()
    writer = BatchWriter(FakeEnricher(), good.send, bad.send, stats, send_all=group.send_all)
    task = asyncio.ensure_future(writer.write([b"good:2"]))
    for _ in range(5):
        await asyncio.sleep(0)
    group.futures[0].set_exception(RuntimeError("1 of 2 records not acknowledged: NOT_ENOUGH_REPLICAS"))
    with pytest.raises(DeliveryFailed, match="NOT_ENOUGH_REPLICAS"):
        await task
    assert stats.good == 0
