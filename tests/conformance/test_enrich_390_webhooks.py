"""Webhook adapters as Snowplow's enrich 3.9.0 runs them, through the whole stage.

The requests and the expected outputs are facts of Snowplow enrich 3.9.0
(Apache-2.0): the payloads and expected values of its adapter specs under
``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/adapters/registry/``
(``MailgunAdapterSpec.scala``, ``VeroAdapterSpec.scala``, ``OlarkAdapterSpec.scala``,
``UnbounceAdapterSpec.scala``, ``UrbanAirshipAdapterSpec.scala``, ``MandrillAdapterSpec.scala``,
``GoogleAnalyticsAdapterSpec.scala``, ``CloudfrontAccessLogAdapterSpec.scala``), each case naming
the spec it comes from, and the adapters' sources for the cases the specs leave out.  Each case is
one raw record through :class:`processor.stage.Enricher`: a good case checks the tracker-protocol
parameters the adapter made (``ue_pr`` compared as text, so the order of keys counts) and that the
event comes out enriched; a bad case checks the bad row's type and its messages.
"""
from __future__ import annotations

import json

import pytest

from ext import decode_collector_payload
from processor.adapters import adapt
from processor.enriched import FIELD_INDEX
from processor.stage import Enricher
from tests.unit.test_stage import raw

UE = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
JSON_CT = "application/json"
FORM_CT = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def enricher():
    return Enricher()


def compact(text: str) -> str:
    """A JSON text as circe's ``noSpaces`` prints it, keys in the order written."""
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


def ue_pr(schema: str, data: str) -> str:
    return compact(f'{{"schema":"{UE}","data":{{"schema":"{schema}","data":{data}}}}}')


def adapted(path, body=None, content_type=None, querystring=None) -> list[dict]:
    """The adapter's events for one request (it must not fail)."""
    result = adapt(decode_collector_payload(raw(path, querystring, body, content_type)))
    assert result.failure is None, result.failure
    return result.events


def good(enricher, path, body=None, content_type=None, querystring=None) -> list[dict]:
    """The enriched events of one request, as field dicts (there must be no bad row)."""
    out = enricher.enrich(raw(path, querystring, body, content_type))
    assert out.bad == [], [json.loads(b)["data"].get("failure") for b in out.bad]
    return [dict(zip(FIELD_INDEX, line.split("\t"))) for line in out.good]


def bad(enricher, path, body=None, content_type=None, querystring=None) -> tuple[str, list[dict]]:
    """``(bad-row type, messages)`` of a request that must give one bad row and no event."""
    out = enricher.enrich(raw(path, querystring, body, content_type))
    assert out.good == []
    [row] = out.bad
    row = json.loads(row)
    kind = row["schema"].split("/")[1]
    return kind, row["data"]["failure"]["messages"]


def input_data(field, value, expectation) -> dict:
    return {"field": field, "value": value, "expectation": expectation}


def schema_mapping(actual, mapping: dict, expectation) -> dict:
    return {"actual": actual, "expectedMapping": mapping, "expectation": expectation}


# -- Mailgun (MailgunAdapterSpec.scala) -------------------------------------------------------------

MAILGUN = "/com.mailgun/v1"
MAILGUN_SCHEMAS = {
    "bounced": "iglu:com.mailgun/message_bounced/jsonschema/1-0-0",
    "clicked": "iglu:com.mailgun/message_clicked/jsonschema/1-0-0",
    "complained": "iglu:com.mailgun/message_complained/jsonschema/1-0-0",
    "delivered": "iglu:com.mailgun/message_delivered/jsonschema/1-0-0",
    "dropped": "iglu:com.mailgun/message_dropped/jsonschema/1-0-0",
    "opened": "iglu:com.mailgun/message_opened/jsonschema/1-0-0",
    "unsubscribed": "iglu:com.mailgun/recipient_unsubscribed/jsonschema/1-0-0",
}
MAILGUN_SIGNATURE = ('"signature":{"token":"090e1ce3702378c8121f3765a8efe0ffb97c4e2ca2adda6729","timestamp":"1657907833",'
                     '"signature":"496413b238ab6affce021b850d3fc72c4832fb04f1aed6d4a2fda7d08e6e95a6"}')
MAILGUN_DELIVERED_DATA = (
    '"event-data":{"id":"CPgfbmQMTCKtHW6uIWtuVe","timestamp":1521472262.908181,"log-level":"info","event":"%s",'
    '"delivery-status":{"tls":true,"mx-host":"smtp-in.example.com","code":250,"description":"","session-seconds":0.4331989288330078,'
    '"utf8":true,"attempt-no":1,"message":"OK","certificate-verified":true},"flags":{"is-routed":false,"is-authenticated":true,'
    '"is-system-test":false,"is-test-mode":false},"envelope":{"transport":"smtp","sender":"bob@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org",'
    '"sending-ip":"209.61.154.250","targets":"alice@example.com"},"message":{"headers":{"to":"Alice <alice@example.com>",'
    '"message-id":"20130503182626.18666.16540@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org",'
    '"from":"Bob <bob@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org>","subject":"Test delivered webhook"},"attachments":[],"size":111},'
    '"recipient":"alice@example.com","recipient-domain":"example.com","storage":{"url":"https://se.api.mailgun.net/v3/domains/'
    'sandbox22aee81b13674403a5335202df94f7e7.mailgun.org/messages/message_key","key":"message_key"},"campaigns":[],'
    '"tags":["my_tag_1","my_tag_2"],"user-variables":{"my_var_1":"Mailgun Variable #1","my-var-2":"awesome"}}')
MAILGUN_DELIVERED = "{" + MAILGUN_SIGNATURE + "," + MAILGUN_DELIVERED_DATA % "delivered" + "}"
MAILGUN_OPENED = (
    '{"signature":{"token":"52ff6f6383a394343c4de6e5d4fd870f4ae67b5daeebe3eb86","timestamp":"1659551876",'
    '"signature":"b2314a28591eccaef5ea88fdf46b99202d8be44e3d1f911abd7e8fe3db726120"},"event-data":{"id":"Ase7i2zsRYeDXztHGENqRA",'
    '"timestamp":1521243339.873676,"log-level":"info","event":"opened","message":{"headers":{"message-id":'
    '"20130503182626.18666.16540@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org"}},"recipient":"alice@example.com",'
    '"recipient-domain":"example.com","ip":"50.56.129.169","geolocation":{"country":"US","region":"CA","city":"San Francisco"},'
    '"client-info":{"client-os":"Linux","device-type":"desktop","client-name":"Chrome","client-type":"browser","user-agent":'
    '"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.31 (KHTML, like Gecko) Chrome/26.0.1410.43 Safari/537.31"},"campaigns":[],'
    '"tags":["my_tag_1","my_tag_2"],"user-variables":{"my_var_1":"Mailgun Variable #1","my-var-2":"awesome"}}}')


def test_mailgun_json_webhook_delivered(enricher):
    # e1/e5: the JSON webhook; keys camelCased, the signature's timestamp as the event's, Scala Map order
    [event] = adapted(MAILGUN, MAILGUN_DELIVERED, JSON_CT)
    assert event == {"tv": "com.mailgun-v1", "e": "ue", "p": "srv", "ue_pr": ue_pr(
        "iglu:com.mailgun/message_delivered/jsonschema/1-0-0",
        '{"recipient":"alice@example.com","deliveryStatus":{"certificateVerified":true,"sessionSeconds":0.4331989288330078,'
        '"description":"","mxHost":"smtp-in.example.com","tls":true,"code":250,"attemptNo":1,"utf8":true,"message":"OK"},'
        '"timestamp":"2022-07-15T17:57:13.000Z","flags":{"isRouted":false,"isAuthenticated":true,"isSystemTest":false,'
        '"isTestMode":false},"tags":["my_tag_1","my_tag_2"],'
        '"signature":"496413b238ab6affce021b850d3fc72c4832fb04f1aed6d4a2fda7d08e6e95a6","id":"CPgfbmQMTCKtHW6uIWtuVe",'
        '"recipientDomain":"example.com","userVariables":{"myVar1":"Mailgun Variable #1","myVar2":"awesome"},'
        '"token":"090e1ce3702378c8121f3765a8efe0ffb97c4e2ca2adda6729","message":{"headers":{"to":"Alice <alice@example.com>",'
        '"messageId":"20130503182626.18666.16540@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org",'
        '"from":"Bob <bob@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org>","subject":"Test delivered webhook"},'
        '"attachments":[],"size":111},"storage":{"url":"https://se.api.mailgun.net/v3/domains/'
        'sandbox22aee81b13674403a5335202df94f7e7.mailgun.org/messages/message_key","key":"message_key"},"campaigns":[],'
        '"envelope":{"transport":"smtp","sender":"bob@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org",'
        '"sendingIp":"209.61.154.250","targets":"alice@example.com"},"logLevel":"info"}')}
    [row] = good(enricher, MAILGUN, MAILGUN_DELIVERED, JSON_CT)
    assert (row["event_name"], row["v_tracker"], row["platform"]) == ("message_delivered", "com.mailgun-v1", "srv")
    assert row["unstruct_event"] == event["ue_pr"]


def test_mailgun_json_webhook_opened(enricher):
    # e2
    [event] = adapted(MAILGUN, MAILGUN_OPENED, JSON_CT)
    assert event["ue_pr"] == ue_pr(
        "iglu:com.mailgun/message_opened/jsonschema/1-0-0",
        '{"recipient":"alice@example.com","ip":"50.56.129.169","timestamp":"2022-08-03T18:37:56.000Z",'
        '"tags":["my_tag_1","my_tag_2"],"clientInfo":{"deviceType":"desktop","userAgent":"Mozilla/5.0 (X11; Linux x86_64) '
        'AppleWebKit/537.31 (KHTML, like Gecko) Chrome/26.0.1410.43 Safari/537.31","clientType":"browser","clientName":"Chrome",'
        '"clientOs":"Linux"},"signature":"b2314a28591eccaef5ea88fdf46b99202d8be44e3d1f911abd7e8fe3db726120",'
        '"geolocation":{"country":"US","region":"CA","city":"San Francisco"},"id":"Ase7i2zsRYeDXztHGENqRA",'
        '"recipientDomain":"example.com","userVariables":{"myVar1":"Mailgun Variable #1","myVar2":"awesome"},'
        '"token":"52ff6f6383a394343c4de6e5d4fd870f4ae67b5daeebe3eb86","message":{"headers":{"messageId":'
        '"20130503182626.18666.16540@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org"}},"campaigns":[],"logLevel":"info"}')
    for event_type, schema in (("clicked", "message_clicked"), ("unsubscribed", "recipient_unsubscribed")):
        # e3/e4: the same body, another event type
        [row] = good(enricher, MAILGUN, MAILGUN_OPENED.replace('"event":"opened"', f'"event":"{event_type}"'), JSON_CT)
        assert row["event_name"] == schema


@pytest.mark.parametrize("body, content_type, message", [
    (None, JSON_CT, input_data("body", None, "empty body: no events to process")),             # e6
    ("body", None, input_data("contentType", None, "no content type: expected application/json")),  # e7
    ("body", "multipart/form-data", input_data("contentType", "multipart/form-data", "expected application/json")),  # e8
    ("", JSON_CT, input_data("body", None, "empty body: no events to process")),               # e9
    ("{}", JSON_CT, input_data("body", "{}", "no `event` parameter provided: cannot determine event type")),  # e10
    # the legacy form webhook and a charset parameter are refused: the content type must be exactly application/json
    ("event=delivered&timestamp=1&token=t&signature=s", FORM_CT,
     input_data("contentType", FORM_CT, "expected application/json")),
    ("{}", "application/json; charset=utf-8",
     input_data("contentType", "application/json; charset=utf-8", "expected application/json")),
    ("{", JSON_CT, input_data("body", "{", "could not parse body: exhausted input")),
])
def test_mailgun_refusals(enricher, body, content_type, message):
    assert bad(enricher, MAILGUN, body, content_type) == ("adapter_failures", [message])


def test_mailgun_unknown_event_type(enricher):
    # e11
    body = "{" + MAILGUN_SIGNATURE + "," + MAILGUN_DELIVERED_DATA % "released" + "}"
    kind, [message] = bad(enricher, MAILGUN, body, JSON_CT)
    assert kind == "adapter_failures"
    assert message == schema_mapping("released", MAILGUN_SCHEMAS, "no schema associated with the provided type parameter")


@pytest.mark.parametrize("missing", ["timestamp", "token", "signature"])
def test_mailgun_missing_signature_field(enricher, missing):
    # e12-e14
    signature = json.loads("{" + MAILGUN_SIGNATURE + "}")["signature"]
    del signature[missing]
    body = json.dumps({"signature": signature}) [:-1] + "," + MAILGUN_DELIVERED_DATA % "delivered" + "}"
    assert bad(enricher, MAILGUN, body, JSON_CT) == ("adapter_failures", [input_data(missing, None, f"missing '{missing}'")])


# -- Vero (VeroAdapterSpec.scala) -------------------------------------------------------------------

VERO = "/com.getvero/v1"
VERO_CAMPAIGN = ('"campaign": {"id": 987, "type": "transactional", "name": "Order confirmation", "subject": '
                 '"Your order is being processed", "trigger-event": "purchased item", "permalink": '
                 '"http://app.getvero.com/view/1/341d64944577ac1f70f560e37db54a25", "variation": "Variation A", "tags": "tag 1, tag 2"}')
VERO_CAMPAIGN_OUT = ('"campaign":{"name":"Order confirmation","permalink":"http://app.getvero.com/view/1/341d64944577ac1f70f560e37db54a25",'
                     '"subject":"Your order is being processed","tags":"tag 1, tag 2","variation":"Variation A",'
                     '"trigger-event":"purchased item","id":987,"type":"transactional"}')


@pytest.mark.parametrize("body, schema, data", [
    ('{"sent_at": 1435016238, "event": {"name": "Test event", "triggered_at": 1424012238}, "type": "sent", "user": '
     '{"id": 123, "email": "steve@getvero.com"},' + VERO_CAMPAIGN + '}', "sent",   # e1
     '{"event":{"name":"Test event","triggered_at":"2015-02-15T14:57:18.000Z"},"sent_at":"2015-06-22T23:37:18.000Z",'
     + VERO_CAMPAIGN_OUT + ',"user":{"id":123,"email":"steve@getvero.com"}}'),
    ('{"delivered_at": 1435016238, "sender_ip": "127.0.0.1", "message_id": "20130920062934.21270.53268@vero.com", '
     '"event":{"name":"Test event","triggered_at":1424012238}, "type": "delivered", "user": {"id": 123, "email": '
     '"steve@getvero.com"},' + VERO_CAMPAIGN + '}', "delivered",   # e2
     '{"event":{"name":"Test event","triggered_at":"2015-02-15T14:57:18.000Z"},' + VERO_CAMPAIGN_OUT +
     ',"delivered_at":"2015-06-22T23:37:18.000Z","message_id":"20130920062934.21270.53268@vero.com","sender_ip":"127.0.0.1",'
     '"user":{"id":123,"email":"steve@getvero.com"}}'),
    ('{"unsubscribed_at": 1435016238, "type": "unsubscribed", "user": {"id": 123, "email": "steve@getvero.com"}}',
     "unsubscribed",   # e6
     '{"unsubscribed_at":"2015-06-22T23:37:18.000Z","user":{"id":123,"email":"steve@getvero.com"}}'),
    ('{"type": "user_created", "user": {"id": 123, "email": "steve@getvero.com"}, "firstname": "Steve", "company": "Vero", '
     '"role": "Bot"}', "created",   # e7
     '{"role":"Bot","firstname":"Steve","company":"Vero","user":{"id":123,"email":"steve@getvero.com"}}'),
    ('{"type": "user_updated", "user": {"id": 123, "email": "steve@getvero.com"}, "changes": {"_tags": {"add": '
     '["active-customer"], "remove": ["unactive-180-days"]}}}', "updated",   # e8: _tags renamed tags
     '{"user":{"id":123,"email":"steve@getvero.com"},"changes":{"tags":{"add":["active-customer"],'
     '"remove":["unactive-180-days"]}}}'),
    ('{"type":"bounced"}', "bounced", "{}"),   # e9
])
def test_vero_events_drop_type_and_rename_tags(enricher, body, schema, data):
    [event] = adapted(VERO, body, JSON_CT)
    assert event == {"tv": "com.getvero-v1", "e": "ue", "p": "srv",
                     "ue_pr": ue_pr(f"iglu:com.getvero/{schema}/jsonschema/1-0-0", data)}
    if '"id":123' in data:
        # Iglu Central's Vero schemas (and snowmelt's) want user.id as a string: the spec's payloads fail validation
        kind, [message] = bad(enricher, VERO, body, JSON_CT)
        assert (kind, message["schemaKey"]) == ("schema_violations", f"iglu:com.getvero/{schema}/jsonschema/1-0-0")
    else:
        [row] = good(enricher, VERO, body, JSON_CT)
        assert row["unstruct_event"] == event["ue_pr"]


@pytest.mark.parametrize("body, kind, message", [
    (None, "adapter_failures", input_data("body", None, "empty body: no events to process")),   # e10
    ("", "adapter_failures", {"field": "body", "value": "", "error": "invalid json: exhausted input"}),
    ('{"user": {}}', "adapter_failures", input_data(
        "type", None, "could not extract 'type': Attempt to decode value on failed cursor: DownField(type)")),
    ('{"type": 1}', "adapter_failures", input_data("type", None, "could not extract 'type': String: DownField(type)")),
])
def test_vero_refusals(enricher, body, kind, message):
    assert bad(enricher, VERO, body, JSON_CT) == (kind, [message])


def test_vero_unknown_type(enricher):
    kind, [message] = bad(enricher, VERO, '{"type": "archived"}', JSON_CT)
    assert kind == "adapter_failures" and message["actual"] == "archived"
    assert message["expectation"] == "no schema associated with the provided type parameter"
