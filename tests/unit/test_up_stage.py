"""The stage process of ``snowmelt up``: a record that kills it is isolated, the rest of its batch goes on."""
from __future__ import annotations

import json
import os

from bench.profiling import status_kb
from snowmelt.up_stage import Batch, StageProcess


def lines_or_die(items):
    """In the stage process: each value as a good line, except that ``b"poison"`` ends the process."""
    if any(value == b"poison" for _kind, value, _seq in items):
        os._exit(9)  # what a crash in native code or the OOM killer looks like from the parent
    return Batch(good_lines=[value.decode() for _kind, value, _seq in items], records=len(items),
                 last_seq=max(seq for _kind, _value, seq in items))


class Poisonable(StageProcess):
    async def _submit(self, items):
        return await self._request(lines_or_die, items)


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
        return status_kb(pid, ("VmRSS",))["VmRSS"] * 1024

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


async def test_a_request_s_megabytes_of_bad_rows_come_back_in_a_spool_file_not_through_the_pipe(tmp_path):
    """A 1 MB tp2 request of events breaking the tracker protocol makes ~80 MB of bad rows; pickled through the
    pool's pipe they held the serving process's interpreter over a second.  They come back in a spool file."""
    import pickle
    import time
    import uuid

    from ext import SCHEMA, CollectorPayload, encode_collector_payload

    events = [{"e": "pv", "p": "web", "tv": "js-3", "res": "x" * 20}] * 2_000
    body = json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                       "data": events})
    raw = encode_collector_payload(CollectorPayload(
        schema=SCHEMA, ip_address="203.0.113.9", timestamp=int(time.time() * 1000), encoding="UTF-8",
        collector="test", path="/com.snowplowanalytics.snowplow/tp2", body=body, content_type="application/json",
        network_user_id=str(uuid.uuid4())))
    spool_dir = tmp_path / "spool"
    stage = StageProcess("", "", spool_dir=str(spool_dir))
    stage.start()
    try:
        batch = await stage.run([("raw", raw, 1), ("raw", raw, 2)])
    finally:
        stage.close()
    assert batch.bad_count == 4_000 and batch.bad_data == b""
    assert batch.bad_spool is not None and batch.bad_spool.size > 1 << 20
    # what crossed the pipe: counts, the spool's name and the two requests' collector payloads (the bodies, for
    # the Micro API), not the bad rows
    assert len(pickle.dumps(batch)) < 2 * len(raw) + 64 * 1024 < batch.bad_spool.size / 10
    rows = batch.bad_spool.read().splitlines()
    assert len(rows) == 4_000 and all(json.loads(row)["schema"].startswith(
        "iglu:com.snowplowanalytics.snowplow.badrows/") for row in rows[:: 500])
    assert [p.parent for p in spool_dir.iterdir()] == [spool_dir]
    # a small batch keeps its rows in memory; read back, a spool is removed
    assert batch.unspooled().bad_data.count(b"\n") == 4_000 and not list(spool_dir.iterdir())


def test_the_stage_process_is_the_only_one_and_loads_no_http_server():
    """The stage process is up's one helper (multiprocessing's spawn started a second, its resource tracker, 15 MB)
    and it does not load aiohttp (15 MB resident), which only the serving process uses."""
    from pathlib import Path

    from tests.services.process import child_pids

    before = set(child_pids(os.getpid()))
    stage = StageProcess("", "")
    stage.start()
    try:
        [pid] = stage.pids()
        assert set(child_pids(os.getpid())) - before == {pid}
        mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()}
        assert any("/orjson/" in path for path in mapped)  # the stage's own native modules are there
        assert not [path for path in mapped if "/aiohttp/" in path]
    finally:
        stage.close()
