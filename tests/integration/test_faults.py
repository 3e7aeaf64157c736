"""Faults injected while tracker events flow: nothing accepted is lost, backpressure shows, recovery is automatic.

Each test sends real tracker requests (tp2 POST batches of page views and GET
pixels, every event with its own ``eid``) to the real processes, injects one
fault mid-stream, ends it and counts, by distinct event_id:

* **sent** -- every event the traffic generator tried;
* **accepted** -- the events of requests the collector answered 2xx;
* **enriched** -- the events on the enriched topic (or in ``snowmelt up``'s
  enriched files);
* **loaded** -- the events in the store (objects read back from the S3
  bucket; ``snowmelt up``'s ClickHouse store through its SQL endpoint).

The contract is at least once from the 2xx on: every accepted event is
enriched and loaded (duplicates are allowed and counted).  An event answered
503 may still have reached the broker (its acknowledgement was what timed
out): it is then enriched and loaded like the others and a tracker's retry
would make it a duplicate, so ``accepted <= enriched`` and ``enriched ==
loaded`` are asserted, and the counts are printed for ``pytest -s``.

1. The broker killed (SIGKILL) mid-stream and restarted: the collector answers
   503 while it cannot reach the broker and 200 again after, by itself.
2. The broker frozen (SIGSTOP) then thawed (SIGCONT): requests whose records
   are not acknowledged within ``collector.produce_timeout`` are answered 503.
3. S3 answering a share of requests ``503 SlowDown`` / ``500 InternalError``
   (tests/services/fault_proxy.py in front of SeaweedFS): the S3 loader pauses,
   retries the same batch and loads every event exactly once.
4. The only enrich worker killed (SIGKILL) mid-batch and a new one started: it
   reads again what the dead one had not committed.  (Workers joining, dying
   and leaving beside survivors: tests/integration/test_scaling.py.)
5. The disk of ``snowmelt up`` full (a tmpfs filled with a ballast file): the
   batches that cannot be written are kept and retried, the queue fills and the
   collector answers 503; when the ballast goes, everything is written.

ClickHouse down and back is not here: no ClickHouse server can run on this
machine, and chdb (the engine in the loader's own process) has no "down".
"""
from __future__ import annotations

import errno
import gzip
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.services.fault_proxy import S3FaultProxy
from tests.services.pipeline import (PARTITIONS, Traffic, assert_nothing_accepted_lost, chdb_event_ids,
                                     drained_counts, end_offsets, enriched_ids, metric_sum, pipeline, report)
from tests.services.s3 import s3_enriched_event_ids
from tests.services.up import UpProcess
from tests.services.wait import wait_until

# how long each fault lasts once its effect is seen
DOWN_SECONDS = 3.0



def assert_broker_fault_outcome(traffic, enriched, loaded, bad, unavailable, state: str) -> None:
    """Nothing accepted lost, the collector pushed back while the broker was ``state``, no bad rows."""
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert traffic.refused and unavailable > 0, f"no backpressure while the broker was {state}"
    assert bad == 0


def test_broker_killed_and_restarted_mid_stream(private_kafka_broker, seaweedfs, make_s3_bucket):
    broker = private_kafka_broker
    if not broker.supports_restart:
        pytest.skip(f"{broker.kind} loses its data on restart: a broker outage cannot be survived on it")
    bucket = make_s3_bucket(seaweedfs)
    with pipeline(broker, bucket, seaweedfs.endpoint_url, collector={"collector.produce_timeout": "3"}) as p:
        traffic = Traffic(p.collector.port).start()
        try:
            traffic.wait_accepted(300, 60, "events accepted before the fault")
            broker.kill()
            down_at = traffic.counts()
            down_since = time.monotonic()
            print(f"\nbroker killed after {down_at[0]} accepted events")
            traffic.wait_refused(30, "503s from the collector while the broker is down")
            traffic.wait_for(DOWN_SECONDS)
            health = urllib.request.Request(p.collector.url + "/sink-health")
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(health, timeout=10)
            assert answer.value.code == 503
            accepted_while_down = traffic.counts()[0] - down_at[0]
            broker.start()
            print(f"broker restarted after {time.monotonic() - down_since:.1f}s down; "
                  f"{traffic.counts()[1]} events refused so far")
            traffic.wait_accepted(500, 90, "events accepted after the broker came back")
        finally:
            traffic.stop()
        unavailable, enriched, bad, loaded = drained_counts(p, seaweedfs, bucket)
    report("broker killed", traffic, enriched, loaded, bad,
           f"accepted while the broker was down (in flight before the kill) {accepted_while_down}; "
           f"collector sink_unavailable counter {unavailable:.0f}")
    assert_broker_fault_outcome(traffic, enriched, loaded, bad, unavailable, "down")


def test_broker_frozen_then_thawed_mid_stream(private_kafka_broker, seaweedfs, make_s3_bucket):
    broker = private_kafka_broker
    if broker.pid is None:
        pytest.skip(f"{broker.kind} broker has no process of ours to freeze")
    bucket = make_s3_bucket(seaweedfs)
    with pipeline(broker, bucket, seaweedfs.endpoint_url, collector={"collector.produce_timeout": "3"}) as p:
        traffic = Traffic(p.collector.port).start()
        frozen = False
        try:
            traffic.wait_accepted(300, 60, "events accepted before the fault")
            os.killpg(broker.pid, signal.SIGSTOP)  # the broker and any child: alive, connected, silent
            frozen = True
            frozen_at, frozen_since = traffic.counts(), time.monotonic()
            print(f"\nbroker frozen (SIGSTOP) after {frozen_at[0]} accepted events")
            traffic.wait_refused(30, "503s from the collector while the broker is frozen")
            first_503 = time.monotonic() - frozen_since
            traffic.wait_for(DOWN_SECONDS)
            os.killpg(broker.pid, signal.SIGCONT)
            frozen = False
            print(f"broker thawed (SIGCONT) after {time.monotonic() - frozen_since:.1f}s; first 503 "
                  f"{first_503:.1f}s into the freeze; {traffic.counts()[1]} events refused so far")
            traffic.wait_accepted(500, 90, "events accepted after the broker thawed")
        finally:
            if frozen:
                os.killpg(broker.pid, signal.SIGCONT)
            traffic.stop()
        unavailable, enriched, bad, loaded = drained_counts(p, seaweedfs, bucket)
    report("broker frozen", traffic, enriched, loaded, bad,
           f"accepted from the freeze on (recovery included) {traffic.counts()[0] - frozen_at[0]}; "
           f"collector sink_unavailable counter {unavailable:.0f}")
    assert_broker_fault_outcome(traffic, enriched, loaded, bad, unavailable, "frozen")
    assert first_503 < 3 + 10, "requests were held far longer than collector.produce_timeout"


def test_s3_throttling_and_errors_mid_stream(kafka_broker, seaweedfs, make_s3_bucket):
    bucket = make_s3_bucket(seaweedfs)
    with S3FaultProxy(seaweedfs.endpoint_url, internal_error_share=0.25, seed=7) as proxy, \
            pipeline(kafka_broker, bucket, proxy.url, load={"s3.max_attempts": "1", "s3.connect_timeout": "2",
                                                            "s3.read_timeout": "10"}) as p:
        traffic = Traffic(p.collector.port).start()
        unhealthy_seen = []
        try:
            traffic.wait_accepted(300, 60, "events accepted before the fault")
            wait_until(lambda: proxy.forwarded_total("PUT") > 0, 60, "a first batch in S3")
            proxy.fail_share = 0.6
            print(f"\nS3 failing 60% of requests after {traffic.counts()[0]} accepted events")

            def loader_retrying():
                text = p.loader.metrics()
                if metric_sum(text, "snowmelt_load_store_healthy") == 0:
                    unhealthy_seen.append(True)
                return metric_sum(text, "snowmelt_load_retries_total") >= 3 and unhealthy_seen

            wait_until(loader_retrying, 60, "the S3 loader retrying with the store unhealthy", interval=0.1)
            traffic.wait_for(DOWN_SECONDS)
            proxy.fail_share = 0.0
            print(f"S3 healthy again; injected {dict(proxy.injected)}")
            traffic.wait_accepted(300, 60, "events accepted after S3 recovered")
        finally:
            traffic.stop()
        enriched, bad = p.settle()
        metrics = p.loader.metrics()
        p.stop()
        log = p.loader.output(200_000)
        loaded = s3_enriched_event_ids(seaweedfs.client(), bucket)
    retries = metric_sum(metrics, "snowmelt_load_retries_total")
    report("S3 throttling", traffic, enriched, loaded, bad,
           f"injected 503 SlowDown {proxy.injected_total(503)}, 500 InternalError {proxy.injected_total(500)}, "
           f"forwarded {dict(proxy.forwarded)}; loader retries {retries:.0f}")
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert len(loaded) == len(set(loaded)), f"{len(loaded) - len(set(loaded))} events in S3 twice"
    assert proxy.injected_total(503) > 0 and proxy.injected_total(500) > 0
    assert retries >= 3 and unhealthy_seen, "the loader never backed off"
    assert "pausing consumption" in log and "available again" in log, log[-3000:]
    assert not traffic.refused, "the collector refused events because of S3 (the loader is downstream)"
    assert bad == 0


def consumer_lag(bootstrap: str, group: str, topic: str) -> int:
    from tests.services.load import committed_offsets

    ends = end_offsets(bootstrap, [topic])[topic]
    committed = committed_offsets(bootstrap, group, topic, PARTITIONS)
    return sum(end - max(c, 0) for c, end in zip(committed, ends))


def test_enrich_worker_killed_mid_batch_and_replaced(kafka_broker, seaweedfs, make_s3_bucket):
    bucket = make_s3_bucket(seaweedfs)
    with pipeline(kafka_broker, bucket, seaweedfs.endpoint_url) as p:
        traffic = Traffic(p.collector.port).start()
        try:
            first = p.workers[0]
            wait_until(lambda: metric_sum(first.metrics(), "snowmelt_enrich_events_good_total") >= 300, 90,
                       "the first worker enriching")
            killed_good = metric_sum(first.metrics(), "snowmelt_enrich_events_good_total")
            first.kill()
            print(f"\nthe only enrich worker killed (-9) after {killed_good:.0f} good events, "
                  f"{traffic.counts()[0]} accepted")
            traffic.wait_for(DOWN_SECONDS)
            lag = consumer_lag(p.bootstrap, p.enrich_group, p.topics.raw)
            second = p.new_worker().start(90)
            print(f"a new worker started; raw records (requests) waiting for it: {lag}")
            wait_until(lambda: metric_sum(second.metrics(), "snowmelt_enrich_events_good_total") > 0, 90,
                       "the new worker enriching")
            traffic.wait_accepted(300, 60, "events accepted after the new worker started")
        finally:
            traffic.stop()
        enriched, bad = p.settle()
        second_good = metric_sum(second.metrics(), "snowmelt_enrich_events_good_total")
        p.stop()
        loaded = s3_enriched_event_ids(seaweedfs.client(), bucket)
    report("enrich worker killed", traffic, enriched, loaded, bad,
           f"killed worker {killed_good:.0f} good events, its replacement {second_good:.0f}; raw records "
           f"(requests) waiting while no worker ran {lag}")
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert set(enriched) == set(traffic.accepted) and not traffic.refused
    assert lag > 0, "no raw records waited while no worker ran"
    assert bad == 0



def local_enriched_event_ids(root: Path) -> list[str]:
    return [eid for f in sorted(root.rglob("*.tsv.gz")) if "/enriched/" in str(f)
            for eid in enriched_ids(gzip.decompress(f.read_bytes()).decode().splitlines())]


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs of its own (root only): filling it makes every write there fail with ENOSPC."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> int:
    """Write a ballast file until the disk is full (ENOSPC); returns its size."""
    chunk = b"\0" * (256 * 1024)
    written = 0
    with open(disk / "ballast", "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    with pytest.raises(OSError), open(disk / "probe", "wb", buffering=0) as f:  # full: not even 4 KiB fits
        f.write(b"x" * 4096)
    (disk / "probe").unlink(missing_ok=True)
    return written


def test_disk_full_under_snowmelt_up(small_disk):
    data_dir = small_disk / "data"
    up = UpProcess(data_dir, settings={"up.queue_max_records": "100", "up.store_interval": "0.5"}).start(90)
    try:
        traffic = Traffic(up.port).start()
        try:
            traffic.wait_accepted(300, 60, "events accepted before the disk filled")
            ballast = fill(small_disk)
            full_at, full_since = traffic.counts(), time.monotonic()
            print(f"\ndisk full ({ballast // 1024} KiB of ballast) after {full_at[0]} accepted events")
            traffic.wait_refused(60, "503s from snowmelt up while its disk is full")
            first_503 = time.monotonic() - full_since
            traffic.wait_for(DOWN_SECONDS)
            accepted_while_full = traffic.counts()[0] - full_at[0]
            (small_disk / "ballast").unlink()
            print(f"ballast removed after {time.monotonic() - full_since:.1f}s (first 503 after "
                  f"{first_503:.1f}s); {traffic.counts()[1]} events refused so far")
            traffic.wait_accepted(300, 60, "events accepted after space returned")
        finally:
            traffic.stop()
        assert up.terminate(120) == 0, up.output()
        log = up.output(50_000)
        enriched = enriched_ids(up.enriched_lines())
        bad = len(up.bad_lines())
        loaded = chdb_event_ids(data_dir / "clickhouse")
        in_s3_files = local_enriched_event_ids(data_dir / "s3")
    finally:
        up.kill()
        up.remove_log()
    report("disk full (snowmelt up)", traffic, enriched, loaded, bad,
           f"accepted once the disk was full (queued before the queue filled) {accepted_while_full}; "
           f"S3-layout files {len(set(in_s3_files))} distinct ({len(in_s3_files) - len(set(in_s3_files))} duplicates)")
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert set(in_s3_files) == set(enriched), "the S3-layout files miss events"
    assert traffic.refused, "no backpressure while the disk was full"
    assert bad == 0
    # the write-ahead log (or the output of what it had taken) failed with ENOSPC, requests were refused
    # meanwhile, and writing went on once space returned
    assert "No space left on device" in log, log[-3000:]
    assert "answered 503 until it can be written" in log or "holding it and the queue behind it" in log, log[-3000:]
    assert "writing the write-ahead log again after" in log or "writing again after" in log, log[-3000:]
    assert "is lost" not in log, log[-3000:]
