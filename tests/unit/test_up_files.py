"""The daily files of ``snowmelt up``, their checkpoint, and the stores loading them by byte range."""
from __future__ import annotations

from pathlib import Path

import pytest

from loaders.base import Batch, Store, StoreUnavailable
from snowmelt.up_files import Checkpoint, DailyFiles
from snowmelt.up_store import LocalLoader

DAY = 1_764_633_600.0  # 2025-12-02 00:00 UTC


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_restore_cuts_what_was_written_after_the_checkpoint(tmp_path):
    clock = Clock(DAY)
    files = DailyFiles(tmp_path, clock)
    files.write_batch(["e1", "e2"], [b'{"bad":1}'])
    checkpoint = Checkpoint(tmp_path / "wal" / "checkpoint")
    checkpoint.save(7, files.ends)
    files.write_batch(["e3"], [b'{"bad":2}'])  # after the checkpoint, then the next day
    clock.now += 86_400
    files.write_batch(["e4"], [])
    files.close()
    checkpoint.close()

    again = Checkpoint(tmp_path / "wal" / "checkpoint")
    assert again.load() and again.seq == 7
    restored = DailyFiles(tmp_path, Clock(DAY))
    assert restored.restore(again.ends) == len("e3\n") + len('{"bad":2}\n') + len("e4\n")
    assert [p.name for p in (tmp_path / "enriched").iterdir()] == ["2025-12-02.tsv"]
    assert (tmp_path / "enriched" / "2025-12-02.tsv").read_text() == "e1\ne2\n"
    assert (tmp_path / "bad" / "2025-12-02.jsonl").read_text() == '{"bad":1}\n'


def test_the_day_never_goes_back_when_the_clock_does(tmp_path):
    clock = Clock(DAY + 86_400)
    files = DailyFiles(tmp_path, clock)
    files.write_batch(["late"], [])
    clock.now = DAY
    files.write_batch(["stepped back"], [])
    files.close()
    assert [p.name for p in (tmp_path / "enriched").iterdir()] == ["2025-12-03.tsv"]


class Recording(Store):
    name = "recording"

    def __init__(self, crash_on: int | None = None, unavailable: bool = False) -> None:
        self.batches: list[Batch] = []
        self.crash_on = crash_on
        self.unavailable = unavailable

    def open(self) -> None:
        pass

    def write(self, batch: Batch) -> None:
        if self.unavailable:
            raise StoreUnavailable("down")
        if self.crash_on is not None and len(self.batches) == self.crash_on:
            raise KeyboardInterrupt("the process dies mid-write")  # not an Exception: nothing after it runs
        self.batches.append(batch)


def lines_in(batches: list[Batch]) -> list[bytes]:
    return [value for batch in batches for value in batch.values]


def write_lines(root: Path, count: int, start: int = 0) -> DailyFiles:
    files = DailyFiles(root, Clock(DAY))
    files.write_batch([f"event-{i}" for i in range(start, start + count)], [])
    return files


def test_a_batch_in_flight_at_a_crash_is_written_again_under_the_same_token(tmp_path):
    files = write_lines(tmp_path, 10)
    # an hour between ticks: the test flushes by hand
    crashing = LocalLoader([Recording(crash_on=1)], tmp_path, batch_size=4, interval=3600)
    crashing.start()
    crashing.advance(files.ends)
    with pytest.raises(KeyboardInterrupt):
        crashing.flush()
    first, = crashing.stores[0].batches
    assert first.values == (b"event-0", b"event-1", b"event-2", b"event-3")

    resumed = LocalLoader([Recording()], tmp_path, batch_size=4)
    resumed.start()
    resumed.advance(files.ends)
    resumed.drain()
    again = resumed.stores[0].batches
    # the batch that was being written when the process died, same bytes and token, then the rest
    assert again[0].token == f"up-2025-12-02-0-{len('event-0') * 4 + 4}-{len('event-0') * 8 + 8 - 1}"
    assert again[0].values == (b"event-4", b"event-5", b"event-6", b"event-7")
    assert lines_in([first] + again) == [f"event-{i}".encode() for i in range(10)]


def test_batches_are_bounded_in_bytes_and_a_longer_line_goes_whole(tmp_path, monkeypatch):
    # a request's 20 MB of bad rows loaded as one batch held the interpreter's lock for tens of
    # milliseconds at each step; batches are cut at MAX_READ bytes (a longer line still goes whole)
    from snowmelt import up_store

    monkeypatch.setattr(up_store, "MAX_READ", 64)
    files = DailyFiles(tmp_path, Clock(DAY))
    written = [f"event-{i}" for i in range(20)] + ["x" * 300] + [f"event-{i}" for i in range(20, 25)]
    files.write_batch(written, [])
    loader = LocalLoader([Recording()], tmp_path, batch_size=1000)
    loader.start()
    loader.advance(files.ends)
    loader.drain()
    batches = loader.stores[0].batches
    assert lines_in(batches) == [line.encode() for line in written]
    assert max(sum(len(v) + 1 for v in b.values) for b in batches if len(b.values) > 1) <= 64
    assert [b"x" * 300] in [list(b.values) for b in batches]
    # the byte ranges follow each other: tokens name every byte once
    ranges = [tuple(int(part) for part in b.token.rsplit("-", 2)[1:]) for b in batches]
    assert ranges[0][0] == 0 and all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:]))


def test_stores_load_only_what_a_checkpoint_covers_and_catch_up_after_an_outage(tmp_path):
    files = write_lines(tmp_path, 3)
    covered = dict(files.ends)
    files.write_batch(["event-3"], [])  # written, not yet covered by a checkpoint
    store = Recording(unavailable=True)
    loader = LocalLoader([store], tmp_path, batch_size=100)
    loader.start()
    loader.advance(covered)
    loader.flush()
    assert store.batches == []  # down: it keeps its position
    store.unavailable = False
    loader.flush()
    assert lines_in(store.batches) == [b"event-0", b"event-1", b"event-2"]
    loader.advance(files.ends)
    loader.close()
    assert lines_in(store.batches) == [b"event-0", b"event-1", b"event-2", b"event-3"]
    assert len({batch.token for batch in store.batches}) == len(store.batches)


def test_a_store_without_a_position_starts_where_an_older_data_folder_ended(tmp_path):
    files = write_lines(tmp_path, 2)
    old_end = dict(files.ends)
    files.write_batch(["new"], [])
    loader = LocalLoader([Recording()], tmp_path)
    loader.start(initial=old_end)
    loader.advance(files.ends)
    loader.close()
    assert lines_in(loader.stores[0].batches) == [b"new"]


def test_rows_that_are_not_one_utf8_line_each_are_mended_not_refused(tmp_path):
    files = DailyFiles(tmp_path, Clock(DAY))
    files.write_batch(["a\tb", "lone \udcff surrogate"], [b'{"a":1}', b'{"b":\n2}', b'{"c":"\xff"}'])
    [enriched] = (tmp_path / "enriched").iterdir()
    [bad] = (tmp_path / "bad").iterdir()
    assert enriched.read_bytes() == b"a\tb\nlone ? surrogate\n"
    assert bad.read_bytes().decode("utf-8").splitlines() == ['{"a":1}', '{"b": 2}', '{"c":"\ufffd"}']


# --------------------------------------------------------------------------- spooled hand-over, regions read back


def test_a_spool_is_appended_whole_and_its_region_read_back_from_the_end(tmp_path):
    from snowmelt.up_files import COPY_CHUNK, Spool

    files = DailyFiles(tmp_path / "data", Clock(DAY))
    files.write_batch([], [b'{"before":0}'])
    rows = [b'{"row":%d,"pad":"%s"}' % (i, b"x" * 300) for i in range(12_000)]  # 3.8 MB: several copy chunks
    data = b"\n".join(rows) + b"\n"
    assert len(data) > 3 * COPY_CHUNK
    spool = Spool.write(tmp_path, data)
    region = files.write_batch(["e1"], spool)
    files.write_batch([], [b'{"after":1}'])
    files.close()

    written = (tmp_path / "data" / "bad" / "2025-12-02.jsonl").read_bytes()
    assert written == b'{"before":0}\n' + data + b'{"after":1}\n'
    assert (region.offset, region.size) == (len(b'{"before":0}\n'), len(data))
    assert region.last_lines(3) == rows[-3:]
    assert region.last_lines(5_000) == rows[-5_000:]  # across chunk boundaries
    assert region.last_lines(50_000) == rows  # no more than the region: not the rows around it
    spool.remove()
    assert not Path(spool.path).exists()


def test_a_spool_shorter_than_it_says_is_a_failed_append_cut_off_again(tmp_path):
    from snowmelt.up_files import Spool

    files = DailyFiles(tmp_path / "data", Clock(DAY))
    files.write_batch(["e0"], [b'{"bad":0}'])
    ends = dict(files.ends)
    spool = Spool.write(tmp_path, b'{"bad":1}\n')
    spool.size += 100  # as if the file had been cut short
    with pytest.raises(OSError, match="ended 100 bytes early"):
        files.write_batch(["e1"], spool)
    assert files.ends == ends
    assert (tmp_path / "data" / "enriched" / "2025-12-02.tsv").read_text() == "e0\n"
    assert (tmp_path / "data" / "bad" / "2025-12-02.jsonl").read_text() == '{"bad":0}\n'


def test_a_region_whose_file_is_gone_reads_as_no_rows(tmp_path):
    from snowmelt.up_files import Region

    assert Region(str(tmp_path / "gone.jsonl"), 0, 100).last_lines(3) == []
    (tmp_path / "short.jsonl").write_bytes(b'{"a":1}\n')
    assert Region(str(tmp_path / "short.jsonl"), 0, 100).last_lines(3) == []
