"""Give back the resident pages of a mapped library that only its start-up read.

A native library is its file mapped into the process; every page of it the
process touches stays resident until memory pressure makes the kernel reclaim
it, and RSS counts it, as does the working set Kubernetes reports and evicts
by.  chdb's library is 555 MB: importing it and opening a session touch about
160 MB of it (ClickHouse's static initialisers register its functions,
formats and settings), and the store's later statements read about 60 MB of
those again (``bench/RESULTS.md``, "snowmelt up: resident memory").  pyarrow's
libraries, which the ClickHouse store converts its batches with, are the same:
about 30 MB resident after import, 3 MB of it read again at rest.

:func:`release_file_pages` asks the kernel to reclaim, now, the resident pages
of a file's read-only mappings in this process (``madvise(MADV_PAGEOUT)``,
Linux 5.4 and later); :func:`release_package_pages`, of every file an imported
package maps.  They are clean copies of the file: a page used again is
read back on its first touch (from the page cache, or the disk when the kernel
dropped it there too), once.  Writable mappings (the library's data, which the
loader relocated into anonymous copies) are left alone, so nothing of them goes
to swap.  Pages another process maps too stay (the kernel skips them).

Best effort: where the call is not available (another OS, a kernel without
``MADV_PAGEOUT``, a sandbox refusing it) nothing is released and nothing fails.

The C heap is the other memory a burst leaves resident.  Large objects (a
request's megabyte body, the records a batch is split into on a worker thread)
come from glibc's ``malloc``, which keeps what they free for later and gives
it back to the system only from the top of a heap.  After the collector's
hostile-request tests its RSS stayed 21-38 MB over its baseline of about
57 MB, and 93 MB over it after a burst of megabyte batches split on its
threads; ``malloc_trim`` brought it back to 7-28 MB over (``bench/RESULTS.md``,
"Hostile input").  :func:`release_free_heap` gives that back;
:func:`trim_heap_after_growth` calls it once a burst that grew the RSS is over
(:class:`HeapTrimPolicy`).
"""
from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import mmap
import os
import sys
import time
from typing import Callable, Iterable

__all__ = ["HeapTrimPolicy", "file_mappings", "package_files", "process_rss_kib", "release_file_pages",
           "release_free_heap", "release_package_pages", "resident_kib", "trim_heap_after_growth"]

log = logging.getLogger("snowmelt.residency")

#: ``madvise`` advice that reclaims the pages of a range now: Linux's value (``asm-generic/mman-common.h``)
#: where Python was built without it, None off Linux
MADV_PAGEOUT: int | None = getattr(mmap, "MADV_PAGEOUT", 21 if sys.platform.startswith("linux") else None)

_madvise = None


def _libc_madvise():
    global _madvise
    if _madvise is None:
        function = ctypes.CDLL(None, use_errno=True).madvise
        function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        function.restype = ctypes.c_int
        _madvise = function
    return _madvise


def _mappings(maps: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, permissions, path)`` of every mapping of a file in ``maps``."""
    out = []
    try:
        with open(maps, encoding="utf-8", errors="surrogateescape") as lines:
            for line in lines:
                fields = line.rstrip("\n").split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    start, _, end = fields[0].partition("-")
                    out.append((int(start, 16), int(end, 16), fields[1], fields[5]))
    except OSError:  # no /proc: nothing to release
        return []
    return out


def _real_paths(path: str | Iterable[str]) -> set[str]:
    return {os.path.realpath(p) for p in ([path] if isinstance(path, str) else path)}


def file_mappings(path: str, maps: str = "/proc/self/maps") -> list[tuple[int, int, str]]:
    """``(start, end, permissions)`` of every mapping of the file at ``path`` (its real path) in ``maps``."""
    real = os.path.realpath(path)
    return [(start, end, permissions) for start, end, permissions, name in _mappings(maps) if name == real]


def package_files(packages: Iterable[str], maps: str = "/proc/self/maps") -> list[str]:
    """The files of the imported ``packages`` that ``maps`` maps: those in each package's folder and in the
    folder of native libraries its wheel ships beside it (``<folder>.libs``, auditwheel's).  A package not
    imported maps nothing."""
    folders = []
    for name in packages:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None)
        if origin:
            folder = os.path.dirname(os.path.realpath(origin))
            folders += [folder + os.sep, folder + ".libs" + os.sep]
    if not folders:
        return []
    prefixes = tuple(folders)
    return sorted({name for _, _, _, name in _mappings(maps) if name.startswith(prefixes)})


def resident_kib(path: str | Iterable[str], smaps: str = "/proc/self/smaps",
                 fields: tuple[str, ...] = ("Rss",)) -> int:
    """KiB of the file at ``path`` (or of the files at each path given) resident in the process whose ``smaps``
    is given, over every mapping of it: ``Rss`` by default; ``("Private_Clean", "Private_Dirty")`` for the pages
    no other process maps."""
    reals = _real_paths(path)
    wanted = {name + ":" for name in fields}
    total, inside = 0, False
    try:
        with open(smaps, encoding="utf-8", errors="surrogateescape") as lines:
            for line in lines:
                head = line.split(maxsplit=5)
                if not head:
                    continue
                if head[0].endswith(":"):
                    if inside and head[0] in wanted:
                        total += int(head[1])
                else:  # a mapping's first line: range, permissions, offset, device, inode[, path]
                    inside = len(head) == 6 and head[5].rstrip("\n") in reals
    except OSError:
        return 0
    return total


def release_file_pages(path: str | Iterable[str]) -> int:
    """Reclaim the resident pages of the read-only mappings of ``path`` (or of each path given) in this process;
    the KiB released."""
    if MADV_PAGEOUT is None:
        return 0
    reals = _real_paths(path)
    mappings = [(start, end) for start, end, permissions, name in _mappings("/proc/self/maps")
                if name in reals and "w" not in permissions]
    if not mappings:
        return 0
    before = resident_kib(reals)
    madvise = _libc_madvise()
    for start, end in mappings:
        if madvise(start, end - start, MADV_PAGEOUT) != 0:
            break  # refused (EINVAL on an old kernel): as far as it got
    return max(0, before - resident_kib(reals))


def release_package_pages(*packages: str) -> int:
    """:func:`release_file_pages` of every file of the imported ``packages`` mapped here (:func:`package_files`):
    their native libraries, whose start-up (static initialisers, the registration of functions and types) reads
    pages that nothing reads again; the KiB released."""
    files = package_files(packages)
    return release_file_pages(files) if files else 0


_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def process_rss_kib(pid: int | str = "self") -> int:
    """The resident set of process ``pid`` (this one by default) in KiB, from ``/proc/PID/statm``; 0 when it has
    ended or cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_KIB
    except (OSError, ValueError, IndexError):
        return 0


@functools.cache
def _libc_malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has no such call (musl, another OS)."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    function.argtypes = (ctypes.c_size_t,)
    function.restype = ctypes.c_int
    return function


def release_free_heap() -> bool:
    """Give the C heap's free memory back to the system now: glibc's ``malloc_trim(0)``, which returns the free
    pages of every arena, not only those at a heap's top.  False where there is no such call.  A ctypes call:
    the interpreter's lock is let go meanwhile."""
    trim = _libc_malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class HeapTrimPolicy:
    """When to give the C heap's free memory back: once the RSS stands ``grow_kib`` or more over its low-water
    mark and has stopped growing (a burst is over: what it freed is free now).

    A trim that gives back little (the memory is in use) doubles the wait before the next one, up to
    ``max_wait``; one that gives back a quarter of ``grow_kib`` or more, or new growth of ``grow_kib`` over what
    the last trim left, brings it back to nothing.  So a process that stays busy at a high RSS trims about once a
    ``max_wait``, and one that goes idle after a burst gets the burst's free memory back at the next look.
    """

    def __init__(self, start_kib: int, grow_kib: int = 16 * 1024, interval: float = 1.0, max_wait: float = 64.0):
        self.grow_kib = grow_kib
        self.interval = interval  # between looks: the first wait after a trim that gave back little
        self.max_wait = max_wait
        self.low = start_kib  # the least RSS seen
        self.last = start_kib  # the RSS at the last look
        self.left = start_kib  # the RSS the last trim left
        self.wait = 0.0
        self.next_at = 0.0

    def due(self, rss_kib: int, now: float) -> bool:
        """Whether to trim, the RSS being ``rss_kib`` at time ``now``."""
        growing = rss_kib - self.last > self.grow_kib // 16  # a few pages more is not a burst going on
        self.last = rss_kib
        self.low = min(self.low, rss_kib)
        if rss_kib - self.left >= self.grow_kib:  # grown again since the last trim: a new burst
            self.left, self.wait, self.next_at = rss_kib, 0.0, 0.0
        return rss_kib - self.low >= self.grow_kib and not growing and now >= self.next_at

    def trimmed(self, before_kib: int, after_kib: int, now: float) -> None:
        """A trim at ``now`` took the RSS from ``before_kib`` to ``after_kib``."""
        self.last = self.left = after_kib
        self.low = min(self.low, after_kib)
        gave_back = before_kib - after_kib >= self.grow_kib // 4
        self.wait = 0.0 if gave_back else min(max(self.wait * 2, self.interval), self.max_wait)
        self.next_at = now + self.wait


async def trim_heap_after_growth(grow_kib: int = 16 * 1024, interval: float = 1.0,
                                 rss: Callable[[], int] = process_rss_kib,
                                 trim: Callable[[], bool] = release_free_heap,
                                 clock: Callable[[], float] = time.monotonic) -> None:
    """Until cancelled: every ``interval`` seconds, :func:`release_free_heap` (on a thread) when
    :class:`HeapTrimPolicy` says so.  Reading the RSS is one small file read."""
    loop = asyncio.get_running_loop()
    policy = HeapTrimPolicy(rss(), grow_kib, interval)
    while True:
        await asyncio.sleep(interval)
        before = rss()
        if not policy.due(before, clock()):
            continue
        if not await loop.run_in_executor(None, trim):
            return  # no malloc_trim here: nothing to do, ever
        after = rss()
        policy.trimmed(before, after, clock())
        log.debug("C heap trimmed: RSS %d KiB -> %d KiB", before, after)
