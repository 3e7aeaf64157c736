"""What every enrichment is: a parsed, frozen config and ``enrich(event, ctx)``.

An enrichment module under ``processor/enrichments/`` declares one subclass of
:class:`Enrichment`:

``name``
    the name of Snowplow's configuration schema it accepts
    (``iglu:com.snowplowanalytics.snowplow/<name>/jsonschema/M-R-A``, or the
    ``com.snowplowanalytics.snowplow.enrichments`` vendor for the newer ones);
``vendors``/``criterion``
    which config schemas are accepted (vendor and ``M-*-*`` criterion);
``from_parameters(parameters, ctx)``
    builds the instance from the config's ``parameters`` object, already
    validated against the shipped config schema (``schemas/``); it raises
    :class:`ConfigError` naming the field for what a schema cannot say
    (a database file that does not exist, a regex that does not compile);
``enrich(event, ctx)``
    sets atomic fields on the :class:`~processor.enriched.EnrichedEvent`
    and/or appends entities (self-describing dicts) to ``ctx.derived``.  A
    failure raises :class:`EnrichmentFailure` with Snowplow's message shape;
    any other exception is caught by the pipeline and reported the same way,
    so an enrichment can never stop a partition.

Enrichments run in Snowplow's fixed order (``processor.enrichments.ORDER``);
the pipeline validates their entities against Iglu afterwards.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

ENRICHMENT_VENDOR = "com.snowplowanalytics.snowplow"
ENRICHMENTS_VENDOR = "com.snowplowanalytics.snowplow.enrichments"


class ConfigError(ValueError):
    """An enrichment configuration that cannot be used; the message names the file and field."""


class EnrichmentFailure(Exception):
    """One or more failure messages of an enrichment for one event.

    Each message is one of Snowplow's ``enrichment_failures`` message shapes:
    ``{"field", "value", "expectation"}`` (bad input),
    ``{"error"}`` (an external failure) or an Iglu failure's JSON.
    """

    def __init__(self, *messages: dict[str, Any]):
        super().__init__("; ".join(str(m) for m in messages))
        self.messages = list(messages)

    @classmethod
    def input(cls, field_name: str, value: Any, expectation: str) -> "EnrichmentFailure":
        return cls({"field": field_name[:64], "value": None if value is None else str(value),
                    "expectation": expectation[:256]})

    @classmethod
    def error(cls, text: str) -> "EnrichmentFailure":
        return cls({"error": text[:512]})


@dataclass(frozen=True)
class LoadContext:
    """What an enrichment may need at start-up besides its parameters.

    ``base_dir`` resolves relative paths in the config (the enrichments
    folder); ``cache_dir`` is where downloaded databases may be kept;
    ``config`` is the config's ``data`` (set by ``parse_enrichment``).
    """

    base_dir: Path = Path(".")
    cache_dir: Path | None = None
    source: str = "<config>"
    # the config's whole ``data`` object, for the few settings Snowplow keeps
    # beside ``parameters`` (the PII enrichment's ``emitEvent`` and ``anonymousOnly``)
    config: dict[str, Any] | None = field(default=None, compare=False)

    def resolve_path(self, value: str) -> Path:
        """A local path or ``file:`` URI from a config, relative to ``base_dir``."""
        if value.startswith("file://"):
            value = value[len("file://"):]
        elif value.startswith("file:"):
            value = value[len("file:"):]
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


class EventContext:
    """One event's inputs besides its atomic fields, and where derived entities go.

    ``payload`` is the decoded ``CollectorPayload`` (headers, IP, user agent,
    referer as received); ``params`` the event's tracker-protocol parameters;
    ``derived`` the entities the running enrichment attaches (``derived_contexts``);
    ``earlier`` those the enrichments before it attached, the last one's first,
    as Snowplow's ``derived_contexts`` reads while the steps run (the
    JavaScript enrichment shows it to the script);
    ``emitted`` extra enriched events an enrichment produces beside this one
    (the PII enrichment's ``pii_transformation`` event), written after it.

    ``defer`` says that no later step reads the event's atomic fields (no
    script, SQL or API request runs after this one), so an enrichment may put
    a :class:`Deferred` value in ``deferred`` (atomic field -> value) instead
    of setting the field: the stage computes it only when it is written (a
    digest of a megabyte of parameters is not computed for a bad row that
    never shows it).

    The event's own self-describing data is on the event, already validated:
    ``event.unstruct_event`` is the ``unstruct_event`` envelope dict (or
    ``None``) and ``event.contexts`` the list of context dicts (or ``None``);
    an enrichment may rewrite them in place (PII pseudonymisation does).

    One is made for every event, so it is a plain class of slots; ``earlier``
    is put together from the steps' entities only when an enrichment reads it
    (:meth:`follow`).
    """

    __slots__ = ("payload", "params", "derived", "emitted", "defer", "deferred", "_earlier", "_groups", "_headers")

    def __init__(self, payload: Any, params: dict[str, str], derived: list[dict[str, Any]] | None = None,
                 earlier: list[dict[str, Any]] | None = None, emitted: list[Any] | None = None,
                 defer: bool = False, deferred: dict[str, "Deferred"] | None = None):
        self.payload = payload
        self.params = params
        self.derived = [] if derived is None else derived
        self.emitted = [] if emitted is None else emitted
        self.defer = defer
        self.deferred = {} if deferred is None else deferred
        self._earlier = [] if earlier is None else earlier
        self._groups: list[list[dict[str, Any]]] | None = None
        self._headers: list[tuple[str, str]] | None = None

    def follow(self, groups: list[list[dict[str, Any]]]) -> None:
        """``earlier`` is from now on the entities of ``groups`` (each step's, in the order the steps ran; the
        stage appends to it as they run), the last group's first."""
        self._groups = groups

    @property
    def earlier(self) -> list[dict[str, Any]]:
        groups = self._groups
        if groups is None:
            return self._earlier
        return [entity for group in reversed(groups) for entity in group]

    @earlier.setter
    def earlier(self, entities: list[dict[str, Any]]) -> None:
        self._groups, self._earlier = None, entities

    def __repr__(self) -> str:
        return (f"EventContext(payload={self.payload!r}, params={self.params!r}, derived={self.derived!r}, "
                f"earlier={self.earlier!r}, emitted={self.emitted!r}, defer={self.defer!r})")

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The request's headers as ``(name, value)`` pairs, in order received."""
        if self._headers is None:
            pairs = []
            for line in (getattr(self.payload, "headers", None) or ()):
                name, sep, value = line.partition(":")
                if sep:
                    pairs.append((name.strip(), value.strip()))
            self._headers = pairs
        return self._headers


@dataclass(frozen=True)
class Deferred:
    """An atomic field's value computed when it is written: ``compute()`` gives the text, always
    ``length`` characters long (so a bad row can be laid out without it)."""

    compute: Callable[[], str]
    length: int


class Enrichment(abc.ABC):
    """Base class of the configurable enrichments (see the module docstring)."""

    name: ClassVar[str]
    vendors: ClassVar[tuple[str, ...]] = (ENRICHMENT_VENDOR,)
    # the SchemaVer criteria of the config schemas accepted, e.g. ("1-0-*",)
    criteria: ClassVar[tuple[str, ...]] = ("1-*-*",)

    # set by the loader: the config's schema URI, which bad rows name
    schema_key: str = ""

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "Enrichment":
        """The enrichment built from its config's ``parameters`` (each module defines it)."""
        raise ConfigError(f"{cls.__name__} cannot be configured from an enrichment config file")

    @abc.abstractmethod
    def enrich(self, event: Any, ctx: EventContext) -> None:
        """Enrich one event (see the module docstring)."""

    @property
    def identifier(self) -> str:
        """Names this instance in bad rows."""
        return self.name

    def close(self) -> None:
        """Release files, connections and threads (called at shutdown)."""
