"""The stage's event ids are random version-4 UUIDs written as uuid.uuid4() writes them."""
from __future__ import annotations

import uuid

from processor.event_ids import random_uuid


def test_random_uuids_are_version_4_rfc_4122_lower_case_and_distinct():
    seen = set()
    variants = set()
    for _ in range(20_000):
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical: lower case, dashes in place
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        variants.add(text[19])
        seen.add(text)
    assert len(seen) == 20_000
    assert variants == set("89ab")  # the two variant bits take every value
