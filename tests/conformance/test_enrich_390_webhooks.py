"""Webhook adapters as Snowplow's enrich 3.9.0 runs them, through the whole stage.

The requests and the expected outputs are facts of Snowplow enrich 3.9.0
(Apache-2.0): the payloads and expected values of its adapter specs under
``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/adapters/registry/``
(``MailgunAdapterSpec.scala``, ``VeroAdapterSpec.scala``, ``OlarkAdapterSpec.scala``,
``UnbounceAdapterSpec.scala``, ``UrbanAirshipAdapterSpec.scala``, ``MandrillAdapterSpec.scala``,
``GoogleAnalyticsAdapterSpec.scala``, ``CloudfrontAccessLogAdapterSpec.scala``, ``StatusGatorAdapterSpec.scala``,
``MailchimpAdapterSpec.scala``, ``SendgridAdapterSpec.scala``, ``PingdomAdapterSpec.scala``,
``PagerdutyAdapterSpec.scala``, ``HubSpotAdapterSpec.scala``, ``MarketoAdapterSpec.scala``,
``CallrailAdapterSpec.scala``, ``IgluAdapterSpec.scala``, ``RemoteAdapterSpec.scala``), each case naming
the spec it comes from, and the adapters' sources for the cases the specs leave out.  Each case is
one raw record through :class:`processor.stage.Enricher`: a good case checks the tracker-protocol
parameters the adapter made (``ue_pr`` compared as text, so the order of keys counts) and that the
event comes out enriched; a bad case checks the bad row's type and its messages.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

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


# -- Olark (OlarkAdapterSpec.scala) -----------------------------------------------------------------

OLARK = "/com.olark/v1"
OLARK_TRANSCRIPT = (
    'data=%7B%22kind%22%3A%20%22Conversation%22%2C%20%22tags%22%3A%20%5B%22olark%22%2C%20%22customer%22%5D%2C%20%22'
    'items%22%3A%20%5B%7B%22body%22%3A%20%22Hi%20there.%20Need%20any%20help%3F%22%2C%20%22timestamp%22%3A%20%221307'
    '116657.1%22%2C%20%22kind%22%3A%20%22MessageToVisitor%22%2C%20%22visitor_nickname%22%3A%20%22John%22%2C%20%22ni'
    'ckname%22%3A%20%22John%22%2C%20%22operatorId%22%3A%20%221234%22%7D%2C%20%7B%22body%22%3A%20%22Yes%2C%20please%'
    '20help%20me%20with%20billing.%22%2C%20%22timestamp%22%3A%20%221307116661.25%22%2C%20%22kind%22%3A%20%22Message'
    'ToOperator%22%2C%20%22nickname%22%3A%20%22Bob%22%7D%5D%2C%20%22operators%22%3A%20%7B%221234%22%3A%20%7B%22user'
    'name%22%3A%20%22jdoe%22%2C%20%22emailAddress%22%3A%20%22john%40example.com%22%2C%20%22kind%22%3A%20%22Operator'
    '%22%2C%20%22nickname%22%3A%20%22John%22%2C%20%22id%22%3A%20%221234%22%7D%7D%2C%20%22groups%22%3A%20%5B%7B%22ki'
    'nd%22%3A%20%22Group%22%2C%20%22name%22%3A%20%22My%20Sales%20Group%22%2C%20%22id%22%3A%20%220123456789abcdef%22'
    '%7D%5D%2C%20%22visitor%22%3A%20%7B%22ip%22%3A%20%22123.4.56.78%22%2C%20%22city%22%3A%20%22Palo%20Alto%22%2C%20'
    '%22kind%22%3A%20%22Visitor%22%2C%20%22conversationBeginPage%22%3A%20%22http%3A%2F%2Fwww.example.com%2Fpath%22%'
    '2C%20%22countryCode%22%3A%20%22US%22%2C%20%22country%22%3A%20%22United%20State%22%2C%20%22region%22%3A%20%22CA'
    '%22%2C%20%22chat_feedback%22%3A%20%7B%22overall_chat%22%3A%205%2C%20%22responsiveness%22%3A%205%2C%20%22friend'
    'liness%22%3A%205%2C%20%22knowledge%22%3A%205%2C%20%22comments%22%3A%20%22Very%20helpful%2C%20thanks%22%7D%2C%2'
    '0%22operatingSystem%22%3A%20%22Windows%22%2C%20%22emailAddress%22%3A%20%22bob%40example.com%22%2C%20%22organiz'
    'ation%22%3A%20%22Widgets%20Inc.%22%2C%20%22phoneNumber%22%3A%20%22%28555%29%20555-5555%22%2C%20%22fullName%22%'
    '3A%20%22Bob%20Doe%22%2C%20%22customFields%22%3A%20%7B%22favoriteColor%22%3A%20%22blue%22%2C%20%22myInternalCus'
    'tomerId%22%3A%20%2212341234%22%7D%2C%20%22id%22%3A%20%229QRF9YWM5XW3ZSU7P9CGWRU89944341%22%2C%20%22browser%22%'
    '3A%20%22Chrome%2012.1%22%7D%2C%20%22id%22%3A%20%22EV695BI2930A6XMO32886MPT899443414%22%7D')
OLARK_TRANSCRIPT_DATA = (
    '{"kind":"Conversation","tags":["olark","customer"],"items":[{"body":"Hi there. Need any help?","timestamp":"20'
    '11-06-03T15:57:37.100Z","kind":"MessageToVisitor","visitorNickname":"John","nickname":"John","operatorId":"123'
    '4"},{"body":"Yes, please help me with billing.","timestamp":"2011-06-03T15:57:41.250Z","kind":"MessageToOperat'
    'or","nickname":"Bob"}],"operators":{"1234":{"username":"jdoe","emailAddress":"john@example.com","kind":"Operat'
    'or","nickname":"John","id":"1234"}},"groups":[{"kind":"Group","name":"My Sales Group","id":"0123456789abcdef"}'
    '],"visitor":{"ip":"123.4.56.78","city":"Palo Alto","kind":"Visitor","conversationBeginPage":"http://www.exampl'
    'e.com/path","countryCode":"US","country":"United State","region":"CA","chatFeedback":{"overallChat":5,"respons'
    'iveness":5,"friendliness":5,"knowledge":5,"comments":"Very helpful, thanks"},"operatingSystem":"Windows","emai'
    'lAddress":"bob@example.com","organization":"Widgets Inc.","phoneNumber":"(555) 555-5555","fullName":"Bob Doe",'
    '"customFields":{"favoriteColor":"blue","myInternalCustomerId":"12341234"},"id":"9QRF9YWM5XW3ZSU7P9CGWRU8994434'
    '1","browser":"Chrome 12.1"},"id":"EV695BI2930A6XMO32886MPT899443414"}')
OLARK_OFFLINE = (
    'data=%7B%22kind%22%3A%20%22Conversation%22%2C%20%22id%22%3A%20%22EV695BI2930A6XMO32886QPT899443414%22%2C%20%22'
    'items%22%3A%20%5B%7B%22kind%22%3A%20%22OfflineMessage%22%2C%20%22timestamp%22%3A%20%221307116667.1%22%2C%20%22'
    'body%22%3A%20%22Hi%20there.%22%7D%5D%2C%20%22visitor%22%3A%20%7B%22kind%22%3A%20%22Visitor%22%2C%20%22id%22%3A'
    '%20%229QRF9YWM5XW3ZSU7P9CGWRU89944341%22%2C%20%22fullName%22%3A%20%22John%20Doe%22%2C%20%22emailAddress%22%3A%'
    '20%22foo%40example.com%22%2C%20%22phoneNumber%22%3A%20%22%28555%29%20555-5555%22%2C%20%22city%22%3A%20%22Palo%'
    '20Alto%22%2C%20%22region%22%3A%20%22CA%22%2C%20%22country%22%3A%20%22United%20States%22%2C%20%22countryCode%22'
    '%3A%20%22US%22%2C%20%22organization%22%3A%20%22Widgets%20Inc.%22%2C%20%22ip%22%3A%20%22123.4.56.78%22%2C%20%22'
    'browser%22%3A%20%22Chrome%2012.1%22%2C%20%22operatingSystem%22%3A%20%22Windows%22%2C%20%22customFields%22%3A%2'
    '0%7B%22myInternalCustomerId%22%3A%20%2212341234%22%2C%20%22favoriteColor%22%3A%20%22blue%22%7D%20%7D%2C%20%22g'
    'roups%22%3A%20%5B%7B%22name%22%3A%20%22My%20Sales%20Group%22%2C%20%22id%22%3A%20%220123456789abcdef%22%2C%20%2'
    '2kind%22%3A%20%22Group%22%7D%5D%20%7D')
OLARK_OFFLINE_DATA = (
    '{"kind":"Conversation","id":"EV695BI2930A6XMO32886QPT899443414","items":[{"kind":"OfflineMessage","timestamp":'
    '"2011-06-03T15:57:47.100Z","body":"Hi there."}],"visitor":{"kind":"Visitor","id":"9QRF9YWM5XW3ZSU7P9CGWRU89944'
    '341","fullName":"John Doe","emailAddress":"foo@example.com","phoneNumber":"(555) 555-5555","city":"Palo Alto",'
    '"region":"CA","country":"United States","countryCode":"US","organization":"Widgets Inc.","ip":"123.4.56.78","b'
    'rowser":"Chrome 12.1","operatingSystem":"Windows","customFields":{"myInternalCustomerId":"12341234","favoriteC'
    'olor":"blue"}},"groups":[{"name":"My Sales Group","id":"0123456789abcdef","kind":"Group"}]}')
OLARK_NOT_JSON = (
    'data=kind%22%3A%20%22Conversation%22%2C%20%22tags%22%3A%20%5B%22olark%22%2C%20%22customer%22%5D%2C%20%22items%'
    '22%3A%20%5B%7B%22body%22%3A%20%22Hi%20there.%20Need%20any%20help%3F%22%2C%20%22timestamp%22%3A%20%221307116657'
    '.1%22%2C%20%22kind%22%3A%20%22MessageToVisitor%22%2C%20%22nickname%22%3A%20%22John%22%2C%20%22operatorId%22%3A'
    '%20%221234%22%7D%2C%20%7B%22body%22%3A%20%22Yes%2C%20please%20help%20me%20with%20billing.%22%2C%20%22timestamp'
    '%22%3A%20%221307116661.25%22%2C%20%22kind%22%3A%20%22MessageToOperator%22%2C%20%22nickname%22%3A%20%22Bob%22%7'
    'D%5D%2C%20%22operators%22%3A%20%7B%221234%22%3A%20%7B%22username%22%3A%20%22jdoe%22%2C%20%22emailAddress%22%3A'
    '%20%22john%40example.com%22%2C%20%22kind%22%3A%20%22Operator%22%2C%20%22nickname%22%3A%20%22John%22%2C%20%22id'
    '%22%3A%20%221234%22%7D%7D%2C%20%22groups%22%3A%20%5B%7B%22kind%22%3A%20%22Group%22%2C%20%22name%22%3A%20%22My%'
    '20Sales%20Group%22%2C%20%22id%22%3A%20%220123456789abcdef%22%7D%5D%2C%20%22visitor%22%3A%20%7B%22ip%22%3A%20%2'
    '2123.4.56.78%22%2C%20%22city%22%3A%20%22Palo%20Alto%22%2C%20%22kind%22%3A%20%22Visitor%22%2C%20%22conversation'
    'BeginPage%22%3A%20%22http%3A%2F%2Fwww.example.com%2Fpath%22%2C%20%22countryCode%22%3A%20%22US%22%2C%20%22count'
    'ry%22%3A%20%22United%20State%22%2C%20%22region%22%3A%20%22CA%22%2C%20%22chat_feedback%22%3A%20%7B%22overall_ch'
    'at%22%3A%205%2C%20%22responsiveness%22%3A%205%2C%20%22friendliness%22%3A%205%2C%20%22knowledge%22%3A%205%2C%20'
    '%22comments%22%3A%20%22Very%20helpful%2C%20thanks%22%7D%2C%20%22operatingSystem%22%3A%20%22Windows%22%2C%20%22'
    'emailAddress%22%3A%20%22bob%40example.com%22%2C%20%22organization%22%3A%20%22Widgets%20Inc.%22%2C%20%22phoneNu'
    'mber%22%3A%20%22%28555%29%20555-5555%22%2C%20%22fullName%22%3A%20%22Bob%20Doe%22%2C%20%22customFields%22%3A%20'
    '%7B%22favoriteColor%22%3A%20%22blue%22%2C%20%22myInternalCustomerId%22%3A%20%2212341234%22%7D%2C%20%22id%22%3A'
    '%20%229QRF9YWM5XW3ZSU7P9CGWRU89944341%22%2C%20%22browser%22%3A%20%22Chrome%2012.1%22%7D%2C%20%22id%22%3A%20%22'
    'EV695BI2930A6XMO32886MPT899443414%22%7D')


@pytest.mark.parametrize("body, schema, data", [
    (OLARK_TRANSCRIPT, "transcript", OLARK_TRANSCRIPT_DATA),   # e1: visitor_nickname, chat_feedback camelCased
    (OLARK_OFFLINE, "offline_message", OLARK_OFFLINE_DATA),    # e2
])
def test_olark_events_are_camel_cased_with_iso_item_times(enricher, body, schema, data):
    [event] = adapted(OLARK, body, FORM_CT)
    assert event == {"tv": "com.olark-v1", "e": "ue", "p": "srv",
                     "ue_pr": ue_pr(f"iglu:com.olark/{schema}/jsonschema/1-0-0", data)}
    [row] = good(enricher, OLARK, body, FORM_CT)
    assert row["unstruct_event"] == event["ue_pr"]


@pytest.mark.parametrize("body, content_type, message", [
    (None, FORM_CT, input_data("body", None, "empty body: no events to process")),   # e3
    (OLARK_TRANSCRIPT, None,
     input_data("contentType", None, "no content type: expected application/x-www-form-urlencoded")),   # e4
    (OLARK_TRANSCRIPT, JSON_CT, input_data("contentType", None, "expected application/x-www-form-urlencoded")),  # e5
    ("", FORM_CT, input_data("body", None, "empty body: no events to process")),   # e6
    (OLARK_TRANSCRIPT[len("data="):], FORM_CT, input_data("data", None, "missing 'data' field")),   # e7
    (OLARK_NOT_JSON, FORM_CT, {"field": "data", "value": None,
                               "error": "invalid json: expected json value got 'kind\":...' (line 1, column 1)"}),  # e8
    # from the adapter's source: the item timestamps
    ("data=" + quote('{"items":[{"timestamp":"1.2.3"}]}'), FORM_CT,
     input_data("timestamp", "1.2.3", "unexpected timestamp format")),
    ("data=" + quote('{"items":[{"timestamp":"x.5"}]}'), FORM_CT, input_data("timestamp", "x500", "cannot be converted to Double")),
    # a body java.net.URI refuses: the message names the body as its field
    ('data={"a": 1}', FORM_CT, input_data('data={"a": 1}', 'data={"a": 1}', 'could not parse body: Illegal character in '
                                          'query at index 23: http://localhost/?data={"a": 1}')),
])
def test_olark_refusals(enricher, body, content_type, message):
    kind, messages = bad(enricher, OLARK, body, content_type)
    if message.get("error"):   # the spec checks the NotJson message's field and error
        messages = [{**m, "value": None} for m in messages]
    assert (kind, messages) == ("adapter_failures", [message])


# -- Unbounce (UnbounceAdapterSpec.scala) -----------------------------------------------------------

UNBOUNCE = "/com.unbounce/v1"
UNBOUNCE_BODY = (
    'page_url=http%3A%2F%2Funbouncepages.com%2Fwayfaring-147%2F&page_name=Wayfaring&page_id=7648177d-7323-4330-b4f9'
    '-9951a52138b6&variant=a&data.json=%7B%22userfield1%22%3A%5B%22asdfasdf%22%5D%2C%22ip_address%22%3A%5B%2285.73.'
    '39.163%22%5D%2C%22page_uuid%22%3A%5B%227648177d-7323-4330-b4f9-9951a52138b6%22%5D%2C%22variant%22%3A%5B%22a%22'
    '%5D%2C%22time_submitted%22%3A%5B%2211%3A45+AM+UTC%22%5D%2C%22date_submitted%22%3A%5B%222017-11-15%22%5D%2C%22p'
    'age_url%22%3A%5B%22http%3A%2F%2Funbouncepages.com%2Fwayfaring-147%2F%22%5D%2C%22page_name%22%3A%5B%22Wayfaring'
    '%22%5D%7D&data.xml=%3C%3Fxml+version%3D%221.0%22+encoding%3D%22UTF-8%22%3F%3E%3Cform_data%3E%3Cuserfield1%3Eas'
    'dfasdf%3C%2Fuserfield1%3E%3Cip_address%3E85.73.39.163%3C%2Fip_address%3E%3Cpage_uuid%3E7648177d-7323-4330-b4f9'
    '-9951a52138b6%3C%2Fpage_uuid%3E%3Cvariant%3Ea%3C%2Fvariant%3E%3Ctime_submitted%3E11%3A45+AM+UTC%3C%2Ftime_subm'
    'itted%3E%3Cdate_submitted%3E2017-11-15%3C%2Fdate_submitted%3E%3Cpage_url%3Ehttp%3A%2F%2Funbouncepages.com%2Fwa'
    'yfaring-147%2F%3C%2Fpage_url%3E%3Cpage_name%3EWayfaring%3C%2Fpage_name%3E%3C%2Fform_data%3E')
UNBOUNCE_DATA = (
    '{"data.json":{"userfield1":["asdfasdf"],"ipAddress":["85.73.39.163"],"pageUuid":["7648177d-7323-4330-b4f9-9951'
    'a52138b6"],"variant":["a"],"timeSubmitted":["11:45 AM UTC"],"dateSubmitted":["2017-11-15"],"pageUrl":["http://'
    'unbouncepages.com/wayfaring-147/"],"pageName":["Wayfaring"]},"variant":"a","pageId":"7648177d-7323-4330-b4f9-9'
    '951a52138b6","pageName":"Wayfaring","pageUrl":"http://unbouncepages.com/wayfaring-147/"}')
UNBOUNCE_FIELDS = {"page_id": "f7afd389-65a3-45fa-8bad-b7a42236044c", "page_name": "Test-Webhook", "variant": "a",
                   "page_url": "http%3A%2F%2Funbouncepages.com%2Ftest-webhook-1",
                   "data.json": "%7B%22email%22%3A%5B%22test%40snowplowanalytics.com%22%5D%2C%22ip_address%22%3A%5B%22"
                                "200.121.220.179%22%5D%2C%22time_submitted%22%3A%5B%2204%3A17%20PM%20UTC%22%5D%7D"}


def unbounce_body(**fields) -> str:
    """The spec's e3 body with fields replaced (None: left out)."""
    merged = {**UNBOUNCE_FIELDS, **fields}
    return "&".join(f"{k}={v}" for k, v in merged.items() if v is not None)


def test_unbounce_form_post(enricher):
    # e1: data.json first, the other fields after in the Scala Map's order, every key camelCased; data.xml dropped
    [event] = adapted(UNBOUNCE, UNBOUNCE_BODY, FORM_CT, "schema=iglu%3Acom.unbounce%2Ftest%2Fjsonschema%2F1-0-0")
    assert event == {"tv": "com.unbounce-v1", "e": "ue", "p": "srv",
                     "ue_pr": ue_pr("iglu:com.unbounce/form_post/jsonschema/1-0-0", UNBOUNCE_DATA)}
    [row] = good(enricher, UNBOUNCE, UNBOUNCE_BODY, FORM_CT)
    assert row["unstruct_event"] == event["ue_pr"]


@pytest.mark.parametrize("body, content_type, message", [
    (None, FORM_CT, input_data("body", None, "empty body: no events to process")),   # e2
    (unbounce_body(), None,
     input_data("contentType", None, "no content type: expected application/x-www-form-urlencoded")),   # e3
    (unbounce_body(), JSON_CT, input_data("contentType", JSON_CT, "expected application/x-www-form-urlencoded")),  # e4
    ("", FORM_CT, input_data("body", None, "empty body: no events to process")),   # e5
    (unbounce_body(**{"data.json": None}), FORM_CT, input_data("data.json", None, "missing 'data.json' field in body")),
    (unbounce_body(**{"data.json": ""}), FORM_CT, input_data("data.json", None, "empty 'data.json' field in body")),
    (unbounce_body(**{"data.json": "%7B" + UNBOUNCE_FIELDS["data.json"]}), FORM_CT, {
        "field": "data.json",   # e8
        "value": '{{"email":["test@snowplowanalytics.com"],"ip_address":["200.121.220.179"],"time_submitted":["04:17 PM UTC"]}',
        "error": """invalid json: expected " got '{"emai...' (line 1, column 2)"""}),
    (unbounce_body(page_id=None), FORM_CT, input_data("page_id", None, "missing 'page_id' field in body")),   # e9
    (unbounce_body(page_name=None), FORM_CT, input_data("page_name", None, "missing 'page_name' field in body")),  # e10
    (unbounce_body(variant=None), FORM_CT, input_data("variant", None, "missing 'variant' field in body")),   # e11
    (unbounce_body(page_url=None), FORM_CT, input_data("page_url", None, "missing 'page_url' field in body")),  # e12
    # from the adapter's source: a field without a value is no field; the first missing one is named
    (unbounce_body(page_name=None, variant=None, page_url=None), FORM_CT,
     input_data("page_name", None, "missing 'page_name' field in body")),
    ("page_name&" + unbounce_body(page_name=None), FORM_CT, input_data("page_name", None, "missing 'page_name' field in body")),
])
def test_unbounce_refusals(enricher, body, content_type, message):
    assert bad(enricher, UNBOUNCE, body, content_type) == ("adapter_failures", [message])


# -- Urban Airship Connect (UrbanAirshipAdapterSpec.scala) --------------------------------------------

URBAN_AIRSHIP = "/com.urbanairship.connect/v1"
UA_CLOSE = ('{"id":"e3314efb-9058-dbaf-c4bb-b754fca73613","offset":"1","occurred":"2015-11-13T16:31:52.393Z",'
            '"processed":"2015-11-13T16:31:52.393Z","device":{"amazon_channel":"cd97c95c-ed77-f15a-3a67-5c2e26799d35"},'
            '"body":{"session_id":"27c75cab-a0b8-9da2-bc07-6d7253e0e13f"},"type":"CLOSE"}')


def test_urban_airship_event_without_a_content_type(enricher):
    [event] = adapted(URBAN_AIRSHIP, UA_CLOSE, None)
    assert event == {"tv": "com.urbanairship.connect-v1", "e": "ue", "p": "srv",
                     "ue_pr": ue_pr("iglu:com.urbanairship.connect/CLOSE/jsonschema/1-0-0", UA_CLOSE),
                     "ttm": "1447432312393", "eid": "e3314efb-9058-dbaf-c4bb-b754fca73613"}
    [row] = good(enricher, URBAN_AIRSHIP, UA_CLOSE, None)
    # the collector timestamp is the event's "processed" time
    assert (row["collector_tstamp"], row["true_tstamp"], row["event_id"]) == (
        "2015-11-13 16:31:52.393", "2015-11-13 16:31:52.393", "e3314efb-9058-dbaf-c4bb-b754fca73613")


@pytest.mark.parametrize("content_type", ["a/type", JSON_CT, "application/json; charset=utf-8"])
def test_urban_airship_refuses_any_content_type(enricher, content_type):
    # "reject content types"
    assert bad(enricher, URBAN_AIRSHIP, UA_CLOSE, content_type) == (
        "adapter_failures", [input_data("contentType", content_type, "expected no content type")])


def test_urban_airship_refusals(enricher):
    # "fail on unknown event types", "reject unparsable json", "reject badly formatted json"; the messages from
    # the adapter's source: every missing field is reported, then the type
    kind, [message] = bad(enricher, URBAN_AIRSHIP, UA_CLOSE.replace('"CLOSE"', '"NOT_AN_EVENT_TYPE"'), None)
    assert (kind, message["actual"], message["expectation"]) == (
        "adapter_failures", "NOT_AN_EVENT_TYPE", "no schema associated with the provided type parameter")
    assert bad(enricher, URBAN_AIRSHIP, "{ ", None) == (
        "adapter_failures", [{"field": "body", "value": "{ ", "error": "invalid json: exhausted input"}])
    kind, messages = bad(enricher, URBAN_AIRSHIP, '{ "value": "str" }', None)
    assert kind == "adapter_failures"
    assert messages[:3] == [input_data(name, None, f"could not extract '{name}': Attempt to decode value on failed "
                                                   f"cursor: DownField({name})") for name in ("occurred", "id", "processed")]
    assert (messages[3]["actual"], messages[3]["expectation"]) == (
        None, "cannot determine event type: type parameter not provided")
    assert bad(enricher, URBAN_AIRSHIP, None, None) == (
        "adapter_failures", [input_data("body", None, "empty body: no events to process")])


# -- Mandrill (MandrillAdapterSpec.scala; its long payloads in data/mandrill_enrich_390.json) ----------

MANDRILL = "/com.mandrill/v1"
MANDRILL_390 = json.loads((Path(__file__).parent / "data" / "mandrill_enrich_390.json").read_text())


def test_mandrill_nine_events(enricher):
    # e4: event dropped, every ts as ISO 8601, keys in the order of the Scala Map each object is rebuilt into
    events = adapted(MANDRILL, MANDRILL_390["e4_body"], FORM_CT)
    assert events == [{"tv": "com.mandrill-v1", "e": "ue", "p": "srv", "ue_pr": ue} for ue in MANDRILL_390["e4_ue_pr"]]
    rows = good(enricher, MANDRILL, MANDRILL_390["e4_body"], FORM_CT)
    assert [row["unstruct_event"] for row in rows] == MANDRILL_390["e4_ue_pr"]


def test_mandrill_bad_event_types_are_all_reported(enricher):
    # e5
    kind, messages = bad(enricher, MANDRILL, MANDRILL_390["e5_body"], FORM_CT)
    assert kind == "adapter_failures"
    assert [(m["actual"], m["expectation"]) for m in messages] == [
        ("sending", "no schema associated with the provided type parameter at index 0"),
        ("deferred", "no schema associated with the provided type parameter at index 1"),
        (None, "cannot determine event type: type parameter not provided at index 2")]


@pytest.mark.parametrize("body, content_type, message", [
    # e2
    ("mandrill_events=", FORM_CT, input_data("body", "mandrill_events=", "`mandrill_events` field is empty")),
    ("mandrill_events=some&mandrill_extra=some", FORM_CT,
     input_data("body", "mandrill_events=some&mandrill_extra=some", "body should have size 1: actual size 2")),
    ("events_mandrill=something", FORM_CT,
     input_data("body", "events_mandrill=something", "no `mandrill_events` parameter provided")),
    # e3 (sic: "mandril_events")
    ("mandrill_events=%5B%7B%22event%22%3A%22click%7D%5D", FORM_CT,
     {"field": "mandril_events", "value": '[{"event":"click}]', "error": "invalid json: exhausted input"}),
    (None, FORM_CT, input_data("body", None, "empty body: no events to process")),   # e6
    ("mandrill_events=%5B%7B%22event%22%3A%20%22subscribe%22%7D%5D", None,
     input_data("contentType", None, "no content type: expected application/x-www-form-urlencoded")),   # e7
    ("mandrill_events=%5B%7B%22event%22%3A%20%22subscribe%22%7D%5D", "application/x-www-form-urlencoded; charset=utf-8",
     input_data("contentType", "application/x-www-form-urlencoded; charset=utf-8",
                "expected application/x-www-form-urlencoded")),   # e8
    # from the adapter's source
    ("", FORM_CT, input_data("body", "", "body should have size 1: actual size 0")),
    ("mandrill_events=%7B%7D", FORM_CT, input_data("mandrill_events", "{}", "not a json array")),
    ("mandrill_events=%5B%5D", FORM_CT, input_data("", None, "empty list of events")),
])
def test_mandrill_refusals(enricher, body, content_type, message):
    assert bad(enricher, MANDRILL, body, content_type) == ("adapter_failures", [message])


# -- Google Analytics Measurement Protocol (GoogleAnalyticsAdapterSpec.scala) -----------------------

GA = "/com.google.analytics/v1"
GA_VENDOR = "iglu:com.google.analytics.measurement-protocol"
GA_CO = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"


def ga_entity(name: str, data: str) -> str:
    return f'{{"schema":"{GA_VENDOR}/{name}/jsonschema/1-0-0","data":{data}}}'


def ga_event(hit: str, event: str, data: str, *contexts: tuple[str, str], **direct: str) -> dict:
    """The parameters 3.9.0 makes of one hit; the ``hit`` context first, others given as ``(name, data)``."""
    co = [ga_entity(name, data) for name, data in contexts]
    return {"e": "ue", "p": "srv", "tv": "com.google.analytics.measurement-protocol-v1",
            "ue_pr": f'{{"schema":"{UE}","data":{ga_entity(event, data)}}}',
            "co": f'{{"schema":"{GA_CO}","data":[{",".join(co)}]}}', **direct}


def ga_hit(hit_type: str) -> tuple[str, str]:
    return "hit", f'{{"type":"{hit_type}"}}'


@pytest.mark.parametrize("body, expected", [
    ("t=pageview&dh=host&dp=path",   # e4
     ga_event("pageview", "page_view", '{"documentHostName":"host","documentPath":"path"}', ga_hit("pageview"))),
    ("t=pageview&dh=host&cid=id&v=version",   # e5
     ga_event("pageview", "page_view", '{"documentHostName":"host"}', ga_hit("pageview"),
              ("user", '{"clientId":"id"}'), ("general", '{"protocolVersion":"version"}'))),
    ("t=pageview&dp=path&uip=ip",   # e6: uip is a direct mapping and the session context
     ga_event("pageview", "page_view", '{"documentPath":"path"}', ga_hit("pageview"),
              ("session", '{"ipOverride":"ip"}'), ip="ip")),
    ("t=item&in=name&ip=12.228&iq=12&aip=0",   # e7: the price rounded to two places
     ga_event("item", "item", '{"price":12.23,"name":"name","quantity":12}',
              ("general", '{"anonymizeIp":false}'), ga_hit("item"), ti_pr="12.228", ti_qu="12", ti_nm="name")),
    ("t=exception&exd=desc&exf=1&dh=host",   # e8: the page view as a context
     ga_event("exception", "exception", '{"description":"desc","isFatal":true}', ga_hit("exception"),
              ("page_view", '{"documentHostName":"host"}'))),
    ("t=transaction&ti=tr&cu=EUR&pr12id=ident&pr12cd42=val",   # e9
     ga_event("transaction", "transaction", '{"currencyCode":"EUR","id":"tr"}', ga_hit("transaction"),
              ("product_custom_dimension", '{"dimensionIndex":42,"productIndex":12,"value":"val"}'),
              ("product", '{"currencyCode":"EUR","sku":"ident","index":12}'), tr_cu="EUR", tr_id="tr")),
    ("t=pageview&dp=path&il12pi42id=s&il12pi42cd36=dim",   # e10
     ga_event("pageview", "page_view", '{"documentPath":"path"}', ga_hit("pageview"),
              ("product_impression_custom_dimension",
               '{"customDimensionIndex":36,"productIndex":42,"value":"dim","listIndex":12}'),
              ("product_impression", '{"productIndex":42,"sku":"s","listIndex":12}'))),
    ("t=screenview&cd=name&cd12=dim",   # e11
     ga_event("screenview", "screen_view", '{"screenName":"name"}', ga_hit("screenview"),
              ("custom_dimension", '{"value":"dim","index":12}'))),
    ("t=pageview&dp=path&pr1id=s1&pr2id=s2&pr1cd1=v1&pr1cd2=v2",   # e12
     ga_event("pageview", "page_view", '{"documentPath":"path"}', ga_hit("pageview"),
              ("product_custom_dimension", '{"dimensionIndex":1,"productIndex":1,"value":"v1"}'),
              ("product_custom_dimension", '{"dimensionIndex":2,"productIndex":1,"value":"v2"}'),
              ("product", '{"sku":"s1","index":1}'), ("product", '{"sku":"s2","index":2}'))),
    ("t=pageview&dp=path&promoa=action&promo12id=id",   # e13
     ga_event("pageview", "page_view", '{"documentPath":"path"}', ga_hit("pageview"),
              ("promotion_action", '{"promotionAction":"action"}'), ("promotion", '{"id":"id","index":12}'))),
    ("t=pageview&dh=host&dp=path&cu=EUR&il1pi1pr=1&il1pi1nm=name1&il1pi1ps=1&il1pi1ca=cat1&il1pi1id=id1&il1pi1br=brand1"
     "&il1pi2pr=2&il1pi2nm=name2&il1pi2ps=2&il1pi2ca=cat2&il1pi2id=id2&il1pi2br=brand2&il2pi1pr=21&il2pi1nm=name21"
     "&il2pi1ps=21&il2pi1ca=cat21&il2pi1id=id21&il2pi1br=brand21",   # e15
     ga_event("pageview", "page_view", '{"documentHostName":"host","documentPath":"path"}', ga_hit("pageview"), *[
         ("product_impression", f'{{"productIndex":{p},"name":"name{n}","sku":"id{n}","price":{n}.0,"brand":"brand{n}",'
                                f'"currencyCode":"EUR","category":"cat{n}","position":{n},"listIndex":{lst}}}')
         for p, n, lst in ((1, 1, 1), (2, 2, 1), (1, 21, 2))], ti_cu="EUR")),
])
def test_google_analytics_hits(enricher, body, expected):
    [event] = adapted(GA, body)
    assert event == expected
    if "cid=" in body or "aip=" in body or "promoa=" in body:
        # general needs protocolVersion and trackingId, promotionAction is view or promo_click (Iglu Central's
        # schemas, which 3.9.0 validates against too): the spec's events are refused after the adapter
        assert bad(enricher, GA, body)[0] == "schema_violations"
        return
    [row] = good(enricher, GA, body)
    assert row["unstruct_event"] == event["ue_pr"]
    assert json.loads(row["contexts"])["data"] == json.loads(event["co"])["data"]


def test_google_analytics_one_event_per_line(enricher):
    # e14
    body = "t=pageview&dh=host&dp=path\nt=pageview&dh=host&dp=path"
    event = ga_event("pageview", "page_view", '{"documentHostName":"host","documentPath":"path"}', ga_hit("pageview"))
    assert adapted(GA, body) == [event, event]
    assert len(good(enricher, GA, body)) == 2


GA_HIT_TYPES = {t: f"{GA_VENDOR}/{n}/jsonschema/1-0-0" for t, n in (
    ("pageview", "page_view"), ("screenview", "screen_view"), ("event", "event"), ("transaction", "transaction"),
    ("item", "item"), ("social", "social"), ("exception", "exception"), ("timing", "timing"))}
GA_COMPOSITE_REGEX = r"(pr|promo|il|cd|cm|cg)(\d+)([a-zA-Z]*)(\d*)([a-zA-Z]*)(\d*)$"


@pytest.mark.parametrize("body, messages", [
    (None, [input_data("body", None, "empty body")]),   # e1
    ("dl=docloc", [input_data("body", "dl=docloc", "no t parameter provided: cannot determine hit type")]),  # e2
    ("t=unknown&dl=docloc", [input_data("t", "unknown", "no matching hit type"),   # e3
                             schema_mapping("unknown", GA_HIT_TYPES, "no schema associated with the provided type parameter")]),
    # from the adapter's source: the translations' messages name the schema field; a name with a digit must be
    # an indexed family's (e20's regex); a body URI refuses
    ("t=event&ev=lots", [input_data("value", "lots", "cannot be converted to java.lang.Integer")]),
    ("t=item&ip=1,5", [input_data("price", "1,5", "cannot be converted to Double")]),
    ("t=pageview&aip=yes", [input_data("anonymizeIp", "yes", "cannot be converted to boolean, only 1 or 0 are supported")]),
    ("t=pageview&x1=a", [input_data("x1", None, f"composite field name has to conform to regex {GA_COMPOSITE_REGEX}")]),
    ("t=pageview&dp=a b", [input_data("body", "t=pageview&dp=a b",
                                      "Illegal character in query at index 33: http://localhost/?t=pageview&dp=a b")]),
])
def test_google_analytics_refusals(enricher, body, messages):
    kind, got = bad(enricher, GA, body)
    assert kind == "adapter_failures"
    assert got == messages
    if len(messages) > 1:   # the known hit types in the order of 3.9.0's map
        assert list(got[1]["expectedMapping"]) == list(adapt(decode_collector_payload(raw(GA, None, body))).failure.messages[1]["expectedMapping"])


def test_google_analytics_expected_mapping_order():
    # the order in which the SchemaMapping message lists the hit types: the Scala HashMap's
    from processor.webhooks.google_analytics import EXPECTED_MAPPING
    assert list(EXPECTED_MAPPING) == ["screenview", "event", "exception", "social", "timing", "transaction",
                                      "pageview", "item"]


# -- CloudFront access logs (CloudfrontAccessLogAdapterSpec.scala) ------------------------------------

CLOUDFRONT = "/com.amazon.aws.cloudfront/wd_access_log"
CF_URL = "http://snowplowanalytics.com/analytics/index.html"
CF_UA_TWICE = ("Mozilla/5.0%2520(Macintosh;%2520Intel%2520Mac%2520OS%2520X%252010_9_2)%2520AppleWebKit/537.36%2520"
               "(KHTML,%2520like%2520Gecko)%2520Chrome/34.0.1847.131%2520Safari/537.36")
CF_UA_ONCE = ("Mozilla/5.0%20(Macintosh;%20Intel%20Mac%20OS%20X%2010_9_2)%20AppleWebKit/537.36%20(KHTML,%20like%20Gecko)"
              "%20Chrome/34.0.1847.131%20Safari/537.36")
CF_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/34.0.1847.131 "
         "Safari/537.36")
CF_FIELDS = ["2013-10-07", "23:35:30", "c", "100", "255.255.255.255", "f", "g", "h", "i", CF_URL, CF_UA_TWICE,
             "a=b%2520c", "m", "n", "o", "p", "q", "90", "0.001", "r", "s", "t", "u", "HTTP/2.0", "Processed", "12"]
CF_DATA = ['"dateTime":"2013-10-07T23:35:30Z"', '"xEdgeLocation":"c"', '"scBytes":100', '"cIp":"255.255.255.255"',
           '"csMethod":"f"', '"csHost":"g"', '"csUriStem":"h"', '"scStatus":"i"', f'"csReferer":"{CF_URL}"',
           f'"csUserAgent":"{CF_UA}"', '"csUriQuery":"a=b%20c"', '"csCookie":"m"', '"xEdgeResultType":"n"',
           '"xEdgeRequestId":"o"', '"xHostHeader":"p"', '"csProtocol":"q"', '"csBytes":90', '"timeTaken":0.001',
           '"xForwardedFor":"r"', '"sslProtocol":"s"', '"sslCipher":"t"', '"xEdgeResponseResultType":"u"',
           '"csProtocolVersion":"HTTP/2.0"', '"fleStatus":"Processed"', '"fleEncryptedFields":"12"']


@pytest.mark.parametrize("count, version", [(12, "1-0-0"), (15, "1-0-1"), (18, "1-0-2"), (19, "1-0-3"),   # e1-e4
                                            (23, "1-0-4"), (24, "1-0-5"), (26, "1-0-6")])            # e5-e7
def test_cloudfront_access_log_lines(enricher, count, version):
    body = "\t".join(CF_FIELDS[:count])
    [event] = adapted(CLOUDFRONT, body, None, "p=web&aid=ignored")
    data = "{" + ",".join(CF_DATA[:count - 1]) + "}"
    assert event == {"tv": "com.amazon.aws.cloudfront/wd_access_log", "e": "ue", "p": "srv", "url": CF_URL,
                     "ue_pr": f'{{"schema":"{UE}","data":{{"schema":"iglu:com.amazon.aws.cloudfront/wd_access_log/'
                              f'jsonschema/{version}","data":{data}}}}}'}
    if count >= 18:
        # csProtocol "q" is not http or https in Iglu Central's 1-0-2 and later (the schemas 3.9.0 validates against)
        kind, [message] = bad(enricher, CLOUDFRONT, body, None, "p=web&aid=ignored")
        assert (kind, message["error"]["dataReports"][0]["path"]) == ("schema_violations", "$.csProtocol")
        body = body.replace("\tq\t90", "\thttps\t90")
    [row] = good(enricher, CLOUDFRONT, body, None, "p=web&aid=ignored")
    # the request context is the line's: its time, client address and (once decoded) user agent
    assert (row["collector_tstamp"], row["user_ipaddress"], row["useragent"], row["network_userid"]) == (
        "2013-10-07 23:35:30.000", "255.255.255.255", CF_UA_ONCE, "")
    assert (row["unstruct_event"], row["page_url"], row["app_id"]) == (
        event["ue_pr"].replace('"q"', '"https"'), CF_URL, "")


@pytest.mark.parametrize("body, messages", [
    ("2013-10-07\t23:35:30\tc\t\t",   # e8
     [input_data("body", "2013-10-07\t23:35:30\tc\t\t", "access log contained 5 fields, expected 12, 15, 18, 19, 23, 24 or 26")]),
    (f"a\tb\tc\td\te\tf\tg\th\ti\t{CF_URL}\tk\ta=b%2520c",   # e9
     [input_data("dateTime", "a b", 'could not convert access log timestamp: Invalid format: "aTb+00:00"'),
      input_data("scBytes", "d", "cannot be converted to Int")]),
    (None, [input_data("body", None, "empty body")]),
    # from the adapter's source: field messages last field first; a "-" byte count is not a number
    ("\t".join(CF_FIELDS[:17] + ["-"]), [input_data("csBytes", "-", "cannot be converted to Int")]),
    ("\t".join(CF_FIELDS[:2] + ["c", "x", "ip", "f", "g", "h", "i", "%zz", "ua%", "q", "m", "n", "o", "p", "q", "y",
                                "z"]),
     [input_data("timeTaken", "z", "cannot be converted to Double"), input_data("csBytes", "y", "cannot be converted to Int"),
      input_data("csUserAgent", "ua%", "exception URL-decoding (encoding UTF-8): URLDecoder: Incomplete trailing escape (%) pattern"),
      input_data("csReferer", "%zz", 'exception URL-decoding (encoding UTF-8): URLDecoder: Illegal hex characters in escape (%) '
                                     'pattern - Error at index 0 in: "zz"'),
      input_data("scBytes", "x", "cannot be converted to Int")]),
    ("2013-13-07\t23:35:30" + "\t-" * 10, [input_data("dateTime", "2013-13-07 23:35:30", 'could not convert access log '
                                          'timestamp: Cannot parse "2013-13-07T23:35:30+00:00": Value 13 for monthOfYear '
                                          'must be in the range [1,12]'), input_data("scBytes", "-", "cannot be converted to Int")]),
])
def test_cloudfront_refusals(enricher, body, messages):
    assert bad(enricher, CLOUDFRONT, body) == ("adapter_failures", messages)


# -- StatusGator (StatusGatorAdapterSpec.scala) ------------------------------------------------------

STATUSGATOR = "/com.statusgator/v1"
STATUSGATOR_BODY = (
    "service_name=CloudFlare&favicon_url=https%3A%2F%2Fdwxjd9cd6rwno.cloudfront.net%2Ffavicons%2Fcloudflare.ico"
    "&status_page_url=https%3A%2F%2Fwww.cloudflarestatus.com%2F&home_page_url=http%3A%2F%2Fwww.cloudflare.com"
    "&current_status=up&last_status=warn&occurred_at=2016-05-19T09%3A26%3A31%2B00%3A00")


def test_statusgator_status_change(enricher):
    # e1: every field camelCased, in the order of the Scala Map the form is read into
    [event] = adapted(STATUSGATOR, STATUSGATOR_BODY, FORM_CT)
    assert event == {"tv": "com.statusgator-v1", "e": "ue", "p": "srv", "ue_pr": ue_pr(
        "iglu:com.statusgator/status_change/jsonschema/1-0-0",
        '{"lastStatus":"warn","statusPageUrl":"https://www.cloudflarestatus.com/","serviceName":"CloudFlare",'
        '"faviconUrl":"https://dwxjd9cd6rwno.cloudfront.net/favicons/cloudflare.ico",'
        '"occurredAt":"2016-05-19T09:26:31+00:00","homePageUrl":"http://www.cloudflare.com","currentStatus":"up"}')}
    [row] = good(enricher, STATUSGATOR, STATUSGATOR_BODY, FORM_CT)
    assert row["unstruct_event"] == event["ue_pr"]


@pytest.mark.parametrize("body, content_type, message", [
    (None, FORM_CT, input_data("body", None, "empty body: no events to process")),   # e2
    (STATUSGATOR_BODY, None,
     input_data("contentType", None, "no content type: expected application/x-www-form-urlencoded")),   # e3
    (STATUSGATOR_BODY, JSON_CT, input_data("contentType", JSON_CT, "expected application/x-www-form-urlencoded")),  # e4
    ("", FORM_CT, input_data("body", None, "empty body: no events to process")),   # e5
    # e6 with a shorter body (the spec's message is longer than the 256 characters of the bad row's schema)
    ("{service_name=CloudFlare", FORM_CT, input_data(
        "body", "{service_name=CloudFlare",
        "could not parse body: Illegal character in query at index 18: http://localhost/?{service_name=CloudFlare")),
])
def test_statusgator_refusals(enricher, body, content_type, message):
    assert bad(enricher, STATUSGATOR, body, content_type) == ("adapter_failures", [message])


# -- Mailchimp (MailchimpAdapterSpec.scala) ------------------------------------------------------------

MAILCHIMP = "/com.mailchimp/v1"
MAILCHIMP_SCHEMAS = {"subscribe": "iglu:com.mailchimp/subscribe/jsonschema/1-0-0",
                     "unsubscribe": "iglu:com.mailchimp/unsubscribe/jsonschema/1-0-0",
                     "campaign": "iglu:com.mailchimp/campaign_sending_status/jsonschema/1-0-0",
                     "cleaned": "iglu:com.mailchimp/cleaned_email/jsonschema/1-0-0",
                     "upemail": "iglu:com.mailchimp/email_address_change/jsonschema/1-0-0",
                     "profile": "iglu:com.mailchimp/profile_update/jsonschema/1-0-0"}


@pytest.mark.parametrize("body, querystring, schema, data, extra", [
    ("type=subscribe&data%5Bmerges%5D%5BLNAME%5D=Beemster", None, "subscribe",   # e6
     '{"data":{"merges":{"LNAME":"Beemster"}},"type":"subscribe"}', {}),
    ("type=subscribe&data%5Bmerges%5D%5BFNAME%5D=Agent&data%5Bmerges%5D%5BLNAME%5D=Smith", None, "subscribe",   # e7
     '{"data":{"merges":{"LNAME":"Smith","FNAME":"Agent"}},"type":"subscribe"}', {}),
    *[(f"type={t}", None, t, f'{{"type":"{t}"}}', {}) for t in MAILCHIMP_SCHEMAS],   # e8
    ("type=unsubscribe&fired_at=2014-10-22+13%3A10%3A40&data%5Baction%5D=unsub&data%5Breason%5D=manual&data%5Bid%5D"
     "=94826aa750&data%5Bemail%5D=josh%40snowplowanalytics.com&data%5Bemail_type%5D=html&data%5Bip_opt%5D=82.225.169"
     ".220&data%5Bweb_id%5D=203740265&data%5Bmerges%5D%5BEMAIL%5D=josh%40snowplowanalytics.com&data%5Bmerges%5D%5BFN"
     "AME%5D=Joshua&data%5Bmerges%5D%5BLNAME%5D=Beemster&data%5Blist_id%5D=f1243a3b12", "nuid=123", "unsubscribe",  # e10
     '{"data":{"merges":{"EMAIL":"josh@snowplowanalytics.com","FNAME":"Joshua","LNAME":"Beemster"},"web_id":"203740265",'
     '"action":"unsub","id":"94826aa750","reason":"manual","email_type":"html","list_id":"f1243a3b12",'
     '"email":"josh@snowplowanalytics.com","ip_opt":"82.225.169.220"},"type":"unsubscribe",'
     '"fired_at":"2014-10-22T13:10:40.000Z"}', {"nuid": "123"}),
])
def test_mailchimp_events(enricher, body, querystring, schema, data, extra):
    [event] = adapted(MAILCHIMP, body, FORM_CT, querystring)
    assert event == {"tv": "com.mailchimp-v1", "e": "ue", "p": "srv", "ue_pr": ue_pr(MAILCHIMP_SCHEMAS[schema], data),
                     **extra}


def test_mailchimp_event_through_the_stage(enricher):
    body = "type=subscribe&fired_at=2014-10-22+13%3A10%3A40&data%5Bemail%5D=josh%40snowplowanalytics.com"
    [row] = good(enricher, MAILCHIMP, body, FORM_CT)
    assert (row["event_name"], row["v_tracker"]) == ("subscribe", "com.mailchimp-v1")


@pytest.mark.parametrize("body, content_type, message", [
    ("type=bad", FORM_CT, schema_mapping("bad", MAILCHIMP_SCHEMAS, "no schema associated with the provided type parameter")),  # e9
    ("type=", FORM_CT, schema_mapping("", MAILCHIMP_SCHEMAS, "cannot determine event type: type parameter empty")),  # e9
    (None, FORM_CT, input_data("body", None, "empty body: no events to process")),   # e11
    ("stub", None, input_data("contentType", None, "no content type: expected application/x-www-form-urlencoded")),  # e12
    ("stub", JSON_CT, input_data("contentType", JSON_CT, "expected application/x-www-form-urlencoded")),   # e13
    ("fired_at=2014-10-22+13%3A10%3A40", FORM_CT, input_data(   # e14
        "body", "fired_at=2014-10-22+13%3A10%3A40", "no `type` parameter provided: cannot determine event type")),
    # from the adapter's source: an empty body is read (no type); a body URI refuses, with its message
    ("", FORM_CT, input_data("body", "", "no `type` parameter provided: cannot determine event type")),
    ("type=a b", FORM_CT, input_data("body", "type=a b", "Illegal character in query at index 24: http://localhost/?type=a b")),
])
def test_mailchimp_refusals(enricher, body, content_type, message):
    kind, messages = bad(enricher, MAILCHIMP, body, content_type)
    assert (kind, messages) == ("adapter_failures", [message])
    if "expectedMapping" in message:   # the Scala Map's order
        assert list(messages[0]["expectedMapping"]) == ["campaign", "subscribe", "upemail", "profile", "cleaned",
                                                        "unsubscribe"]


# -- SendGrid (SendgridAdapterSpec.scala) --------------------------------------------------------------

SENDGRID = "/com.sendgrid/v3"
SENDGRID_PROCESSED = {"email": "example@test.com", "timestamp": 1446549615,
                      "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": "processed", "category": "cat facts",
                      "sg_event_id": "sZROwMGMagFgnOEmSdvhig==",
                      "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                      "marketing_campaign_id": 12345, "marketing_campaign_name": "campaign name",
                      "marketing_campaign_version": "B", "marketing_campaign_split_id": 13471}
SENDGRID_IDS = {"processed": "sZROwMGMagFgnOEmSdvhig==", "deferred": "jWmZXTZbtHTV2-S47asrww==",
                "delivered": "cikAODhD-ffTphZ7xixsRw==", "open": "VGRrZCh-qMkOaAmuxcFujA==",
                "click": "QjGWYpcksoD31aVQAONfAg==", "bounce": "PQmsSRnaTMVde4mu4TUgTQ==",
                "dropped": "BP0-vnv2BjDPzwaldo-XVg==", "spamreport": "ApWZolLiPe04wm5jAhFifA==",
                "unsubscribe": "HoBsy5C1Tcoc1dJNsy5SfA==", "group_unsubscribe": "hew55AFBIgLbd33pcviQTQ==",
                "group_resubscribe": "TDlqEy7cUfKLVMY3EAVCag=="}


def test_sendgrid_processed_event(enricher):
    # "return correct json for sample event, including stripping out event keypair and fixing timestamp"
    body = json.dumps([SENDGRID_PROCESSED])
    [event] = adapted(SENDGRID, body, JSON_CT)
    assert event == {"tv": "com.sendgrid-v3", "e": "ue", "p": "srv", "ue_pr": ue_pr(
        "iglu:com.sendgrid/processed/jsonschema/3-0-0",
        '{"timestamp":"2015-11-03T11:20:15.000Z","email":"example@test.com","marketing_campaign_name":"campaign name",'
        '"sg_event_id":"sZROwMGMagFgnOEmSdvhig==","smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",'
        '"marketing_campaign_version":"B","marketing_campaign_id":12345,"marketing_campaign_split_id":13471,'
        '"category":"cat facts","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"}')}
    [row] = good(enricher, SENDGRID, body, JSON_CT)
    assert row["unstruct_event"] == event["ue_pr"]


def test_sendgrid_batch_and_duplicates():
    # "return the correct number of events" (eleven, one per type, with a charset too); "filter events if they are
    # exact duplicates"
    items = [{**SENDGRID_PROCESSED, "event": t, "sg_event_id": i} for t, i in SENDGRID_IDS.items()]
    events = adapted(SENDGRID, json.dumps(items), "application/json; charset=utf-8")
    # in the order of the Scala Map keyed by Some(sg_event_id) (checked against Scala 2.12.15's HashMap)
    assert [json.loads(e["ue_pr"])["data"]["schema"].split("/")[1] for e in events] == [
        "open", "unsubscribe", "group_resubscribe", "spamreport", "click", "processed", "bounce", "deferred",
        "dropped", "delivered", "group_unsubscribe"]
    assert len(adapted(SENDGRID, json.dumps([SENDGRID_PROCESSED, SENDGRID_PROCESSED]), JSON_CT)) == 1


SENDGRID_SCHEMAS = {t: f"iglu:com.sendgrid/{t}/jsonschema/3-0-0" for t in (
    "processed", "dropped", "delivered", "deferred", "bounce", "open", "click", "spamreport", "unsubscribe",
    "group_unsubscribe", "group_resubscribe")}


@pytest.mark.parametrize("body, content_type, message", [
    (None, JSON_CT, input_data("body", None, "empty body: no events to process")),   # reject empty bodies
    ("[]", None, input_data("contentType", None, "no content type: expected application/json")),   # empty content type
    ("[]", "invalidtype/invalid", input_data("contentType", "invalidtype/invalid", "expected application/json")),
    ("[ ", JSON_CT, {"field": "body", "value": "[ ", "error": "invalid json: exhausted input"}),   # unparsable
    ("[ ]", JSON_CT, input_data("", None, "empty list of events")),   # valid json in incorrect format
    ('{"event": "open"}', JSON_CT, input_data("body", '{"event": "open"}', "body is not a json array")),
    (json.dumps([{**SENDGRID_PROCESSED, "event": "moon landing"}]), JSON_CT,   # unsupported event types
     schema_mapping("moon landing", SENDGRID_SCHEMAS, "no schema associated with the provided type parameter at index 0")),
    # "some valid, some invalid": the two share an sg_event_id, so the second (no event) replaces the first
    (json.dumps([SENDGRID_PROCESSED, {k: v for k, v in SENDGRID_PROCESSED.items() if k != "event"}]), JSON_CT,
     schema_mapping(None, SENDGRID_SCHEMAS, "cannot determine event type: type parameter not provided at index 1")),
])
def test_sendgrid_refusals(enricher, body, content_type, message):
    assert bad(enricher, SENDGRID, body, content_type) == ("adapter_failures", [message])


# -- Pingdom (PingdomAdapterSpec.scala) ----------------------------------------------------------------

PINGDOM = "/com.pingdom/v1"
PINGDOM_MESSAGE = ('{"check": "1421338", "checkname": "Webhooks_Test", "host": "7eef51c2.ngrok.com", "action": "assign", '
                   '"incidentid": 3, "description": "down"}')


def test_pingdom_incident(enricher):
    # e3 (and e1: action removed, the other keys in order)
    qs = "p=apps&message=" + quote(PINGDOM_MESSAGE)
    [event] = adapted(PINGDOM, querystring=qs)
    assert event == {"tv": "com.pingdom-v1", "e": "ue", "p": "apps", "ue_pr": ue_pr(
        "iglu:com.pingdom/incident_assign/jsonschema/1-0-0",
        '{"check":"1421338","checkname":"Webhooks_Test","host":"7eef51c2.ngrok.com","incidentid":3,"description":"down"}')}
    [row] = good(enricher, PINGDOM, querystring="message=" + quote(PINGDOM_MESSAGE))
    assert row["unstruct_event"] == event["ue_pr"]


@pytest.mark.parametrize("querystring, message", [
    ("p=%28u%27apps%27%2C%29", input_data("p", "apps", r"should not pass regex \(u'(.+)',\)")),   # e2
    (None, input_data("querystring", None, "empty querystring: no events to process")),   # e4
    ("p=apps", input_data("querystring", "p=apps", "no `message` parameter provided")),   # e5
    # from the adapter's source
    ("message=%7Bbroken", {"field": "message", "value": "{broken", "error": """invalid json: expected " got 'broken' (line 1, column 2)"""}),
    ("message=" + quote('{"action": "pause"}'), schema_mapping(
        "pause", {"assign": "iglu:com.pingdom/incident_assign/jsonschema/1-0-0",
                  "notify_user": "iglu:com.pingdom/incident_notify_user/jsonschema/1-0-0",
                  "notify_of_close": "iglu:com.pingdom/incident_notify_of_close/jsonschema/1-0-0"},
        "no schema associated with the provided type parameter")),
])
def test_pingdom_refusals(enricher, querystring, message):
    assert bad(enricher, PINGDOM, querystring=querystring) == ("adapter_failures", [message])


# -- PagerDuty (PagerdutyAdapterSpec.scala) ------------------------------------------------------------

PAGERDUTY = "/com.pagerduty/v1"
PAGERDUTY_INCIDENT = (
    '{"id":"P9WY9U9","incident_number":139,"created_on":"2014-11-12T18:53:47 00:00","status":"triggered","html_url":'
    '"https://snowplow.pagerduty.com/incidents/P9WY9U9","incident_key":"srv01/HTTP","service":{"id":"PTHO4FF","name":'
    '"Webhooks Test","html_url":"https://snowplow.pagerduty.com/services/PTHO4FF","deleted_at":null},"escalation_policy":'
    '{"id":"P8ETVHU","name":"Default","deleted_at":null},"assigned_to_user":{"id":"P9L426X","name":"Yali Sassoon","email":'
    '"yali@snowplowanalytics.com","html_url":"https://snowplow.pagerduty.com/users/P9L426X"},"trigger_summary_data":'
    '{"description":"FAILURE for production/HTTP on machine srv01.acme.com","client":"Sample Monitoring Service",'
    '"client_url":"https://monitoring.service.com"},"trigger_details_html_url":"https://snowplow.pagerduty.com/incidents/'
    'P9WY9U9/log_entries/P5AWPTR","trigger_type":"trigger_svc_event","last_status_change_on":"2014-11-12T18:53:47Z",'
    '"last_status_change_by":null,"number_of_escalations":0,"assigned_to":[{"at":"2014-11-12T18:53:47Z","object":{"id":'
    '"P9L426X","name":"Yali Sassoon","email":"yali@snowplowanalytics.com","html_url":"https://snowplow.pagerduty.com/'
    'users/P9L426X","type":"user"}}]}')
PAGERDUTY_BODY = ('{"messages":[{"type":"incident.trigger","data":{"incident":' + PAGERDUTY_INCIDENT +
                  '},"id":"3c3e8ee0-6a9d-11e4-b3d5-22000ae31361","created_on":"2014-11-12T18:53:47Z"}]}')
PAGERDUTY_SCHEMAS = {t: "iglu:com.pagerduty/incident/jsonschema/1-0-0" for t in (
    "incident.trigger", "incident.acknowledge", "incident.unacknowledge", "incident.resolve", "incident.assign",
    "incident.escalate", "incident.delegate")}


def test_pagerduty_incident(enricher):
    # e6 (e1-e3: "null" as null, type without incident., the lost + restored, in the rebuilt Scala Maps' order)
    [event] = adapted(PAGERDUTY, PAGERDUTY_BODY, JSON_CT)
    assert event == {"tv": "com.pagerduty-v1", "e": "ue", "p": "srv", "ue_pr": ue_pr(
        "iglu:com.pagerduty/incident/jsonschema/1-0-0",
        '{"type":"trigger","data":{"incident":{"assigned_to_user":{"id":"P9L426X","name":"Yali Sassoon","email":'
        '"yali@snowplowanalytics.com","html_url":"https://snowplow.pagerduty.com/users/P9L426X"},"incident_key":'
        '"srv01/HTTP","trigger_summary_data":{"description":"FAILURE for production/HTTP on machine srv01.acme.com",'
        '"client":"Sample Monitoring Service","client_url":"https://monitoring.service.com"},"last_status_change_by":null,'
        '"incident_number":139,"service":{"id":"PTHO4FF","name":"Webhooks Test","html_url":'
        '"https://snowplow.pagerduty.com/services/PTHO4FF","deleted_at":null},"trigger_details_html_url":'
        '"https://snowplow.pagerduty.com/incidents/P9WY9U9/log_entries/P5AWPTR","id":"P9WY9U9","assigned_to":[{"at":'
        '"2014-11-12T18:53:47Z","object":{"id":"P9L426X","name":"Yali Sassoon","email":"yali@snowplowanalytics.com",'
        '"html_url":"https://snowplow.pagerduty.com/users/P9L426X","type":"user"}}],"number_of_escalations":0,'
        '"last_status_change_on":"2014-11-12T18:53:47Z","status":"triggered","escalation_policy":{"id":"P8ETVHU",'
        '"name":"Default","deleted_at":null},"created_on":"2014-11-12T18:53:47+00:00","trigger_type":"trigger_svc_event",'
        '"html_url":"https://snowplow.pagerduty.com/incidents/P9WY9U9"}},"id":"3c3e8ee0-6a9d-11e4-b3d5-22000ae31361",'
        '"created_on":"2014-11-12T18:53:47Z"}')}
    # trigger_summary_data allows no client_url in Iglu Central's schema (3.9.0's too): the spec's event is refused
    kind, [message] = bad(enricher, PAGERDUTY, PAGERDUTY_BODY, JSON_CT)
    assert (kind, message["error"]["dataReports"][0]["path"]) == (
        "schema_violations", "$.data.incident.trigger_summary_data")
    without = PAGERDUTY_BODY.replace(',"client_url":"https://monitoring.service.com"', "")
    [row] = good(enricher, PAGERDUTY, without, JSON_CT)
    assert row["unstruct_event"] == event["ue_pr"].replace(',"client_url":"https://monitoring.service.com"', "")


@pytest.mark.parametrize("body, content_type, message", [
    ('{"something:"some"}', JSON_CT, {"field": "body", "value": '{"something:"some"}',   # e5
                                      "error": "invalid json: expected : got 'some\"}' (line 1, column 14)"}),
    ('{"somekey":"key"}', JSON_CT, input_data("messages", '{"somekey":"key"}', "field `messages` is not an array")),  # e5
    (PAGERDUTY_BODY.replace('"incident.trigger"', '"trigger"'), JSON_CT, schema_mapping(   # e7
        "trigger", PAGERDUTY_SCHEMAS, "no schema associated with the provided type parameter at index 0")),
    (None, JSON_CT, input_data("body", None, "empty body: no events to process")),   # e8
    ("stub", None, input_data("contentType", None, "no content type: expected application/json")),   # e9
    ("stub", FORM_CT, input_data("contentType", FORM_CT, "expected application/json")),   # e10
    # from the adapter's source
    ('{"messages":[]}', JSON_CT, input_data("", None, "empty list of events")),
])
def test_pagerduty_refusals(enricher, body, content_type, message):
    assert bad(enricher, PAGERDUTY, body, content_type) == ("adapter_failures", [message])


# -- HubSpot (HubSpotAdapterSpec.scala) ----------------------------------------------------------------

HUBSPOT = "/com.hubspot/v1"
HUBSPOT_BODY = ('[{"eventId":1,"subscriptionId":25458,"portalId":4737818,"occurredAt":1539145399845,"subscriptionType":'
                '"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":177698}]')
HUBSPOT_SCHEMAS = {f"{o}.{c}": f"iglu:com.hubspot/{o}_{n}/jsonschema/1-0-0" for o in ("contact", "company", "deal")
                   for c, n in (("creation", "creation"), ("deletion", "deletion"), ("propertyChange", "change"))}


def test_hubspot_contact_creation(enricher):
    # e3
    [event] = adapted(HUBSPOT, HUBSPOT_BODY, JSON_CT)
    assert event == {"tv": "com.hubspot-v1", "e": "ue", "p": "srv", "ue_pr": ue_pr(
        "iglu:com.hubspot/contact_creation/jsonschema/1-0-0",
        '{"eventId":1,"subscriptionId":25458,"portalId":4737818,"occurredAt":"2018-10-10T04:23:19.845Z","attemptNumber":0,'
        '"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":177698}')}
    [row] = good(enricher, HUBSPOT, HUBSPOT_BODY, JSON_CT)
    assert row["unstruct_event"] == event["ue_pr"]


@pytest.mark.parametrize("body, content_type, message", [
    ('{"something:"some"}', JSON_CT, {"field": "body", "value": '{"something:"some"}',   # e2
                                      "error": "invalid json: expected : got 'some\"}' (line 1, column 14)"}),
    (HUBSPOT_BODY.replace('"contact.creation"', '"contact"'), JSON_CT, schema_mapping(   # e4
        "contact", HUBSPOT_SCHEMAS, "no schema associated with the provided type parameter at index 0")),
    (None, JSON_CT, input_data("body", None, "empty body: not events to process")),   # e5
    ("stub", None, input_data("contentType", None, "no content type: expected application/json")),   # e6
    ("stub", FORM_CT, input_data("contentType", FORM_CT, "expected application/json")),   # e7
    # from the adapter's source
    ('{"eventId":1}', JSON_CT, input_data("body", '{"eventId":1}', "not a json array")),
    ("[]", JSON_CT, input_data("", None, "empty list of events")),
])
def test_hubspot_refusals(enricher, body, content_type, message):
    assert bad(enricher, HUBSPOT, body, content_type) == ("adapter_failures", [message])


# -- Marketo (MarketoAdapterSpec.scala) ----------------------------------------------------------------

MARKETO = "/com.marketo/v1"
MARKETO_BODY = (
    '{"name": "webhook for A", "step": 6, "lead": {"acquisition_date": "2010-11-11 11:11:11", "black_listed": false, '
    '"first_name": "the hulk", "updated_at": "", "created_at": "2018-06-16 11:23:58", "last_interesting_moment_date": '
    '"2018-09-26 20:26:40"}, "company": {"name": "iron man", "notes": "the something dog leapt over the lazy fox"}, '
    '"campaign": {"id": 987, "name": "triggered event"}, "datetime": "2018-03-07 14:28:16"}')


def test_marketo_event(enricher):
    # e1: dates read, every object's keys in the order of the Scala Map it is rebuilt into
    [event] = adapted(MARKETO, MARKETO_BODY, JSON_CT)
    assert event == {"tv": "com.marketo-v1", "e": "ue", "p": "srv", "ue_pr": ue_pr(
        "iglu:com.marketo/event/jsonschema/2-0-0",
        '{"lead":{"first_name":"the hulk","acquisition_date":"2010-11-11T11:11:11.000Z","black_listed":false,'
        '"last_interesting_moment_date":"2018-09-26T20:26:40.000Z","created_at":"2018-06-16T11:23:58.000Z",'
        '"updated_at":""},"name":"webhook for A","step":6,"campaign":{"id":987,"name":"triggered event"},'
        '"datetime":"2018-03-07T14:28:16.000Z","company":{"name":"iron man","notes":"the something dog leapt over the '
        'lazy fox"}}')}
    # "updated_at": "" is no date-time for Iglu Central's schema (3.9.0's too): refused after the adapter
    kind, [message] = bad(enricher, MARKETO, MARKETO_BODY, JSON_CT)
    assert (kind, message["error"]["dataReports"][0]["path"]) == ("schema_violations", "$.lead.updated_at")
    [row] = good(enricher, MARKETO, MARKETO_BODY.replace('"updated_at": "", ', ""), None)   # no content type needed
    assert row["unstruct_event"] == event["ue_pr"].replace(',"updated_at":""', "")


@pytest.mark.parametrize("body, message", [
    (None, input_data("body", None, "empty body: no events to process")),   # e2
    # from the adapter's source
    ("[]", input_data("body", "[]", "not a json object")),
    ("{", {"field": "body", "value": "{", "error": "invalid json: exhausted input"}),
])
def test_marketo_refusals(enricher, body, message):
    assert bad(enricher, MARKETO, body, JSON_CT) == ("adapter_failures", [message])


# -- CallRail (CallrailAdapterSpec.scala) --------------------------------------------------------------

CALLRAIL = "/com.callrail/v1"
CALLRAIL_QS = (
    "answered=true&callercity=BAKERSFIELD&callercountry=US&callername=SKYPE+CALLER&callernum=%2B12612230240"
    "&callerstate=CA&callerzip=92307&callsource=keyword&datetime=2014-10-09+16%3A23%3A45&destinationnum=2012032051"
    "&duration=247&first_call=true&ga=&gclid=&id=201235151&ip=86.178.163.7&keywords=&kissmetrics_id=&landingpage="
    "http%3A%2F%2Facme.com%2F&recording=http%3A%2F%2Fapp.callrail.com%2Fcalls%2F201235151%2Frecording%2F9f59ad59ba1c"
    "fa264312&referrer=direct&referrermedium=Direct&trackingnum=%2B12012311668&transcription=&utm_campaign=&utm_content="
    "&utm_medium=&utm_source=&utm_term=&utma=&utmb=&utmc=&utmv=&utmx=&utmz=&cv=clj-0.6.0-tom-0.0.4&nuid=-")


def test_callrail_call_complete(enricher):
    # e1: every parameter but the tracker's, typed, in the order of the Scala Map holding the query string
    [event] = adapted(CALLRAIL, querystring=CALLRAIL_QS)
    assert event == {"tv": "com.callrail-v1", "e": "ue", "cv": "clj-0.6.0-tom-0.0.4", "p": "srv", "nuid": "-",
                     "ue_pr": ue_pr("iglu:com.callrail/call_complete/jsonschema/1-0-2",
        '{"duration":247,"utm_source":null,"utmv":null,"ip":"86.178.163.7","utmx":null,"ga":null,"destinationnum":'
        '"2012032051","datetime":"2014-10-09T16:23:45.000Z","kissmetrics_id":null,"landingpage":"http://acme.com/",'
        '"callerzip":"92307","gclid":null,"callername":"SKYPE CALLER","utmb":null,"id":"201235151","callernum":'
        '"+12612230240","utm_content":null,"trackingnum":"+12012311668","referrermedium":"Direct","utm_campaign":null,'
        '"keywords":null,"transcription":null,"utmz":null,"utma":null,"referrer":"direct","callerstate":"CA",'
        '"recording":"http://app.callrail.com/calls/201235151/recording/9f59ad59ba1cfa264312","first_call":true,'
        '"utmc":null,"callercountry":"US","utm_medium":null,"callercity":"BAKERSFIELD","utm_term":null,"answered":true,'
        '"callsource":"keyword"}')}
    [row] = good(enricher, CALLRAIL, querystring=CALLRAIL_QS)
    assert (row["unstruct_event"], row["v_collector"], row["network_userid"]) == (
        event["ue_pr"], "clj-0.6.0-tom-0.0.4", "-")


def test_callrail_empty_querystring(enricher):
    # e2
    assert bad(enricher, CALLRAIL) == ("adapter_failures", [input_data("querystring", None, "empty querystring")])


# -- Iglu (IgluAdapterSpec.scala) ----------------------------------------------------------------------

IGLU = "/com.snowplowanalytics.iglu/v1"
IGLU_STATIC = {"tv": "com.snowplowanalytics.iglu-v1", "e": "ue"}
IGLU_ALL_TYPES = "expected one of application/json, application/json; charset=utf-8, application/x-www-form-urlencoded"


@pytest.mark.parametrize("querystring, body, content_type, expected", [
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-0&user=6353af9b-e288-4cf3-9f1c-b377a9c84dac&name=download"
     "&publisher_name=Organic&source=&tracking_id=&ad_unit=", None, None,   # e1: empty values null, the Scala Map's order
     [{"p": "app", "ue_pr": ue_pr("iglu:com.acme/campaign/jsonschema/1-0-0",
                                  '{"name":"download","source":null,"ad_unit":null,"tracking_id":null,'
                                  '"publisher_name":"Organic","user":"6353af9b-e288-4cf3-9f1c-b377a9c84dac"}')}]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-0&user=6353af9b-e288-4cf3-9f1c-b377a9c84dac&name=install"
     "&source=newsfeed&tracking_id=3353af9c-e298-2cf3-9f1c-b377a9c84dad&ad_unit=UN-11-b&aid=webhooks", None, None,   # e2
     [{"p": "app", "aid": "webhooks", "ue_pr": ue_pr(
         "iglu:com.acme/campaign/jsonschema/1-0-0",
         '{"name":"install","source":"newsfeed","ad_unit":"UN-11-b","tracking_id":"3353af9c-e298-2cf3-9f1c-b377a9c84dad",'
         '"user":"6353af9b-e288-4cf3-9f1c-b377a9c84dac"}')}]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F2-0-0&user=6353af9b-e288-4cf3-9f1c-b377a9c84dac&name=retarget"
     "&source=newsfeed&tracking_id=&ad_unit=UN-11-b&aid=my+webhook+project&cv=clj-0.5.0-tom-0.0.4&nuid=", None, None,  # e3
     [{"p": "app", "aid": "my webhook project", "cv": "clj-0.5.0-tom-0.0.4", "nuid": "", "ue_pr": ue_pr(
         "iglu:com.acme/campaign/jsonschema/2-0-0",
         '{"name":"retarget","source":"newsfeed","ad_unit":"UN-11-b","tracking_id":null,'
         '"user":"6353af9b-e288-4cf3-9f1c-b377a9c84dac"}')}]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1&user=6353af9b-e288-4cf3-9f1c-b377a9c84dac&name=download"
     "&p=mob", None, None,   # e4
     [{"p": "mob", "ue_pr": ue_pr("iglu:com.acme/campaign/jsonschema/1-0-1",
                                  '{"user":"6353af9b-e288-4cf3-9f1c-b377a9c84dac","name":"download"}')}]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1&some_param=foo&p=mob",   # e8
     '{"key":"value", "everwets":"processed"}', JSON_CT,
     [{"p": "mob", "ue_pr": ue_pr("iglu:com.acme/campaign/jsonschema/1-0-1", '{"key":"value","everwets":"processed"}')}]),
    ("p=mob", '{"schema":"iglu:com.acme/campaign/jsonschema/1-0-1", "data":{"some_param":"foo"}}', JSON_CT,   # e12
     [{"p": "mob", "ue_pr": ue_pr("iglu:com.acme/campaign/jsonschema/1-0-1", '{"some_param":"foo"}')}]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1", "some_param=foo&hello=world", FORM_CT,   # e15
     [{"p": "srv", "ue_pr": ue_pr("iglu:com.acme/campaign/jsonschema/1-0-1", '{"some_param":"foo","hello":"world"}')}]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1&some_param=foo&p=mob",   # e16
     '[{"key":"value", "everwets":"processed"},{"key":"value", "everwets":"processed"}]', JSON_CT,
     [{"p": "mob", "ue_pr": ue_pr("iglu:com.acme/campaign/jsonschema/1-0-1", '{"key":"value","everwets":"processed"}')}] * 2),
])
def test_iglu_events(enricher, querystring, body, content_type, expected):
    assert adapted(IGLU, body, content_type, querystring) == [{**IGLU_STATIC, **e} for e in expected]


def test_iglu_event_through_the_stage(enricher):
    qs = "schema=iglu%3Acom.snowplowanalytics.snowplow%2Fsocial_interaction%2Fjsonschema%2F1-0-0&network=x&action=y&aid=a"
    [row] = good(enricher, IGLU, querystring=qs)
    assert (row["event_name"], row["platform"], row["app_id"]) == ("social_interaction", "app", "a")


@pytest.mark.parametrize("querystring, body, content_type, messages", [
    (None, None, None, [input_data("schema", None, "empty `schema` field"), input_data("body", None, "empty body")]),  # e5
    ("aid=webhooks&p=mob", None, None,   # e6
     [input_data("schema", None, "empty `schema` field"), input_data("body", None, "empty body")]),
    ("schema=iglooooooo%3A%2F%2Fblah&name=download", None, None,   # e7
     [input_data("schema", "iglooooooo://blah", "INVALID_IGLUURI")]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1&some_param=foo&p=mob",   # e9
     '{"key":"value", "everwets":"processed"}', "application/badtype",
     [input_data("contentType", "application/badtype", IGLU_ALL_TYPES)]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1&some_param=foo&p=mob", "{}", JSON_CT,   # e10
     [input_data("body", "{}", "has no key-value pairs")]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1&some_param=foo&p=mob", '{"key":"value"}', None,   # e11
     [input_data("contentType", None, IGLU_ALL_TYPES)]),
    ("p=mob", '{"schema":"iglu:com.acme/campaign/jsonschema/1-0-1", "data":{"some_param":"foo"}}',   # e13
     "application/xxx-url-form-encoded", [input_data("contentType", "application/xxx-url-form-encoded",
                                                     "expected one of application/json, application/json; charset=utf-8")]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1", '{"some_param":"foo"}',   # e14
     "application/xxx-url-form-encoded", [input_data("contentType", "application/xxx-url-form-encoded", IGLU_ALL_TYPES)]),
    ("schema=iglu%3Acom.acme%2Fcampaign%2Fjsonschema%2F1-0-1&some_param=foo&p=mob", "[]", JSON_CT,   # e17
     [input_data("body", "[]", "empty array of events")]),
    # from the adapter's source: JSON that is not self-describing
    ("p=mob", '{"some_param":"foo"}', JSON_CT, [{"json": {"some_param": "foo"}, "error": "INVALID_DATA_PAYLOAD"}]),
])
def test_iglu_refusals(enricher, querystring, body, content_type, messages):
    assert bad(enricher, IGLU, body, content_type, querystring) == ("adapter_failures", messages)


# -- Remote adapters (RemoteAdapterSpec.scala) -----------------------------------------------------------

REMOTE_UE = ('{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":'
             '"iglu:org.remoteEnricherTest/moodChange/jsonschema/1-0-0","data":%s}}')


@pytest.fixture
def remote_stub():
    from processor.adapters import REGISTRY
    from tests.unit.enrichments.http_stub import HttpStub
    saved = dict(REGISTRY)
    with HttpStub() as stub:
        yield stub
    REGISTRY.clear()
    REGISTRY.update(saved)


def test_remote_adapter_events(remote_stub):
    # e1: the remote's events are the events; what it is sent
    from processor.webhooks.remote import register_remote_adapter
    events = [{"tv": "testTracker-v0.1", "e": "ue", "p": "srv", "ue_pr": REMOTE_UE % item}
              for item in ('{"anonymous":-0.3}', '{"subscribers":0.6}')]
    remote_stub.route("POST", "/myEnrichment", {"events": events})
    register_remote_adapter("org.remoteEnricherTest", "v1", remote_stub.url + "/myEnrichment", 2)
    body = '[{"anonymous":-0.3},{"subscribers":0.6}]'
    assert adapted("/org.remoteEnricherTest/v1", body) == events
    [request] = remote_stub.requests
    assert request.body == (b'{"contentType":null,"queryString":{},"headers":["Host: c.acme.com"],'
                            b'"body":"[{\\"anonymous\\":-0.3},{\\"subscribers\\":0.6}]"}')


@pytest.mark.parametrize("body", ["", None])   # e2, e3
def test_remote_adapter_empty_body(enricher, remote_stub, body):
    from processor.webhooks.remote import register_remote_adapter
    url = remote_stub.url + "/myEnrichment"
    register_remote_adapter("org.remoteEnricherTest", "v1", url, 2)
    assert bad(enricher, "/org.remoteEnricherTest/v1", body) == (
        "adapter_failures", [input_data("body", None, f"empty body: not a valid remote adapter {url} payload")])
    assert remote_stub.requests == []


@pytest.mark.parametrize("response, message", [
    ("{invalid json", {"field": "body", "value": "{invalid json",   # e4
                       "error": """[REMOTE_ADAPTER] invalid json: expected " got 'invali...' (line 1, column 2)"""}),
    ('{"events":"response"}', input_data("body", '{"events":"response"}',   # e5
                                         "[REMOTE_ADAPTER] could not be decoded as a list of json objects: C[A]: "
                                         "DownField(events)")),
    ('{"error":"", "events":[]}', input_data("body", '{"error":"", "events":[]}',   # e6
                                             "[REMOTE_ADAPTER] empty list of events")),
])
def test_remote_adapter_responses(response, message):
    from processor.webhooks.remote import parse_remote_response
    assert parse_remote_response("http://localhost:8091/myEnrichment", 200, response).failure.messages == [message]
