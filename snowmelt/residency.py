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
"""
from __future__ import annotations

import ctypes
import mmap
import os
import sys
from typing import Iterable

__all__ = ["file_mappings", "package_files", "release_file_pages", "release_package_pages", "resident_kib"]

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
