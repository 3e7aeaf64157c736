"""Where ``snowmelt up``'s resident memory goes at rest, configuration by configuration.

    python -m bench.up_memory                                  # every configuration, then the import costs
    python -m bench.up_memory --configs default store-off --top 12 --no-imports

Each configuration starts a fresh ``snowmelt up`` (its own data folder and
ports, one at a time), waits for ``/health``, lets it settle ``--settle``
seconds and reads, for the process and each of its children (the stage
process of ``up.enrich_process`` and multiprocessing's resource tracker):
VmRSS, RssAnon, RssFile and RssShmem from ``/proc/PID/status``, PSS from
``/proc/PID/smaps_rollup`` (the sum of PSS counts a page shared by the
processes once), the mappings with the most resident memory from
``/proc/PID/smaps`` grouped by file, and which heavy native libraries are
mapped (a library's ``.so`` in ``/proc/PID/maps`` means its module was
imported).  ``default+traffic`` and ``store-off+traffic`` first take
``--events`` page views as GETs to ``/i`` and ``--posts`` tp2 POSTs, wait
until ``/micro/all`` counts them all, then settle the same way: the memory
at rest after use, with and without the store.  The process is stopped with
SIGTERM whatever happens.

Then, unless ``--no-imports``, what importing each heavy library costs on its
own: the RSS of a fresh interpreter that imports it, less that of one that
does not.
"""
from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.profiling import process_table, process_tree, status_kb  # noqa: E402

#: Dotted config keys of each configuration, over up's defaults.
CONFIGS: dict[str, dict[str, str]] = {
    "default": {},
    "store-off": {"up.store": "false"},
    "enrich-none": {"up.enrichments": "none"},
    "store-off+enrich-none": {"up.store": "false", "up.enrichments": "none"},
    "default+traffic": {},
    "store-off+traffic": {"up.store": "false"},
}
#: Configurations that take traffic before they are measured.
WITH_TRAFFIC = {"default+traffic", "store-off+traffic"}
#: What tests.services.up.UpProcess sets for tests, put back to up's defaults.
UP_DEFAULTS = {"up.enrichments": "standard", "up.progress_interval": "5"}

#: Heavy native libraries: a name and the substrings of the paths of its mapped files.
HEAVY: dict[str, tuple[str, ...]] = {
    "chdb": ("/chdb/",),
    "pyarrow": ("/pyarrow/", "/pyarrow.libs/"),
    "pandas": ("/pandas/",),
    "numpy": ("/numpy/", "/numpy.libs/"),
    "mini_racer (V8)": ("/py_mini_racer/", "/mini_racer/", "libmini_racer"),
    "ua_parser_rs": ("/ua_parser_rs/",),
    "JVM (jpype)": ("libjvm.so", "/_jpype", "/jpype/"),
    "maxminddb": ("/maxminddb/", ".mmdb"),
    "confluent_kafka": ("/confluent_kafka/", "/confluent_kafka.libs/", "librdkafka"),
    "jsonschema_rs": ("/jsonschema_rs/",),
}

#: Fresh-interpreter import costs: a label and the code run after the baseline's.
IMPORTS: dict[str, str] = {
    "chdb": "import chdb",
    "pyarrow": "import pyarrow, pyarrow.ipc",
    "pandas": "import pandas",
    "numpy": "import numpy",
    "py_mini_racer": "import py_mini_racer",
    "py_mini_racer + MiniRacer()": "from py_mini_racer import MiniRacer; MiniRacer().eval('1')",
    "ua_parser (+ ua_parser_rs)": "import ua_parser, ua_parser.regex",
    "ua-parser rules, built": ("from ua_parser import loaders; from ua_parser.regex import Resolver; "
                               "Resolver(loaders.load_builtins())"),
    "jpype (no JVM started)": "import jpype",
    "maxminddb": "import maxminddb",
    "confluent_kafka": "import confluent_kafka",
    "aiohttp": "import aiohttp.web",
    "snowmelt.up": "import snowmelt.up",
}

STATUS_KEYS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


@dataclass
class Group:
    """The mappings of one file (or of anonymous memory) in one process, in kB."""
    rss: int = 0
    pss: int = 0
    anonymous: int = 0


@dataclass
class ProcessMemory:
    pid: int
    role: str
    status: dict[str, int]  # kB
    pss: int  # kB
    groups: dict[str, Group]
    heavy: dict[str, int] = field(default_factory=dict)  # heavy library -> kB resident in its mappings


# --------------------------------------------------------------------------- reading /proc


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def short_name(path: str) -> str:
    """A mapped file's path shortened to what names it: ``chdb/_chdb.abi3.so``, ``libc.so.6``, ``[anon]``."""
    if not path:
        return "[anon]"
    if path.startswith("["):
        return "[anon]" if path.startswith("[anon:") else path
    path = path.removesuffix(" (deleted)")
    for marker in ("site-packages/", "lib-dynload/"):
        if marker in path:
            parts = path.split(marker, 1)[1].split("/")
            return parts[0] if len(parts) == 1 else f"{parts[0]}/{parts[-1]}"
    return path.rsplit("/", 1)[-1]


def smaps_groups(pid: int) -> tuple[dict[str, Group], dict[str, int]]:
    """Resident memory of ``pid`` by mapped file, and by heavy library (kB)."""
    groups: dict[str, Group] = {}
    heavy: dict[str, int] = {}
    group: Group | None = None
    libraries: list[str] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if not head[0].endswith(":"):  # a mapping: address perms offset dev inode [path]
            path = head[5].strip() if len(head) > 5 else ""
            group = groups.setdefault(short_name(path), Group())
            libraries = [name for name, needles in HEAVY.items() if any(n in path for n in needles)]
            for name in libraries:
                heavy.setdefault(name, 0)
            continue
        if group is None or len(head) < 3 or head[2] != "kB":
            continue
        kb = int(head[1])
        if head[0] == "Rss:":
            group.rss += kb
            for name in libraries:
                heavy[name] += kb
        elif head[0] == "Pss:":
            group.pss += kb
        elif head[0] == "Anonymous:":
            group.anonymous += kb
    return groups, heavy


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (by parent id in ``/proc/*/stat``)."""
    return process_tree(pid, process_table())[1:]


def role(pid: int) -> str:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    if "snowmelt.up_stage" in cmdline:
        return "stage"
    if "snowmelt.cli" in cmdline:
        return "up"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "multiprocessing" in cmdline:
        return "stage"
    return cmdline[:40]


def measure_tree(pid: int) -> list[ProcessMemory]:
    processes = []
    for each in [pid, *descendants(pid)]:
        try:
            groups, heavy = smaps_groups(each)
            processes.append(ProcessMemory(each, role(each), status_kb(each, STATUS_KEYS), pss_kb(each), groups, heavy))
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
    return processes


# --------------------------------------------------------------------------- running up


def _shipped_contexts(rng: random.Random) -> str:
    """A ``cx`` whose schemas ship with snowmelt, so that validating them needs no network."""
    from bench.corpus import CONTEXTS, _b64

    return _b64({"schema": CONTEXTS, "data": [
        {"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
         "data": {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4))}},
        {"schema": "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0",
         "data": {"navigationStart": 1732700000000, "domComplete": 1732700001234, "loadEventEnd": 1732700001300}},
    ]})


def send_traffic(url: str, events: int, posts: int, batch: int) -> int:
    """``events`` page views as GETs to ``/i`` and ``posts`` tp2 POSTs of ``batch`` events, on one connection;
    returns the events sent."""
    from bench.corpus import PAYLOAD_DATA, browser_headers, tracker_event

    rng = random.Random(19)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        for _ in range(events):
            event = {**tracker_event(rng, "pv"), "cx": _shipped_contexts(rng)}
            conn.request("GET", "/i?" + urlencode(event), headers=browser_headers(rng))
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET /i answered {response.status}")
        for _ in range(posts):
            data = []
            for _ in range(batch):
                event = {**tracker_event(rng, rng.choice(["pv", "pp", "se", "ue"])), "cx": _shipped_contexts(rng)}
                data.append(event)
            body = json.dumps({"schema": PAYLOAD_DATA, "data": data}, separators=(",", ":")).encode()
            headers = {**browser_headers(rng), "Content-Type": "application/json"}
            conn.request("POST", "/com.snowplowanalytics.snowplow/tp2", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"POST tp2 answered {response.status}")
    finally:
        conn.close()
    return events + posts * batch


def wait_processed(url: str, expected: int, timeout: float) -> dict:
    """Poll ``/micro/all`` until it counts ``expected`` events (good and bad); its last answer."""
    deadline = time.monotonic() + timeout
    summary = {"total": 0}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/micro/all", timeout=5) as resp:
            summary = json.loads(resp.read())
        if summary["total"] >= expected:
            return summary
        time.sleep(0.2)
    raise TimeoutError(f"{summary['total']} of {expected} events processed after {timeout:.0f} s")


def run_config(name: str, settle: float, events: int, posts: int, batch: int) -> tuple[list[ProcessMemory], str]:
    """Start up with configuration ``name``, measure its process tree at rest, stop it."""
    from tests.services.up import UpProcess

    folder = Path(tempfile.mkdtemp(prefix=f"up-memory-{name.replace('+', '-')}-"))
    up = UpProcess(folder / "data", settings={**UP_DEFAULTS, **CONFIGS[name]})
    note = ""
    try:
        started = time.monotonic()
        up.start(timeout=120)
        note = f"ready in {time.monotonic() - started:.1f} s"
        if name in WITH_TRAFFIC:
            sent = send_traffic(up.url, events, posts, batch)
            counted = wait_processed(up.url, sent, timeout=120)
            note += f", {sent:,} events sent, {counted['good']:,} good and {counted['bad']:,} bad after enrichment"
        time.sleep(settle)
        return measure_tree(up.proc.pid), note
    finally:
        try:
            up.terminate(timeout=60)
        finally:
            up.remove_log()
            shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- import costs


def import_costs() -> dict[str, tuple[int, int]]:
    """Per entry of :data:`IMPORTS` (whose module is installed): (RSS, RssAnon) in kB over a bare interpreter."""
    probe = ("import sys\n{code}\n"
             "print(' '.join(l.split()[1] for l in open('/proc/self/status') "
             "if l.startswith(('VmRSS:', 'RssAnon:'))))")

    def run(code: str) -> tuple[int, int]:
        out = subprocess.run([sys.executable, "-c", probe.format(code=code)], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
        rss, anon = out.stdout.split()
        return int(rss), int(anon)

    base = run("pass")
    costs = {"(bare interpreter)": base}
    for label, code in IMPORTS.items():
        module = code.split()[1].split(".")[0].rstrip(",;")
        if importlib.util.find_spec(module) is None:
            continue
        try:
            rss, anon = run(code)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"  {label}: {exc}", file=sys.stderr)
            continue
        costs[label] = (rss - base[0], anon - base[1])
    return costs


# --------------------------------------------------------------------------- report


def mb(kb: int) -> str:
    return f"{kb / 1024:,.1f}"


def print_config(name: str, processes: list[ProcessMemory], note: str, top: int) -> dict:
    print(f"\n=== {name}  ({', '.join(f'{k}={v}' for k, v in CONFIGS[name].items()) or 'defaults'}; {note})")
    print(f"{'process':18}{'pid':>8}{'VmRSS':>9}{'RssAnon':>9}{'RssFile':>9}{'RssShmem':>9}{'PSS':>9}   MB")
    total = dict.fromkeys(STATUS_KEYS, 0)
    total_pss = 0
    for proc in processes:
        print(f"{proc.role:18}{proc.pid:>8}" + "".join(f"{mb(proc.status.get(k, 0)):>9}" for k in STATUS_KEYS)
              + f"{mb(proc.pss):>9}")
        for key in STATUS_KEYS:
            total[key] += proc.status.get(key, 0)
        total_pss += proc.pss
    print(f"{'all processes':18}{'':>8}" + "".join(f"{mb(total[k]):>9}" for k in STATUS_KEYS) + f"{mb(total_pss):>9}")
    for proc in processes:
        if proc.role == "resource tracker":
            continue
        ranked = sorted(proc.groups.items(), key=lambda item: item[1].rss, reverse=True)
        print(f"  {proc.role} (pid {proc.pid}): top mappings by Rss{'':14}{'Rss':>8}{'Pss':>8}{'Anon':>8}  MB")
        for path, group in ranked[:top]:
            print(f"    {path[:48]:48}{mb(group.rss):>8}{mb(group.pss):>8}{mb(group.anonymous):>8}")
        rest = ranked[top:]
        print(f"    {f'({len(rest)} others)':48}{mb(sum(g.rss for _, g in rest)):>8}"
              f"{mb(sum(g.pss for _, g in rest)):>8}{mb(sum(g.anonymous for _, g in rest)):>8}")
        loaded = ", ".join(f"{lib} {mb(kb)}" for lib, kb in sorted(proc.heavy.items(), key=lambda i: -i[1]))
        print(f"    heavy libraries mapped (MB resident in their files): {loaded or 'none'}")
    return {"processes": [{"role": p.role, "status_kb": p.status, "pss_kb": p.pss, "heavy_kb": p.heavy}
                          for p in processes], "total_kb": total, "total_pss_kb": total_pss, "note": note}


def print_summary(results: dict[str, dict]) -> None:
    print("\n=== summary (MB; 'up' is the serving process, 'all' adds the stage process and the resource tracker)")
    print(f"{'configuration':24}{'up RSS':>8}{'anon':>7}{'file':>7}{'stage RSS':>11}{'all RSS':>9}{'all PSS':>9}"
          "   heavy libraries in up | in stage")
    for name, result in results.items():
        procs = {p["role"]: p for p in result["processes"]}
        up, stage = procs.get("up"), procs.get("stage")
        if up is None:
            continue
        stage_rss = mb(stage["status_kb"]["VmRSS"]) if stage else "-"
        heavy = ", ".join(sorted(up["heavy_kb"])) or "none"
        heavy_stage = ", ".join(sorted(stage["heavy_kb"])) if stage else "-"
        print(f"{name:24}{mb(up['status_kb']['VmRSS']):>8}{mb(up['status_kb']['RssAnon']):>7}"
              f"{mb(up['status_kb']['RssFile']):>7}{stage_rss:>11}{mb(result['total_kb']['VmRSS']):>9}"
              f"{mb(result['total_pss_kb']):>9}   {heavy} | {heavy_stage or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--settle", type=float, default=5.0, help="seconds at rest before measuring")
    parser.add_argument("--events", type=int, default=2000, help="default+traffic: page-view GETs")
    parser.add_argument("--posts", type=int, default=20, help="default+traffic: tp2 POSTs")
    parser.add_argument("--batch", type=int, default=25, help="default+traffic: events per tp2 POST")
    parser.add_argument("--top", type=int, default=10, help="mappings shown per process")
    parser.add_argument("--no-imports", action="store_true", help="skip the fresh-interpreter import costs")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    for name in args.configs:
        processes, note = run_config(name, args.settle, args.events, args.posts, args.batch)
        results[name] = print_config(name, processes, note, args.top)
    print_summary(results)
    if not args.no_imports:
        costs = import_costs()
        print("\n=== import costs: a fresh interpreter's RSS after the code, less a bare one's (MB)")
        print(f"{'code':32}{'RSS':>8}{'anon':>8}")
        for label, (rss, anon) in costs.items():
            print(f"{label:32}{mb(rss):>8}{mb(anon):>8}")
        results["import_costs_kb"] = costs
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
