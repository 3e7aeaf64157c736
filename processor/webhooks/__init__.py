"""Webhook adapters: the Iglu webhook, remote adapters and the third-party vendors.

Each module here registers its adapters in :data:`processor.adapters.REGISTRY`
under the ``(vendor, version)`` of the collector path it serves
(``/com.mailchimp/v1`` ...) with :func:`processor.adapters.register`.  Every
module of this package is imported by the first :func:`processor.adapters.adapt`
(:func:`processor.adapters.load_webhooks`), so adding a vendor is adding a module.
"""
from __future__ import annotations

import importlib
import pkgutil


def load_all() -> list[str]:
    """Import every adapter module of this package (registering its adapters); their names."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names
