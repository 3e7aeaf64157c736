"""Security of the exposed surfaces, without services (see docs/threat-model.md).

Redirects, the cookie, the ``snowmelt up`` API guard, TLS/SASL settings reaching
the clients, secrets from files, PII before the sinks and the summary of
client-triggered log lines.  CORS, the SQL endpoint's guards and the SQL
enrichment's parameters are tested in test_collector.py, test_sql_endpoint.py
and tests/integration/test_sql_query_enrichment.py.
"""
import dataclasses
import json
import logging
import time
from email.utils import parsedate_to_datetime
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from collector.app import make_app, redirect_allowed
from collector.kafka_sink import KafkaSink
from collector.sink import MemorySink
from ext import CollectorPayload, encode_collector_payload
from processor.enrichments import LoadContext, parse_enrichment
from processor.iglu import Resolver
from processor.stage import Enricher
from snowmelt import health
from snowmelt.config import (
    ConfigError,
    consumer_settings,
    load_config,
    producer_settings,
)
from snowmelt.logs import SummaryFilter
from tests.services.payloads import TP2

NOW = 1_764_288_000.0
SECURITY = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "svc",
            "sasl.password": "kafka-s3cret", "ssl.ca.location": "/etc/ssl/kafka-ca.pem"}


def config(**env):
    return load_config(None, env={f"SNOWMELT_{k.upper()}": str(v) for k, v in env.items()})


@pytest.fixture
def collector_client(aiohttp_client):
    async def make(**env):
        sink = MemorySink(max_record_bytes=1_000_000)
        client = await aiohttp_client(make_app(config(**env), sink, clock=lambda: NOW))
        client.sink = sink
        return client
    return make


# ------------------------------------------------------------------ redirects


@pytest.mark.parametrize("target", [
    "https://acme.com/", "data:text/html,<script>alert(1)</script>", "JavaScript:alert(1)",
    "//evil.com/", "/\\evil.com", "https://acme.com@evil.com/", "https://evil.com#.acme.com",
    "https://evil.com?.acme.com", "https:\t//evil.com", " https://acme.com/",
])
def test_redirect_allow_list_refuses_what_a_browser_could_follow_elsewhere(target):
    assert not redirect_allowed(target, ())  # an empty allow-list allows nothing
    if target != "https://acme.com/":
        assert not redirect_allowed(target, ("acme.com",))
    assert redirect_allowed("https://shop.acme.com/x?y=1", ("acme.com",))


async def test_redirect_enabled_with_empty_allow_list_redirects_nowhere(collector_client):
    client = await collector_client(collector__redirect__enabled="true")
    resp = await client.get("/r/tp2", params={"u": "https://acme.com/"}, allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers


async def test_redirect_alias_path_applies_the_same_allow_list(collector_client):
    client = await collector_client(collector__redirect__enabled="true",
                                    collector__redirect__allowed_domains="[acme.com]",
                                    collector__paths='{"/go": "/r/tp2"}')
    resp = await client.get("/go", params={"u": "https://evil.com/"}, allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers
    resp = await client.get("/go", params={"u": "https://acme.com/"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "https://acme.com/"


@pytest.mark.parametrize("nuid", [".evil.com", "@evil.com", ":1@evil.com"])
async def test_nuid_macro_cannot_move_the_redirect_to_another_host(collector_client, nuid):
    # the nuid parameter (and the cookie) are the client's: substituted into the
    # target they must not change its host
    client = await collector_client(collector__redirect__enabled="true",
                                    collector__redirect__allowed_domains="[acme.com]")
    resp = await client.get("/r/tp2", params={"u": "https://acme.com${SP_NUID}/", "nuid": nuid},
                            allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers


# ------------------------------------------------------------------ cookie


async def test_set_cookie_carries_every_configured_attribute(collector_client):
    client = await collector_client(collector__cookie__domains="[acme.com]", collector__cookie__expiration_days=30,
                                    collector__cookie__same_site="None", collector__cookie__secure="true",
                                    collector__cookie__http_only="true")
    resp = await client.get("/i", headers={"Origin": "https://www.acme.com"})
    attrs = [a.strip() for a in resp.headers["Set-Cookie"].split(";")]
    name, _, nuid = attrs[0].partition("=")
    assert name == "sp" and len(nuid) == 36
    values = dict(a.partition("=")[::2] for a in attrs[1:])
    assert values["Domain"] == "acme.com" and values["Path"] == "/" and values["SameSite"] == "None"
    assert values["Max-Age"] == str(30 * 86400)
    assert abs(parsedate_to_datetime(values["Expires"]).timestamp() - (time.time() + 30 * 86400)) < 300
    assert "Secure" in values and "HttpOnly" in values  # flags without values
    # SameSite=None is only honoured by browsers together with Secure
    client = await collector_client(collector__cookie__http_only="false", collector__cookie__same_site="Lax",
                                    collector__cookie__secure="false")
    attrs = [a.strip() for a in (await client.get("/i")).headers["Set-Cookie"].split(";")]
    assert "HttpOnly" not in attrs and "Secure" not in attrs and "SameSite=Lax" in attrs
    assert not any(a.startswith("Domain=") for a in attrs)


# ------------------------------------------------------------------ snowmelt up: the API guard


# ------------------------------------------------------------------ CORS

BODY = json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                   "data": [{"e": "pv", "p": "web", "tv": "js-3"}]})


async def cors_answers(client, origin: str | None) -> list[dict]:
    """The CORS headers of a GET pixel, a POST and a preflight from ``origin``."""
    headers = {"Origin": origin} if origin else {}
    out = []
    for method, path, kwargs in (("GET", "/i?e=pv&p=web&tv=js-3", {}),
                                 ("POST", TP2, {"data": BODY, "headers": {**headers, "Content-Type": "application/json"}}),
                                 ("OPTIONS", TP2, {})):
        kwargs.setdefault("headers", headers)
        async with client.request(method, path, **kwargs) as resp:
            assert resp.status == 200, (method, resp.status)
            out.append({k: resp.headers.get(k) for k in ("Access-Control-Allow-Origin",
                                                           "Access-Control-Allow-Credentials")})
    return out


async def test_without_an_allow_list_every_origin_is_echoed_with_credentials(collector_client):
    client = await collector_client()
    for answer in await cors_answers(client, "https://anyone.example"):
        assert answer == {"Access-Control-Allow-Origin": "https://anyone.example",
                          "Access-Control-Allow-Credentials": "true"}


@pytest.mark.parametrize("origin, allowed", [
    ("https://shop.acme.com", True), ("HTTPS://SHOP.ACME.COM", True), ("https://blog.acme.org", True),
    ("https://a.b.acme.org", True), ("https://acme.org", False), ("http://blog.acme.org", False),
    ("https://evil.com", False), ("https://shop.acme.com.evil.com", False), ("https://evilacme.org", False),
    (None, False),
])
async def test_cors_answers_only_the_configured_origins(collector_client, origin, allowed):
    client = await collector_client(collector__cors_allowed_origins="[https://shop.acme.com, https://*.acme.org]")
    answers = await cors_answers(client, origin)
    for answer in answers:
        if allowed:
            assert answer == {"Access-Control-Allow-Origin": origin.lower(), "Access-Control-Allow-Credentials": "true"}
        else:
            assert answer == {"Access-Control-Allow-Origin": None, "Access-Control-Allow-Credentials": None}
    # a page from another origin cannot read the answer, but what it sent is still recorded
    assert len(client.sink.raw) == 2


@pytest.fixture
def up_client(aiohttp_client, tmp_path):
    from snowmelt.up import Pipeline

    async def make(**env):
        cfg = config(**env)
        cfg = dataclasses.replace(cfg, up=dataclasses.replace(cfg.up, data_dir=str(tmp_path), store=False,
                                                               progress_interval=0.0))
        return await aiohttp_client(Pipeline(cfg, Enricher(Resolver([], include_builtin=True))).make_app())
    return make


def mocked(path, peer, headers=None, sockname=None):
    transport = mock.Mock()
    extra = {"peername": (peer, 40000), "sockname": sockname}
    transport.get_extra_info.side_effect = lambda name, default=None: extra.get(name) or default
    return make_mocked_request("GET", path, headers={"Host": "127.0.0.1:9090", **(headers or {})},
                               transport=transport)


def api_refusal(request, token):
    from snowmelt.access import token_refusal

    return token_refusal(request, token)


def test_api_answers_loopback_peers_only_without_a_token():
    assert api_refusal(mocked("/micro/reset", "127.0.0.1"), "") is None
    assert api_refusal(mocked("/micro/reset", "::1"), "") is None
    assert api_refusal(mocked("/micro/reset", "192.168.1.20"), "").status == 403
    assert api_refusal(mocked("/micro/reset", "10.0.0.7"), "").status == 403
    # a proxy on the same host forwarding someone else is not local
    assert api_refusal(mocked("/micro/reset", "127.0.0.1", {"X-Forwarded-For": "198.51.100.4"}), "").status == 403
    # with a token: missing -> 401, wrong -> 403, right -> allowed (bearer or header)
    assert api_refusal(mocked("/micro/good", "10.0.0.7"), "t0k").status == 401
    assert api_refusal(mocked("/micro/good", "10.0.0.7", {"Authorization": "Bearer nope"}), "t0k").status == 403
    assert api_refusal(mocked("/micro/good", "10.0.0.7", {"Authorization": "Bearer t0k"}), "t0k") is None
    assert api_refusal(mocked("/micro/good", "10.0.0.7", {"X-Snowmelt-Token": "t0k"}), "t0k") is None


def test_local_only_says_why_and_both_ways_in_from_another_machine():
    request = mocked("/dashboard/data", "192.0.2.7", {"Host": "192.0.2.2:9191"}, sockname=("192.0.2.2", 9191))
    answer = api_refusal(request, "")
    body = json.loads(answer.text)
    assert answer.status == 403 and body["error"] == "local_only"
    assert "only to clients on its own machine" in body["message"] and "set up.api_token" in body["message"]
    # the tunnel's command names the port the server listens on and the name the client used
    assert "ssh -L 9191:127.0.0.1:9191 192.0.2.2, then open http://localhost:9191/" in body["message"]
    # without a socket to read the port from, the command says where the port goes
    body = json.loads(api_refusal(mocked("/micro/all", "10.0.0.7", {"Host": "[fd00::2]:80"}), "").text)
    assert "ssh -L PORT:127.0.0.1:PORT fd00::2" in body["message"]


async def test_micro_reset_is_guarded_but_tracking_is_not(up_client):
    client = await up_client()
    proxied = {"X-Forwarded-For": "198.51.100.4"}  # what a remote client through a local proxy looks like
    for path in ("/micro/reset", "/micro/all", "/micro/good", "/micro/bad"):
        assert (await client.get(path, headers=proxied)).status == 403, path
    assert (await client.post("/micro/reset", headers=proxied)).status == 403
    assert (await client.get("/i?e=pv", headers=proxied)).status == 200  # the collector stays open
    assert (await client.get("/micro/all")).status == 200                  # a local client
    client = await up_client(up__api_token="t0k")
    assert (await client.post("/micro/reset", headers=proxied, json={})).status == 401
    resp = await client.post("/micro/reset", headers={**proxied, "Authorization": "Bearer t0k"}, json={})
    assert resp.status == 200 and await resp.json() == {"total": 0, "good": 0, "bad": 0}


@pytest.mark.parametrize("host, refused", [("0.0.0.0", True), ("192.168.1.2", True), ("::", True),
                                           ("127.0.0.1", False), ("localhost", False), ("::1", False)])
async def test_sql_endpoint_beyond_loopback_needs_a_token(tmp_path, host, refused):
    from snowmelt.up import is_loopback_host, serve

    cfg = config()
    cfg = dataclasses.replace(cfg, up=dataclasses.replace(cfg.up, sql_host=host, data_dir=str(tmp_path)))
    assert is_loopback_host(host) is not refused
    if refused:  # refused before anything listens or opens the store
        with pytest.raises(ValueError, match="up.sql_token"):
            await serve(cfg, Enricher(Resolver([], include_builtin=True)))
        assert not (tmp_path / "clickhouse").exists()


# ------------------------------------------------------------------ Kafka security settings


def test_kafka_common_reaches_every_librdkafka_client():
    kafka = config(**{f"kafka__common__{k}": v for k, v in SECURITY.items()}).kafka
    assert dict(kafka.common) == SECURITY
    for settings in (producer_settings(kafka, acks="all"), consumer_settings(kafka, **{"group.id": "g"}),
                     health.kafka_client_settings(kafka)):
        assert {k: settings[k] for k in SECURITY} == SECURITY
    # the collector's producer
    sink = KafkaSink(config(**{f"kafka__common__{k}": v for k, v in SECURITY.items()}))
    assert {k: sink.settings[k] for k in SECURITY} == SECURITY


def test_enrich_worker_maps_kafka_common_to_aiokafka():
    pytest.importorskip("faust")
    import ssl

    from processor.worker import kafka_security_settings

    common = {**SECURITY, "ssl.ca.location": None}
    creds = kafka_security_settings(common)["broker_credentials"]
    assert creds.username == "svc" and creds.password == "kafka-s3cret"
    assert str(creds.mechanism.value if hasattr(creds.mechanism, "value") else creds.mechanism) == "SCRAM-SHA-512"
    assert isinstance(creds.ssl_context, ssl.SSLContext) and creds.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert kafka_security_settings({"security.protocol": "PLAINTEXT"}) == {}
    # a key aiokafka cannot honour is refused rather than silently dropped
    with pytest.raises(ValueError, match="ssl.crl.location"):
        kafka_security_settings({"security.protocol": "SSL", "ssl.crl.location": "/x"})


# ------------------------------------------------------------------ ClickHouse and S3 TLS


def test_clickhouse_tls_options_reach_clickhouse_connect():
    from loaders import clickhouse

    cfg = config(clickhouse__url="https://ch.acme.internal", clickhouse__ca_cert="/etc/ssl/ch.pem",
                 clickhouse__password="ch-s3cret").clickhouse
    with mock.patch("clickhouse_connect.get_client") as get_client:
        clickhouse.ServerBackend(cfg)
    kwargs = get_client.call_args.kwargs
    assert kwargs["secure"] is True and kwargs["port"] == 8443
    assert kwargs["verify"] is True and kwargs["ca_cert"] == "/etc/ssl/ch.pem"
    assert kwargs["password"] == "ch-s3cret"
    with mock.patch("clickhouse_connect.get_client") as get_client:
        clickhouse.ServerBackend(config(clickhouse__url="https://ch", clickhouse__verify="false").clickhouse)
    assert get_client.call_args.kwargs["verify"] is False and "ca_cert" not in get_client.call_args.kwargs


def test_s3_tls_options_reach_boto3():
    from loaders.s3 import S3Store

    for env, verify in (({}, True), ({"s3__verify": "false"}, False),
                        ({"s3__ca_bundle": "/etc/ssl/s3.pem"}, "/etc/ssl/s3.pem")):
        cfg = config(s3__bucket="b", s3__endpoint_url="https://s3.acme.internal", **env).s3
        with mock.patch("boto3.session.Session.client") as client:
            S3Store(cfg)._backend._make_client()
        assert client.call_args.kwargs["verify"] == verify
        assert client.call_args.kwargs["endpoint_url"] == "https://s3.acme.internal"
        with mock.patch("boto3.session.Session.client") as client:
            health.s3_check(cfg)()
        assert client.call_args.kwargs["verify"] == verify


# ------------------------------------------------------------------ secrets


def test_secrets_from_files(tmp_path):
    secret = tmp_path / "clickhouse-password"
    secret.write_text("0123 no: yaml {here}\n")  # taken as is: not a number, not a mapping
    token = tmp_path / "token"
    token.write_text("t0k")
    cfg = load_config(None, env={"SNOWMELT_CLICKHOUSE__PASSWORD_FILE": str(secret),
                                 "SNOWMELT_UP__API_TOKEN_FILE": str(token),
                                 "SNOWMELT_KAFKA__COMMON__SASL.PASSWORD_FILE": str(token)})
    assert cfg.clickhouse.password == "0123 no: yaml {here}"
    assert cfg.up.api_token == "t0k"
    assert cfg.kafka.common["sasl.password"] == "t0k"
    with pytest.raises(ConfigError, match="SNOWMELT_S3__CA_BUNDLE_FILE"):
        load_config(None, env={"SNOWMELT_S3__CA_BUNDLE_FILE": str(tmp_path / "missing")})


def test_readiness_reasons_never_carry_credentials():
    cfg = config(clickhouse__url="https://admin:ch-s3cret@127.0.0.1:1/?password=ch-s3cret").clickhouse
    ready = health.Readiness({"clickhouse": health.clickhouse_check(cfg, timeout=0.5)})
    ok, checks = ready.check()
    assert not ok and "127.0.0.1:1" in checks["clickhouse"]
    assert "s3cret" not in json.dumps(checks) and "admin" not in json.dumps(checks)


# ------------------------------------------------------------------ PII before any sink


def test_pii_is_hashed_before_the_enriched_output_and_bad_rows_carry_the_raw_payload():
    resolver = Resolver([], include_builtin=True)
    doc = {"schema": "iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-0",
           "data": {"vendor": "com.snowplowanalytics.snowplow.enrichments", "name": "pii_enrichment_config",
                    "enabled": True, "emitEvent": False,
                    "parameters": {"pii": [{"pojo": {"field": "user_id"}}, {"pojo": {"field": "user_ipaddress"}}],
                                   "strategy": {"pseudonymize": {"hashFunction": "SHA-256", "salt": "pepper"}}}}}
    pii = parse_enrichment(doc, resolver, LoadContext(base_dir=None, source="pii.json"))
    enricher = Enricher(resolver, clock=lambda: NOW, enrichments=[pii])

    def raw(querystring):
        return encode_collector_payload(CollectorPayload(
            schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0", ip_address="203.0.113.77",
            timestamp=1_764_288_000_000, encoding="UTF-8", collector="test", path="/i", querystring=querystring))

    out = enricher.enrich(raw("e=pv&p=web&tv=js-3&uid=jane%40acme.com&url=https%3A%2F%2Facme.com%2F"))
    [line] = out.good
    assert "jane@acme.com" not in line and "203.0.113.77" not in line
    # a bad row (here an unknown context schema) carries the request as received, as Snowplow's do:
    # the bad topic and the bad-row stores hold PII and are protected like the raw topic
    out = enricher.enrich(raw("e=pv&p=web&tv=js-3&uid=jane%40acme.com&co=%7B%22schema%22%3A%22iglu%3A"
                              "com.acme%2Fnope%2Fjsonschema%2F1-0-0%22%2C%22data%22%3A%5B%5D%7D"))
    assert out.good == [] and len(out.bad) == 1
    assert b"jane@acme.com" in out.bad[0] or b"jane%40acme.com" in out.bad[0]


# ------------------------------------------------------------------ client-triggered log lines


def test_summary_filter_bounds_a_flood_and_counts_what_it_held_back():
    now = [0.0]
    logger = logging.getLogger("test.security.flood")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.addFilter(SummaryFilter(60.0, clock=lambda: now[0]))
    try:
        for i in range(1000):
            now[0] = i * 0.01  # 1000 malformed requests from 1000 addresses in 10 s
            try:
                raise ValueError(f"Invalid method encountered: b'\\x16\\x03' {i} 100%")
            except ValueError:
                logger.exception("Error handling request from %s", f"198.51.100.{i % 250}")
        assert len(lines) == 1 and "\n" not in lines[0]  # one line, the traceback reduced to its message
        assert "ValueError" in lines[0] and "198.51.100.0" in lines[0]
        now[0] = 61.0
        logger.error("Error handling request from %s", "198.51.100.9")
        assert len(lines) == 2 and "999 more" in lines[1]
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("host, token, refused", [
    ("127.0.0.1", "", False), ("localhost", "", False), ("0.0.0.0", "", True), ("0.0.0.0", "s3cret", False),
])
def test_the_loaders_sql_endpoint_beyond_loopback_needs_a_token(host, token, refused):
    from snowmelt.sql_endpoint import check_loader_sql_settings as check_sql_settings
    from snowmelt.config import ClickHouseConfig

    ch = ClickHouseConfig(backend="chdb", sql_host=host, sql_port=8124, sql_token=token)
    if refused:
        with pytest.raises(ValueError, match="sql_token"):
            check_sql_settings(ch)
    else:
        check_sql_settings(ch)


CH_PASSWORD, SASL_PASSWORD, S3_SECRET = "ch-Pa55word", "kafka-Pa55word", "s3-Secr3t"


def test_snowmelt_config_prints_secrets_as_stars(monkeypatch, capsys):
    from snowmelt.cli import main

    monkeypatch.setenv("SNOWMELT_CLICKHOUSE__PASSWORD", CH_PASSWORD)
    monkeypatch.setenv("SNOWMELT_CLICKHOUSE__URL", f"https://admin:{CH_PASSWORD}@ch.internal:8443")
    monkeypatch.setenv("SNOWMELT_KAFKA__COMMON", "{sasl.username: svc, sasl.password: " + SASL_PASSWORD
                       + ", ssl.key.password: " + S3_SECRET + "}")
    monkeypatch.setenv("SNOWMELT_UP__SQL_TOKEN", "sql-" + S3_SECRET)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for secret in (CH_PASSWORD, SASL_PASSWORD, S3_SECRET):
        assert secret not in out
    assert "url: https://admin:***@ch.internal:8443" in out and "sasl.username: svc" in out
    assert "macro_token: ${SP_NUID}" in out  # a placeholder, not a secret
    assert out.count("'***'") == 4  # clickhouse.password, sasl.password, ssl.key.password, up.sql_token


@pytest.mark.parametrize("password", ["0123", "yes", "null", "1e3", "[x]", "{a: b}", "#!x", ""])
def test_a_secret_from_the_environment_stays_the_text_it_was(password):
    cfg = load_config(None, env={"SNOWMELT_CLICKHOUSE__PASSWORD": password, "SNOWMELT_UP__SQL_TOKEN": password,
                                 "SNOWMELT_COLLECTOR__PORT": "9091"})
    assert cfg.clickhouse.password == password and cfg.up.sql_token == password
    assert cfg.collector.port == 9091  # other keys are still read as YAML
