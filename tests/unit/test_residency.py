"""``snowmelt.residency``: the resident pages of a file's read-only mappings given back, its writable ones kept."""
from __future__ import annotations

import mmap
import os
import subprocess
import sys

import pytest

from snowmelt import residency
from snowmelt.residency import HeapTrimPolicy, file_mappings, release_file_pages, resident_kib

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and uses MADV_PAGEOUT")

SIZE = 16 << 20


def _file(tmp_path, name="data.bin"):
    path = tmp_path / name
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20) * (SIZE >> 20))
        f.flush()
        os.fsync(f.fileno())  # clean pages: the kernel reclaims only those
    return path


def _touch(view: mmap.mmap) -> int:
    return sum(view[i] for i in range(0, len(view), mmap.PAGESIZE))


@linux
def test_a_read_only_mapping_is_given_back_and_reads_the_same_after(tmp_path):
    path = _file(tmp_path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        total = _touch(view)
        assert resident_kib(str(path)) >= SIZE // 1024 * 0.9
        released = release_file_pages(str(path))
        assert released >= SIZE // 1024 * 0.9, released
        assert resident_kib(str(path)) < SIZE // 1024 * 0.1
        assert _touch(view) == total and view[: 1 << 20] == path.read_bytes()[: 1 << 20]


@linux
def test_a_writable_mapping_of_the_same_file_is_left_resident(tmp_path):
    path = _file(tmp_path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as read_only, \
            open(path, "r+b") as g, mmap.mmap(g.fileno(), 0, access=mmap.ACCESS_COPY) as private:
        _touch(read_only)
        for i in range(0, SIZE, mmap.PAGESIZE):  # written: the process's own copies (anonymous)
            private[i] = 7
        assert [p for _, _, p in sorted(file_mappings(str(path)))].count("rw-p") == 1
        release_file_pages(str(path))
        private_kib = resident_kib(str(path), fields=("Anonymous",))
        assert private_kib >= SIZE // 1024 * 0.9, private_kib
        assert all(private[i] == 7 for i in range(0, SIZE, mmap.PAGESIZE))


@linux
def test_pages_another_process_maps_are_kept_and_not_counted_as_own(tmp_path):
    path = _file(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", "import mmap, sys\n"
         f"f = open({str(path)!r}, 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
         "sum(m[i] for i in range(0, len(m), mmap.PAGESIZE)); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            _touch(view)
            assert resident_kib(str(path)) >= SIZE // 1024 * 0.9
            assert resident_kib(str(path), fields=("Private_Clean", "Private_Dirty")) < SIZE // 1024 * 0.1
            assert release_file_pages(str(path)) < SIZE // 1024 * 0.1  # the kernel leaves shared pages
            assert resident_kib(str(path), f"/proc/{child.pid}/smaps") >= SIZE // 1024 * 0.9
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_the_mappings_of_a_path_with_spaces_are_read_from_maps(tmp_path):
    target = tmp_path / "a lib.so"
    target.write_bytes(b"")
    real = os.path.realpath(target)
    maps = tmp_path / "maps"
    maps.write_text(f"7f0000000000-7f0000100000 r--p 00000000 fd:01 12 {real}\n"
                    f"7f0000100000-7f0000300000 r-xp 00100000 fd:01 12 {real}\n"
                    f"7f0000300000-7f0000301000 rw-p 00300000 fd:01 12 {real}\n"
                    "7f0000400000-7f0000401000 rw-p 00000000 00:00 0 \n"
                    f"7f0000500000-7f0000501000 r--p 00000000 fd:01 13 {real}.other\n")
    assert file_mappings(str(target), str(maps)) == [
        (0x7F0000000000, 0x7F0000100000, "r--p"), (0x7F0000100000, 0x7F0000300000, "r-xp"),
        (0x7F0000300000, 0x7F0000301000, "rw-p")]


def test_nothing_is_released_where_the_kernel_call_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(residency, "MADV_PAGEOUT", None)
    path = _file(tmp_path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        _touch(view)
        assert release_file_pages(str(path)) == 0


def test_a_file_not_mapped_releases_nothing(tmp_path):
    assert release_file_pages(str(tmp_path / "absent.so")) == 0
    assert resident_kib(str(tmp_path / "absent.so")) == 0


@linux
def test_the_files_a_package_maps_are_given_back_with_those_its_wheel_ships_beside_it(tmp_path, monkeypatch):
    """What the ClickHouse store gives back of pyarrow and numpy once open: every file of the package's folder and
    of ``<folder>.libs`` mapped here, nothing of another package's."""
    root = tmp_path / "site"
    (root / "heavypkg").mkdir(parents=True)
    (root / "heavypkg" / "__init__.py").write_text("")
    (root / "heavypkg.libs").mkdir()
    (root / "otherpkg").mkdir()
    (root / "otherpkg" / "__init__.py").write_text("")
    own = _file(root / "heavypkg", "libheavy.so")
    shipped = _file(root / "heavypkg.libs", "libdep.so.1")
    other = _file(root / "otherpkg", "libother.so")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "heavypkg", raising=False)
    assert residency.release_package_pages("heavypkg") == 0  # not imported: nothing of it counted
    import heavypkg  # noqa: F401
    import otherpkg  # noqa: F401

    files = [open(path, "rb") for path in (own, shipped, other)]
    views = [mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) for f in files]
    try:
        totals = [_touch(view) for view in views]
        assert sorted(residency.package_files(["heavypkg"])) == sorted(os.path.realpath(p) for p in (own, shipped))
        released = residency.release_package_pages("heavypkg")
        assert released >= 2 * SIZE // 1024 * 0.9, released
        assert resident_kib([str(own), str(shipped)]) < SIZE // 1024 * 0.1
        assert resident_kib(str(other)) >= SIZE // 1024 * 0.9  # another package's pages stay
        assert [_touch(view) for view in views] == totals
    finally:
        for view in views:
            view.close()
        for f in files:
            f.close()
        for name in ("heavypkg", "otherpkg"):
            sys.modules.pop(name, None)


def test_the_heap_is_trimmed_once_a_burst_is_over_not_while_it_grows():
    mib = 1024
    policy = HeapTrimPolicy(100 * mib, grow_kib=16 * mib)
    assert not policy.due(110 * mib, 1.0)  # under the threshold
    assert not policy.due(130 * mib, 2.0)  # over it, still growing
    assert not policy.due(150 * mib, 3.0)
    assert policy.due(150 * mib, 4.0)  # stopped growing: the burst is over
    policy.trimmed(150 * mib, 104 * mib, 4.0)
    assert not policy.due(104 * mib, 5.0)  # back near the low-water mark
    assert not policy.due(103 * mib, 6.0)


def test_a_heap_in_use_is_trimmed_ever_more_rarely_until_it_grows_again():
    mib = 1024
    policy = HeapTrimPolicy(100 * mib, grow_kib=16 * mib, interval=1.0, max_wait=8.0)
    policy.due(140 * mib, 0.0)
    trims = []
    for second in range(1, 40):
        if policy.due(140 * mib, float(second)):
            trims.append(second)
            policy.trimmed(140 * mib, 139 * mib, float(second))  # little given back: in use
            policy.due(140 * mib, float(second))  # the next look sees it where it was
    # waits of 1, 2, 4 and then 8 seconds (the most) between trims that give back little
    assert trims[:5] == [1, 2, 4, 8, 16] and trims[5:] == [24, 32]
    assert not policy.due(140 * mib, 33.0)
    assert not policy.due(160 * mib, 34.0)  # grown again by 16 MiB over what the last trim left: a new burst
    assert policy.due(160 * mib, 35.0)  # over as soon as it stops growing, whatever the wait was


def test_a_few_pages_more_is_not_a_burst_going_on():
    mib = 1024
    policy = HeapTrimPolicy(100 * mib, grow_kib=16 * mib)
    assert not policy.due(150 * mib, 1.0)
    assert policy.due(150 * mib + 8, 2.0)  # 8 KiB more a second: idle, not growing


def test_trimming_the_heap_gives_back_what_was_freed_below_its_top():
    """100 MB of blocks freed under one still in use stay resident (free() returns only a heap's top);
    release_free_heap gives them back.  In a process of its own, so that nothing else holds the heap."""
    code = ("from snowmelt.residency import process_rss_kib, release_free_heap\n"
            "blocks = [bytes(2000) for _ in range(50_000)]\n"  # from malloc: over pymalloc's 512 bytes
            "keep = blocks[-1:]\n"
            "del blocks\n"
            "before = process_rss_kib()\n"
            "print(before, release_free_heap(), process_rss_kib())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    before, trimmed, after = int(out[0]), out[1] == "True", int(out[2])
    if not trimmed:
        pytest.skip("no malloc_trim in this C library")
    assert before - after > 60 * 1024, (before, after)
