"""Bad rows validate against the schemas the project ships in schemas/."""
import json
from pathlib import Path

import jsonschema
import pytest

from processor.badrows import size_violation

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def shipped_schema(iglu_uri: str) -> dict:
    vendor, name, fmt, version = iglu_uri.removeprefix("iglu:").split("/")
    return json.loads((SCHEMAS / vendor / name / fmt / version).read_text())


@pytest.mark.parametrize("payload", [b"x" * 5000, "événement " * 100, b"\xff\xfe broken utf-8"])
def test_size_violation_matches_its_schema(payload):
    row = json.loads(size_violation("snowmelt-collector", 1000, 5000, payload, "must fit"))
    schema = shipped_schema(row["schema"])
    # Iglu's self-describing schemas are JSON Schema draft 4
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(row["data"])
    assert len(row["data"]["payload"]) <= 100  # a tenth of the limit
    assert row["data"]["failure"]["actualSizeBytes"] == 5000


def test_expectation_is_capped_to_the_schema_length():
    row = json.loads(size_violation("a", 10, 20, "p", "e" * 1000))
    assert len(row["data"]["failure"]["expectation"]) == 256
