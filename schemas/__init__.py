"""Iglu schemas shipped with snowmelt: an embedded registry laid out
``vendor/name/format/M-R-A`` (read with ``importlib.resources``; see
``processor.iglu.builtin_registry``)."""
