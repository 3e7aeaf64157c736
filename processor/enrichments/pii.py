"""PII pseudonymisation (``pii_enrichment_config``): configured values become their hash.

What Snowplow does (its docs, the config and ``pii_transformation`` schemas,
the R100/R106 release notes): the enrichment runs last, after every other one,
and replaces each configured value by a hex digest of it:

``pojo``
    an atomic field of the enriched event, one of the 18 the config schema
    enumerates (``user_id``, ``user_ipaddress``, ``user_fingerprint``,
    ``domain_userid``, ``network_userid``, ``ip_organization``,
    ``ip_domain``, ``tr_orderid``, ``ti_orderid``, ``mkt_term``,
    ``mkt_content``, ``se_category``, ``se_action``, ``se_label``,
    ``se_property``, ``mkt_clickid``, ``refr_domain_userid``,
    ``domain_sessionid``), hashed whole when it is set;
``json``
    values inside the self-describing JSON of ``unstruct_event``,
    ``contexts`` or ``derived_contexts``: only entities whose schema matches
    ``schemaCriterion`` (``iglu:com.acme/user/jsonschema/1-*-*``), and in
    their ``data`` only what ``jsonPath`` selects (``$.email``,
    ``$.['clientId', 'userId']``, ``$..email``).  A selected string is
    hashed; a selected array has its string elements hashed; numbers,
    booleans, objects and nulls are left alone.

``strategy.pseudonymize.hashFunction`` is ``MD2``, ``MD5``, ``SHA-1``,
``SHA-256``, ``SHA-384`` or ``SHA-512``; the digest is taken over the UTF-8
bytes of the value followed by ``salt`` (configs 2-0-x; 1-0-0 has no salt)
and written as lower-case hex.

``emitEvent: true`` (2-0-x): for an event in which something was replaced, a
second event is emitted (``ctx.emitted``), a ``pii_transformation`` event
holding every ``{fieldName, originalValue, modifiedValue}`` (and for JSON
values also ``jsonPath`` and the entity's ``schema``) and the hash function
(never the salt), with a ``parent_event`` context whose ``parentEventId`` is
the original event's ``event_id``.  Its atomic fields are set as Snowplow's
enrich sets them: a new ``event_id``, ``event`` = ``pii_transformation``,
``platform`` = ``srv``, the event vendor/name/format/version of the
``pii_transformation`` schema, and ``app_id``, ``collector_tstamp``,
``etl_tstamp``, ``v_collector``, ``v_etl`` copied from the parent.

``anonymousOnly: true`` (2-0-1): only requests carrying the ``SP-Anonymous``
header are pseudonymised.

Differences from Snowplow, all small:

* JSONPath is evaluated by ``jsonpath-ng`` (its extended parser: filters,
  unions, ``..``) where Snowplow uses Jayway JsonPath; the paths in
  Snowplow's docs and configs (``$.field``, ``$.a.b``, ``$.['a', 'b']``,
  ``$..x``, ``$.list[*]``, filters) select the same values; exotic Jayway
  functions (``length()``...) do not compile and are refused at start-up.
* The emitted event's ``derived_tstamp``/``true_tstamp`` are the parent's
  ``etl_tstamp`` (Snowplow takes the wall clock a few microseconds later).
* A field listed twice in ``pii`` is hashed once.
* Config 1-0-0 (no salt, any ``json.field``) is accepted; a ``json.field``
  other than the three JSON fields is refused at start-up.
* ``MD2`` needs ``pycryptodome`` (``hashlib`` has no MD2); without it an MD2
  config is refused at start-up.

Per event: a ``getattr``/``setattr`` and one digest per set pojo field; per
JSON rule one cached schema-criterion check per entity and, for matching
entities only, one precompiled JSONPath evaluation.
"""
from __future__ import annotations

import copy
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from processor.enriched import EnrichedEvent
from processor.enrichments.base import ConfigError, Enrichment, ENRICHMENTS_VENDOR, EventContext, LoadContext
from processor.enrichments.jsonpaths import JsonRule

PII_TRANSFORMATION_SCHEMA = "iglu:com.snowplowanalytics.snowplow/pii_transformation/jsonschema/1-0-0"
PARENT_EVENT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/parent_event/jsonschema/1-0-0"
ANONYMOUS_HEADER = "sp-anonymous"

POJO_FIELDS = frozenset((
    "user_id", "user_ipaddress", "user_fingerprint", "domain_userid", "network_userid", "ip_organization",
    "ip_domain", "tr_orderid", "ti_orderid", "mkt_term", "mkt_content", "se_category", "se_action", "se_label",
    "se_property", "mkt_clickid", "refr_domain_userid", "domain_sessionid",
))


def _md2() -> Callable[[bytes], Any]:
    try:
        from Crypto.Hash import MD2  # pycryptodome
    except ImportError:
        raise ConfigError("$.data.parameters.strategy.pseudonymize.hashFunction: MD2 needs the pycryptodome "
                          "package (pip install pycryptodome)") from None
    return MD2.new


HASH_FUNCTIONS: dict[str, Callable[[], Callable[[bytes], Any]]] = {
    "MD2": _md2,
    "MD5": lambda: hashlib.md5,
    "SHA-1": lambda: hashlib.sha1,
    "SHA-256": lambda: hashlib.sha256,
    "SHA-384": lambda: hashlib.sha384,
    "SHA-512": lambda: hashlib.sha512,
}


@dataclass(frozen=True)
class PiiPseudonymizer(Enrichment):
    name = "pii_enrichment_config"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*", "2-0-*")

    pojo_fields: tuple[str, ...]
    json_rules: tuple[JsonRule, ...]
    hash_function: str
    salt: str
    emit_event: bool = False
    anonymous_only: bool = False
    _digest: Callable[[bytes], Any] = field(default=hashlib.sha256, compare=False, repr=False)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "PiiPseudonymizer":
        pojo: list[str] = []
        rules: list[JsonRule] = []
        for i, item in enumerate(parameters["pii"]):
            where = f"$.data.parameters.pii[{i}]"
            if "pojo" in item:
                name = item["pojo"]["field"]
                if name not in POJO_FIELDS:
                    raise ConfigError(f"{where}.pojo.field: {name!r} cannot be pseudonymised")
                if name not in pojo:
                    pojo.append(name)
            else:
                rules.append(JsonRule.compile(item["json"], where + ".json", expression=True))
        strategy = parameters["strategy"]["pseudonymize"]
        hash_name = strategy["hashFunction"]
        if hash_name not in HASH_FUNCTIONS:
            raise ConfigError(f"$.data.parameters.strategy.pseudonymize.hashFunction: {hash_name!r} is not one of "
                              f"{', '.join(HASH_FUNCTIONS)}")
        data = ctx.config or {}
        return cls(pojo_fields=tuple(pojo), json_rules=tuple(rules), hash_function=hash_name,
                   salt=strategy.get("salt", ""), emit_event=bool(data.get("emitEvent", False)),
                   anonymous_only=bool(data.get("anonymousOnly", False)),
                   _digest=HASH_FUNCTIONS[hash_name]())

    @property
    def rewrites_derived(self) -> bool:
        """Whether a JSON rule applies to the entities other enrichments attached."""
        return any(rule.field_name == "derived_contexts" for rule in self.json_rules)

    # ------------------------------------------------------------------ hashing

    def pseudonymise(self, value: str) -> str:
        """The lower-case hex digest of ``value + salt`` (its UTF-8; a lone surrogate, which a JSON escape can
        make, is "?", as Java's ``String.getBytes`` writes it)."""
        return self._digest((value + self.salt).encode("utf-8", "replace")).hexdigest()

    # ------------------------------------------------------------------ per event

    def enrich(self, event: Any, ctx: EventContext) -> None:
        if self.anonymous_only and not any(name.lower() == ANONYMOUS_HEADER for name, _ in ctx.headers):
            return
        record = self.emit_event
        pojo_changes: list[dict[str, str]] = []
        json_changes: list[dict[str, str]] = []
        hash_ = self.pseudonymise
        for name in self.pojo_fields:
            value = getattr(event, name)
            if value is None:
                continue
            original = value if value.__class__ is str else str(value)
            modified = hash_(original)
            setattr(event, name, modified)
            if record:
                pojo_changes.append({"fieldName": name, "originalValue": original, "modifiedValue": modified})
        if self.rewrites_derived:
            # entities from the lookup enrichments' caches are shared between events: rewrite copies
            ctx.derived[:] = [copy.deepcopy(entity) for entity in ctx.derived]
        for rule in self.json_rules:
            for entity in rule.entities(event, ctx):
                self._rewrite(entity, rule, entity["schema"], json_changes if record else None)
        if record and (pojo_changes or json_changes):
            ctx.emitted.append(self._transformation_event(event, pojo_changes, json_changes))

    def _rewrite(self, entity: dict, rule: JsonRule, schema: str, changes: list | None) -> None:
        """Hash what ``rule.expression`` selects in ``entity["data"]``, in place."""
        data = entity.get("data")
        if data is None:
            return
        hash_ = self.pseudonymise
        for match in rule.expression.find(data):
            value = match.value
            if isinstance(value, str):
                modified = hash_(value)
                # Root.update returns the new value, the others update in place and return data
                data = match.full_path.update(data, modified)
                entity["data"] = data
                if changes is not None:
                    changes.append(_json_change(rule, value, modified, schema))
            elif isinstance(value, list):
                for i, element in enumerate(value):
                    if isinstance(element, str):
                        modified = hash_(element)
                        value[i] = modified
                        if changes is not None:
                            changes.append(_json_change(rule, element, modified, schema))

    def _transformation_event(self, parent: Any, pojo: list, json_: list) -> EnrichedEvent:
        pii: dict[str, Any] = {}
        if pojo:
            pii["pojo"] = pojo
        if json_:
            pii["json"] = json_
        extra = EnrichedEvent(
            app_id=parent.app_id,
            platform="srv",
            etl_tstamp=parent.etl_tstamp,
            collector_tstamp=parent.collector_tstamp,
            derived_tstamp=parent.etl_tstamp,
            true_tstamp=parent.etl_tstamp,
            event="pii_transformation",
            event_id=str(uuid.uuid4()),
            event_vendor="com.snowplowanalytics.snowplow",
            event_name="pii_transformation",
            event_format="jsonschema",
            event_version="1-0-0",
            v_collector=parent.v_collector,
            v_etl=parent.v_etl,
            unstruct_event={"schema": PII_TRANSFORMATION_SCHEMA, "data": {
                "pii": pii, "strategy": {"pseudonymize": {"hashFunction": self.hash_function}}}},
        )
        if parent.event_id:
            extra.contexts = [{"schema": PARENT_EVENT_SCHEMA, "data": {"parentEventId": parent.event_id}}]
        return extra


def _json_change(rule: JsonRule, original: str, modified: str, schema: str) -> dict[str, str]:
    return {"fieldName": rule.field_name, "originalValue": original, "modifiedValue": modified,
            "jsonPath": rule.json_path, "schema": schema}


__all__ = ["PiiPseudonymizer", "JsonRule", "HASH_FUNCTIONS", "POJO_FIELDS"]
