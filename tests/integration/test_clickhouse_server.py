"""The ClickHouse store through clickhouse-connect against a real server at CLICKHOUSE_URL.

No ClickHouse server can be installed on this machine: the test runs only
when ``CLICKHOUSE_URL`` (http://user:password@host:8123) is set, and prints
which backend ran; otherwise it is skipped with that reason.  The SQL itself
is the same as the chdb tests run (tests/unit/loaders/test_clickhouse.py).
"""
import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "loaders"))

from loaders.base import Batch  # noqa: E402
from loaders.clickhouse import ClickHouseStore  # noqa: E402
from snowmelt.config import ClickHouseConfig  # noqa: E402
from loader_lines import checkout, make_enricher, page_view, tracker_events  # noqa: E402

URL = os.environ.get("CLICKHOUSE_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="CLICKHOUSE_URL not set: clickhouse-connect backend not run "
                                                "(chdb backend is covered by tests/unit/loaders)")


def test_server_backend_dedups_and_adds_wide_columns(tmp_path):
    print(f"ClickHouse backend: server (clickhouse-connect) at {URL.split('@')[-1]}")
    database = f"snowmelt_test_{uuid.uuid4().hex[:8]}"
    store = ClickHouseStore(ClickHouseConfig(backend="server", url=URL, database=database))
    store.open()
    try:
        enricher = make_enricher(tmp_path)
        lines = tracker_events(enricher, [checkout("5a1e2c3d-0000-4000-8000-000000000001")] +
                               [page_view(f"5a1e2c3d-0000-4000-8000-00000000001{i}") for i in range(3)])
        batch = Batch("enriched", "t", 0, 0, len(lines) - 1, tuple(lines + [b"x\ty"]), 1_764_288_000_000)
        store.write(batch)
        store.write(batch)
        assert store.backend.query(f"SELECT count() FROM {database}.events") == [(4,)]
        assert store.backend.query(f"SELECT count() FROM {database}.bad_rows") == [(1,)]
        [(ue,)] = store.backend.query(f"SELECT unstruct_event_com_acme_checkout_1 FROM {database}.events "
                                      f"WHERE event = 'unstruct'")
        assert ue == '{"total":19.99}'
    finally:
        store.backend.command(f"DROP DATABASE IF EXISTS {database}")
        store.close()


async def test_dashboard_devices_on_a_server_where_the_models_never_ran(tmp_path):
    """`snowmelt load clickhouse` alone: no model tables. The devices panel counts the page views from
    the events with the models' rules and says that the models are not loaded."""
    import time

    from snowmelt.dashboard import DashboardData, backend_query
    from tests.unit.test_dashboard import IPHONE_SAFARI, collected, page_view, ua_parser_context, with_fields

    print(f"ClickHouse backend: server (clickhouse-connect) at {URL.split('@')[-1]}")
    database = f"snowmelt_test_{uuid.uuid4().hex[:8]}"
    store = ClickHouseStore(ClickHouseConfig(backend="server", url=URL, database=database))
    store.open()
    try:
        enricher = make_enricher(tmp_path)
        now = int(time.time() * 1000)
        good, _ = collected(enricher, now - 60_000, [page_view(1, "https://x.com/a", "u1", 1),
                                                     page_view(2, "https://x.com/b", "u1", 1)])
        firefox = ua_parser_context("Firefox", "Linux", "Other")
        lines = [with_fields(line, derived_contexts=firefox) for line in good]
        good, _ = collected(enricher, now - 120_000, [page_view(3, "https://x.com/a", "u2", 2)], IPHONE_SAFARI)
        lines.append(with_fields(good[0], derived_contexts=ua_parser_context("Mobile Safari", "iOS", "iPhone")))
        store.write(Batch("enriched", "t", 0, 0, len(lines) - 1, tuple(lines), now))

        doc = await DashboardData(backend_query(store.backend), database=database).get()
        devices = doc["panels"]["devices"]
        assert "error" not in devices and devices["source"] == "events" and "models are not loaded" in devices["note"]
        assert [(r["facet"], r["name"], r["users"], r["page_views"]) for r in devices["rows"]] == [
            ("browser", "Firefox", 1, 2), ("browser", "Mobile Safari", 1, 1),
            ("device", "Desktop", 1, 2), ("device", "Phone", 1, 1),
            ("os", "Linux", 1, 2), ("os", "iOS", 1, 1)]
    finally:
        store.backend.command(f"DROP DATABASE IF EXISTS {database}")
        store.close()
