"""The collector against a real broker: delivery guarantees, outages, shutdown, limits."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from urllib.parse import parse_qs

import aiohttp
import pytest

from ext import decode_collector_payload
from tests.services.collector import CollectorProcess
from tests.services.kafka import KafkaTopics, free_ports
from tests.services.payloads import TP2
from tests.services.topics import consume


def eids_in(records) -> list[str]:
    out = []
    for msg in records:
        p = decode_collector_payload(msg.value())
        if p.querystring:
            out.extend(parse_qs(p.querystring).get("eid", []))
        if p.body:
            out.extend(e["eid"] for e in json.loads(p.body)["data"] if "eid" in e)
    return out


class Traffic:
    """Steady GET traffic from a few concurrent senders, remembering each answer."""

    def __init__(self, url: str, concurrency: int = 8):
        self.url = url
        self.concurrency = concurrency
        self.status: dict[str, int] = {}
        self.stopping = asyncio.Event()

    async def _sender(self, session: aiohttp.ClientSession) -> None:
        while not self.stopping.is_set():
            eid = str(uuid.uuid4())
            try:
                async with session.get(f"{self.url}/i?e=pv&eid={eid}") as resp:
                    await resp.read()
                    self.status[eid] = resp.status
            except aiohttp.ClientError:
                self.status[eid] = 0

    def count(self, status: int) -> int:
        return sum(1 for s in self.status.values() if s == status)

    async def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.summary()}")
            await asyncio.sleep(0.05)

    def summary(self) -> dict:
        out: dict[int, int] = {}
        for s in self.status.values():
            out[s] = out.get(s, 0) + 1
        return out

    async def run(self, scenario) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            senders = [asyncio.create_task(self._sender(session)) for _ in range(self.concurrency)]
            try:
                await scenario()
            finally:
                self.stopping.set()
                await asyncio.gather(*senders)


@pytest.mark.parametrize("delivery", ["acked", "buffered"])
def test_broker_outage_loses_no_acknowledged_event(private_kafka_broker, delivery):
    broker = private_kafka_broker
    if not broker.supports_restart:
        pytest.skip(f"{broker.kind} loses its data on restart")
    names = KafkaTopics(*(f"outage.{delivery}.{role}.{uuid.uuid4().hex[:8]}" for role in KafkaTopics._fields))
    broker.create_topics(names)
    raw_topic = names.raw
    settings = {"collector.delivery": delivery, "collector.produce_timeout": "3"}
    with CollectorProcess(broker.bootstrap_servers, names, settings) as collector:
        traffic = Traffic(collector.url)

        async def scenario():
            await traffic.wait_for(lambda: traffic.count(200) >= 300, 60, "traffic before the outage")
            ok_before = traffic.count(200)
            await asyncio.get_running_loop().run_in_executor(None, broker.stop)
            await traffic.wait_for(lambda: traffic.count(503) >= 20, 60, "503s while the broker is down")
            await asyncio.get_running_loop().run_in_executor(None, broker.restart)
            ok_at_restart = traffic.count(200)
            await traffic.wait_for(lambda: traffic.count(200) >= ok_at_restart + 300, 90,
                                   "traffic after the broker returned")
            assert ok_before > 0

        try:
            asyncio.run(traffic.run(scenario))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ncollector's log:\n{collector.output()}") from None
        assert collector.terminate() == 0

    acknowledged = {eid for eid, status in traffic.status.items() if status == 200}
    found = set(eids_in(consume(broker.bootstrap_servers, raw_topic, min_count=len(acknowledged), timeout=60)))
    missing = acknowledged - found
    print(f"\n{delivery}: answers {traffic.summary()}; acknowledged {len(acknowledged)}, on the topic {len(found)}")
    assert not missing, f"{len(missing)} acknowledged events missing; answers: {traffic.summary()}"
    assert traffic.count(503) >= 20


def test_sigterm_drains_buffered_requests(kafka_broker, kafka_topics):
    settings = {"collector.delivery": "buffered", "kafka.producer": "{linger.ms: 200}"}
    collector = CollectorProcess(kafka_broker.bootstrap_servers, kafka_topics, settings).start()
    sent: list[str] = []

    async def send_all():
        async with aiohttp.ClientSession() as session:
            async def one(i):
                eid = str(uuid.uuid4())
                async with session.get(f"{collector.url}/i?e=pv&eid={eid}") as resp:
                    assert resp.status == 200
                    sent.append(eid)
            await asyncio.gather(*(one(i) for i in range(2000)))

    try:
        asyncio.run(send_all())
    finally:
        code = collector.terminate()
    assert code == 0, collector.output()
    found = eids_in(consume(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=len(sent)))
    assert set(sent) <= set(found)


def test_size_limits_on_a_real_topic(kafka_broker, kafka_topics):
    settings = {"collector.max_payload_size": "3000"}
    with CollectorProcess(kafka_broker.bootstrap_servers, kafka_topics, settings) as collector:
        async def send():
            async with aiohttp.ClientSession() as session:
                async with session.post(collector.url + TP2, data=b"z" * 6000) as resp:
                    assert resp.status == 200
                events = [{"e": "pv", "eid": str(uuid.uuid4()), "pad": "p" * 300} for _ in range(40)]
                body = json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                                   "data": events})
                async with session.post(collector.url + TP2, data=body.encode(),
                                        headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 200
                async with session.post(collector.url + TP2, data=b"x" * (3 * 1024 * 1024)) as resp:
                    assert resp.status == 413
                return [e["eid"] for e in events]

        eids = asyncio.run(send())
    raw = consume(kafka_broker.bootstrap_servers, kafka_topics.raw, min_count=2)
    assert len(raw) > 1 and all(len(m.value()) <= 3000 for m in raw)
    assert eids_in(raw) == eids
    [bad] = consume(kafka_broker.bootstrap_servers, kafka_topics.bad, min_count=1)
    row = json.loads(bad.value())
    assert row["schema"].endswith("/size_violation/jsonschema/1-0-0")
    assert row["data"]["failure"]["maximumAllowedSizeBytes"] == 3000
    assert row["data"]["payload"].startswith("zzz")


def test_collector_starts_without_broker_and_recovers(kafka_broker, kafka_topics):
    """No broker at start: /sink-health and tracking answer 503 until it is reachable."""
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    collector = CollectorProcess(dead, kafka_topics, {"collector.produce_timeout": "2"})
    collector.start(wait_sink=False)
    try:
        import urllib.error
        import urllib.request

        for path in ("/sink-health", "/i?e=pv"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(collector.url + path, timeout=10)
            assert err.value.code == 503
    finally:
        assert collector.terminate() == 0
