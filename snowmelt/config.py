"""Typed, frozen configuration, built once at start-up and passed down.

One YAML file configures every role.  Each top-level key is a *section*
(``kafka``, ``topics``, ``collector``); every key of every section, nested ones
included, may be overridden from the environment as
``SNOWMELT_<SECTION>__<KEY>[__<SUBKEY>...]`` (upper or lower case).  An
environment value of a text key is taken as it is (a password ``0123`` stays
``0123``); any other is read as a YAML scalar or flow collection, so
``SNOWMELT_COLLECTOR__PORT=9090``, ``SNOWMELT_COLLECTOR__COOKIE__SECURE=false``
and ``SNOWMELT_COLLECTOR__REDIRECT__ALLOWED_DOMAINS='[a.com, b.com]'`` all do
what they say.  A variable whose last part ends in ``_FILE`` names a file whose
text is the value of the key without the suffix
(``SNOWMELT_CLICKHOUSE__PASSWORD_FILE=/run/secrets/clickhouse``), for secrets
mounted as files.

The dataclasses below are the single source of truth for keys, types and
defaults.  ``snowmelt/reference.yml`` documents every key with its default;
``tests/unit/test_config.py`` asserts that the two agree, so neither can drift.
An unknown key, or a value of the wrong type, is refused with a message that
names the key.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import logging
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

log = logging.getLogger("snowmelt.config")

ENV_PREFIX = "SNOWMELT_"
REFERENCE_CONFIG = Path(__file__).with_name("reference.yml")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


# --------------------------------------------------------------------------- sections


def _frozen_empty() -> Mapping[str, Any]:
    return types.MappingProxyType({})


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "localhost:9092"
    client_id: str = "snowmelt"
    # Largest record the producer sends; larger payloads become size_violation
    # bad rows.  Keep it at or below the topic's max.message.bytes.
    max_message_bytes: int = 1_000_000
    # Extra librdkafka settings for every client (security.protocol, sasl.*, ssl.*).
    common: Mapping[str, Any] = field(default_factory=_frozen_empty)
    # Extra librdkafka settings for producers only.
    producer: Mapping[str, Any] = field(default_factory=_frozen_empty)
    # Extra librdkafka settings for the loaders' consumers only.
    consumer: Mapping[str, Any] = field(default_factory=_frozen_empty)


@dataclass(frozen=True)
class TopicsConfig:
    raw: str = "snowplow-raw"
    bad: str = "snowplow-bad"
    enriched: str = "snowplow-enriched"
    # When set, enrich also writes each good event as analytics-SDK JSON here.
    enriched_json: str = ""


@dataclass(frozen=True)
class CookieConfig:
    enabled: bool = True
    name: str = "sp"
    expiration_days: int = 365
    # Cookie domains; the first one that the request's Origin host ends with wins.
    domains: tuple[str, ...] = ()
    # Used when no configured domain matches the Origin; empty means no Domain attribute.
    fallback_domain: str = ""
    secure: bool = True
    http_only: bool = True
    same_site: str = "None"


@dataclass(frozen=True)
class DoNotTrackCookieConfig:
    enabled: bool = False
    name: str = ""
    # A regular expression matched against the whole cookie value.
    value: str = ""


@dataclass(frozen=True)
class CookieBounceConfig:
    enabled: bool = False
    name: str = "n3pc"
    fallback_network_user_id: str = "00000000-0000-4000-A000-000000000000"
    # Header carrying the original scheme when behind a TLS-terminating proxy.
    forwarded_protocol_header: str = ""


@dataclass(frozen=True)
class RedirectConfig:
    # /r/tp2 redirects only when enabled and the target host is allowed.
    enabled: bool = False
    # Allowed target domains; a target matches a domain or any of its subdomains.  Empty
    # (the default) allows none: every target is refused, even with enabled true.  Only
    # absolute http(s) URLs are followed (no javascript:, data:, //host or user info).
    allowed_domains: tuple[str, ...] = ()
    # Replace this token in the target with the network user id.
    macro_enabled: bool = True
    macro_token: str = "${SP_NUID}"


@dataclass(frozen=True)
class RootResponseConfig:
    enabled: bool = False
    status_code: int = 302
    headers: Mapping[str, str] = field(default_factory=_frozen_empty)
    body: str = ""


@dataclass(frozen=True)
class CrossDomainConfig:
    enabled: bool = False
    domains: tuple[str, ...] = ("*",)
    secure: bool = True


@dataclass(frozen=True)
class CollectorConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    # Written in every payload's `collector` field (v_collector downstream);
    # empty means "snowmelt-<version>-kafka".
    name: str = ""
    # "acked": a 2xx means the broker acknowledged the payload.
    # "buffered": a 2xx means the payload is in the bounded producer buffer.
    delivery: str = "acked"
    # Seconds an acked request waits for the broker before answering 503.
    produce_timeout: float = 10.0
    # Bound of the producer buffer, in messages and in KiB.
    buffer_max_messages: int = 100_000
    buffer_max_kbytes: int = 262_144
    # How the raw record is keyed: "random" (a UUID) or "ip".
    partition_key: str = "random"
    # A request body over this many bytes gets 413 and is not recorded.
    drop_payload_size: int = 2 * 1024 * 1024
    # A payload over this (or over kafka.max_message_bytes) becomes a size_violation bad row.
    max_payload_size: int = 1024 * 1024
    cors_max_age: int = 3600
    # Origins whose pages may read the answers (CORS): exact origins ("https://shop.acme.com")
    # or a subdomain wildcard ("https://*.acme.com"). Empty (the default, as Snowplow's
    # collector does): every Origin is echoed. A request from another origin is still
    # recorded; its answer carries no Access-Control-Allow-Origin, so the browser hides it
    # and refuses credentialed preflighted requests.
    cors_allowed_origins: tuple[str, ...] = ()
    # Extra paths served as another route: {"/com.acme/track": "/com.snowplowanalytics.snowplow/tp2"}.
    # Targets: /com.snowplowanalytics.snowplow/tp2, /r/tp2, /com.snowplowanalytics.iglu/v1.
    paths: Mapping[str, str] = field(default_factory=_frozen_empty)
    robots_txt: bool = True
    p3p_policy_ref: str = "/w3c/p3p.xml"
    p3p_cp: str = "NOI DSP COR NID PSA OUR IND COM NAV STA"
    # Seconds between broker reachability probes for /sink-health.
    health_probe_interval: float = 5.0
    # Seconds SIGTERM waits for in-flight requests and the producer to drain.
    shutdown_grace: float = 30.0
    # Seconds a client has to send a complete request head (from the connection's opening
    # or its previous answer; an idle keep-alive connection is closed after it) and, once the
    # head is in, the request's body (else 408 and the connection is closed).
    read_timeout: float = 60.0
    cookie: CookieConfig = field(default_factory=CookieConfig)
    do_not_track_cookie: DoNotTrackCookieConfig = field(default_factory=DoNotTrackCookieConfig)
    cookie_bounce: CookieBounceConfig = field(default_factory=CookieBounceConfig)
    redirect: RedirectConfig = field(default_factory=RedirectConfig)
    root_response: RootResponseConfig = field(default_factory=RootResponseConfig)
    crossdomain: CrossDomainConfig = field(default_factory=CrossDomainConfig)


@dataclass(frozen=True)
class EnrichConfig:
    # Consumer group of the enrich workers on the raw topic.
    group_id: str = "snowmelt-enrich"
    # Most raw records in a batch: a batch is what one fetch from a partition returns, so under load
    # batches fill up to this and at a low rate a batch is what arrived while the fetch waited.
    batch_size: int = 500
    # Batches whose output may await the broker's acknowledgement while the next ones
    # are enriched (their offsets are committed only once acknowledged, in order).
    max_batches_in_flight: int = 4
    # Seconds between commits of the offsets whose output the broker acknowledged.
    commit_interval: float = 2.0
    # A fetch waits at the broker until it holds fetch_min_bytes of raw records or fetch_max_wait
    # seconds have passed: below saturation, batches of what arrived in that time instead of a
    # fetch, a batch and a produce request for each record or two.
    fetch_min_bytes: int = 1 << 20
    fetch_max_wait: float = 0.1
    # Seconds without a heartbeat after which a worker is dropped from the group and
    # its partitions move to the others (what a kill -9 costs before they resume). 6 is the
    # broker's default minimum (group.min.session.timeout.ms).
    session_timeout: float = 6.0
    # Snowplow resolver-config JSON file; empty means the shipped schemas + Iglu Central.
    resolver: str = ""
    # Folder of Snowplow enrichment configs (*.json); empty means no enrichments.
    enrichments: str = ""
    # Remote adapters: webhooks for other vendor/version paths handled by an HTTP service,
    # as [{vendor, version, url, timeout_seconds}] (Snowplow's remoteAdapters).
    remote_adapters: tuple[Mapping[str, Any], ...] = ()
    # Where a group without committed offsets starts: "earliest" or "latest".
    auto_offset_reset: str = "earliest"
    # Prometheus /metrics on this address and port; port 0 turns it off.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 0
    # Seconds SIGTERM waits for the batch in hand to be written and committed.
    shutdown_grace: float = 30.0
    # Seconds a partition may have records waiting, no batch in hand and no commit, or the
    # worker's consumer be outside its consumer group (the broker describing the group at rest
    # without it), before the worker logs where it is and exits with status 4 (a stall: its
    # supervisor restarts it and nothing is lost); 0 turns it off.
    stall_timeout: float = 120.0
    # at_least_once: output acknowledged, then offsets committed (a crash repeats output);
    # exactly_once: each group of batches' output and its raw offsets in one Kafka transaction.
    processing_guarantee: str = "at_least_once"
    # exactly_once: the producer's transactional.id; one per worker, the same across its restarts
    # (a restart with it aborts the dead worker's open transaction at once). Empty means
    # "<group_id>-<host name>" (a StatefulSet pod's name is stable).
    transactional_id: str = ""
    # exactly_once: seconds the broker lets a transaction stay open; a worker that dies and does not
    # come back under its transactional_id holds back read_committed consumers this long.
    transaction_timeout: float = 30.0


@dataclass(frozen=True)
class IgluConfig:
    # The local schema cache: the folder `snowmelt schemas pull` fills from Iglu registries,
    # read by the resolver of `enrich` and `up` after the shipped schemas and before any
    # HTTP registry. Empty means $XDG_CACHE_HOME/snowmelt/iglu (~/.cache/snowmelt/iglu).
    cache_dir: str = ""


@dataclass(frozen=True)
class UpConfig:
    # `snowmelt up`: collector, enrichment and the Snowplow Micro API in one process.
    # The one port it serves (tracking routes and /micro/*) on collector.host.
    port: int = 9090
    # Enriched TSV goes to <data_dir>/enriched/YYYY-MM-DD.tsv, bad rows to <data_dir>/bad/YYYY-MM-DD.jsonl.
    data_dir: str = "./snowmelt-data"
    # Bound of the queue between collector and enrichment (raw records + bad rows);
    # when it is full the collector answers 503 and trackers retry.
    queue_max_records: int = 10_000
    # ... and in bytes of raw records, counted until their output is written.
    queue_max_bytes: int = 64 * 1024 * 1024
    # Resident memory (MB) of the process: over 90 % of it the collector answers 503 until it
    # falls again (0 turns the check off).
    memory_limit_mb: int = 2048
    # Write-ahead log under <data_dir>/wal: each request's records are appended to it before the
    # 2xx, replayed on start, trimmed once their output is in the files.  false: a 2xx means the
    # request is in memory only (a crash loses what is queued).
    wal: bool = True
    # always: fsync each group of requests before answering (survives a power cut);
    # interval: answer once written, fsync every wal_fsync_interval seconds (survives a crash of
    # the process, a power cut loses up to that interval); never: leave it to the OS.
    wal_fsync: str = "always"
    wal_fsync_interval: float = 1.0
    # Size (MB) at which a log segment is closed; closed segments are deleted once processed.
    wal_segment_mb: int = 64
    # Raw records enriched (and written, flushed) per batch.
    batch_size: int = 100
    # Enrich in a process of its own, so that enriching never holds up answering trackers;
    # false runs the stage on a thread of the serving process (less memory, one core).
    enrich_process: bool = True
    # Good events and bad rows each kept in memory for the /micro API (the most recent).
    max_events: int = 10_000
    # Snowplow resolver-config JSON file; empty means the shipped schemas + Iglu Central.
    resolver: str = ""
    # Folder of Snowplow enrichment configs (*.json); "standard" is the shipped set
    # (processor/enrichments/standard.py), "none" or empty means no enrichments.
    enrichments: str = "standard"
    # Remote adapters, as enrich.remote_adapters.
    remote_adapters: tuple[Mapping[str, Any], ...] = ()
    # The store: events and bad rows also go to ClickHouse's engine (chdb) under
    # <data_dir>/clickhouse and to S3-layout files under <data_dir>/s3 (s3.format),
    # written every store_interval seconds; false keeps only the daily files.
    store: bool = True
    store_interval: float = 1.0
    # SQL over HTTP in ClickHouse's dialect on this address and port (0 turns it off):
    # clickhouse-connect, Grafana and curl query the store. Read-only unless sql_readonly
    # is false; when sql_token is set every request must carry it.
    sql_host: str = "127.0.0.1"
    sql_port: int = 8123
    sql_readonly: bool = True
    sql_token: str = ""
    # The /micro API (reset included) and the dashboard's data answer clients on the loopback
    # interface (without proxy headers); any other client gets 403 while api_token is empty,
    # and must send "Authorization: Bearer <api_token>" (or X-Snowmelt-Token) once it is set.
    api_token: str = ""
    # Seconds between progress log lines; 0 turns them off.
    progress_interval: float = 5.0


@dataclass(frozen=True)
class ApiConfig:
    # The browser-facing surfaces: the SQL endpoints (up.sql_port, clickhouse.sql_port),
    # snowmelt up's /micro API and its dashboard.  They answer a request only when its Host
    # header is localhost, an IP address or one of these names (DNS-rebinding protection):
    # list the names users type to reach them from other machines.
    public_hosts: tuple[str, ...] = ()
    # Limits on every statement of a SQL endpoint; a client may lower them, never raise them.
    # Seconds a statement may run (it holds the engine the loader writes through meanwhile).
    sql_max_execution_time: float = 10.0
    # Bytes of memory a statement may use, and bytes its result may hold.
    sql_max_memory_usage: int = 1_000_000_000
    sql_max_result_bytes: int = 64 * 1024 * 1024
    # Bytes of query text (URL and body); a longer request is refused before it is read whole.
    sql_max_query_size: int = 262_144
    # Statements waiting for the engine beyond the running one; more are answered 503.
    sql_max_queued: int = 4


@dataclass(frozen=True)
class LoadConfig:
    # `snowmelt load clickhouse|s3`: each loader kind is its own consumer group on the
    # enriched and bad topics; run as many processes of a kind as the topics have partitions.
    clickhouse_group_id: str = "snowmelt-load-clickhouse"
    s3_group_id: str = "snowmelt-load-s3"
    # A partition's batch is written when it holds batch_size records or is batch_timeout
    # seconds old; its offsets are committed only after the write succeeded.
    batch_size: int = 50_000
    batch_timeout: float = 5.0
    # Where a group without committed offsets starts: "earliest" or "latest".
    auto_offset_reset: str = "earliest"
    # Store down or slow: consumption pauses and the batch is retried with exponential
    # backoff from retry_initial up to retry_max seconds, for ever (nothing is dropped).
    retry_initial: float = 0.5
    retry_max: float = 30.0
    # Seconds SIGTERM waits for the batches in hand to be written and committed.
    shutdown_grace: float = 30.0
    # Before each write the batch's offset range is committed as a write intent (the
    # committed offset's metadata); after a crash the next owner cuts that batch again
    # exactly, so the rewrite has the same token and replaces the first. false: one
    # synchronous commit less per batch, and a batch cut by time, shutdown or rebalance
    # may be written twice under different tokens after a crash (at least once).
    exactly_once: bool = True
    # Seconds the loader's consumer may be outside its consumer group (the broker describing the
    # group at rest without it), or the loader hold records with nothing committed while the store
    # and the broker answer, or a partition it holds have records past its committed offset with
    # none of them committed (each plus batch_timeout), before it logs that with its stacks and
    # exits with status 4 (a stall: its supervisor restarts it and nothing is lost); 0 turns it off.
    stall_timeout: float = 120.0
    # Prometheus /metrics on this address and port; port 0 turns it off.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 0


@dataclass(frozen=True)
class ClickHouseConfig:
    # "server": clickhouse-connect over HTTP(S) to `url`; "chdb": ClickHouse's engine
    # in-process, its data under `chdb_path` (one process may open a folder at a time).
    backend: str = "server"
    # http(s)://user:password@host:8123 ; the password may instead come from
    # SNOWMELT_CLICKHOUSE__PASSWORD.
    url: str = "http://localhost:8123"
    username: str = "default"
    password: str = ""
    database: str = "snowplow"
    chdb_path: str = "./snowmelt-data/clickhouse"
    # Rows older than this many days (by collector_tstamp) are dropped; 0 keeps them for ever.
    ttl_days: int = 0
    # Compression of inserts to the server: lz4, zstd or none.
    compression: str = "lz4"
    # TLS (https URLs): verify the server's certificate, against ca_cert (a PEM file) when set.
    verify: bool = True
    ca_cert: str = ""
    # `snowmelt load clickhouse` with the chdb backend holds its folder alone: it can serve
    # read-only SQL over HTTP in ClickHouse's dialect on sql_host:sql_port (0 turns it off;
    # chdb only). When sql_token is set every request must carry it.
    sql_host: str = "127.0.0.1"
    sql_port: int = 0
    sql_token: str = ""


@dataclass(frozen=True)
class S3Config:
    # "s3": AWS S3 or any S3-compatible store; "local": files under local_dir (snowmelt up).
    backend: str = "s3"
    bucket: str = ""
    prefix: str = "snowplow"
    # Objects go to {prefix}/{kind}/date=YYYY-MM-DD/hour=HH/ (kind: enriched or bad).
    partition_layout: str = "{prefix}/{kind}/date={date}/hour={hour}"
    # Enriched events as gzip TSV (Snowplow's S3 loader format) or Parquet; bad rows are gzip NDJSON.
    format: str = "tsv"
    # Empty: AWS. Otherwise the store's URL (SeaweedFS, MinIO, ...).
    endpoint_url: str = ""
    region: str = "us-east-1"
    path_style: bool = False
    # Credentials come from the usual AWS sources (AWS_ACCESS_KEY_ID, profiles, roles).
    local_dir: str = "./snowmelt-data/s3"
    # Uploads larger than this many bytes are sent in parts of this size.
    multipart_threshold: int = 16 * 1024 * 1024
    # Seconds to connect and to wait for an answer, and attempts per request, before the
    # store counts as unavailable (the loader then pauses and retries the batch).
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    # TLS (https endpoints, AWS): verify the store's certificate, against ca_bundle (a PEM
    # file) when set.
    verify: bool = True
    ca_bundle: str = ""


@dataclass(frozen=True)
class ModelsConfig:
    # The page_views, sessions and users models, kept up to date from `events`.
    # A page view's engaged time is heartbeat * (distinct ping buckets - 1) + min_visit_length.
    # The heartbeat (activity tracking's heartbeatDelay) is read off the page view's pings (their
    # shortest spacing); `heartbeat` is used for a page view with fewer than two pings.
    # `min_visit_length` is the trackers' minimumVisitLength (seconds before the first ping).
    heartbeat: int = 10
    min_visit_length: int = 5
    # A session with at least this many engaged seconds (or two page views) is engaged.
    engaged_seconds: int = 10
    # Seconds between refreshes of the models (each refresh recomputes what changed since
    # its watermark); events arriving up to `late_seconds` after their time are included.
    refresh_interval: float = 5.0
    late_seconds: int = 3600


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    # "text" or "json"
    format: str = "text"


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    up: UpConfig = field(default_factory=UpConfig)
    iglu: IgluConfig = field(default_factory=IgluConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    load: LoadConfig = field(default_factory=LoadConfig)
    clickhouse: ClickHouseConfig = field(default_factory=ClickHouseConfig)
    s3: S3Config = field(default_factory=S3Config)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


_CHOICES = {
    ("collector", "delivery"): ("acked", "buffered"),
    ("up", "wal_fsync"): ("always", "interval", "never"),
    ("collector", "partition_key"): ("random", "ip"),
    ("collector", "cookie", "same_site"): ("None", "Lax", "Strict"),
    ("enrich", "auto_offset_reset"): ("earliest", "latest"),
    ("enrich", "processing_guarantee"): ("at_least_once", "exactly_once"),
    ("load", "auto_offset_reset"): ("earliest", "latest"),
    ("clickhouse", "backend"): ("server", "chdb"),
    ("clickhouse", "compression"): ("lz4", "zstd", "none"),
    ("s3", "backend"): ("s3", "local"),
    ("s3", "format"): ("tsv", "parquet"),
    ("logging", "format"): ("text", "json"),
}


# --------------------------------------------------------------------------- building


def load_config(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (YAML; optional), apply ``SNOWMELT_*`` overrides, validate, freeze."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must be a mapping of sections")
        raw = loaded
    apply_env_overrides(raw, os.environ if env is None else env)
    return build(Config, raw, ())


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Merge ``SNOWMELT_SECTION__KEY[__SUB]`` variables into ``raw`` in place."""
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if not all(parts):
            raise ConfigError(f"malformed override variable {name}")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(parts[:-1])} is not a section")
            node = child
        if parts[-1].endswith("_file") and len(parts[-1]) > 5:
            # SNOWMELT_CLICKHOUSE__PASSWORD_FILE=/run/secrets/pw: the key's value is the file's
            # text (one trailing newline dropped), taken as is, never parsed as YAML
            try:
                text = Path(value).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{name}: cannot read {value}: {exc.strerror}") from None
            node[parts[-1][:-5]] = text[:-1] if text.endswith("\n") else text
            continue
        if _is_string_key(parts):
            node[parts[-1]] = value  # a password like 0123 or yes stays the text it is
            continue
        try:
            node[parts[-1]] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"{name}: cannot parse value {value!r}: {exc}") from exc


def _is_string_key(parts: list[str]) -> bool:
    """True when ``parts`` name a plain ``str`` key of :class:`Config` (its environment value is not YAML)."""
    cls: Any = Config
    for part in parts:
        if not dataclasses.is_dataclass(cls):
            return False
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return False
        cls = hints[part]
    return cls is str


#: Keys that no longer mean anything: a config that still sets one loads, with a warning saying why.
RETIRED = {
    "enrich.batch_timeout": "a batch is what one fetch from a partition returns (at most enrich.batch_size "
                            "records), enriched as soon as the fetch returns (enrich.fetch_max_wait)",
}


def build(cls: type, raw: Any, where: tuple[str, ...]):
    """Build dataclass ``cls`` from a mapping, checking keys and types."""
    label = ".".join(where) or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    kept = {}
    for name, value in raw.items():
        key = ".".join(where + (str(name),))
        if key in RETIRED:
            log.warning("%s is no longer used and is ignored: %s", key, RETIRED[key])
        else:
            kept[name] = value
    raw = kept
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key {'.'.join(where + (unknown[0],))} (known: {', '.join(sorted(known))})")
    values = {}
    for name in known & set(raw):
        values[name] = _coerce(hints[name], raw[name], where + (name,))
    return cls(**values)


def _coerce(hint: Any, value: Any, where: tuple[str, ...]):
    key = ".".join(where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = str(value)
            choices = _CHOICES.get(where)
            if choices and value not in choices:
                raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item_hint, _ellipsis) = typing.get_args(hint)
        return tuple(_coerce(item_hint, v, where + (str(i),)) for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict) or hint is Mapping:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        args = typing.get_args(hint)
        if args and args[1] is str:
            return types.MappingProxyType({str(k): str(v) for k, v in value.items()})
        return types.MappingProxyType({str(k): v for k, v in value.items()})
    if hint is Any:
        return value
    raise ConfigError(f"{key}: unsupported type {hint!r}")  # pragma: no cover - programming error


def as_dict(obj: Any) -> Any:
    """Plain-data view of a config (for printing and comparing with reference.yml)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: as_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [as_dict(v) for v in obj]
    return obj


#: Keys whose values are secrets: shown as ``***`` by :func:`redacted` (``snowmelt config``).
SECRET_KEY = re.compile(r"(password|(?<!macro_)token|secret|sasl\.oauthbearer\.config)$", re.IGNORECASE)


def redacted(data: Any) -> Any:
    """:func:`as_dict` output with secret values replaced by ``***`` and passwords in URLs hidden."""
    if isinstance(data, dict):
        return {k: "***" if isinstance(k, str) and SECRET_KEY.search(k) and data[k] not in ("", None)
                else redacted(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redacted(v) for v in data]
    if isinstance(data, str) and "://" in data and "@" in data:
        return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", data)
    return data


def consumer_settings(kafka: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings for a consumer: common + consumer sections over ``overrides``."""
    settings: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
    }
    settings.update(overrides)
    settings.update(kafka.common)
    settings.update(kafka.consumer)
    return settings


def producer_settings(kafka: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings for a producer: common + producer sections, then ``overrides``.

    ``overrides`` are the settings a role needs for its delivery guarantee;
    the user's ``kafka.producer`` section may still tighten them.
    """
    settings: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
        "message.max.bytes": max(kafka.max_message_bytes + 4096, 1_000_000),
    }
    settings.update(overrides)
    settings.update(kafka.common)
    settings.update(kafka.producer)
    return settings


def schema_cache_dir(config: "Config") -> str:
    """The folder of the local schema cache: ``iglu.cache_dir``, else the default location."""
    if config.iglu.cache_dir:
        return str(Path(config.iglu.cache_dir).expanduser())
    from processor.iglu import default_schema_cache
    return str(default_schema_cache())
