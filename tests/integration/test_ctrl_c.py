"""Ctrl-C in a terminal stops a role cleanly, helper processes and all.

A terminal's Ctrl-C sends SIGINT to every process of the foreground process
group, and a service manager (systemd's default) sends SIGTERM to every
process of the service: not only the role, but the processes it started.
``snowmelt up``'s stage process then died of a KeyboardInterrupt while ``up``
drained its queue through it (a traceback in the log, the stage started
again), and the membership describer of an enrich worker or loader died
with a traceback of its own.  Each role here is started as a shell starts a
command (a process group of its own), stopped by a signal to the whole group,
and must exit 0 with no traceback in its log; ``up`` under load must have
every acknowledged event in its files.
"""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.services.enrich import EnrichProcess
from tests.services.pipeline import Traffic, enriched_ids
from tests.services.process import child_pids, proc_text, signal_set
from tests.services.up import UpProcess
from tests.services.wait import wait_until


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_up_stopped_with_its_process_group_under_load_drains_through_its_stage(sig, tmp_path):
    up = UpProcess(tmp_path / "data")
    up.own_group = True
    up.start(90)
    traffic = Traffic(up.port, rate=100, senders=4, max_requests=1_000_000, events_per_post=20).start()
    try:
        traffic.wait_accepted(3_000, 60, "3,000 events accepted")
        assert child_pids(up.proc.pid), "no stage process"
        up.signal_group(sig)
        status = up.proc.wait(60)
        traffic.stop()
        log = up.output(200_000)
        assert status == 0, log[-6000:]
        assert "Traceback" not in log and "stage process died" not in log, log[-6000:]
        missing = set(traffic.accepted) - set(enriched_ids(up.enriched_lines()))
        assert not missing, f"{len(missing)} of {len(traffic.accepted)} acknowledged events are not in the files"
    finally:
        traffic.stop()
        up.kill()
        up.remove_log()


def test_an_enrich_worker_stopped_with_its_process_group_ends_with_its_describer(kafka_broker, make_kafka_topics):
    worker = EnrichProcess(kafka_broker.bootstrap_servers, make_kafka_topics())
    worker.own_group = True
    worker.start()
    try:
        describer = []
        wait_until(lambda: describer.extend(p for p in child_pids(worker.proc.pid)
                                            if "snowmelt.membership" in proc_text(p, "cmdline")) or describer, 60,
                   "the membership describer started")
        # once it has started (a Ctrl-C while it is still importing ends it: an outage of one check)
        wait_until(lambda: {signal.SIGINT, signal.SIGTERM} <= signal_set("SigIgn", describer[0]), 30,
                   "the describer ignoring the stop signals")
        worker.signal_group(signal.SIGINT)
        status = worker.proc.wait(60)
        log = worker.output(200_000)
        assert status == 0, log[-6000:]
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-6000:]
        wait_until(lambda: not Path(f"/proc/{describer[0]}").exists(), 10, "the describer to end with its worker")
    finally:
        worker.kill()
        worker.remove_log()
