"""``snowmelt up`` with its store: tracker events end up in chdb and in S3-layout files under the data dir."""
from __future__ import annotations

import gzip
import json
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

from tests.services.up import UpProcess


def send_page_views(base: str, count: int) -> list[str]:
    event_ids = []
    for i in range(count):
        eid = str(uuid.uuid4())
        query = urlencode({"e": "pv", "eid": eid, "aid": "up-store", "p": "web", "tv": "js-4.1.0",
                           "url": f"https://shop.acme.com/p/{i}", "duid": "d-1", "sid": str(uuid.uuid4())})
        with urllib.request.urlopen(f"{base}/i?{query}", timeout=5) as resp:
            assert resp.status == 200
        event_ids.append(eid)
    return event_ids


def test_events_are_loaded_into_chdb_and_s3_files_and_drained_on_sigterm(tmp_path):
    from chdb import session

    up = UpProcess(tmp_path / "data", settings={"up.store_interval": "0.2", "up.sql_port": "0"}).start()
    try:
        sent = send_page_views(up.url, 25)
        deadline = time.monotonic() + 30
        while up.get("/micro/all")["good"] < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert up.get("/micro/all")["good"] == len(sent)
        assert up.terminate() == 0, up.output()
    finally:
        up.kill()
        up.remove_log()
    lines = []
    for obj in sorted((tmp_path / "data" / "s3").rglob("*.tsv.gz")):
        lines.extend(gzip.decompress(obj.read_bytes()).decode().splitlines())
    assert sorted(line.split("\t")[6] for line in lines) == sorted(sent)
    db = session.Session(str(tmp_path / "data" / "clickhouse"))
    try:
        rows = json.loads(db.query("SELECT event_id, page_url FROM snowplow.events FINAL ORDER BY page_url",
                                   "JSONCompact").bytes())["data"]
    finally:
        db.close()
    assert sorted(r[0] for r in rows) == sorted(sent)


def test_the_store_answers_sql_over_http_while_running(tmp_path):
    import clickhouse_connect

    up = UpProcess(tmp_path / "data", settings={"up.store_interval": "0.2"}).start()
    try:
        sent = send_page_views(up.url, 10)
        client = clickhouse_connect.get_client(host="127.0.0.1", port=up.sql_port)
        deadline = time.monotonic() + 30
        count = 0
        while count < len(sent) and time.monotonic() < deadline:
            count = client.query("SELECT count() FROM snowplow.events WHERE app_id = {app:String}",
                                 parameters={"app": "up-store"}).result_rows[0][0]
            time.sleep(0.1)
        assert count == len(sent)
        with urllib.request.urlopen(up.sql_url + "/ping", timeout=5) as resp:
            assert resp.read() == b"Ok.\n"
        # read-only by default: the store cannot be changed through the endpoint
        try:
            client.command("DROP TABLE snowplow.events")
            raise AssertionError("DROP TABLE was accepted")
        except clickhouse_connect.driver.exceptions.DatabaseError as exc:
            assert "readonly" in str(exc).lower() or "READONLY" in str(exc)
        assert up.terminate() == 0, up.output()
    finally:
        up.kill()
        up.remove_log()


def test_models_are_kept_up_to_date_while_running(tmp_path):
    import clickhouse_connect

    up = UpProcess(tmp_path / "data", settings={"up.store_interval": "0.2", "models.refresh_interval": "0.5"}).start()
    try:
        page_view_id = str(uuid.uuid4())
        contexts = json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                               "data": [{"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
                                         "data": {"id": page_view_id}}]})
        base = {"aid": "up-models", "p": "web", "tv": "js-4.1.0", "duid": "user-1", "sid": str(uuid.uuid4()),
                "vid": "1", "url": "https://shop.acme.com/", "co": contexts}
        for e, dtm, extra in (("pv", 1_764_288_000_000, {}),
                              ("pp", 1_764_288_010_000, {"pp_miy": "0", "pp_may": "500"}),
                              ("pp", 1_764_288_020_000, {"pp_miy": "0", "pp_may": "900"})):
            query = urlencode({**base, "e": e, "dtm": str(dtm), "eid": str(uuid.uuid4()), **extra})
            with urllib.request.urlopen(f"{up.url}/i?{query}", timeout=5) as resp:
                assert resp.status == 200
        client = clickhouse_connect.get_client(host="127.0.0.1", port=up.sql_port)
        deadline = time.monotonic() + 30
        rows = []
        while not rows and time.monotonic() < deadline:
            rows = client.query("SELECT page_view_id, engaged_time_in_s FROM snowplow.page_views FINAL "
                                "WHERE page_view_id = {id:String}", parameters={"id": page_view_id}).result_rows
            time.sleep(0.1)
        # two pings in two 10 s buckets: 10 * (2 - 1) + 5
        assert rows == [(page_view_id, 15)]
        sessions = client.query("SELECT page_views FROM snowplow.sessions FINAL WHERE domain_userid = 'user-1'")
        assert sessions.result_rows == [(1,)]
        assert up.terminate() == 0, up.output()
    finally:
        up.kill()
        up.remove_log()


def test_the_dashboard_is_served_at_the_root_with_live_numbers(tmp_path):
    up = UpProcess(tmp_path / "data", settings={"up.store_interval": "0.2"}).start()
    try:
        with urllib.request.urlopen(up.url + "/", timeout=5) as resp:
            assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
            assert b"dashboard.js" in resp.read()
        sent = send_page_views(up.url, 7)
        deadline = time.monotonic() + 30
        panels = {}
        while time.monotonic() < deadline:
            panels = up.get("/dashboard/data")["panels"]
            if [row["events"] for row in panels["totals"]["rows"]] == [len(sent)]:
                break
            time.sleep(0.2)
        assert [(row["events"], row["bad_rows"]) for row in panels["totals"]["rows"]] == [(len(sent), 0)], panels
        assert panels["top_pages"]["rows"], panels["top_pages"]
        assert up.terminate() == 0, up.output()
    finally:
        up.kill()
        up.remove_log()


def test_at_rest_up_keeps_resident_only_the_library_pages_it_uses(tmp_path):
    """Opening chdb touches about 170 MB of its library that the store never reads again (static
    initialisers): ``up`` gives them back once its tables are made (``snowmelt.residency``), and the engine still
    answers, reading back what it needs.  The kernel releases only the pages no other process maps, so what is
    measured is up's own share of the library: another process of this test run may have chdb open.  The same
    for pyarrow and numpy, which the store converts its batches with: about 30 MB resident after their import,
    3 MB of it read again at rest."""
    import importlib.util

    from snowmelt.residency import resident_kib

    [library] = Path(importlib.util.find_spec("chdb").origin).parent.glob("_chdb*.so")  # chdb not imported here
    up = UpProcess(tmp_path / "data", settings={"up.store_interval": "0.2"}).start()
    try:
        deadline = time.monotonic() + 30
        while "start-up pages" not in up.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "start-up pages" in up.output(), up.output()  # logged even when every page was shared
        own_mb = resident_kib(str(library), f"/proc/{up.proc.pid}/smaps", ("Private_Clean", "Private_Dirty")) / 1024
        assert own_mb < 100, own_mb  # 170-180 MB kept before
        folders = tuple(str(Path(importlib.util.find_spec(name).origin).resolve().parent) + suffix
                        for name in ("pyarrow", "numpy") for suffix in ("/", ".libs/"))  # not imported here
        arrow = {line.split()[-1] for line in Path(f"/proc/{up.proc.pid}/maps").read_text().splitlines()
                 if line.split()[-1].startswith(folders)}
        assert any("libarrow" in name for name in arrow), arrow
        arrow_mb = resident_kib(arrow, f"/proc/{up.proc.pid}/smaps", ("Private_Clean", "Private_Dirty")) / 1024
        assert arrow_mb < 12, arrow_mb  # 30-34 MB kept before (RSS; about 5 MB of it relocated data)
        sent = send_page_views(up.url, 5)
        deadline = time.monotonic() + 30
        count = 0
        while count < len(sent) and time.monotonic() < deadline:
            with urllib.request.urlopen(f"{up.sql_url}/?query=" + urllib.parse.quote(
                    "SELECT count() FROM snowplow.events FINAL WHERE app_id = 'up-store'"), timeout=5) as resp:
                count = int(resp.read())
            time.sleep(0.1)
        assert count == len(sent)
        assert up.terminate() == 0, up.output()
    finally:
        up.kill()
        up.remove_log()
