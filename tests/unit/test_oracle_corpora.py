"""The oracle bench's webhooks and hostile corpora (bench/oracle_bench.py): built without services."""
from bench.oracle_bench import hostile_records, hostile_requests, webhook_records, webhook_requests
from ext import decode_collector_payload
from processor.adapters import REGISTRY, vendor_version
from processor.webhooks import load_all


def test_every_webhook_adapter_has_requests_and_each_request_is_told_apart():
    load_all()
    requests = webhook_requests()
    served = {vendor_version(path) for _, path, _, _, _ in requests}
    # the webhook adapters: 3.9.0's AdapterRegistry has the same 17
    vendors = {key for key in REGISTRY if key[0] not in ("com.snowplowanalytics.snowplow", "r")}
    remote = {key for key in vendors if REGISTRY[key].__module__.endswith(".remote")}
    assert len(vendors - remote) == 17 and vendors - remote <= served
    records = webhook_records()
    stamps = [decode_collector_payload(r).timestamp for r in records]
    assert len(set(stamps)) == len(records) == len(requests)


def test_hostile_records_fit_kafkas_default_message_size():
    records = hostile_records()
    assert len(records) == len(hostile_requests())
    assert max(map(len, records)) < 300_000


def test_events_of_one_timestamp_are_keyed_whatever_their_output_order():
    from bench.oracle_bench import rekey_by_tstamp

    def line(eid: str, page: str) -> bytes:
        fields = [b""] * 131
        fields[3], fields[6], fields[17] = b"2025-11-28 00:06:03.000", eid.encode(), page.encode()
        return b"\t".join(fields)

    a, _ = rekey_by_tstamp([line("a1", "x"), line("a2", "y")], [])
    b, _ = rekey_by_tstamp([line("b1", "y"), line("b2", "x")], [])
    assert sorted(a) == sorted(b)


def test_bad_rows_are_keyed_by_their_partial_events_timestamp_and_rows_of_a_raw_payload_kept_as_they_are():
    # a collector_payload_format_violation's payload is the raw record's text: the webhook-envelope corpus met it
    from bench.oracle_bench import rekey_by_tstamp

    partial = {"data": {"payload": {"enriched": {"collector_tstamp": "2025-11-28 00:06:03.000", "event_id": "x"}}}}
    raw = {"data": {"payload": "c25vd3Bsb3c="}}
    _, bad = rekey_by_tstamp([], [partial, raw, "not a row"])
    assert partial["data"]["payload"]["enriched"]["event_id"] == "bad:2025-11-28 00:06:03.000#1"
    assert bad == [partial, {"data": {"payload": "c25vd3Bsb3c="}}, "not a row"]
