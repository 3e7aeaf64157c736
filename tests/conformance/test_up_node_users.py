"""The official Node tracker -> ``snowmelt up``: one user however many requests it makes.

``@snowplow/node-tracker`` keeps no cookie, so the collector gives each of its
requests a new ``network_userid``; send.mjs sets a user id.  Counting
``domain_userid`` else ``network_userid`` made that one user as many users as
requests (a burst of 70 counted 70).  With one request per event, the
dashboard's active users and the ``users`` model must both count one person.

Skips like ``test_node_tracker.py`` when ``node``/``npm`` or the package are missing.
"""
from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from tests.conformance.test_node_tracker import node_tracker, send  # noqa: F401  (node_tracker: a fixture)
from tests.conformance.test_up_node_tracker import NODE_SCHEMAS
from tests.conformance.test_up_trackers import start_up
from tests.services.wait import wait_until

pytestmark = pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")),
                                reason="node and npm are needed for the @snowplow/node-tracker conformance tests")


def sql(up, query: str) -> list[dict]:
    request = urllib.request.Request(up.sql_url + "/", data=(query + " FORMAT JSONEachRow").encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def test_a_node_burst_is_one_user_in_the_models_and_the_dashboard(node_tracker, tmp_path):  # noqa: F811
    up = start_up(tmp_path, NODE_SCHEMAS)
    try:
        count = 30
        report, _ = send(up, "get", count, "--buffer-size", "1")
        assert len(report["requests"]) == count
        [events] = wait_until(
            lambda: sql(up, "SELECT count() AS n, uniqExact(network_userid) AS nuids, uniqExact(user_id) AS uids "
                            "FROM snowplow.events"), 30, "the events in the store", done=lambda r: r[0]["n"] == count)
        assert events == {"n": count, "nuids": count, "uids": 1}, events   # a new network_userid per request
        with urllib.request.urlopen(up.url + "/dashboard/data", timeout=10) as resp:
            [active] = json.loads(resp.read())["panels"]["active"]["rows"]
        assert active["users_30m"] == 1 and active["events_30m"] == count, active
        users = wait_until(lambda: sql(up, "SELECT user_key, stitched_user_id FROM snowplow.users FINAL"), 30,
                           "the users model")
        assert users == [{"user_key": report["subject"]["uid"], "stitched_user_id": report["subject"]["uid"]}], users
        assert up.terminate() == 0, up.output()
    finally:
        up.kill()
        up.remove_log()
