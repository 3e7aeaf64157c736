"""Hostile HTTP against a running collector on a real broker, with well-formed traffic alongside.

Every hostile request must get a clear answer (a 4xx, or 200 with its payload
recorded or turned into a ``size_violation`` bad row), never a 5xx; the process
stays up, the concurrent well-formed GET pixels and POST batches keep being
answered 200 with bounded latency, and the collector's resident memory stays
bounded.  Expected answers follow collector/app.py's limits:
``drop_payload_size`` (413), ``max_payload_size`` (bad row or split),
``MAX_LINE_SIZE``/``MAX_FIELD_SIZE`` and aiohttp's 128-header cap (400).
"""
from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import urllib.request
import uuid

import pytest

from bench.profiling import status_kb
from collector.app import MAX_FIELD_SIZE, MAX_LINE_SIZE
from tests.services.collector import CollectorProcess
from tests.services.kafka import KafkaTopics
from tests.services.payloads import PAYLOAD_DATA, TP2, gzip_of_zeros
from tests.services.topics import consume
from tests.services.wait import wait_until

DROP_PAYLOAD_SIZE = 2 * 1024 * 1024  # the collector's default: a larger body is 413
MAX_PAYLOAD_SIZE = 1024 * 1024  # the collector's default: a larger payload is split or a bad row
MAX_MESSAGE_BYTES = 1_000_000  # kafka.max_message_bytes's default
# Requests of up to 2 MiB body or 8 MiB headers are copied a few times while handled.
RSS_HEADROOM_KIB = 256 * 1024
SIZE_VIOLATION = "iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0"


def rss_kib(pid: int) -> int:
    return status_kb(pid, ("VmRSS",))["VmRSS"]


class WellFormedTraffic:
    """Threads sending valid GET pixels and POST tp2 batches over keep-alive connections."""

    def __init__(self, port: int, senders: int = 2):
        self.port = port
        self.senders = senders
        self.answers: list[tuple[str, int, float]] = []  # (kind, status or 0 on error, seconds)
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def _send(self, conn: http.client.HTTPConnection, kind: str) -> int:
        eid = str(uuid.uuid4())
        if kind == "get":
            conn.request("GET", f"/i?e=pv&eid={eid}&url=http%3A%2F%2Fexample.com%2F&p=web&tv=js-3.0.0")
        else:
            body = json.dumps({"schema": PAYLOAD_DATA, "data": [
                {"e": "pv", "eid": str(uuid.uuid4()), "p": "web", "tv": "js-3.0.0"} for _ in range(5)]})
            conn.request("POST", TP2, body=body, headers={"Content-Type": "application/json; charset=UTF-8"})
        resp = conn.getresponse()
        resp.read()
        return resp.status

    def _run(self, kind: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                status = self._send(conn, kind)
            except (OSError, http.client.HTTPException) as exc:
                status = 0
                with self.lock:
                    self.errors.append(f"{kind}: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self.lock:
                self.answers.append((kind, status, time.monotonic() - started))
        conn.close()

    def __enter__(self):
        for i in range(self.senders):
            kind = "get" if i % 2 == 0 else "post"
            t = threading.Thread(target=self._run, args=(kind,), daemon=True)
            t.start()
            self.threads.append(t)
        wait_until(lambda: {k for k, s, _ in list(self.answers) if s == 200} >= {"get", "post"}, 30,
                   "well-formed traffic to start")
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(40)

    def check(self, what: str, max_latency: float = 5.0) -> None:
        """Every well-formed request was answered 200, within ``max_latency`` seconds."""
        answers = list(self.answers)
        by_status: dict[int, int] = {}
        for _, status, _ in answers:
            by_status[status] = by_status.get(status, 0) + 1
        latencies = sorted(t for _, _, t in answers)
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0
        print(f"\n{what}: well-formed answers {by_status}, p99 {p99 * 1000:.0f} ms, "
              f"max {latencies[-1] * 1000 if latencies else 0:.0f} ms")
        assert len(answers) >= 20, f"{what}: too little well-formed traffic went through: {by_status}"
        assert by_status.get(200, 0) == len(answers), f"{what}: {by_status}; errors {self.errors[:5]}"
        assert latencies[-1] < max_latency, f"{what}: a well-formed request took {latencies[-1]:.1f}s"
        assert p99 < 1.0, f"{what}: p99 latency {p99:.2f}s"


@pytest.fixture(scope="module")
def collector(kafka_broker):
    prefix = f"t.hostile.{uuid.uuid4().hex[:8]}"
    topics = KafkaTopics(*(f"{prefix}.{role}" for role in KafkaTopics._fields))
    kafka_broker.create_topics(topics)
    proc = CollectorProcess(kafka_broker.bootstrap_servers, topics).start()
    proc.topics = topics
    proc.bootstrap_servers = kafka_broker.bootstrap_servers
    try:
        # Warm up (imports, producer, the largest legitimate requests: long GET URLs and
        # batches that are split) before measuring the memory baseline.
        with WellFormedTraffic(proc.port) as warm:
            for i in range(4):
                assert status_of(exchange(proc.port, post(batch(f"warm-{i}", 1500, 1000)))) == 200
                assert status_of(exchange(proc.port, get(b"/i?e=pv&x=" + b"a" * 60_000))) == 200
            wait_until(lambda: len(warm.answers) >= 300, 30, "warm-up traffic")
        proc.baseline_rss = rss_kib(proc.proc.pid)
        yield proc
    finally:
        code = proc.terminate()
        output = proc.output()
        proc.remove_log()
        assert code == 0, output
        # aiohttp logs the protocol errors it answers 400 with a traceback; anything else is a bug.
        foreign = [e for e in logged_exceptions(output) if not e.startswith("aiohttp.")]
        assert not foreign, output


def logged_exceptions(log: str) -> list[str]:
    """The exception line ending each traceback in ``log`` (the last of a chained one)."""
    found, inside = [], False
    for line in log.splitlines():
        if line.startswith("Traceback"):
            inside = True
        elif line.startswith(("During handling", "The above exception")):
            found.pop()  # that exception led to another: keep the final one
        elif inside and line and not line[0].isspace():
            found.append(line)
            inside = False
    return found


def assert_healthy(collector) -> int:
    assert collector.proc.poll() is None, f"collector exited:\n{collector.output()}"
    with urllib.request.urlopen(collector.url + "/health", timeout=5) as resp:
        assert resp.status == 200
    rss = rss_kib(collector.proc.pid)
    assert rss < collector.baseline_rss + RSS_HEADROOM_KIB, f"RSS {rss} KiB, baseline {collector.baseline_rss} KiB"
    return rss


def settle_memory(collector) -> None:
    """Once the attacks are over the collector's RSS comes back under twice its baseline."""
    wait_until(lambda: collector.proc.poll() is None and rss_kib(collector.proc.pid) < 2 * collector.baseline_rss,
               15, f"collector RSS under 2x its baseline of {collector.baseline_rss} KiB", interval=0.25)
    assert_healthy(collector)


def exchange(port: int, data: bytes, timeout: float = 15.0, until: bytes = b"\r\n") -> bytes:
    """Send raw bytes on a fresh connection; the answer up to ``until`` at least (b'' if closed unanswered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole request was sent: read the answer
        out = b""
        while until not in out:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/"), f"no HTTP answer: {answer[:100]!r}"
    return int(answer.split(b" ", 2)[1])


def get(target: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: collector.test\r\n" + headers + b"Connection: close\r\n\r\n"


def post(body: bytes, content_type: bytes | None = b"application/json", headers: bytes = b"",
         path: bytes = TP2.encode()) -> bytes:
    ct = b"Content-Type: " + content_type + b"\r\n" if content_type is not None else b""
    return (b"POST " + path + b" HTTP/1.1\r\nHost: collector.test\r\n" + ct + headers
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


def batch(marker: str, events: int, pad: int) -> bytes:
    return json.dumps({"schema": PAYLOAD_DATA, "marker": marker, "data": [
        {"e": "pv", "eid": str(uuid.uuid4()), "pad": "p" * pad} for _ in range(events)]}).encode()


def hostile_cases(marker: str) -> list[tuple[str, bytes, set[int], bool]]:
    """(name, raw request, accepted statuses, True when a size_violation bad row must carry ``marker``)."""
    q_marker = b"/i?marker=" + marker.encode()
    deep = b'{"marker":"' + marker.encode() + b'","data":' + b"[" * 700_000 + b"]" * 700_000 + b"}"
    return [
        ("200 short headers", get(b"/i?e=pv", b"".join(b"X-H%d: v\r\n" % i for i in range(200))), {400, 431}, False),
        ("one header over MAX_FIELD_SIZE", get(b"/i?e=pv", b"X-Long: " + b"a" * (MAX_FIELD_SIZE + 10) + b"\r\n"),
         {400, 431}, False),
        ("100 headers of 60 KiB (6 MB)", get(q_marker + b"-headers",
                                             b"".join(b"X-H%d: " % i + b"a" * 60_000 + b"\r\n" for i in range(100))),
         {200}, True),
        ("query over MAX_LINE_SIZE", get(b"/i?e=pv&x=" + b"a" * (MAX_LINE_SIZE + 10)), {400, 414}, False),
        ("60 KiB query (long tracker URL)", get(b"/i?e=pv&x=" + b"a" * 60_000), {200}, False),
        ("invalid UTF-8 in the path", get(b"/\xff\xfe/\xc3"), {400, 404}, False),
        ("invalid UTF-8 in the query", get(b"/i?e=pv&x=\xff\xfe\xc3"), {400}, False),
        ("invalid percent-encoding in the query", get(b"/i?e=pv&x=%zz%%%e2%82&%"), {200}, False),
        ("invalid percent-encoding in the path", get(b"/%zz/%ff"), {200, 400, 404}, False),
        ("invalid UTF-8 body", post(b"\xff\xfe\xc3\x28{\"data\":[\xff]}"), {200}, False),
        ("deeply nested small JSON", post(b"[" * 100_000 + b"]" * 100_000), {200}, False),
        # Regression: json.loads raised RecursionError in fit_payload (a 500).
        ("deeply nested JSON over max_payload_size", post(deep), {200}, True),
        ("flat 1.5 MB batch (split)", post(batch(marker + "-split", 1500, 1000)), {200}, False),
        ("body over drop_payload_size", post(b"x" * (DROP_PAYLOAD_SIZE + 1000)), {413}, False),
        # Regression: a declared Content-Length over the limit waited for the body instead of 413.
        ("declared 100 MB body, none sent",
         b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: c\r\nContent-Length: 100000000\r\n\r\n", {413}, False),
        ("chunked body over drop_payload_size",
         b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
         + b"".join(b"100000\r\n" + b"a" * 0x100000 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n", {413}, False),
        ("gzip bomb (50 MB inflated)", post(gzip.compress(b"a" * 50_000_000), headers=b"Content-Encoding: gzip\r\n"),
         {413}, False),
        # Regression: an undecodable gzip body was a 500.
        ("invalid gzip body", post(b"not gzip at all", headers=b"Content-Encoding: gzip\r\n"), {400}, False),
        ("broken chunked encoding",
         b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
         {400}, False),
        ("Content-Length and Transfer-Encoding",
         b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0\r\n\r\n", {400}, False),
        ("negative Content-Length", b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: c\r\nContent-Length: -1\r\n\r\n",
         {400}, False),
        # Snowplow's collector records any content type; enrichment judges the body.
        ("text/xml body", post(b"<a>1</a>", b"text/xml"), {200}, False),
        ("multipart body", post(b"--x\r\n\r\nhi\r\n--x--", b"multipart/form-data; boundary=x"), {200}, False),
        ("no content type", post(b'{"data":[]}', None), {200}, False),
        ("garbage content type", post(b"{}", b"\x01\x02;;;=="), {200, 400}, False),
        ("DELETE on /i", b"DELETE /i HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n", {405}, False),
        ("PUT on tp2", b"PUT " + TP2.encode() + b" HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n", {405}, False),
        ("unknown method", b"BREW /i HTTP/1.1\r\nHost: c\r\n\r\n", {400, 405, 501}, False),
        ("unknown path", get(b"/a/b/c"), {404}, False),
        # paths enrich refuses as 3.9.0's parseApi does are not recorded
        ("a doubled slash before vendor/version", get(b"//com.mailchimp/v1"), {404}, False),
        ("a doubled slash after vendor/version", get(b"/com.mailchimp/v1//"), {404}, False),
        ("garbage request line", b"\x00\x01\x02 garbage\r\n\r\n", {400}, False),
        ("HTTP/0.9-style request", b"GET /i\r\n\r\n", {200, 400}, False),
    ]


def test_hostile_requests_get_clear_answers_while_traffic_flows(collector):
    marker = f"hostile-{uuid.uuid4().hex[:8]}"
    cases = hostile_cases(marker)
    got: dict[str, int] = {}
    with WellFormedTraffic(collector.port) as traffic:
        peak = 0
        for _round in range(2):  # twice: the second round meets whatever the first left behind
            for name, request, expected, _ in cases:
                status = status_of(exchange(collector.port, request))
                got[name] = status
                assert status in expected, f"{name}: {status}, expected one of {sorted(expected)}"
                peak = max(peak, assert_healthy(collector))
        # Several oversized requests at once: memory must stay bounded.
        big = [post(b"x" * (DROP_PAYLOAD_SIZE - 4096), b"text/plain") for _ in range(16)]
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda r=r: statuses.append(status_of(exchange(collector.port, r))))
                   for r in big]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert statuses == [200] * len(big)
        assert_healthy(collector)
    traffic.check("hostile requests")
    settle_memory(collector)
    print(f"hostile answers: {got}; RSS peak {peak} KiB, after {rss_kib(collector.proc.pid)} KiB "
          f"(baseline {collector.baseline_rss} KiB)")

    expected_rows = 2 * sum(1 for *_, row in cases if row) + len(big)
    bad = consume(collector.bootstrap_servers, collector.topics.bad, min_count=expected_rows, timeout=60)
    rows = [json.loads(m.value()) for m in bad]
    assert all(r["schema"] == SIZE_VIOLATION for r in rows)
    # min(collector.max_payload_size, kafka.max_message_bytes)
    assert {r["data"]["failure"]["maximumAllowedSizeBytes"] for r in rows} <= {MAX_PAYLOAD_SIZE, MAX_MESSAGE_BYTES}
    payloads = [r["data"]["payload"] for r in rows]
    assert sum(1 for p in payloads if p.startswith(f"marker={marker}-headers")) == 2
    assert sum(1 for p in payloads if p.startswith(f'{{"marker":"{marker}"')) == 2
    assert not any(f"{marker}-split" in p for p in payloads), "a splittable batch became a bad row"


def slow_send(port: int, request: bytes, step: int, interval: float = 0.1) -> tuple[int, float]:
    """Send ``request`` ``step`` bytes every ``interval`` seconds; its status and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for i in range(0, len(request), step):
            s.sendall(request[i:i + step])
            time.sleep(interval)  # the attack itself: a client that trickles bytes
        out = b""
        while b"\r\n" not in out:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    return status_of(out), time.monotonic() - started


def test_slow_clients_and_idle_connections_do_not_starve_others(collector):
    body = batch("slow", 3, 20)
    slow_bodies = [post(body) for _ in range(20)]
    slow_headers = [get(b"/i?e=pv&slow=headers", b"X-Pad: " + b"h" * 200 + b"\r\n") for _ in range(20)]
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def run(request: bytes, step: int) -> None:
        outcome = slow_send(collector.port, request, step)
        with lock:
            results.append(outcome)

    idle: list[socket.socket] = []
    with WellFormedTraffic(collector.port) as traffic:
        try:
            # Hundreds of connections: silent, or stuck half-way through their headers.
            for i in range(600):
                s = socket.create_connection(("127.0.0.1", collector.port), timeout=10)
                if i % 2:
                    s.sendall(b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: c\r\nContent-Len")
                idle.append(s)
            threads = [threading.Thread(target=run, args=(r, max(1, len(r) // 30))) for r in slow_bodies]
            threads += [threading.Thread(target=run, args=(r, max(1, len(r) // 30))) for r in slow_headers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert_healthy(collector)
        finally:
            for s in idle:
                s.close()
    traffic.check("slow clients and 600 idle connections")
    assert len(results) == len(slow_bodies) + len(slow_headers)
    assert [status for status, _ in results] == [200] * len(results)
    # Each trickled request took ~30 sends of 100 ms and was answered once complete.
    assert all(2.5 < seconds < 20 for _, seconds in results), results
    settle_memory(collector)


def answer_head(port: int, data: bytes) -> bytes:
    """The status line and headers of the answer to ``data``."""
    return exchange(port, data, until=b"\r\n\r\n").split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize("nuid", [b"abc;%20Domain=example.com;%20Max-Age=999999999", b"abc%0d%0aX-Injected:%201",
                                  b"abc%00def", b"a%20b", b"x" * 200, b"server-side_id.42"])
def test_a_malformed_nuid_is_ignored_and_a_new_one_issued(collector, nuid):
    head = answer_head(collector.port, get(b"/i?e=pv&nuid=" + nuid))
    assert status_of(head) == 200, head
    [cookie] = [line for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie:")]
    value = cookie.split(b":", 1)[1].strip().split(b";", 1)[0]
    assert value.startswith(b"sp=") and uuid.UUID(value[3:].decode())  # a new id, nothing of the client's
    assert b"example.com" not in cookie and b"999999999" not in cookie and b"X-Injected" not in head
    # a UUID (a server-side tracker passing on the browser's) is still taken as it is; any other id, which
    # Snowplow's enrich would refuse with the whole record, is replaced above
    head = answer_head(collector.port, get(b"/i?e=pv&nuid=0C9E1F6A-2B3C-4D5E-8F90-123456789ABC"))
    assert b"sp=0C9E1F6A-2B3C-4D5E-8F90-123456789ABC;" in head


def health_latencies(port: int, stop: threading.Event, out: list[float]) -> None:
    """GET /health every 20 ms until ``stop``; each answer's seconds in ``out``."""
    while not stop.is_set():
        started = time.monotonic()
        assert status_of(exchange(port, get(b"/health"))) == 200
        out.append(time.monotonic() - started)
        stop.wait(0.02)


def test_compression_bombs_cost_their_limit_not_their_size(collector):
    # 2 MB of gzip that inflate to 2 GB each: refused once 2 MiB are inflated, the rest never read
    bomb = gzip_of_zeros(2_000_000_000)
    latencies: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=health_latencies, args=(collector.port, stop, latencies))
    prober.start()
    try:
        started = time.monotonic()
        for _ in range(4):
            answer = exchange(collector.port, post(bomb, headers=b"Content-Encoding: gzip\r\n"))
            assert status_of(answer) == 413, answer
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        prober.join()
    assert elapsed < 2.0, elapsed
    assert latencies and max(latencies) < 0.5, max(latencies)
    assert_healthy(collector)


def test_refused_bodies_are_given_back_at_once(collector):
    def chunked(size: int) -> bytes:
        piece = b"x" * 65536
        chunks = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(size // len(piece)))
        return (b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: collector.test\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")

    request = chunked(3 * 1024 * 1024)
    before = rss_kib(collector.proc.pid)
    for _ in range(250):
        assert status_of(exchange(collector.port, request)) == 413
    # 250 refused 3 MB bodies: within 50 MB of where it started (they were kept until a full collection)
    assert rss_kib(collector.proc.pid) - before < 50 * 1024
    assert_healthy(collector)


def test_the_memory_a_burst_of_megabyte_batches_took_is_given_back(collector):
    """A batch over the record limit is split on a worker thread: a burst of them leaves what they freed in
    malloc's arenas, which kept the collector tens of megabytes over its baseline after the burst.  Once the
    burst is over, the collector gives that back (``snowmelt.residency.HeapTrimPolicy``)."""
    requests = [post(batch(f"burst-{i}", 1500, 1000)) for i in range(32)]
    statuses: list[int] = []

    def send(chunk: list[bytes]) -> None:
        statuses.extend(status_of(exchange(collector.port, request, timeout=60)) for request in chunk)

    threads = [threading.Thread(target=send, args=(requests[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [200] * len(requests)
    # it stayed 93 MB over its baseline before, and comes back to 18-28 MB over it
    wait_until(lambda: rss_kib(collector.proc.pid) < collector.baseline_rss + 48 * 1024, 10,
               f"collector RSS within 48 MiB of its baseline of {collector.baseline_rss} KiB", interval=0.25)
    assert_healthy(collector)
