"""The enrichment stage: one raw record in, enriched TSV lines and bad rows out.

``Enricher.enrich(raw)`` is a plain function of the record (no Kafka, no I/O but
Iglu schema look-ups, which are cached).  It never raises on bad input:

1. decode the Thrift ``CollectorPayload`` (``ext``) -- a record that is not one,
   whose encoding Java does not know, whose path names no adapter shape or whose
   network user id is no UUID is a ``collector_payload_format_violation``;
2. adapt it into tracker-protocol events (``processor.adapters``) -- failures
   are ``adapter_failures`` / ``tracker_protocol_violations``;
3. set what the request gives (event_id, v_collector, IP -- from the
   forwarding headers first, ``processor.client_ip`` --, user agent,
   network_userid, timestamps), then map each event's parameters to atomic
   fields (``processor.protocol``), which may override it -- bad values are
   ``enrichment_failures`` of ``InputData`` messages, as in Snowplow's enrich
   3.9.0;
4. validate ``unstruct_event`` and every context, envelopes included, with
   Iglu (``processor.iglu``) -- failures are ``schema_violations``;
5. derive the timestamps, URL parts and event vendor/name/version;
6. check that v_collector is set (``cv=`` clears it) and run the configured
   enrichments in Snowplow's order (``processor.enrichments``), with, before
   the scripts and SQL/API requests, Snowplow's check that the event type has
   a schema (no ``e``, or ``e=ad``, fails there), validating the entities they
   attach -- failures are ``enrichment_failures``;
7. check each atomic field against Snowplow's length limits -- failures are
   ``enrichment_failures`` naming each field, as Snowplow's
   ``AtomicFieldsLengthValidator`` writes them;
8. write the event as Snowplow's enriched TSV (``processor.enriched``), then
   any extra event an enrichment emitted.

Every expected failure is data here; an unexpected exception is the
worker's to catch, which writes a ``generic_error`` bad row for the record.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from itertools import compress, repeat
from operator import is_not
from typing import Callable

import ext
from ext.javanum import YEAR_0_MS, YEAR_9999_END_MS, joda_timestamp
from processor import badrows
from processor.adapters import ADAPTER_FAILURES, CPFV, Adapted, adapt
from processor.client_ip import extract_ip_address
from processor.event_ids import random_uuid
from processor import jsontext
from processor.enriched import (FIELDS, EnrichedEvent, atomic_length_errors, field_values, new_event, to_tsv,
                                tsv_row)
from processor.enrichments import AFTER_VALIDATION, ORDER, Deferred, Enrichment, EnrichmentFailure, EventContext
from processor.enrichments.cross_navigation import set_cross_domain, sp_from_query
from processor.joda_period import SHORTEST_MONTH, minus_period_between
from processor.iglu import Resolver, SchemaCriterion, parse_schema_key
from processor.protocol import first_ip, map_parameters, scala_map_order
from processor.string_to_uri import read_url
from snowmelt import __version__

ETL_VERSION = f"snowmelt-{__version__}"
COLLECTOR_PAYLOAD_CRITERION = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-"
CONTEXTS_CRITERION = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-*"
UNSTRUCT_CRITERION = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-*"
SCHEMA_VIOLATIONS = f"iglu:{badrows.BADROWS_VENDOR}/schema_violations/jsonschema/2-0-1"
ENRICHMENT_FAILURES = f"iglu:{badrows.BADROWS_VENDOR}/enrichment_failures/jsonschema/2-0-1"


def collector_tstamp_error(ms: int) -> dict:
    """3.9.0's ``formatCollectorTstamp`` message for a collector timestamp outside years 0 to 9999."""
    text = joda_timestamp(ms)
    return {"field": "collector_tstamp", "value": text.replace(" ", "T") + "Z",
            "expectation": f"formatted as {text} is not Redshift-compatible"}


# event code -> (vendor, name, format, version) of the standard events
STANDARD_EVENTS = {
    "page_view": ("com.snowplowanalytics.snowplow", "page_view", "jsonschema", "1-0-0"),
    "page_ping": ("com.snowplowanalytics.snowplow", "page_ping", "jsonschema", "1-0-0"),
    "struct": ("com.google.analytics", "event", "jsonschema", "1-0-0"),
    "transaction": ("com.snowplowanalytics.snowplow", "transaction", "jsonschema", "1-0-0"),
    "transaction_item": ("com.snowplowanalytics.snowplow", "transaction_item", "jsonschema", "1-0-0"),
}
# The step of Snowplow's enrich 3.9.0 that names the event's schema (SchemaEnrichment.extractSchema) fails for
# any other event type: no ``e`` (event null), and ``e=ad`` (ad_impression, which it has no schema for).  The
# expectation is a Scala multi-line string literal, its line break and indentation included.
UNKNOWN_EVENT_TYPE = ("trying to extract the schema of the enriched event but event type [{}] doesn't match\n"
                      "          any of page_view, page_ping, struct, transaction, transaction_item and unstruct\n"
                      "          ")
# the steps that run after the event's schema is extracted (EnrichmentManager.accState, the default order)
AFTER_SCHEMA_STEP = frozenset({"javascript_script_config", "python_script_config", "sql_query_enrichment_config",
                               "api_request_enrichment_config"})


@dataclass
class StageOutput:
    """What one raw record became.

    ``payload`` is the decoded CollectorPayload (None when the record was not
    one); ``vendor``/``version`` name its adapter; ``sources[i]`` are the
    tracker-protocol parameters ``good[i]`` was enriched from and
    ``event_ids[i]`` its event_id (the key of its Kafka record).
    """

    good: list[str] = field(default_factory=list)
    bad: list[bytes] = field(default_factory=list)
    payload: object = None
    vendor: str | None = None
    version: str | None = None
    sources: list[dict] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)


#: the failures of the steps that derive fields: (getPageUri's, getRefererUri's, getCrossDomain's), each an
#: enrichment failure message or None
DerivedFailures = tuple[dict | None, dict | None, dict | None]


def _enriched_types() -> dict[str, str]:
    """Field -> JSON type ("integer", "number", "string") of a schema_violations payload's enriched event."""
    path = resources.files("schemas").joinpath(SCHEMA_VIOLATIONS.removeprefix("iglu:"))
    schema = json.loads(path.read_text(encoding="utf-8"))
    props = schema["properties"]["payload"]["properties"]["enriched"]["properties"]
    out = {}
    for name, spec in props.items():
        types = spec.get("type", [])
        types = [types] if isinstance(types, str) else types
        out[name] = next((t for t in ("integer", "number") if t in types), "string")
    return out


# what happens before a step of the stage's plan (Enricher._plan): Snowplow's extractSchemaFields, the
# JavaScript enrichment seeing the entities so far, the first step after which nothing reads the event, and
# Snowplow's getCrossDomain (after campaign_attribution)
_SCHEMA_STEP, _SCRIPT_STEP, _DEFER_FROM, _CROSS_DOMAIN_STEP, _REFERER_STEP = 1, 2, 4, 8, 16
#: the enrichments that run after Snowplow's getCrossDomain step
_AFTER_CROSS_DOMAIN = frozenset(ORDER[ORDER.index("campaign_attribution") + 1:])
#: the enrichments that run from Snowplow's getRefererUri step on (it parses the referrer for referer_parser)
_FROM_REFERER = frozenset(ORDER[ORDER.index("referer_parser"):])

#: Seconds a batch may spend waiting for schemas from HTTP repositories (see :meth:`Enricher.batch`).
LOOKUP_BUDGET_SECONDS = 2.0


class Enricher:
    """The stage, bound to an Iglu resolver and a clock."""

    def batch(self, budget: float = LOOKUP_BUDGET_SECONDS):
        """A block in which the records of one batch are enriched: schema look-ups over HTTP share
        ``budget`` seconds; past it, an event whose schema is not cached is a bad row
        (``ResolutionError``) and the schema is looked up in the background for later events
        (:meth:`processor.iglu.Resolver.time_budget`)."""
        return self.resolver.time_budget(budget)

    def __init__(self, resolver: Resolver | None = None, clock: Callable[[], float] = time.time,
                 enrichments: list[Enrichment] | tuple[Enrichment, ...] = ()):
        self.resolver = resolver if resolver is not None else Resolver.default()
        self.clock = clock
        self.enrichments = tuple(enrichments)
        # Snowplow's steps, then what runs after the derived entities are validated (anon_ip, PII)
        self._steps = tuple(e for e in self.enrichments if e.name not in AFTER_VALIDATION)
        # where the event's schema is extracted among them: before the scripts and the SQL/API requests
        self._schema_step = next((i for i, e in enumerate(self._steps) if e.name in AFTER_SCHEMA_STEP),
                                 len(self._steps))
        # the first step after which no step reads the event's atomic fields (the scripts, SQL and API
        # requests do): from there an enrichment may defer a costly value to when the event is written
        self._defer_from = max((i + 1 for i, e in enumerate(self._steps) if e.name in AFTER_SCHEMA_STEP), default=0)
        # each step with what happens before it (_SCHEMA_STEP, _SCRIPT_STEP, _DEFER_FROM, _CROSS_DOMAIN_STEP,
        # _REFERER_STEP; most steps none)
        cross_domain_step = next((i for i, e in enumerate(self._steps) if e.name in _AFTER_CROSS_DOMAIN), None)
        referer_step = next((i for i, e in enumerate(self._steps) if e.name in _FROM_REFERER), None)
        self._plan = tuple((e, (_SCHEMA_STEP if i == self._schema_step else 0)
                               | (_SCRIPT_STEP if e.name == "javascript_script_config" else 0)
                               | (_DEFER_FROM if i == self._defer_from else 0)
                               | (_CROSS_DOMAIN_STEP if i == cross_domain_step else 0)
                               | (_REFERER_STEP if i == referer_step else 0))
                           for i, e in enumerate(self._steps))
        self._after_validation = tuple(e for e in self.enrichments if e.name in AFTER_VALIDATION)
        self._unstruct_criterion = SchemaCriterion.parse(UNSTRUCT_CRITERION)
        self._contexts_criterion = SchemaCriterion.parse(CONTEXTS_CRITERION)
        self._enriched_types = _enriched_types()
        # per field of the TSV, in order: how a partial event reads it back (int, float or as text)
        kinds = {"integer": int, "number": float}
        self._partial_readers = tuple((name, kinds.get(self._enriched_types.get(name, "string")))
                                      for name in FIELDS)

    @classmethod
    def from_files(cls, resolver_path: str | None = None, enrichments_dir: str | None = None,
                   remote_adapters=(), schema_cache: str | None = None) -> "Enricher":
        """The stage as configured by files: Snowplow's resolver config JSON at ``resolver_path``
        (else the shipped schemas + Iglu Central), the enrichment configs in ``enrichments_dir``
        and the remote adapters to register (``[{vendor, version, url, timeout_seconds}]``).
        ``schema_cache`` is the local schema cache folder (``snowmelt schemas pull``), asked
        after the shipped schemas and before the resolver config's registries.

        Raises ``ValueError`` (``ConfigError``, ``ResolverConfigError``) or ``OSError``
        naming the file for a config that cannot be used.
        """
        from pathlib import Path

        from processor.enrichments import load_enrichments

        if resolver_path:
            path = Path(resolver_path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise OSError(f"cannot read the Iglu resolver config {path}: {exc.strerror or exc}") from None
            try:
                resolver = Resolver.from_config(text, base_dir=path.resolve().parent, schema_cache=schema_cache)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
        else:
            resolver = Resolver.default(schema_cache=schema_cache)
        if remote_adapters:
            from processor.webhooks.remote import register_remote_adapters
            register_remote_adapters(remote_adapters)
        return cls(resolver, enrichments=load_enrichments(enrichments_dir, resolver))

    def close(self) -> None:
        """Release what the enrichments hold (files, connections)."""
        for enrichment in self.enrichments:
            enrichment.close()

    # ------------------------------------------------------------------ the stage

    def enrich(self, raw: bytes) -> StageOutput:
        out = StageOutput()
        try:
            payload = ext.decode_collector_payload(raw)
        except ext.ThriftDecodeError as exc:
            out.bad.append(badrows.collector_payload_format_violation(
                raw, {"error": f"not a CollectorPayload: {exc}"[:512]}))
            return out
        if not (payload.schema or "").startswith(COLLECTOR_PAYLOAD_CRITERION):
            out.bad.append(badrows.collector_payload_format_violation(raw, {
                "payloadField": "schema", "value": payload.schema,
                "expectation": COLLECTOR_PAYLOAD_CRITERION + "*"}))
            return out
        if payload.timestamp is None:  # Thrift's Java classes read an absent i64 as 0, which 3.9.0 takes as 1970
            payload.timestamp = 0
        if payload.headers:
            # as Snowplow's ThriftLoader: the forwarding headers give the client's address, the collector's is the fallback
            payload.ip_address = extract_ip_address(payload.headers, payload.ip_address)
        out.payload = payload
        adapted = adapt(payload, self.resolver)
        out.vendor, out.version = adapted.vendor, adapted.version
        if adapted.failure is not None:
            if adapted.failure.kind == CPFV:  # as 3.9.0's loader: a row per message (query string, then path)
                out.bad.extend(badrows.collector_payload_format_violation(raw, message)
                               for message in adapted.failure.messages)
            else:
                out.bad.append(self._adapter_bad_row(raw, payload, adapted))
            return out
        etl_tstamp = int(self.clock() * 1000)
        for i, params in enumerate(adapted.events):
            context = payload if adapted.payloads is None else adapted.payloads[i]
            self._enrich_event(context, adapted, params, etl_tstamp, out)
        return out

    def _adapter_bad_row(self, raw: bytes, payload, adapted: Adapted) -> bytes:
        failure = adapted.failure
        if failure.kind == CPFV:
            return badrows.collector_payload_format_violation(raw, failure.messages[0])
        schema = badrows.ADAPTER_FAILURES if failure.kind == ADAPTER_FAILURES else badrows.TRACKER_PROTOCOL_VIOLATIONS
        return badrows.adapter_bad_row(schema, failure.vendor, failure.version, failure.messages,
                                       badrows.collector_payload_json(payload, failure.vendor, failure.version,
                                                                      adapted.querystring))

    def _enrich_event(self, payload, adapted: Adapted, params: dict, etl_tstamp: int, out: StageOutput) -> None:
        event = new_event()
        # as Snowplow's setupEnrichedEvent: what the request gives first, then the parameters over it (an empty
        # ip, ua, cv or nuid parameter clears the field)
        self._setup(event, payload, etl_tstamp)
        if adapted.collector_tstamp is not None:
            event.collector_tstamp = adapted.collector_tstamp
        errors = map_parameters(params, event)
        if not YEAR_0_MS <= event.collector_tstamp <= YEAR_9999_END_MS:  # what 3.9.0 writes
            errors.insert(0, collector_tstamp_error(event.collector_tstamp))
            event.collector_tstamp = None
        if event.event_id is None:
            # Snowplow's enrich gives every event a random id before it maps the parameters, and a valid eid
            # replaces it: made only where none did, the same ids come out, and a tracker's event (it has an
            # eid) does not pay for one
            event.event_id = random_uuid()
        if errors:
            # as Snowplow's enrich 3.9.0: an enrichment_failures row of InputData messages, with the event as
            # far as it got and this event's own parameters (a batch of N failing events costs N rows of one
            # event each, not N copies of the whole batch)
            messages = [{"enrichment": None, "message": error} for error in errors]
            out.bad.append(self._event_bad_row(ENRICHMENT_FAILURES, event, payload, adapted, params, messages,
                                               sent_json=(event.contexts, event.unstruct_event)))
            return
        # Snowplow's enrich validates the self-describing JSON before it derives the page URL's parts, the
        # derived timestamp and the event's schema fields: its schema_violations rows show the event without them,
        # and its contexts and unstruct_event as the tracker sent them (its own envelopes, compact JSON)
        sent = (event.contexts, event.unstruct_event)
        validation_info: list[dict] = []
        messages = self._validate(event, validation_info)
        if messages:
            out.bad.append(self._event_bad_row(SCHEMA_VIOLATIONS, event, payload, adapted, params, messages,
                                               sent_json=sent))
            return
        derived_failures = self._derive_fields(event, payload)
        emitted: list[EnrichedEvent] = []
        deferred: dict[str, Deferred] = {}
        failures = self._run_enrichments(event, payload, params, emitted, validation_info, deferred,
                                         derived_failures)
        if failures:
            out.bad.append(self._event_bad_row(ENRICHMENT_FAILURES, event, payload, adapted, params, failures,
                                               deferred=deferred))
            return
        values = field_values(event)  # (a deferred value is of a field without a length limit to check)
        messages = self._atomic_lengths(values)
        if messages:
            out.bad.append(self._event_bad_row(ENRICHMENT_FAILURES, event, payload, adapted, params, messages,
                                               deferred=deferred))
            return
        if deferred:
            for name, value in deferred.items():
                setattr(event, name, value.compute())
            values = field_values(event)
        out.good.append(tsv_row(values))
        out.sources.append(params)
        out.event_ids.append(event.event_id)
        for extra in emitted:
            out.good.append(to_tsv(extra))
            out.sources.append(params)
            out.event_ids.append(extra.event_id)

    # ------------------------------------------------------------------ enrichments

    def _run_enrichments(self, event: EnrichedEvent, payload, params: dict, emitted: list,
                         validation_info: list[dict] = (), deferred: dict | None = None,
                         derived_failures: DerivedFailures = (None, None, None)) -> list[dict]:
        """Run every configured enrichment; the ``enrichment_failures`` messages, if any.

        As Snowplow's ``enrichEvent``: the steps run in :data:`processor.enrichments.ORDER`, the first
        checking that v_collector is set (``cv=`` clears it); their failures are prepended as the steps run,
        so that one comes last, and so are their entities, so ``derived_contexts`` holds the last step's
        entities first (each step's own in its order).  Before the scripts and the SQL/API requests comes
        Snowplow's ``extractSchemaFields`` step (:meth:`_check_event_type`).  When a step fails, the row shows
        the event without derived contexts -- but for the entities of the steps before the JavaScript
        enrichment, which Snowplow writes into the event for the script.  Then the entities are validated (a
        failure shows the event with them), followed by ``validation_info`` (which superseded schemas the input
        was validated against, not validated); only then do anon_ip and PII pseudonymisation run, so every step
        sees the full address.  A step after which nothing reads the event may put values in ``deferred``
        (field -> :class:`Deferred`) that are computed only when the event is written.  ``derived_failures`` are
        the failures of Snowplow's steps that derive fields (:meth:`_derive_fields`): ``getPageUri``, right after
        the collector version's check, ``getRefererUri``, just before referer_parser, and ``getCrossDomain``,
        after campaign_attribution."""
        # no enrichment configured: nothing reads a context, and none is made
        ctx = EventContext(payload, params) if self.enrichments else None
        if deferred is not None and ctx is not None:
            ctx.deferred = deferred
        collector_version_unset = not event.v_collector
        step_failures: list[list[dict]] = []  # each failing step's messages, in the order the steps ran
        if collector_version_unset:
            step_failures.append([{"enrichment": None, "message": {
                "field": "v_collector", "value": None, "expectation": "should be set"}}])
        page_uri, referer_uri, cross_domain = derived_failures
        if page_uri is not None:
            step_failures.append([page_uri])
        groups: list[list[dict]] = []  # each step's entities
        before_script = None  # the entities of the steps before the JavaScript enrichment, when it ran
        defers = deferred is not None
        derived = None
        if ctx is not None:
            derived = ctx.derived
            ctx.follow(groups)  # what ctx.earlier reads: the entities of the steps so far
        for enrichment, marks in self._plan:
            if marks:
                if marks & _REFERER_STEP and referer_uri is not None:
                    step_failures.append([referer_uri])
                    referer_uri = None
                if marks & _CROSS_DOMAIN_STEP and cross_domain is not None:
                    step_failures.append([cross_domain])
                    cross_domain = None
                if marks & _SCHEMA_STEP:
                    self._check_event_type(event, step_failures)
                if marks & _SCRIPT_STEP and groups:
                    before_script = ctx.earlier
                if marks & _DEFER_FROM and defers:
                    ctx.defer = True
            try:
                enrichment.enrich(event, ctx)
            except EnrichmentFailure as exc:
                step_failures.append([_enrichment_message(enrichment, m) for m in exc.messages])
            except Exception as exc:  # an enrichment bug must not stop the partition
                step_failures.append([_enrichment_message(enrichment,
                                                          {"error": f"{type(exc).__name__}: {exc}"[:512]})])
            if derived:  # the step attached entities: the next one sees them first, in a list of its own
                groups.append(derived)
                derived = ctx.derived = []
        if referer_uri is not None:  # no step after it
            step_failures.append([referer_uri])
        if cross_domain is not None:
            step_failures.append([cross_domain])
        if self._schema_step == len(self._steps):
            self._check_event_type(event, step_failures)
        if step_failures:
            if before_script:
                # Snowplow's getJsScript wrote the entities so far into the event's derived_contexts (for the
                # script to read): the row shows the event as it is
                event.derived_contexts = before_script
            # Snowplow prepends each step's failures to those before: the last failing step's come first
            return [message for messages in reversed(step_failures) for message in messages]
        failures: list[dict] = []
        entities = [entity for group in reversed(groups) for entity in group] if groups else []
        if entities or validation_info:
            event.derived_contexts = entities + validation_info if validation_info else entities
        if entities:
            for failure in self.resolver.check_each(entities, field="derived_contexts"):
                failures.append({"enrichment": None, "message": failure.to_json()})
            if failures:
                return failures
        if self._after_validation:
            # they see the entities as the running enrichment's own (PII rewrites copies of those the lookup
            # enrichments' caches share between events, in that list), then the event gets them back
            event.derived_contexts, ctx.earlier, ctx.derived = None, [], entities
            for enrichment in self._after_validation:
                try:
                    enrichment.enrich(event, ctx)
                except Exception as exc:  # these cannot fail in Snowplow: a bug, a bad row rather than a stop
                    failures.append(_enrichment_message(enrichment,
                                                        {"error": f"{type(exc).__name__}: {exc}"[:512]}))
            if entities or validation_info:
                event.derived_contexts = entities + validation_info if validation_info else entities
        if ctx is not None:
            emitted.extend(ctx.emitted)
        return failures

    @staticmethod
    def _check_event_type(event: EnrichedEvent, step_failures: list[list[dict]]) -> None:
        """Snowplow's ``extractSchemaFields`` step: an event type it has no schema for is an InputData failure
        (no enrichment), once the steps before it have run -- so the bad row shows what they filled in."""
        if event.event in STANDARD_EVENTS or event.event == "unstruct":
            return
        step_failures.append([{"enrichment": None, "message": {
            "field": "event", "value": event.event,
            "expectation": UNKNOWN_EVENT_TYPE.format("null" if event.event is None else event.event)}}])

    # ------------------------------------------------------------------ derived fields

    @staticmethod
    def _setup(event: EnrichedEvent, payload, etl_tstamp: int) -> None:
        """What Snowplow's enrich sets before it maps the parameters, which may override it; the random
        event_id is made after them, when no eid gave one."""
        event.v_collector = payload.collector
        event.v_etl = ETL_VERSION
        event.etl_tstamp = etl_tstamp
        event.collector_tstamp = payload.timestamp
        if payload.ip_address is not None:
            event.user_ipaddress = first_ip(payload.ip_address)
        if payload.user_agent is not None:
            # the request's User-Agent as Snowplow's setUseragent cleans it (a ua parameter is TSV-safe already)
            ua = payload.user_agent
            if "\t" in ua or "\n" in ua or "\r" in ua:  # (three scans cost less than three replaces)
                ua = ua.replace("\r", "").replace("\n", "").replace("\t", "    ")
            event.useragent = ua
        event.network_userid = payload.network_user_id

    def _derive_fields(self, event: EnrichedEvent, payload) -> DerivedFailures:
        """The fields Snowplow's enrich derives before the enrichments run; the failures of those that can fail
        (a page URL or referrer no reading takes, the ``_sp`` decoration's timestamp), which fail the event with
        the enrichments' failures."""
        if event.page_url is None and payload.referer_uri is not None:
            # a pixel without url: the page is the request's referer (an empty one too: 3.9.0 reads "" as a URI)
            event.page_url = payload.referer_uri
        event.derived_tstamp = derived_tstamp(event)
        page_uri, referer_uri = set_url_parts(event)
        cross_domain = _set_cross_domain(event) if event.page_urlquery else None
        if event.event == "unstruct":
            inner = event.unstruct_event.get("data") if isinstance(event.unstruct_event, dict) else None
            schema = inner.get("schema") if isinstance(inner, dict) else None
            try:
                key = parse_schema_key(schema) if isinstance(schema, str) else None
            except ValueError:
                key = None
            if key is not None:
                event.event_vendor, event.event_name = key.vendor, key.name
                event.event_format, event.event_version = key.format, str(key.version)
        elif event.event in STANDARD_EVENTS:
            event.event_vendor, event.event_name, event.event_format, event.event_version = \
                STANDARD_EVENTS[event.event]
        return page_uri, referer_uri, cross_domain

    # ------------------------------------------------------------------ validation

    def _validate(self, event: EnrichedEvent, validation_info: list[dict]) -> list[dict]:
        """Validate the event's unstruct_event and contexts: the ``schema_violations`` messages, if any.

        When all are valid, the entities (the event's and its contexts') whose schema is superseded
        (``$supersededBy``) were validated against the later version: as Snowplow's enrich 3.9.0 does,
        they are written with that version, and one ``validation_info`` entity per distinct original
        schema (the contexts' first, then the event's) is added to ``validation_info``."""
        # a dict comes from processor.protocol, which checked its nesting; text is left for the resolver to refuse
        messages: list[dict] = []
        check = self.resolver.check
        unstruct_superseded: list = []
        contexts_superseded: list = []
        # the contexts' messages first, then the event's (3.9.0 accumulates them in that order)
        if event.contexts is not None:
            failure = check(event.contexts, self._contexts_criterion, field="contexts")
            if failure is not None:
                messages.append(failure.to_json())
                event.contexts = None
            else:
                items = event.contexts["data"]
                for failure in self.resolver.check_each(items, field="contexts", superseded=contexts_superseded):
                    messages.append(failure.to_json())
                event.contexts = items
        if event.unstruct_event is not None:
            failure = check(event.unstruct_event, self._unstruct_criterion, field="unstruct_event")
            if failure is None:
                failure = check(event.unstruct_event["data"], field="unstruct_event", superseded=unstruct_superseded)
            if failure is not None:
                messages.append(failure.to_json())
        elif event.event == "unstruct":
            messages.append({"field": "unstruct_event", "value": None,
                             "error": "a self-describing event (ue_pr or ue_px) is required for e=ue"})
        if (unstruct_superseded or contexts_superseded) and not messages:
            _write_superseding(event, contexts_superseded, unstruct_superseded, validation_info)
        return messages

    @staticmethod
    def _atomic_lengths(values: tuple) -> list[dict]:
        """Snowplow's ``AtomicFieldsLengthValidator`` (3.9.0): one message saying the event does not conform,
        then one per field too long, in its order."""
        errors = atomic_length_errors(values)
        if not errors:
            return []
        return [{"enrichment": None, "message": {"error": text}}
                for text in ("Enriched event does not conform to atomic schema field's length restrictions",
                             *errors)]

    def _event_bad_row(self, schema, event, payload, adapted, params, messages, sent_json=None,
                       deferred: dict | None = None) -> bytes:
        """A ``schema_violations`` or ``enrichment_failures`` row: the messages, the partial event, its input.
        ``sent_json`` is ``(contexts, unstruct_event)`` as the tracker sent them, written instead of the event's.

        The ``deferred`` values are computed only if the row shows them: a row over the size limit keeps its
        first 100 KB (a ``size_violation``), which ends before them when the event is a megabyte.  The row is
        laid out with a stand-in of each value's length, and made again with the values when it does."""
        failure = {"timestamp": badrows.iso_timestamp(), "messages": messages}
        enriched = self._partial(event)
        if sent_json is not None:
            for name, doc in zip(("contexts", "unstruct_event"), sent_json):
                enriched[name] = None if doc is None else doc if isinstance(doc, str) else jsontext.dumps(doc)
        payload_json = {"enriched": enriched, "raw": raw_event_json(payload, adapted, params)}
        if not deferred:
            return badrows.bad_row(schema, badrows.ENRICH_ARTIFACT, failure, payload_json)
        for name, value in deferred.items():
            enriched[name] = "0" * value.length
        row = badrows.bad_row(schema, badrows.ENRICH_ARTIFACT, failure, payload_json)
        # a kept field is a key in the row's beginning, embedded as JSON text (quotes escaped); a tracker's
        # text that spells the same costs the values, never a row without them
        if row.startswith(_SIZE_VIOLATION_ROW) and not any(
                b'\\"' + name.encode() + b'\\":' in row for name in deferred):
            return row
        for name, value in deferred.items():
            enriched[name] = value.compute()
        return badrows.bad_row(schema, badrows.ENRICH_ARTIFACT, failure, payload_json)

    def _partial(self, event: EnrichedEvent) -> dict:
        """The event as far as it got, field -> value, as schema_violations payloads carry it."""
        out = dict.fromkeys(FIELDS)  # an unset field is null
        values = field_values(event)
        # the fields set, found without a step of the interpreter per field: an event sets a fifth of them
        present = list(compress(_COLUMNS, map(is_not, values, repeat(None))))
        # the TSV texts of the fields, without joining and splitting the text ones: a field can be a megabyte
        formatted = list(values)
        for i in present:
            if type(values[i]) is str:
                formatted[i] = None
        others = tsv_row(tuple(formatted)).split("\t")
        readers = self._partial_readers
        for i in present:
            value = values[i]
            if type(value) is str:  # a text field set empty is "" in 3.9.0's row, an unset one null
                text = _tsv_text(value)
            else:
                text = others[i]
                if not text:
                    continue
            name, read = readers[i]
            if read is None:
                out[name] = text
            else:
                try:
                    out[name] = read(text)
                except ValueError:
                    out[name] = text
        return out


_COLUMNS = range(len(FIELDS))
_SIZE_VIOLATION_ROW = b'{"schema":"' + badrows.SIZE_VIOLATION.encode() + b'"'


def _tsv_text(value: str) -> str:
    """A text field as the TSV writes it (``ext.join_tsv``): tabs and line breaks become spaces."""
    return value.replace("\t", " ").replace("\n", " ").replace("\r", " ")


VALIDATION_INFO_SCHEMA = "iglu:com.snowplowanalytics.iglu/validation_info/jsonschema/1-0-0"


def _write_superseding(event: EnrichedEvent, contexts_superseded: list, unstruct_superseded: list,
                       validation_info: list[dict]) -> None:
    """Name the superseding version in each entity validated against it, and list a ``validation_info``
    entity (``originalSchema``, ``validatedWith``) per distinct original schema in ``validation_info``."""
    seen: set = set()

    def note(result) -> None:
        pair = (result.superseded, result.schema_key.version)
        if pair not in seen:
            seen.add(pair)
            validation_info.append({"schema": VALIDATION_INFO_SCHEMA,
                                    "data": {"originalSchema": result.superseded.uri,
                                             "validatedWith": str(result.schema_key.version)}})

    if contexts_superseded:
        newer = {id(item): result for item, result in contexts_superseded}
        rewritten = []
        for item in event.contexts:
            result = newer.get(id(item))
            if result is None:
                rewritten.append(item)
            else:
                rewritten.append({"schema": result.schema_key.uri, "data": result.data})
                note(result)
        event.contexts = rewritten
    for result in unstruct_superseded:
        event.unstruct_event = {**event.unstruct_event, "data": {"schema": result.schema_key.uri, "data": result.data}}
        note(result)


def _enrichment_message(enrichment: Enrichment, message: dict) -> dict:
    return {"enrichment": {"schemaKey": enrichment.schema_key, "identifier": enrichment.identifier[:256]},
            "message": message}


def raw_event_json(payload, adapted: Adapted, params: dict) -> dict:
    """One event's parameters and request context, the ``raw`` part of enrichment bad rows."""
    return {
        "vendor": adapted.vendor,
        "version": adapted.version,
        # in the order Snowplow's RawEvent.toRawEvent lists its Scala Map of parameters
        "parameters": [{"name": k, "value": params[k]} for k in scala_map_order(list(params))],
        "contentType": payload.content_type,
        "loaderName": payload.collector,  # the collector's name, as Snowplow's RawEvent.source.name
        "encoding": payload.encoding or "UTF-8",
        "hostname": payload.hostname,
        **badrows.request_context(payload),
    }


def derived_tstamp(event: EnrichedEvent):
    """Snowplow's best guess of when the event happened (ms since the epoch): the collector's time less the
    calendar period from the device's creation time to its sending time (months and years as Joda-Time counts
    them: :mod:`processor.joda_period`), whatever year that gives, as Snowplow's enrich 3.9.0 derives it."""
    if event.true_tstamp is not None:
        return event.true_tstamp
    created, sent, collected = event.dvce_created_tstamp, event.dvce_sent_tstamp, event.collector_tstamp
    if collected is not None and created is not None and sent is not None and created < sent:
        if sent - created < SHORTEST_MONTH:  # no calendar month in it: the same as its milliseconds
            return collected - (sent - created)
        return minus_period_between(collected, created, sent)
    return collected


def set_url_parts(event: EnrichedEvent) -> tuple[dict | None, dict | None]:
    """``page_url*`` and ``refr_url*`` parts from page_url and page_referrer, as Snowplow's ``stringToUri`` and
    ``explodeUri`` set them (:func:`processor.string_to_uri.read_url`), and the page URL as it writes it.  A URL
    neither java.net.URI nor scala-uri takes leaves its parts empty (and the page URL as it came), and is the
    enrichment failure returned for it: (the page URL's, the referrer's)."""
    page = referer = None
    if event.page_url is not None:
        url, parts, failure = read_url(event.page_url)
        if parts is None:
            page = _unparsable(failure)
        else:
            event.page_url = url
            (event.page_urlscheme, event.page_urlhost, event.page_urlport,
             event.page_urlpath, event.page_urlquery, event.page_urlfragment) = parts
    if event.page_referrer:
        _, parts, failure = read_url(event.page_referrer)
        if parts is None:
            referer = _unparsable(failure)
        else:
            (event.refr_urlscheme, event.refr_urlhost, event.refr_urlport,
             event.refr_urlpath, event.refr_urlquery, event.refr_urlfragment) = parts
    return page, referer


def _unparsable(message: str) -> dict:
    """The enrichment failure of a URL no reading takes, its message cut to the 512 characters the bad row's
    schema allows (3.9.0 writes it whole)."""
    return {"enrichment": None, "message": {"error": message[:512]}}


def _set_cross_domain(event: EnrichedEvent) -> dict | None:
    """refr_domain_userid/refr_dvce_tstamp from the ``_sp`` link decoration, as Snowplow always sets them; the
    enrichment failure when its timestamp is not one (:func:`processor.enrichments.cross_navigation.set_cross_domain`)."""
    value = sp_from_query(event.page_urlquery)
    if value is None:
        return None
    message = set_cross_domain(value, event)
    return None if message is None else {"enrichment": None, "message": message}
