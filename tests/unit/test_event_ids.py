"""The stage's event ids are random version-4 UUIDs written as uuid.uuid4() writes them."""
from __future__ import annotations

import os
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


def test_a_forked_child_does_not_hand_out_the_ids_its_parent_had_ready():
    # the ids are made in batches: a child made by fork must not reuse the parent's batch
    random_uuid()  # a batch is ready in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, "\n".join(random_uuid() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read().split("\n")
    os.waitpid(pid, 0)
    parent_ids = [random_uuid() for _ in range(10)]
    assert len(child_ids) == 10
    assert not set(child_ids) & set(parent_ids)
