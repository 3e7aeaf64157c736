"""Fixtures shared by the unit tests.

``codec`` runs a test once per implementation of ``ext`` (ids ``compiled`` and
``python``), so every assertion holds for the Cython module and its pure-Python
twin alike.  When the compiled module is missing its run is skipped, unless
``SNOWMELT_REQUIRE_EXTENSIONS=1`` (CI), where a missing compiled module fails.
(With that variable set, ``import ext`` itself already raises; the check here
keeps the rule visible where the parametrization is.)

The mark ``both_implementations`` is on every test of all implementations at
once: those of ``codec`` (given it here) and those comparing
``ext.implementations()`` (written on them). CI's second pass, on the
pure-Python twins alone, leaves them out (``-m "not both_implementations"``),
since its first pass ran them on both.
"""

import os

import pytest

import ext


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@pytest.fixture(scope="session", params=["compiled", "python"])
def codec(request):
    """One implementation of ``ext``: ``codec.decode_collector_payload(...)`` etc."""
    available = ext.implementations()
    name = request.param
    if name not in available:
        if env_flag("SNOWMELT_NO_EXTENSIONS"):
            pytest.skip("compiled extensions disabled by SNOWMELT_NO_EXTENSIONS=1")
        if env_flag("SNOWMELT_REQUIRE_EXTENSIONS"):
            pytest.fail("SNOWMELT_REQUIRE_EXTENSIONS=1 but the compiled extension is not available")
        pytest.skip("compiled extension not built (python setup.py build_ext --inplace)")
    return available[name]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "codec" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.both_implementations)
