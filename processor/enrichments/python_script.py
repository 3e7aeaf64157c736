"""The Python enrichment (``io.snowmelt/python_script_config``): a user's ``process(event, params)`` per event.

snowmelt's own counterpart of Snowplow's JavaScript enrichment, for teams
whose business logic is in Python.  Snowplow has no such enrichment; its
config schema is ours: ``iglu:io.snowmelt/python_script_config/jsonschema/1-0-0``
(shipped in ``schemas/``), in the usual enrichment envelope::

    {"schema": "iglu:io.snowmelt/python_script_config/jsonschema/1-0-0",
     "data": {"name": "python_script_config", "vendor": "io.snowmelt", "enabled": true,
              "parameters": {"script": "<base64 Python source>",     # or
                             "module": "acme.enrich" | "scripts/enrich.py",
                             "config": {"any": "JSON"}}}}

Exactly one of ``script`` (base64 Python source, run once at start-up as a
module of its own) and ``module`` (a dotted module name importable by the
enrich process, or a path to a ``.py`` file, relative to the enrichments
folder) is given.  The code must define a top-level callable::

    def process(event, params):
        if event.app_id == "test":
            raise ValueError("test traffic")          # the event fails
        event.user_id = (event.user_id or "").lower()   # set atomic fields
        return [{"schema": "iglu:com.acme/tier/jsonschema/1-0-0",
                 "data": {"tier": params["tiers"].get(event.user_id, "free")}}]

``event``
    the :class:`~processor.enriched.EnrichedEvent` itself: one attribute per
    atomic field (Snowplow's names), ``None`` when unset; assignments change
    the event (give each field the type the other enrichments and the TSV
    writer take: ``str``, ``int``, ``float``, ``Decimal``, ``datetime``,
    a list of entities for ``contexts``, one entity for ``unstruct_event``).
    Entities attached by the enrichments before this one are in
    ``ctx.derived`` (see below), not yet in ``event.derived_contexts``.
``params``
    the config's ``config`` object (an empty dict without one), shared by
    every call: treat it as read-only.
``ctx`` (optional third parameter)
    when ``process`` takes three positional parameters it also receives the
    :class:`~processor.enrichments.base.EventContext`: the request's
    ``headers``, the raw ``payload``, the tracker ``params`` and the
    entities attached so far (``derived``).

It returns a list of self-describing entities (``{"schema", "data"}``) to
attach to the event as derived contexts, or ``None``/``[]``.  Any exception
fails the event (an ``enrichment_failures`` bad row naming the exception),
which is also the way to filter events out, as with Snowplow's JavaScript
enrichment.  The entities are validated against Iglu by the stage, so their
schemas must be resolvable.

A script that does not compile, has no ``process``, or a module that does not
import, is refused at start-up naming ``$.data.parameters.script`` or
``.module``.  The code runs in the enrich process with its full rights: only
configure code you trust.  It should not keep state across events (enrich
runs in several processes) nor block on I/O.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from processor.enrichments.base import (
    ConfigError,
    Enrichment,
    EnrichmentFailure,
    EventContext,
    LoadContext,
)
from processor.enrichments.javascript_script import check_entities, decode_script

SCRIPT_MODULE_NAME = "snowmelt_python_script"


def _load_script(source: str) -> types.ModuleType:
    try:
        code = compile(source, "<python_script_config script>", "exec")
    except SyntaxError as exc:
        raise ConfigError(f"$.data.parameters.script: the script does not compile: "
                          f"{exc.msg} (line {exc.lineno})") from None
    module = types.ModuleType(SCRIPT_MODULE_NAME)
    module.__file__ = "<python_script_config script>"
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        raise ConfigError(f"$.data.parameters.script: the script failed when run: "
                          f"{type(exc).__name__}: {exc}") from None
    return module


def _load_module(name: str, ctx: LoadContext) -> types.ModuleType:
    try:
        if name.endswith(".py") or "/" in name or name.startswith("file:"):
            path = ctx.resolve_path(name)
            if not path.is_file():
                raise ConfigError(f"$.data.parameters.module: no file {path}")
            spec = importlib.util.spec_from_file_location(f"{SCRIPT_MODULE_NAME}_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"$.data.parameters.module: cannot import {name!r}: {type(exc).__name__}: {exc}") from None


def _positional_arity(function: Callable) -> int:
    """How many positional arguments ``function`` takes (a large number for ``*args``)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return 2
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind == parameter.VAR_POSITIONAL:
            return 99
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


@dataclass(frozen=True)
class PythonScript(Enrichment):
    """Runs a user's Python ``process(event, params[, ctx])`` per event (see the module docstring)."""

    name = "python_script_config"
    vendors = ("io.snowmelt",)
    criteria = ("1-0-*",)

    process: Callable[..., Any]
    config: dict = field(default_factory=dict)
    with_context: bool = False
    origin: str = "script"

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> PythonScript:
        if "script" in parameters:
            module, origin = _load_script(decode_script(parameters["script"])), "script"
        else:
            module, origin = _load_module(parameters["module"], ctx), "module"
        process = getattr(module, "process", None)
        if not callable(process):
            raise ConfigError(f"$.data.parameters.{origin}: defines no function process(event, params)")
        arity = _positional_arity(process)
        if arity < 2:
            raise ConfigError(f"$.data.parameters.{origin}: process must take (event, params), "
                              f"it takes {arity} positional argument(s)")
        return cls(process=process, config=parameters.get("config") or {}, with_context=arity >= 3, origin=origin)

    def enrich(self, event: Any, ctx: EventContext) -> None:
        try:
            if self.with_context:
                result = self.process(event, self.config, ctx)
            else:
                result = self.process(event, self.config)
        except EnrichmentFailure:
            raise
        except Exception as exc:
            raise EnrichmentFailure.error(f"Error during execution of Python process(event, params): "
                                          f"{type(exc).__name__}: {exc}") from None
        if result:
            ctx.derived.extend(check_entities(result if isinstance(result, list) else
                                              list(result) if isinstance(result, tuple) else result,
                                              "Python process(event, params)"))


__all__ = ["SCRIPT_MODULE_NAME", "PythonScript"]
