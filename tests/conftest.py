"""Fixtures for tests that need real services (integration and conformance).

``kafka_broker`` (session)
    One broker for the whole run, from :func:`tests.services.kafka.broker_from_env`:
    ``KAFKA_BOOTSTRAP_SERVERS`` > Apache Kafka (java + mvn) > Tansu;
    ``SNOWMELT_KAFKA_IMPL=kafka|tansu`` forces one. Which kind ran is printed in
    the header (planned) and the summary (actual) of the pytest output. Do not
    stop or restart it from a test: use ``private_kafka_broker``.

``private_kafka_broker`` (function)
    A broker of the same kind for this test alone, which it may stop, kill or
    restart. Skips when the session broker is external. Check
    ``broker.supports_restart`` before relying on data surviving a restart
    (Tansu keeps data in memory only).

``kafka_cluster`` (function, on a cluster started once per module)
    A three-node Apache Kafka cluster (``tests.services.kafka.KafkaCluster``);
    a test may kill and start its nodes, all are running again after it.
    Skips unless the session broker is Apache Kafka.

``proxied_kafka_broker`` (function)
    ``(broker, proxy)``: an Apache Kafka broker of this test's own, reached
    through a :class:`tests.services.kafka_fault_proxy.KafkaFaultProxy` that it
    advertises; the proxy's faults apply to the client whose ``client.id`` is
    :data:`tests.services.kafka_fault_proxy.PROXIED_CLIENT_ID`.

``make_kafka_topics`` / ``kafka_topics`` (function)
    Fresh topics with unique names, created on ``kafka_broker`` (and led)
    before the test runs, so tests never share a topic. ``kafka_topics`` is
    ``make_kafka_topics()``: a ``KafkaTopics(raw, bad, enriched)`` namedtuple,
    one partition each; ``make_kafka_topics(partitions=3)`` for more.

Every test under tests/integration is marked ``integration``.

With pytest-xdist (``-n``), a module of tests/integration or tests/conformance
(or test_yauaa.py) runs whole in one worker, so its module fixtures (a cluster,
a ``snowmelt up``, a browser, a JVM) start once; unit tests are spread one by
one. Each worker starts its own ``kafka_broker`` when a test of it needs one.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from tests.services.kafka import KafkaBroker, KafkaCluster, KafkaTopics, broker_from_env, chosen_kind  # noqa: E402
from tests.services.kafka_fault_proxy import PROXIED_CLIENT_ID, KafkaFaultProxy

_INTEGRATION = Path(__file__).resolve().parent / "integration"

_started: list[str] = []


#: test folders whose modules each run whole in one pytest-xdist worker, and modules of other folders that
#: start a service for all their tests (YAUAA's JVM)
_WHOLE_MODULES = ("tests/integration/", "tests/conformance/", "tests/unit/enrichments/test_yauaa.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _INTEGRATION in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduling by scope, a scope being a module of the services' tests or else one test.

    Its default order hands out the scopes of most tests first: the services' modules, then single tests.
    """
    if config.getoption("dist") != "load":  # another ``--dist`` asked for by name
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ServiceModulesWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.startswith(_WHOLE_MODULES) else nodeid

    return ServiceModulesWhole(config, log)


def pytest_report_header(config):
    try:
        return [f"kafka broker for integration tests: {chosen_kind()} (started on first use)"]
    except Exception as exc:  # a bad SNOWMELT_KAFKA_IMPL: the fixture reports it
        return [f"kafka broker for integration tests: ? ({exc})"]


def pytest_sessionfinish(session):
    # a pytest-xdist worker hands the services it started to the controller, which prints them
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["services_started"] = list(_started)


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist"):
        class _WorkerServices:
            @staticmethod
            def pytest_testnodedown(node, error):
                _started.extend(getattr(node, "workeroutput", {}).get("services_started", ()))

        config.pluginmanager.register(_WorkerServices(), "snowmelt-worker-services")


def pytest_terminal_summary(terminalreporter):
    for line in _started:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kafka_broker():
    broker = broker_from_env()
    t0 = time.monotonic()
    broker.start()
    line = f"kafka broker: {broker.describe()} (ready in {time.monotonic() - t0:.1f}s)"
    _started.append(line)
    print(f"\n{line}")
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def private_kafka_broker(kafka_broker):
    if not kafka_broker.supports_stop:
        pytest.skip(f"{kafka_broker.kind} broker cannot be started/stopped by the tests")
    broker = broker_from_env(kafka_broker.kind)
    broker.start()
    print(f"\nprivate kafka broker: {broker.describe()} (ready in {broker.start_seconds:.1f}s)")
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def proxied_kafka_broker(kafka_broker):
    if kafka_broker.kind != "apache-kafka":
        pytest.skip(f"the proxied broker is Apache Kafka's; the tests run {kafka_broker.kind}")
    broker: KafkaBroker | None = None
    proxy = KafkaFaultProxy(lambda: broker.port, client_id=PROXIED_CLIENT_ID).start()
    try:
        broker = KafkaBroker(extra_config={"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
        broker.start()
        try:
            yield broker, proxy
        finally:
            broker.close()
    finally:
        proxy.close()


@pytest.fixture(scope="module")
def _module_kafka_cluster(kafka_broker):
    if kafka_broker.kind != "apache-kafka":
        pytest.skip(f"a cluster needs Apache Kafka, not {kafka_broker.kind}")
    cluster = KafkaCluster(3)
    cluster.start()
    print(f"\nkafka cluster: {cluster.describe()} (ready in {cluster.start_seconds:.1f}s)")
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def kafka_cluster(_module_kafka_cluster):
    """A three-node Apache Kafka cluster (replication factor 3, min.insync.replicas 2), shared by a module's tests.

    A test may kill and start nodes; every node is running again when it ends (started here if not),
    so the next test of the module finds the whole cluster.  Tests use topics of their own.
    """
    cluster = _module_kafka_cluster
    cluster.wait_in_sync(60)
    try:
        yield cluster
    finally:
        if any(not node.running for node in cluster.nodes):
            cluster.start()


def _topic_prefix(request) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.name)[:60].strip("_")
    return f"t.{name}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_kafka_topics(request, kafka_broker):
    """Factory: ``make_kafka_topics(partitions=1) -> KafkaTopics(raw, bad, enriched)``."""
    created: list[str] = []

    def make(partitions: int = 1) -> KafkaTopics:
        prefix = _topic_prefix(request)
        topics = KafkaTopics(*(f"{prefix}.{role}" for role in KafkaTopics._fields))
        kafka_broker.create_topics(topics, partitions=partitions)
        created.extend(topics)
        return topics

    yield make
    if created and kafka_broker.kind == "external":
        # Leave nothing behind on someone else's broker; ours die with the session.
        futures = kafka_broker.admin().delete_topics(created, operation_timeout=10)
        for fut in futures.values():
            try:
                fut.result(timeout=15)
            except Exception:
                pass


@pytest.fixture
def kafka_topics(make_kafka_topics) -> KafkaTopics:
    return make_kafka_topics()


@pytest.fixture
def chdb_store(tmp_path):
    """An open ClickHouse store on chdb in a fresh folder (chdb: one folder per process at a time)."""
    from loaders.clickhouse import ClickHouseStore
    from snowmelt.config import ClickHouseConfig

    store = ClickHouseStore(ClickHouseConfig(backend="chdb", chdb_path=str(tmp_path / "ch")))
    store.open()
    yield store
    store.close()
