"""Mailchimp, Mandrill, SendGrid, Mailgun, Pingdom and PagerDuty through a real ``snowmelt up``.

One ``snowmelt up`` process (collector + enrich) for the module; every fixture
of tests/unit/webhooks/data/<vendor>/ is sent over HTTP to its vendor path
with the vendor's content type (Pingdom as a GET), each request tagged with its
own ``aid``; then ``/micro/good`` must hold every event with the vendor's
schema and reshaped fields, and ``/micro/bad`` an ``adapter_failures`` bad
row for each malformed request.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.services.up import UpProcess
from tests.services.wait import wait_until

DATA = Path(__file__).resolve().parents[1] / "unit" / "webhooks" / "data"
FORM = "application/x-www-form-urlencoded"
JSON_CT = "application/json"


def text(vendor: str, name: str) -> str:
    return (DATA / vendor / name).read_text()


def requests() -> tuple[list[tuple], dict[str, list[str]], dict[str, str]]:
    """(requests as (path, query, body, content type), aid -> expected schemas, aid -> bad-row fragment)."""
    reqs, good, bad = [], {}, {}

    def add(path, aid, body=None, content_type=None, query="", schemas=None, fragment=None):
        reqs.append((path, f"aid={aid}" + query, body, content_type))
        if schemas is not None:
            good[aid] = schemas
        if fragment is not None:
            bad[aid] = fragment

    for kind, name in {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "profile": "profile_update",
                       "upemail": "email_address_change", "cleaned": "cleaned_email",
                       "campaign": "campaign_sending_status"}.items():
        add("/com.mailchimp/v1", f"mailchimp-{kind}", text("mailchimp", f"{kind}.txt"), FORM,
            schemas=[f"iglu:com.mailchimp/{name}/jsonschema/1-0-0"])
    add("/com.mailchimp/v1", "mailchimp-bad", "type=resubscribe", FORM, fragment="resubscribe")

    for kind, schema in {"send": "message_sent/jsonschema/1-0-0", "deferral": "message_delayed/jsonschema/1-0-1",
                         "hard_bounce": "message_bounced/jsonschema/1-0-1",
                         "soft_bounce": "message_soft_bounced/jsonschema/1-0-1",
                         "open": "message_opened/jsonschema/1-0-1", "click": "message_clicked/jsonschema/1-0-1",
                         "spam": "message_marked_as_spam/jsonschema/1-0-1",
                         "unsub": "recipient_unsubscribed/jsonschema/1-0-1",
                         "reject": "message_rejected/jsonschema/1-0-0"}.items():
        item = json.loads(text("mandrill", f"{kind}.json"))
        add("/com.mandrill/v1", f"mandrill-{kind}", urlencode({"mandrill_events": json.dumps([item])}), FORM,
            schemas=[f"iglu:com.mandrill/{schema}"])
    add("/com.mandrill/v1", "mandrill-bad", "foo=bar", FORM, fragment="mandrill_events")

    sendgrid_types = [item["event"] for item in json.loads(text("sendgrid", "all_events.json"))]
    add("/com.sendgrid/v3", "sendgrid-all", text("sendgrid", "all_events.json"), JSON_CT,
        schemas=[f"iglu:com.sendgrid/{t}/jsonschema/3-0-0" for t in sendgrid_types])
    add("/com.sendgrid/v3", "sendgrid-bad", '[{"event": "bounced"}]', JSON_CT, fragment="bounced")

    for kind, name in {"delivered": "message_delivered", "dropped": "message_dropped", "bounced": "message_bounced",
                       "complained": "message_complained", "unsubscribed": "recipient_unsubscribed",
                       "clicked": "message_clicked", "opened": "message_opened"}.items():
        add("/com.mailgun/v1", f"mailgun-{kind}", text("mailgun", f"{kind}.json"), JSON_CT,
            schemas=[f"iglu:com.mailgun/{name}/jsonschema/1-0-0"])
    # the legacy form webhook is refused, as Snowplow's enrich 3.9.0 refuses it
    add("/com.mailgun/v1", "mailgun-form", "event=delivered&timestamp=1&token=t&signature=s", FORM,
        fragment="expected application/json")
    add("/com.mailgun/v1", "mailgun-bad", '{"signature": {"timestamp": "1", "signature": "s"}, '
        '"event-data": {"event": "delivered"}}', JSON_CT, fragment="token")
    # not JSON: circe's excerpt without its line break, as 3.9.0's stripInstanceEtc writes it
    add("/com.mailgun/v1", "mailgun-not-json", "x\n{}", JSON_CT, fragment="could not parse body: expected json value "
        "got 'x{}' (line 1, column 1)")

    for action in ("assign", "notify_user", "notify_of_close"):
        add("/com.pingdom/v1", f"pingdom-{action}", query="&message=" + quote(text("pingdom", f"{action}.json").strip()),
            schemas=[f"iglu:com.pingdom/incident_{action}/jsonschema/1-0-0"])
    add("/com.pingdom/v1", "pingdom-bad", query="&message=" + quote('{"action": "pause"}'), fragment="pause")

    pagerduty = text("pagerduty", "all_events.json")
    add("/com.pagerduty/v1", "pagerduty-all", pagerduty, JSON_CT,
        schemas=["iglu:com.pagerduty/incident/jsonschema/1-0-0"] * len(json.loads(pagerduty)["messages"]))
    add("/com.pagerduty/v1", "pagerduty-bad", '{"messages": [{"type": "incident.snooze"}]}', JSON_CT,
        fragment="incident.snooze")
    return reqs, good, bad


REQUESTS, EXPECTED_GOOD, EXPECTED_BAD = requests()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """(good, bad) from /micro after every request went through one ``snowmelt up``."""
    up = UpProcess(tmp_path_factory.mktemp("webhooks-email") / "data")
    up.start()
    try:
        statuses = [up.send(path, body, content_type, f"?{query}") for path, query, body, content_type in REQUESTS]
        assert statuses == [200] * len(REQUESTS)
        total_good = sum(len(s) for s in EXPECTED_GOOD.values())
        total = total_good + len(EXPECTED_BAD)
        wait_until(lambda: up.get("/micro/all")["total"] >= total, 45, f"{total} events in /micro/all",
                   interval=0.2)
        good, bad = up.get("/micro/good"), up.get("/micro/bad")
    finally:
        up.kill()
        up.remove_log()
    return good, bad


def by_aid(good: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in good:
        out.setdefault(item["event"]["app_id"], []).append(item["event"])
    return out


def sd_data(event: dict) -> tuple[str, dict]:
    """(schema, data) of an analytics-SDK event's self-describing event."""
    [(key, data)] = [(k, v) for k, v in event.items() if k.startswith("unstruct_event_")]
    vendor, name = event["event_vendor"], event["event_name"]
    assert key == f"unstruct_event_{vendor.replace('.', '_')}_{name}_{event['event_version'].split('-')[0]}"
    return f"iglu:{vendor}/{name}/jsonschema/{event['event_version']}", data


def test_every_fixture_is_a_good_event_with_its_schema(results):
    good, bad = results
    events = by_aid(good)
    assert set(events) == set(EXPECTED_GOOD), (sorted(events), json.dumps(bad)[:3000])
    for aid, schemas in EXPECTED_GOOD.items():
        got = [sd_data(e)[0] for e in events[aid]]
        assert sorted(got) == sorted(schemas), aid
        for event in events[aid]:
            assert event["event"] == "unstruct" and event["platform"] == "srv"
            assert event["v_tracker"] == f"{event['event_vendor']}-{'v3' if 'sendgrid' in aid else 'v1'}"


def test_vendor_fields_are_reshaped_as_snowplow_does(results):
    events = by_aid(results[0])
    _, mailchimp = sd_data(events["mailchimp-subscribe"][0])
    assert mailchimp["fired_at"] == "2009-03-26T21:35:57.000Z"
    assert mailchimp["data"]["merges"]["FNAME"] == "Mailchimp"
    _, mandrill = sd_data(events["mandrill-open"][0])
    assert mandrill["ts"] == "2014-11-11T07:47:15.000Z" and mandrill["msg"]["opens"][0]["ts"].endswith("Z")
    assert "event" not in mandrill
    sendgrid = {sd_data(e)[0].split("/")[1]: sd_data(e)[1] for e in events["sendgrid-all"]}
    assert sendgrid["click"]["url"] == "http://www.sendgrid.com/"
    assert sendgrid["group_unsubscribe"]["asm_group_id"] == 10
    assert all(d["timestamp"] == "2015-11-03T11:20:15.000Z" for d in sendgrid.values())
    _, mailgun = sd_data(events["mailgun-dropped"][0])
    assert mailgun["attachmentCount"] == 1 and mailgun["deliveryStatus"]["code"] == 550 and "event" not in mailgun
    assert mailgun["timestamp"] == "2016-06-30T14:32:08.000Z"
    _, pingdom = sd_data(events["pingdom-notify_of_close"][0])
    assert pingdom == {"check": "1421338", "checkname": "Webhooks_Test", "host": "7eef51c2.ngrok.com",
                       "incidentid": 3, "description": "up"}
    types = sorted(sd_data(e)[1]["type"] for e in events["pagerduty-all"])
    assert types == sorted(["trigger", "acknowledge", "unacknowledge", "resolve", "assign", "escalate", "delegate"])
    incident = sd_data(events["pagerduty-all"][0])[1]["data"]["incident"]
    assert incident["created_on"] == "2014-11-12T18:53:47+00:00" and incident["incident_key"] is None


def test_malformed_requests_are_adapter_failures(results):
    _, bad = results
    found = {}
    for row in bad:
        text_ = json.dumps(row)
        for aid, fragment in EXPECTED_BAD.items():
            if f"aid={aid}" in text_ or f'"{aid}"' in text_:
                found[aid] = (row, fragment)
    assert set(found) == set(EXPECTED_BAD), json.dumps(bad)[:3000]
    for aid, (row, fragment) in found.items():
        assert row["errors"] and row["errors"][0].startswith("adapter_failures"), (aid, row["errors"])
        assert fragment in json.dumps(row["errors"]), (aid, row["errors"])
