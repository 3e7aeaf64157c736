"""Security against running processes (see docs/threat-model.md).

* slow clients: a connection that trickles its request head or its body is
  closed after ``collector.read_timeout`` while other clients are served;
* log flooding: a thousand malformed requests leave a bounded number of lines
  in the collector's log;
* secrets: a ClickHouse password, a Kafka SASL password and an S3 secret key
  given through the environment (and ``*_FILE``) appear in no log line nor in
  the collector's ``/metrics``, while every dependency is unreachable (the time
  errors are logged); the readiness reasons are tested in tests/unit/test_security.py.

No broker is needed: the collector and the loaders point at closed ports.
"""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

from tests.services.collector import CollectorProcess
from tests.services.load import LoadProcess
from tests.services.server import free_port
from tests.services.wait import wait_until

DEAD = f"127.0.0.1:{free_port()}"  # nothing listens there
TOPICS = SimpleNamespace(raw="security-raw", bad="security-bad")
READ_TIMEOUT = 2.0
CH_PASSWORD = "ch-Pa55-7c1e"
SASL_PASSWORD = "sasl-Pa55-93ab"
S3_SECRET = "s3-Secret-4f0d"


def collector(**settings) -> CollectorProcess:
    return CollectorProcess(DEAD, TOPICS, {"collector.read_timeout": str(READ_TIMEOUT), **settings})


class running:
    """A collector serving (``/health``) on a dead broker, terminated on exit."""

    def __init__(self, **settings):
        self.process = collector(**settings)

    def __enter__(self) -> CollectorProcess:
        return self.process.start(wait_sink=False)

    def __exit__(self, *exc):
        self.process.kill()
        self.process.remove_log()


def closed_by_server(sock: socket.socket, trickle: bytes, deadline: float) -> bytes:
    """Keep sending ``trickle`` every 0.2 s until the server closes; what it answered (b"" if nothing)."""
    sock.settimeout(0.2)
    received = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
        except TimeoutError:
            pass
        except ConnectionError:
            return received
        try:
            sock.sendall(trickle)
        except (BrokenPipeError, ConnectionError):
            return received
    raise AssertionError(f"the collector kept a trickling connection open; got {received!r}")


def test_slow_clients_are_disconnected_after_read_timeout():
    with running() as c:
        port = c.port
        # a head that never ends
        head = socket.create_connection(("127.0.0.1", port))
        head.sendall(b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\n")
        # a body that never ends
        body = socket.create_connection(("127.0.0.1", port))
        body.sendall(b"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        # an idle connection that never sends anything
        idle = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        try:
            deadline = started + 60
            assert closed_by_server(head, b"X-Slow: 1\r\n", deadline) == b""
            answer = closed_by_server(body, b" ", deadline)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
            assert closed_by_server(idle, b"", deadline) == b""
            # not before the timeout: the deadline is the configured one, not an accident
            assert time.monotonic() - started >= READ_TIMEOUT * 0.9
            # the collector still serves
            with urllib.request.urlopen(c.url + "/health", timeout=10) as resp:
                assert resp.status == 200
        finally:
            for s in (head, body, idle):
                s.close()


def test_a_flood_of_malformed_requests_leaves_a_bounded_log():
    garbage = [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ]
    with running() as c:
        before = len(c.output(10**7).splitlines())
        answered = 0
        for i in range(1000):
            with socket.create_connection(("127.0.0.1", c.port), timeout=10) as s:
                s.sendall(garbage[i % len(garbage)])
                if s.recv(64).split(b" ", 2)[1:2] == [b"400"]:
                    answered += 1
        assert answered == 1000
        with urllib.request.urlopen(c.url + "/health", timeout=10) as resp:
            assert resp.status == 200
        lines = c.output(10**7).splitlines()[before:]
        about = [line for line in lines if "Error handling request" in line]
        # one line per template a minute, tracebacks reduced to one line
        assert 1 <= len(about) <= 4, about
        assert len(lines) < 40, "\n".join(lines[:60])


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.read().decode()


def test_secrets_from_the_environment_never_reach_logs_metrics_or_readiness(tmp_path):
    password_file = tmp_path / "ch-password"
    password_file.write_text(CH_PASSWORD + "\n")
    sasl: dict = {}
    sasl_env = {"SNOWMELT_KAFKA__COMMON": "{security.protocol: SASL_PLAINTEXT, sasl.mechanism: PLAIN, "
                                          "sasl.username: svc, sasl.password: " + SASL_PASSWORD + "}"}
    clickhouse = LoadProcess("clickhouse", DEAD, "security-enriched", "security-bad", settings={
        **sasl, "clickhouse.url": f"http://admin:{CH_PASSWORD}@{DEAD}", "clickhouse.username": "admin"})
    clickhouse.env.update(sasl_env)
    clickhouse.env["SNOWMELT_CLICKHOUSE__PASSWORD_FILE"] = str(password_file)
    s3 = LoadProcess("s3", DEAD, "security-enriched", "security-bad", settings={
        **sasl, "s3.bucket": "b", "s3.endpoint_url": f"http://{DEAD}", "s3.path_style": "true",
        "s3.connect_timeout": "0.5", "s3.max_attempts": "1"})
    s3.env.update({**sasl_env, "AWS_ACCESS_KEY_ID": "security-key", "AWS_SECRET_ACCESS_KEY": S3_SECRET})
    col = collector(**sasl)
    col.env.update(sasl_env)
    processes = [clickhouse, s3, col]
    try:
        for p in processes:
            p.spawn()
        col.wait_http(col.url + "/health", 60)
        # every dependency is down: each role says so, in the lines where a secret could leak
        # (a loader opens its store before it serves /metrics: it retries and logs meanwhile)
        for p in (clickhouse, s3):
            wait_until(lambda p=p: p.output(10**7).count("unavailable at start-up") >= 2, 60,
                       f"{p.name} logs the store outage")
        wait_until(lambda: "kafka not reachable" in col.output(10**7), 60, "the collector logs the broker outage")
        assert _get(col.url + "/sink-health") == "Service Unavailable"
        bodies = {p.name: p.output(10**7) for p in processes}
        bodies["collector /metrics"] = _get(col.url + "/metrics")
        for where, text in bodies.items():
            for secret in (CH_PASSWORD, SASL_PASSWORD, S3_SECRET):
                assert secret not in text, f"{secret} in {where}:\n{text[-3000:]}"
        # the errors name the store, not its credentials
        assert DEAD in bodies["load-clickhouse"] and DEAD in bodies["load-s3"]
    finally:
        for p in processes:
            p.kill()
            p.remove_log()


def test_a_loader_logs_a_broker_outage_once_not_per_reconnect(tmp_path):
    # the store (a local folder) is fine, the broker is down: librdkafka retries every few
    # tens of milliseconds, and each failure used to be a raw stderr line
    loader = LoadProcess("s3", DEAD, "outage-enriched", "outage-bad", settings={
        "s3.backend": "local", "s3.local_dir": str(tmp_path / "s3")})
    try:
        loader.spawn()
        wait_until(lambda: "Connection refused" in loader.output(10**7), 60, "the loader logs the broker outage")
        window = 5.0
        time.sleep(window)  # an observation window: how much the log grows while the outage lasts
        text = loader.output(10**7)
        refused = [line for line in text.splitlines() if "Connection refused" in line]
        assert 1 <= len(refused) <= 2, f"{len(refused)} lines in {window:.0f} s:\n{text[-3000:]}"
        assert all("snowmelt.kafka" in line for line in refused), refused
    finally:
        loader.kill()
        loader.remove_log()
