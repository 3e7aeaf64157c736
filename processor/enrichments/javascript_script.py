"""The JavaScript enrichment (``javascript_script_config``): a user's ``process(event)`` per event.

What Snowplow does
    The config's ``script`` is base64-encoded JavaScript that defines a
    top-level function ``process(event)`` (other top-level functions and
    variables are allowed).  Enrich calls it once per event with the enriched
    event object, whose atomic fields are read with Java-bean getters named
    after the field (``event.getApp_id()``, ``event.getUser_ipaddress()``,
    ``event.getContexts()``...) and, in newer versions of enrich, changed with
    the matching setters (``event.setApp_id("x")``).  The function returns
    an array of self-describing JSON objects (``{schema, data}``), which are
    attached to the event as derived contexts, or ``null``/``[]`` for none.
    Any uncaught exception fails the event: it goes to the failed events
    (an ``enrichment_failures`` bad row), which is also the documented way to
    discard (filter) an event.  Config 1-0-1 adds ``config``, an object passed
    to ``process`` as its second argument (``function process(event, params)``,
    read with ``params.get("key")``).

What we do
    The script runs in V8 (``mini-racer``), compiled once at start-up into
    one isolate.  Per event there is **one** call into JavaScript: the fields
    that are set are sent as one JSON string; a small wrapper (generated once)
    builds the event object with a getter and setter per field of the 131,
    calls ``process(event, params)`` and returns one JSON string with the
    entities and the fields the script set.  Back in Python the entities are
    checked (an array of objects with ``schema`` and ``data``; they are
    validated against Iglu by the stage afterwards) and the set fields
    are written to the event.

    What a getter returns: ``null`` for an unset field; a number for the
    integer and floating-point fields (``txn_id``, ``dvce_screenwidth``,
    ``geo_latitude``, ``se_value`` ...) and ``1``/``0`` for the boolean ones
    (``br_features_pdf`` ...), as Snowplow's event object holds them; a
    string for everything else, formatted as in the enriched TSV: timestamps
    ``yyyy-MM-dd HH:mm:ss.SSS``, money as a decimal string, and
    ``getContexts()`` / ``getUnstruct_event()`` / ``getDerived_contexts()``
    as the JSON *string* of Snowplow's envelope (``JSON.parse`` it; the
    entities are in ``.data``).  ``getDerived_contexts()`` holds what the
    enrichments before this one attached.  ``params`` is a copy of
    ``config`` (an empty object without one) with a ``get(key)`` method, so
    both ``params.get("k")`` and ``params.k`` work.

    A setter writes the field: numbers to the numeric fields, strings
    elsewhere (a timestamp as ``yyyy-MM-dd HH:mm:ss[.SSS]``), ``null``
    clears it.  ``setContexts`` / ``setUnstruct_event`` take the envelope
    JSON string (or the object) and replace the event's own contexts or
    self-describing event.  A value that cannot be converted fails the event.

Differences from Snowplow
    * The engine is V8, not Nashorn: modern JavaScript works (classes,
      generators...), but there is no Java interop (``Java.type``, the Java
      standard library, the file system), which Snowplow's scripts may use.
    * ``setDerived_contexts`` is not supported (return entities instead):
      calling it throws, so the event fails.
    * A script that runs longer than :data:`TIMEOUT_SECONDS` (0.1 s) for one
      event is stopped and the event fails (Snowplow has no limit): the events
      behind it wait at most that long, and the isolate stays usable.  The
      budget is of CPU: a run stopped while the process got less than half of
      it (a busy machine, a paused container, a host still paging the process
      in) is run again, for up to :data:`STARVED_SECONDS` of wall time, so a
      slow host does not turn good events into bad rows; so is an event whose
      run V8 stopped for the looping event before it.  A script that keeps
      state across events may see such an event twice.  Only a starved run
      can use its budget's time without its CPU: the script cannot sleep,
      because ``Atomics.wait`` and ``WebAssembly`` (whose atomics wait too)
      are removed before it is compiled (Nashorn has neither).  The
      other events of the same request then fail without running, so one
      request costs one budget however many events it carries.  Its
      heap is limited to :data:`MEMORY_LIMIT_BYTES`; a script over it fails
      its event too.
    * Per-event cost is dominated by mini-racer's call into V8 (a thread
      hand-off, ~0.1-0.3 ms), not by the script.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from processor.enriched import (
    CONTEXTS_ENVELOPE_PREFIX,
    CONTEXTS_SCHEMA,
    FIELD_KINDS,
    FIELDS,
    UNSTRUCT_EVENT_SCHEMA,
    format_timestamp,
)
from processor.enrichments.base import (
    ConfigError,
    Enrichment,
    EnrichmentFailure,
    EventContext,
    LoadContext,
)

#: longest run of ``process`` for one event before it is stopped (the event fails): a budget of
#: CPU per event, so a looping script costs the events behind it 0.1 s, not a stall
TIMEOUT_SECONDS = 0.1
#: how long a run stopped with less than half its budget of CPU used (the host starved it) is run again
#: before the event fails, from its first start
STARVED_SECONDS = 2.0
#: longest run of the script's top level, once at start-up
COMPILE_TIMEOUT_SECONDS = 10.0
#: the V8 heap a script may use
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024

_NUMBER_KINDS = ("int", "float")
_JSON_FIELDS = ("contexts", "derived_contexts", "unstruct_event")
_ENTRY = "__snowmelt_process"

#: run before the user's script: the ways JavaScript could block without using CPU, removed (see the module
#: docstring; a run that used little CPU is then one the host starved)
_PRELUDE = """
delete Atomics.wait;
delete globalThis.WebAssembly;
"""

# The wrapper around the user's script: one event object per call, a getter and
# a setter per atomic field on its prototype (built once, at start-up).
_WRAPPER = """
var __snowmelt = (function () {
  var FIELDS = %(fields)s;
  function SnowmeltEvent(values, changed) { this._v = values; this._c = changed; }
  FIELDS.forEach(function (name) {
    var cap = name.charAt(0).toUpperCase() + name.slice(1);
    SnowmeltEvent.prototype["get" + cap] = function () {
      var v = this._v[name]; return v === undefined ? null : v;
    };
    SnowmeltEvent.prototype["set" + cap] = function (value) {
      if (name === "derived_contexts") { throw new Error("setDerived_contexts is not supported: return entities instead"); }
      if (value === undefined) { value = null; }
      this._v[name] = value; this._c[name] = value;
    };
  });
  var params = %(params)s;
  Object.defineProperty(params, "get", {
    enumerable: false,
    value: function (key) { var v = this[key]; return v === undefined ? null : v; }
  });
  return { Event: SnowmeltEvent, params: params };
})();
function %(entry)s(json) {
  var changed = {};
  var out = process(new __snowmelt.Event(JSON.parse(json), changed), __snowmelt.params);
  return JSON.stringify({ entities: out === undefined ? null : out, changed: changed });
}
"""


def _js_value(name: str, kind: str, value: Any) -> Any:
    """One field as the script's getter returns it (see the module docstring)."""
    if kind in _NUMBER_KINDS:
        return value if isinstance(value, (int, float)) else _number(value)
    if kind == "bool":
        return 1 if value in (True, 1, "1", "true") else 0
    if kind == "timestamp":
        return value if isinstance(value, str) else format_timestamp(value)
    if kind == "decimal":
        return value if isinstance(value, str) else (format(value, "f") if isinstance(value, Decimal) else str(value))
    if name in _JSON_FIELDS:
        if isinstance(value, str):
            return value
        if not (isinstance(value, dict) and _is_envelope(value.get("schema"))):
            # the event holds the inner entity / the list; the script sees Snowplow's envelope
            envelope = UNSTRUCT_EVENT_SCHEMA if name == "unstruct_event" else CONTEXTS_SCHEMA
            value = {"schema": envelope, "data": value}
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value if isinstance(value, str) else str(value)


def _is_envelope(schema: Any) -> bool:
    return schema == UNSTRUCT_EVENT_SCHEMA or (isinstance(schema, str) and schema.startswith(CONTEXTS_ENVELOPE_PREFIX))


def _number(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else number


def _from_js(name: str, kind: str, value: Any) -> Any:
    """A value a setter received -> the event's Python value; ValueError if it cannot be."""
    if value is None:
        return None
    if name in _JSON_FIELDS:
        doc = json.loads(value) if isinstance(value, str) else value
        if isinstance(doc, dict) and "data" in doc and _is_envelope(doc.get("schema")):
            doc = doc["data"]
        if name == "unstruct_event" and not isinstance(doc, dict):
            raise ValueError("expected a self-describing JSON object")
        if name == "contexts" and not isinstance(doc, list):
            raise ValueError("expected an array of self-describing JSON objects")
        return doc
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("expected an integer")
        number = float(value)
        if not number.is_integer():
            raise ValueError("expected an integer")
        return int(number)
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError("expected a number")
        return float(value)
    if kind == "bool":
        return bool(value) and value not in ("0", "false")
    if kind == "decimal":
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError("expected a decimal number") from None
    if kind == "timestamp":
        text = str(value)
        for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
            except ValueError:
                pass
        raise ValueError("expected a timestamp yyyy-MM-dd HH:mm:ss.SSS")
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def decode_script(value: str, field_name: str = "script") -> str:
    """A base64 (standard or URL-safe, padding optional) script -> its UTF-8 source; ConfigError if not."""
    text = value.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                               validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise ConfigError(f"$.data.parameters.{field_name}: not base64-encoded UTF-8 text") from None


def check_entities(result: Any, where: str) -> list[dict[str, Any]]:
    """The entities a script returned, checked for shape; EnrichmentFailure if not a list of {schema, data}."""
    if result is None:
        return []
    if not isinstance(result, list):
        raise EnrichmentFailure.error(f"{where} must return an array of self-describing JSONs or null, "
                                      f"got {type(result).__name__}")
    for index, entity in enumerate(result):
        if not (isinstance(entity, dict) and isinstance(entity.get("schema"), str) and "data" in entity):
            raise EnrichmentFailure.error(f"{where} returned an entity at index {index} that is not a "
                                          f"self-describing JSON (schema and data): {json.dumps(entity)[:200]}")
    return result


_engine_loop_lock = threading.Lock()
_engine_loop_of: dict[int, asyncio.AbstractEventLoop] = {}  # process id -> its engines' loop


def engine_loop() -> asyncio.AbstractEventLoop:
    """The event loop every script engine of this process answers on: one daemon thread, never closed.

    Left to itself, mini-racer (0.14) gives each engine a loop of its own and closes that loop before it
    frees the engine's V8 context; a V8 callback that comes during the free (the late stop of a call that
    timed out) then lands on a closed loop, an exception ignored in a ctypes callback.  A forked child
    gets a loop of its own (the parent's thread is not in it)."""
    pid = os.getpid()
    with _engine_loop_lock:
        loop = _engine_loop_of.get(pid)
        if loop is None:
            loop = _engine_loop_of[pid] = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="snowmelt-js-engines", daemon=True).start()
    return loop


class _Engine:
    """A mini-racer engine on :func:`engine_loop`: mini-racer's ``MiniRacer`` methods, and ``close``."""

    def __init__(self) -> None:
        from py_mini_racer import mini_racer

        self._context = mini_racer(event_loop=engine_loop())
        self.racer = self._context.__enter__()

    def __getattr__(self, name: str) -> Any:
        if name in ("racer", "_context"):  # not set: __init__ failed
            raise AttributeError(name)
        return getattr(self.racer, name)

    def close(self) -> None:
        """Free the engine's V8 context (once)."""
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)


@dataclass(frozen=True)
class JavascriptScript(Enrichment):
    """Runs a user's JavaScript ``process(event, params)`` per event (see the module docstring)."""

    name = "javascript_script_config"
    criteria = ("1-0-*",)

    source: str
    config: dict = field(default_factory=dict)
    _engine: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)
    # the request (CollectorPayload) whose budget a script already spent: its other events fail at once
    _spent: list = field(default_factory=lambda: [None], repr=False, compare=False)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> JavascriptScript:
        source = decode_script(parameters["script"])
        config = parameters.get("config") or {}
        return cls(source=source, config=config, _engine=cls._compile(source, config))

    @staticmethod
    def _compile(source: str, config: dict) -> Any:
        from py_mini_racer import JSEvalException, JSTimeoutException

        engine = _Engine()
        engine.set_hard_memory_limit(MEMORY_LIMIT_BYTES)
        engine.eval(_PRELUDE)
        try:
            engine.eval(source, timeout_sec=COMPILE_TIMEOUT_SECONDS)
        except JSTimeoutException:
            engine.close()
            raise ConfigError(f"$.data.parameters.script: the script's top level ran longer than "
                              f"{COMPILE_TIMEOUT_SECONDS:g}s") from None
        except JSEvalException as exc:
            engine.close()
            raise ConfigError(f"$.data.parameters.script: the script does not compile: {_first_line(exc)}") from None
        if engine.eval("typeof process") != "function":
            engine.close()
            raise ConfigError("$.data.parameters.script: the script defines no function process(event)")
        engine.eval(_WRAPPER % {"fields": json.dumps(list(FIELDS)), "entry": _ENTRY,
                                "params": json.dumps(config)})
        return engine

    def _event_json(self, event: Any, ctx: EventContext) -> str:
        values = {}
        for name, kind in _FIELD_KINDS:
            value = getattr(event, name)
            if value is not None:
                values[name] = _js_value(name, kind, value)
        if ctx.earlier:  # the stage writes derived_contexts only after every enrichment: what the steps before gave
            values["derived_contexts"] = _js_value("derived_contexts", "json", list(ctx.earlier))
        return json.dumps(values, separators=(",", ":"), ensure_ascii=False, default=str)

    def enrich(self, event: Any, ctx: EventContext) -> None:
        from py_mini_racer import JSEvalException, JSTimeoutException

        if ctx.payload is not None and ctx.payload is self._spent[0]:
            raise EnrichmentFailure.error(f"JavaScript process(event) ran longer than {TIMEOUT_SECONDS:g}s on an "
                                          f"earlier event of the same request")
        payload = self._event_json(event, ctx)
        try:
            with self._lock:  # one isolate: one call at a time
                raw = self._call(payload)
        except JSTimeoutException:
            self._spent[0] = ctx.payload  # one budget per request, however many events it carries
            raise EnrichmentFailure.error(f"JavaScript process(event) ran longer than {TIMEOUT_SECONDS:g}s") from None
        except JSEvalException as exc:
            raise EnrichmentFailure.error(f"Error during execution of JavaScript function: {_first_line(exc)}") from None
        result = json.loads(raw)
        for name, value in result["changed"].items():
            kind = FIELD_KINDS.get(name)
            if kind is None:
                continue
            try:
                setattr(event, name, _from_js(name, kind, value))
            except (ValueError, TypeError) as exc:
                raise EnrichmentFailure.input(name, value, f"a value the field can hold: {exc}") from None
        ctx.derived.extend(check_entities(result["entities"], "JavaScript process(event)"))

    def _call(self, payload: str) -> str:
        """``process`` on one event, stopped after :data:`TIMEOUT_SECONDS` of the process's CPU.

        mini-racer's timeout is wall time.  A run it stops having used less than half the budget
        of CPU was starved by the host, not looping (the script cannot sleep: see :data:`_PRELUDE`),
        and is run again until :data:`STARVED_SECONDS` have passed.  The process's CPU time counts
        other threads too, which can only make a starved run look like a spent one, never the reverse.

        mini-racer answers a timeout before V8 has stopped the run, and the stop can land on the
        next call instead (``JSTerminatedException``; running out of memory is ``JSOOMException``):
        that call did nothing wrong and is run again."""
        from py_mini_racer import JSEvalException, JSTimeoutException

        until = time.monotonic() + STARVED_SECONDS
        while True:
            cpu = time.process_time()
            try:
                return self._engine.call(_ENTRY, payload, timeout_sec=TIMEOUT_SECONDS)
            except JSTimeoutException:
                if time.process_time() - cpu >= TIMEOUT_SECONDS / 2 or time.monotonic() >= until:
                    raise
            except JSEvalException as exc:
                # mini-racer does not export the class (0.14); raised only for a stop it was asked for
                if type(exc).__name__ != "JSTerminatedException":
                    raise
                if time.monotonic() >= until:
                    raise JSTimeoutException() from None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


_FIELD_KINDS = tuple((name, FIELD_KINDS[name]) for name in FIELDS if name != "derived_contexts") + \
    (("derived_contexts", FIELD_KINDS["derived_contexts"]),)


def _first_line(exc: Exception) -> str:
    """mini-racer's message without the source excerpt and stack: the line that says what failed."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Error" in line and not line.startswith("<anonymous>") and not line.lstrip().startswith("at "):
            return line.strip()[:400]
    return (lines[0] if lines else type(exc).__name__)[:400]
