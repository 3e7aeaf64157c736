"""What hostile input costs: the worst case per event of each kind, and legitimate latency under a hostile mix.

Two measurements, both from the repository root::

    python -m bench.hostile_bench stage   # each hostile kind through the stage, one process each
    python -m bench.hostile_bench mix     # snowmelt up: clean traffic, then the same with attacks beside it

``stage``: for each kind, the largest request the collector accepts (1 MB of
payload) is built and enriched once with the default enrichments (ip_lookups,
ua_parser, referer_parser, campaign_attribution, event_fingerprint, anon_ip)
plus, for its kind, the JavaScript enrichment with a looping script, or an
Iglu repository that never answers.  Each kind runs in a fresh process, three
times (``--runs``); the report gives seconds, events, milliseconds per event (the
first run, the median of the others, and their fastest), the bad rows' bytes and the peak
resident memory above the process's idle level.  Goal: at most 5 ms
per event and 200 MB above idle.

``mix``: one ``snowmelt up``; legitimate GET page views at ``--rate`` a
second, each with its own event id, for ``--seconds`` (clean), then again
with every attack beside them at a bounded rate (hostile): gzip bombs, 1 MB
tp2 batches of protocol violations, 480 KB referer hosts, unknown schemas,
malformed ``nuid`` values, deep filter bodies to ``/micro``, and heavy SQL.
The report gives the legitimate latencies (p50, p99) of both runs, their
ratio (goal: p99 within 2x) and whether every legitimate event acknowledged
is in the enriched file.
"""
from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.profiling import status_kb  # noqa: E402

PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
MAX_PAYLOAD = 1_000_000
KINDS = ("protocol_violations", "long_referer_host", "unknown_schemas", "looping_javascript", "not_utf8",
         "deep_json", "many_query_parameters", "long_get_querystring")


def tp2(events: list[dict]) -> bytes:
    return json.dumps({"schema": PAYLOAD_DATA, "data": events}).encode()


def fill(make, budget: int = MAX_PAYLOAD - 2_000) -> list[dict]:
    """As many ``make(i)`` events as fit in ``budget`` bytes of tp2 body."""
    events: list[dict] = []
    size = 100
    while True:
        event = make(len(events))
        grow = len(json.dumps(event)) + 1
        if size + grow > budget:
            return events
        events.append(event)
        size += grow


def hostile_request(kind: str) -> tuple[str, str | None, bytes | None]:
    """``(path, querystring, body)`` of the largest accepted request of ``kind``."""
    if kind == "protocol_violations":
        return "/com.snowplowanalytics.snowplow/tp2", None, tp2(fill(lambda i: {"e": "pv", "p": "web", "tv": "js", "res": "x" * 20}))
    if kind == "long_referer_host":
        host = "a." * 240_000 + "www.google.com"
        return "/com.snowplowanalytics.snowplow/tp2", None, tp2([{"e": "pv", "p": "web", "tv": "js",
                                                                   "refr": f"https://{host}/search?q=x"}])
    if kind == "unknown_schemas":
        def event(i):
            ue = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                  "data": {"schema": f"iglu:com.evil{i}/e/jsonschema/1-0-0", "data": {}}}
            return {"e": "ue", "p": "web", "tv": "js", "ue_pr": json.dumps(ue)}
        return "/com.snowplowanalytics.snowplow/tp2", None, tp2(fill(event))
    if kind == "looping_javascript":
        return "/com.snowplowanalytics.snowplow/tp2", None, tp2(fill(lambda i: {"e": "pv", "p": "web", "tv": "js"}))
    if kind == "not_utf8":
        body = tp2(fill(lambda i: {"e": "pv", "p": "web", "tv": "XX"}))
        return "/com.snowplowanalytics.snowplow/tp2", None, body.replace(b'"XX"', b'"\xff\xfe"')
    if kind == "deep_json":
        nested = "[" * 100_000 + "]" * 100_000
        ue = '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":' + nested + "}"
        return "/com.snowplowanalytics.snowplow/tp2", None, tp2([{"e": "ue", "p": "web", "tv": "js", "ue_pr": ue}])
    if kind == "many_query_parameters":
        url = "https://shop.example/?" + "&".join(f"utm_source{i}=x" for i in range(60_000))
        return "/com.snowplowanalytics.snowplow/tp2", None, tp2([{"e": "pv", "p": "web", "tv": "js", "url": url}])
    if kind == "long_get_querystring":
        return "/i", "e=pv&p=web&tv=js&" + "&".join(f"k{i}=v" for i in range(8000)), None
    raise ValueError(kind)


def run_kind(kind: str, runs: int = 3) -> dict:
    """One kind in this process: build the stage, measure idle memory, enrich the request ``runs`` times."""
    from bench.bench_enrich import default_enrichment_configs
    from ext import SCHEMA, CollectorPayload, encode_collector_payload
    from processor.stage import Enricher

    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    configs = default_enrichment_configs()
    if kind == "looping_javascript":
        script = base64.b64encode(b"function process(event) { while (true) {} }").decode()
        configs.append({"schema": "iglu:com.snowplowanalytics.snowplow/javascript_script_config/jsonschema/1-0-0",
                        "data": {"name": "javascript_script_config", "vendor": "com.snowplowanalytics.snowplow",
                                 "enabled": True, "parameters": {"script": script}}})
    for i, doc in enumerate(configs):
        (folder / f"{i}.json").write_text(json.dumps(doc))
    resolver = None
    if kind == "unknown_schemas":
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)  # accepts, never answers
        resolver = folder.parent / f"{folder.name}-resolver.json"
        resolver.write_text(json.dumps({
            "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1",
            "data": {"cacheSize": 500, "repositories": [{
                "name": "unanswering", "priority": 0, "vendorPrefixes": [],
                "connection": {"http": {"uri": f"http://127.0.0.1:{hole.getsockname()[1]}/api"}}}]}}))
    enricher = Enricher.from_files(str(resolver) if resolver else None, str(folder))
    path, querystring, body = hostile_request(kind)
    raw = encode_collector_payload(CollectorPayload(
        schema=SCHEMA, ip_address="203.0.113.9", timestamp=int(time.time() * 1000), encoding="UTF-8",
        collector="bench", user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0", path=path,
        querystring=querystring, body=body.decode("utf-8", "surrogateescape") if body is not None else None,
        content_type="application/json" if body is not None else None, hostname="bench",
        network_user_id=str(uuid.uuid4())))
    for warm_path, warm_body in (("/i", None), (path, tp2([{"e": "pv", "p": "web", "tv": "js"}]))):
        # warm: first-use caches and imports (the first POST loads the webhook adapters: 65 ms, once)
        enricher.enrich(encode_collector_payload(CollectorPayload(
            schema=SCHEMA, timestamp=int(time.time() * 1000), collector="bench", path=warm_path,
            querystring="e=pv&p=web&tv=js&url=https%3A%2F%2Fa.com%2F" if warm_body is None else None,
            body=warm_body.decode() if warm_body is not None else None,
            content_type="application/json" if warm_body is not None else None, network_user_id=str(uuid.uuid4()))))
    idle = status_kb("self")["VmRSS"]
    times = []
    for _ in range(max(2, runs)):  # the first in a fresh process (its memory touched for the first time), then again
        out = None
        started = time.perf_counter()
        with enricher.batch():
            out = enricher.enrich(raw)
        times.append(time.perf_counter() - started)
    seconds, again = times[0], statistics.median(times[1:])
    events = max(1, len(out.good) + len(out.bad))
    return {"kind": kind, "request_bytes": len(raw), "events": events, "good": len(out.good), "bad": len(out.bad),
            "seconds": round(seconds, 4), "ms_per_event": round(1000 * seconds / events, 4),
            "ms_per_event_again": round(1000 * again / events, 4),
            "ms_per_event_fastest": round(1000 * min(times[1:]) / events, 4),
            "bad_row_bytes": sum(len(r) for r in out.bad),
            "rss_idle_mb": round(idle / 1024, 1),
            "rss_peak_above_idle_mb": round((status_kb("self")["VmHWM"] - idle) / 1024, 1)}


def stage(kinds=KINDS, runs: int = 3) -> list[dict]:
    rows = []
    for kind in kinds:
        out = subprocess.run([sys.executable, "-m", "bench.hostile_bench", "one", kind, "--runs", str(runs)], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"{kind}: {out.stderr[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"{kind:24} {row['events']:6d} events  {row['seconds']:8.3f} s  {row['ms_per_event']:8.4f} ms/event (again {row['ms_per_event_again']:.4f}, fastest {row['ms_per_event_fastest']:.4f})  "
              f"bad rows {row['bad_row_bytes'] / 1e6:7.2f} MB  peak RSS +{row['rss_peak_above_idle_mb']:.0f} MB",
              flush=True)
    return rows


# --------------------------------------------------------------------------- the mix, against snowmelt up


def _request(port: int, data: bytes, timeout: float = 30) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            head += chunk
    return int(head.split(b" ", 2)[1])


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class Legit(threading.Thread):
    """GET page views at ``rate`` a second (open loop), each with its own event id; latencies kept."""

    def __init__(self, port: int, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.rate, self.seconds = port, rate, seconds
        self.latencies: list[float] = []
        self.accepted: set[str] = set()
        self.lock = threading.Lock()

    def one(self) -> None:
        eid = str(uuid.uuid4())
        started = time.monotonic()
        status = _request(self.port, _get(f"/i?e=pv&p=web&tv=js-3&eid={eid}&url=https%3A%2F%2Fshop.example%2F"))
        with self.lock:
            self.latencies.append(time.monotonic() - started)
            if status == 200:
                self.accepted.add(eid)

    def run(self) -> None:
        interval = 1.0 / self.rate
        threads = []
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < self.seconds:
            thread = threading.Thread(target=self.one, daemon=True)
            thread.start()
            threads.append(thread)
            n += 1
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for thread in threads:
            thread.join(60)


ATTACKS = ("gzip_bomb", "protocol_violations_1mb", "long_referer_host", "unknown_schemas", "nuid_injection",
           "deep_filter", "heavy_sql", "sql_file_read")


def attack_cases(port: int, sql_port: int, names=ATTACKS) -> list[tuple[str, object]]:
    """``(name, send)`` for each attack in ``names``, every body built now (a 2 GB bomb takes seconds)."""
    from tests.services.payloads import gzip_of_zeros

    tp2_path = "/com.snowplowanalytics.snowplow/tp2"
    bomb = gzip_of_zeros(2_000_000_000) if "gzip_bomb" in names else b""
    # each body built once, sent many times
    bodies = {kind: hostile_request(kind)[2] for kind in ("protocol_violations", "long_referer_host",
                                                          "unknown_schemas")}
    cases = {
        "gzip_bomb": lambda: _request(port, _post(tp2_path, bomb, "Content-Encoding: gzip\r\n")),
        "protocol_violations_1mb": lambda: _request(port, _post(tp2_path, bodies["protocol_violations"])),
        "long_referer_host": lambda: _request(port, _post(tp2_path, bodies["long_referer_host"])),
        "unknown_schemas": lambda: _request(port, _post(tp2_path, bodies["unknown_schemas"])),
        "nuid_injection": lambda: _request(port, _get("/i?e=pv&nuid=a;%20Domain=x.com%0d%0aX:%201")),
        "deep_filter": lambda: _request(port, _post("/micro/good", b"[" * 60_000)),
        "heavy_sql": lambda: _request(sql_port, _get("/?query=" + urllib.parse.quote(
            "SELECT count() FROM numbers(1000000000000)"))),
        "sql_file_read": lambda: _request(sql_port, _get("/?query=" + urllib.parse.quote(
            "SELECT file('/etc/passwd')"))),
    }
    return [(name, cases[name]) for name in names]


def attacks(cases: list[tuple[str, object]], stop: threading.Event) -> dict[str, int]:
    """Every attack in turn, about two a second, until ``stop``; how many of each were sent."""
    sent: dict[str, int] = {}
    i = 0
    while not stop.is_set():
        name, send = cases[i % len(cases)]
        threading.Thread(target=send, daemon=True).start()
        sent[name] = sent.get(name, 0) + 1
        i += 1
        stop.wait(0.5)
    return sent


def _attack_process(port: int, sql_port: int, names, ready, stop, out) -> None:
    """The attacks from a process of their own, so that sending them never delays the legitimate client."""
    cases = attack_cases(port, sql_port, names)
    ready.set()
    stopping = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), stopping.set()), daemon=True).start()
    out.put(attacks(cases, stopping))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def mix(rate: float, seconds: float, names=ATTACKS, settings: dict | None = None) -> dict:
    from tests.services.up import UpProcess

    folder = Path(tempfile.mkdtemp(prefix="hostile-mix-"))
    up = UpProcess(folder / "data", settings={"up.progress_interval": "0", "api.sql_max_execution_time": "2",
                                              **(settings or {})})
    up.start()
    results = {}
    try:
        for phase in ("clean", "hostile"):
            counts: dict = {}
            attacker = None
            if phase == "hostile":
                context = multiprocessing.get_context("spawn")
                ready, stop, out = context.Event(), context.Event(), context.Queue()
                attacker = context.Process(target=_attack_process,
                                           args=(up.port, up.sql_port, tuple(names), ready, stop, out), daemon=True)
                attacker.start()
                ready.wait(300)  # the attack bodies are built (a 2 GB bomb takes seconds)
            legit = Legit(up.port, rate, seconds)
            legit.start()
            legit.join()
            if attacker is not None:
                stop.set()
                counts = out.get(timeout=60)
                attacker.join(30)
            ended = time.monotonic()
            deadline = ended + 300
            while True:
                found = {line.split("\t")[6] for line in up.enriched_lines()}
                missing = legit.accepted - found
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            caught_up = time.monotonic() - ended
            results[phase] = {
                "requests": len(legit.latencies), "accepted": len(legit.accepted), "missing": len(missing),
                "written_within_s": round(caught_up, 1),
                "p50_ms": round(1000 * statistics.median(legit.latencies), 2),
                "p99_ms": round(1000 * percentile(legit.latencies, 0.99), 2), "attacks": counts}
            print(f"{phase:8} legit {results[phase]['requests']} sent, {results[phase]['accepted']} accepted, "
                  f"{results[phase]['missing']} missing from the TSV ({caught_up:.1f} s after the end); p50 {results[phase]['p50_ms']} ms, "
                  f"p99 {results[phase]['p99_ms']} ms  {counts}", flush=True)
    finally:
        up.kill()
        up.remove_log()
    results["p99_ratio"] = round(results["hostile"]["p99_ms"] / results["clean"]["p99_ms"], 2)
    print(f"legitimate p99 hostile / clean: {results['p99_ratio']}x (goal <= 2x)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("stage")
    st.add_argument("--kinds", nargs="*", default=list(KINDS))
    one = sub.add_parser("one")
    one.add_argument("kind", choices=KINDS)
    for p in (st, one):
        p.add_argument("--runs", type=int, default=3,
                       help="enrichments of the request in the process (default 3): the first, then the others' median "
                            "(again) and fastest")
    mx = sub.add_parser("mix")
    mx.add_argument("--rate", type=float, default=100.0)
    mx.add_argument("--seconds", type=float, default=20.0)
    mx.add_argument("--attacks", nargs="*", default=list(ATTACKS), choices=ATTACKS)
    mx.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config of snowmelt up (up.store=false)")
    args = parser.parse_args(argv)
    if args.command == "one":
        print(json.dumps(run_kind(args.kind, args.runs)))
    elif args.command == "stage":
        stage(args.kinds, args.runs)
    else:
        mix(args.rate, args.seconds, args.attacks, dict(item.split("=", 1) for item in args.set))
    return 0


if __name__ == "__main__":
    sys.exit(main())
