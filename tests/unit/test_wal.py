"""The write-ahead log of ``snowmelt up`` and its two-slot durable state (real files, no mocks of the disk)."""
from __future__ import annotations

import asyncio
import errno
import os

import pytest

from collector.sink import QueueSink, SinkUnavailable
from snowmelt.wal import HEADER, DurableState, WriteAheadLog, read_records


async def append_all(wal: WriteAheadLog, groups) -> list[int]:
    firsts, futures = [], []
    for group in groups:
        first, future = wal.append(group)
        firsts.append(first)
        if future is not None:
            futures.append(future)
    await asyncio.gather(*futures)
    return firsts


def reopen(path) -> WriteAheadLog:
    wal = WriteAheadLog(path)
    wal.open()
    return wal


async def test_records_are_replayed_in_order_after_a_reopen_and_numbers_go_on(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.open()
    wal.start(asyncio.get_running_loop())
    firsts = await append_all(wal, [[(0, b"a"), (1, b"b")], [(0, b"c")]])
    assert firsts == [1, 3]
    wal.close()  # what kill -9 leaves is the same: every resolved future's records are on disk

    again = reopen(tmp_path)
    assert list(again.replay(0)) == [(1, 0, b"a"), (2, 1, b"b"), (3, 0, b"c")]
    assert list(again.replay(2)) == [(3, 0, b"c")]
    again.start(asyncio.get_running_loop())
    assert await append_all(again, [[(0, b"d")]]) == [4]
    again.close()


async def test_a_torn_last_record_is_cut_off_and_appending_goes_on_after_it(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.open()
    wal.start(asyncio.get_running_loop())
    await append_all(wal, [[(0, b"whole")], [(0, b"x" * 100)]])
    wal.close()
    [segment] = tmp_path.glob("*.wal")
    whole = HEADER.size + len(b"whole")
    with open(segment, "r+b") as f:  # the second record cut mid-payload, as a crash mid-write leaves it
        f.truncate(whole + HEADER.size + 40)

    again = reopen(tmp_path)
    assert segment.stat().st_size == whole
    again.start(asyncio.get_running_loop())
    await append_all(again, [[(0, b"next")]])
    again.close()
    assert [r[2] for r in reopen(tmp_path).replay(0)] == [b"whole", b"next"]


async def test_a_flipped_byte_ends_the_replay_at_that_record(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.open()
    wal.start(asyncio.get_running_loop())
    await append_all(wal, [[(0, b"one")], [(0, b"two")], [(0, b"three")]])
    wal.close()
    [segment] = tmp_path.glob("*.wal")
    data = bytearray(segment.read_bytes())
    data[HEADER.size + 3 + HEADER.size + 1] ^= 0xFF  # inside the second record's payload
    segment.write_bytes(bytes(data))
    records, length = read_records(segment)
    assert [r[2] for r in records] == [b"one"] and length == HEADER.size + 3


async def test_segments_roll_and_only_processed_closed_ones_are_deleted(tmp_path):
    wal = WriteAheadLog(tmp_path, segment_bytes=200)
    wal.open()
    wal.start(asyncio.get_running_loop())
    for i in range(10):
        await append_all(wal, [[(0, bytes([i]) * 100)]])
    segments = sorted(tmp_path.glob("*.wal"))
    assert len(segments) == 6  # two records fill a segment; the last one is open and empty
    assert wal.trim(3) == 1  # only the segment of records 1-2 is wholly at or below 3
    assert wal.trim(100) == 4  # every closed one; the open segment stays
    assert [p.name for p in tmp_path.glob("*.wal")] == [segments[-1].name]
    wal.close()
    assert list(reopen(tmp_path).replay(0)) == []
    assert reopen(tmp_path).last_seq == 10


async def test_a_failed_write_fails_its_requests_and_leaves_nothing_behind(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path)
    wal.open()
    wal.start(asyncio.get_running_loop())
    await append_all(wal, [[(0, b"before")]])
    real_write = os.write
    calls = {"n": 0}

    def full_disk(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            real_write(fd, bytes(data)[:7])  # part of it went in, then the disk was full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError) as info:
        wal.append([(0, b"refused")])
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(os, "write", real_write)
    await append_all(wal, [[(0, b"after")]])
    wal.close()
    # nothing of the refused record is left to replay, and its number goes to the next one
    assert [(seq, payload) for seq, _kind, payload in reopen(tmp_path).replay(0)] == [(1, b"before"), (2, b"after")]


async def test_the_queue_takes_a_request_only_once_the_log_has_it(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path)
    wal.open()
    wal.start(asyncio.get_running_loop())
    sink = QueueSink(max_records=10, log=wal)
    sending = asyncio.ensure_future(sink.send([(b"k", b"raw-1")], [b"bad-1"]))
    await asyncio.sleep(0)
    assert sink.queue.empty() and sink.reserved == 2 and sink.buffer_fill() == 2
    await sending
    assert [sink.queue.get_nowait() for _ in range(2)] == [("raw", b"raw-1", 1), ("bad", b"bad-1", 2)]

    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(SinkUnavailable, match="write-ahead log"):
        await sink.send([(b"k", b"raw-2")])
    assert sink.queue.empty() and sink.reserved == 0 and sink.held_bytes == len(b"raw-1") + len(b"bad-1")
    monkeypatch.undo()
    wal.close()


async def test_a_request_whose_handler_is_cancelled_is_still_queued_once_logged(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.open()
    wal.start(asyncio.get_running_loop())
    sink = QueueSink(max_records=10, log=wal)
    sending = asyncio.ensure_future(sink.send([(b"k", b"raw-1")]))
    await asyncio.sleep(0)
    sending.cancel()  # the client went away while the log was writing
    with pytest.raises(asyncio.CancelledError):
        await sending
    for _ in range(200):
        if not sink.queue.empty():
            break
        await asyncio.sleep(0.01)
    assert sink.queue.get_nowait() == ("raw", b"raw-1", 1)
    wal.close()


def test_durable_state_keeps_the_previous_state_when_the_last_write_is_torn(tmp_path):
    path = tmp_path / "checkpoint"
    state = DurableState(path)
    for seq in range(1, 4):
        state.save({"seq": seq})
    state.close()
    assert path.stat().st_size == 2 * 4096  # preallocated: an update needs no new space
    assert DurableState(path).load() == {"seq": 3}
    # the slot of seq 3 (generation 3: slot 1) torn by a crash mid-write
    with open(path, "r+b") as f:
        f.seek(4096 + 20)
        f.write(b"\0\0\0")
    assert DurableState(path).load() == {"seq": 2}
    again = DurableState(path)
    again.save({"seq": 4})  # continues after the highest valid generation, over the torn slot
    again.close()
    assert DurableState(path).load() == {"seq": 4}
    assert DurableState(tmp_path / "none").load() is None
