"""A service killed by a fatal signal dies at once, and leaves its Python stacks in its log.

A crash in a library's C code (librdkafka's failed assertions abort, a bad
pointer faults) ends the process with no traceback: its log used to say
nothing of where it was.  And in the processes that host chdb (the ClickHouse
loader, ``snowmelt up``) ClickHouse's own handlers caught the signal and never
ended the process: it hung instead of dying.  Each role
runs here against the broker, is sent the signal a crash raises, must exit by
it within seconds, and its log must hold each thread's Python stack.
"""
from __future__ import annotations

import re
import signal

import pytest

from tests.services.collector import CollectorProcess
from tests.services.enrich import EnrichProcess
from tests.services.load import LoadProcess
from tests.services.up import UpProcess

#: a crashed process is gone within this (a hung one never is)
DEATH_SECONDS = 15


def start_role(role: str, kafka_broker, topics, tmp_path):
    if role == "collector":
        return CollectorProcess(kafka_broker.bootstrap_servers, topics).start()
    if role == "enrich":
        return EnrichProcess(kafka_broker.bootstrap_servers, topics).start()
    if role == "up":
        return UpProcess(tmp_path / "up").start()
    return LoadProcess("clickhouse", kafka_broker.bootstrap_servers, topics.enriched, topics.bad, {
        "clickhouse.backend": "chdb", "clickhouse.chdb_path": str(tmp_path / "chdb")}).start()


def _whole(dump: str) -> bool:
    """Whether the dump ends as faulthandler ends one: with its list of extension modules, or a whole frame
    (``  File "...", line N in name``).  A dump cut short ends in the middle of a line."""
    lines = dump.rstrip("\n").splitlines()
    return bool(lines) and (lines[-1].startswith("Extension modules: ")
                            or re.fullmatch(r'\s+File ".*", line \d+ in \S+', lines[-1]) is not None)


@pytest.mark.parametrize("role, sig", [("collector", signal.SIGABRT), ("enrich", signal.SIGABRT),
                                       ("load", signal.SIGABRT), ("load", signal.SIGSEGV), ("up", signal.SIGABRT)])
def test_a_process_killed_by_a_fatal_signal_dies_with_every_threads_stack(role, sig, kafka_broker,
                                                                         make_kafka_topics, tmp_path):
    process = start_role(role, kafka_broker, make_kafka_topics(), tmp_path)
    try:
        process.proc.send_signal(sig)
        status, _, log = process.wait_exited(DEATH_SECONDS, f"the {role} process to die of {sig.name}")
        dump = log[log.find("Fatal Python error: "):]
        assert dump.startswith("Fatal Python error: "), f"no stack dump in the {role}'s log:\n{log[-4000:]}"
        # the thread that took the signal and at least one other, each with its frames, the main one among them
        threads = re.findall(r"(?:Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\)", dump)
        main = re.search(r'File ".*snowmelt/cli\.py", line \d+ in main', dump)
        whole = dump.count("Fatal Python error: ") == 1 and _whole(dump) and len(threads) >= 2 and main
        if status == -signal.SIGSEGV and not whole:
            # faulthandler reads the other threads' frames while they run, and that read can fault: the dump
            # then ends early and the process dies of that fault, as promptly. Seen on CI: a second header; a
            # dump cut in the middle of a line (`  File ` and nothing after); one thread whose frames, read
            # while they changed, ran from socketserver's write down to _weakrefset's _remove, and no other
            print(f"the {role}'s stack dump faulted:\n{dump[:4000]}")
            return
        assert status == -sig, log[-4000:]
        assert len(threads) >= 2, dump[:4000]
        assert main, dump[:4000]
    finally:
        process.kill()
        process.remove_log()
