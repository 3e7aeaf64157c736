"""The stage process of ``snowmelt up``: a record that kills it is isolated, the rest of its batch goes on."""
from __future__ import annotations

import asyncio
import json
import os

from snowmelt.up_stage import Batch, StageProcess


def lines_or_die(items):
    """In the stage process: each value as a good line, except that ``b"poison"`` ends the process."""
    if any(value == b"poison" for _kind, value, _seq in items):
        os._exit(9)  # what a crash in native code or the OOM killer looks like from the parent
    return Batch(good_lines=[value.decode() for _kind, value, _seq in items], records=len(items),
                 last_seq=max(seq for _kind, _value, seq in items))


class Poisonable(StageProcess):
    async def _submit(self, items):
        return await asyncio.wrap_future(self._pool.submit(lines_or_die, items))


async def test_a_record_that_kills_the_stage_process_becomes_a_bad_row_and_its_batch_goes_on():
    stage = Poisonable("", "")
    stage.start()
    try:
        items = [("raw", value, seq) for seq, value in enumerate([b"a", b"b", b"poison", b"c", b"d"], start=1)]
        batch = await stage.run(items)
        assert batch.good_lines == ["a", "b", "c", "d"]
        [row] = [json.loads(r) for r in batch.bad_data.splitlines()]
        assert row["schema"].startswith("iglu:com.snowplowanalytics.snowplow.badrows/generic_error/")
        assert "stopped the enrichment process" in json.dumps(row["data"])
        assert batch.records == 5 and batch.last_seq == 5
        assert stage.restarts >= 2
        # and the process that replaced it works
        assert (await stage.run([("raw", b"e", 6)])).good_lines == ["e"]
    finally:
        stage.close()


def test_a_configured_file_that_cannot_be_used_stops_the_start_naming_it(tmp_path):
    missing = tmp_path / "resolver.json"
    stage = StageProcess(str(missing), "")
    try:
        stage.start()
    except OSError as exc:
        assert str(missing) in str(exc)
    else:
        raise AssertionError("a missing resolver config was accepted")


def test_the_memory_bound_counts_the_stage_process_too():
    from pathlib import Path

    from snowmelt.up import resident_bytes

    def vm_rss(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    stage = StageProcess("", "")
    stage.start()
    try:
        [pid] = stage.pids()
        assert pid != os.getpid() and int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1]) == os.getpid()
        both = resident_bytes([os.getpid(), pid])
        assert abs(both - (vm_rss(os.getpid()) + vm_rss(pid))) < 32 * 2**20
        assert both > resident_bytes([os.getpid()]) + 20 * 2**20  # the stage's interpreter and its tables
    finally:
        stage.close()
    assert resident_bytes([pid]) == 0  # ended: counts nothing
