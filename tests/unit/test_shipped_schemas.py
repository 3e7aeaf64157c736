"""Every schema shipped in the ``schemas`` package is a usable Iglu schema where it lies.

* valid JSON, a JSON object, ``$schema`` Iglu's self-describing meta-schema;
* ``self`` names exactly the path it is stored under (``vendor/name/format/M-R-A``);
* a valid draft-4 JSON Schema (``jsonschema``'s meta-schema check) that the
  resolver compiles (``jsonschema_rs``), with no remote ``$ref``;
* a ``description`` of its own (a short sentence, not Iglu Central's text);
* shipped in the wheel: ``pyproject.toml``'s package-data pattern matches it.
"""
from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import jsonschema
import pytest

from processor.iglu import IgluFailure, Resolver, SchemaKey

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
SELF_DESC = "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#"
SHIPPED = sorted(p for p in SCHEMAS.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts)


def test_many_are_shipped():
    assert len(SHIPPED) >= 330
    # the two of issue 18
    assert (SCHEMAS / "com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1").is_file()
    assert (SCHEMAS / "com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0").is_file()


@pytest.fixture(scope="module")
def resolver():
    return Resolver([])  # the shipped registry only


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(SCHEMAS)))
def test_shipped_schema_is_valid_and_self_matches_its_path(path, resolver):
    rel = path.relative_to(SCHEMAS)
    assert len(rel.parts) == 4, f"{rel}: not vendor/name/format/version"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    assert schema.get("$schema") == SELF_DESC
    key = SchemaKey.from_self(schema["self"])
    assert key.path == rel.as_posix(), f"self says {key.path}"
    assert set(schema["self"]) == {"vendor", "name", "format", "version"}
    if key.format == "jsonschema":
        body = {k: v for k, v in schema.items() if k not in ("$schema", "self")}
        jsonschema.Draft4Validator.check_schema(body)
        compiled = resolver.compiled_validator(key)
        assert not isinstance(compiled, IgluFailure), compiled.to_json()
    description = schema.get("description")
    assert isinstance(description, str) and 10 <= len(description) <= 300, rel


def test_package_data_ships_every_schema():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["schemas"]
    for path in SHIPPED:
        rel = path.relative_to(SCHEMAS).as_posix()
        assert any(fnmatch(rel, p) for p in patterns), f"{rel} is not in the package data"
