"""``ext.take_run``: a loader's run of consumed records appended to its batch, both implementations.

Checked against the loop ``loaders.runner.Loader._take`` ran per record before
(re-written here as ``reference``), on confluent-kafka's own ``Message`` objects.
"""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Message
from hypothesis import given, settings
from hypothesis import strategies as st

import ext

EOF = KafkaError(KafkaError._PARTITION_EOF)


def record(topic, partition, offset, value, error=None):
    """A consumed record: confluent-kafka's own ``Message``, as ``consume()`` returns them."""
    return Message(topic=topic, partition=partition, offset=offset, value=value, error=error)


def reference(messages, start, topic, partition, values, size):
    """The per-record loop the loader ran in the interpreter before ``take_run``."""
    index, last = start, -1
    for message in messages[start:]:
        if message.error() is not None or (message.topic(), message.partition()) != (topic, partition):
            break
        last = message.offset()
        values.append(message.value() or b"")
        index += 1
        if (last + 1) % size == 0 or len(values) >= size:
            break
    return index, last


def test_a_run_ends_at_another_partition_an_error_or_the_end(codec):
    messages = [record("e", 0, 5, b"a"), record("e", 0, 6, None), record("e", 1, 7, b"x"), record("e", 0, 8, b"b")]
    values = [b"first"]
    assert codec.take_run(messages, 0, "e", 0, values, 100) == (2, 6)
    assert values == [b"first", b"a", b""]
    assert codec.take_run(messages, 3, "e", 0, values, 100) == (4, 8)
    assert codec.take_run(messages, 4, "e", 0, values, 100) == (4, -1)  # nothing left
    assert codec.take_run([record("e", 0, 1, b"a", error=EOF)], 0, "e", 0, values, 100) == (0, -1)
    assert codec.take_run([record("other", 0, 1, b"a")], 0, "e", 0, values, 100) == (0, -1)


def test_a_run_ends_with_the_record_that_ends_a_batch(codec):
    messages = [record("e", 0, offset, b"v") for offset in range(1, 10)]
    values = []
    assert codec.take_run(messages, 0, "e", 0, values, 3) == (2, 2)  # offset 2: the next batch starts at 3
    assert codec.take_run(messages, 2, "e", 0, [], 3) == (5, 5)
    assert codec.take_run(messages, 0, "e", 0, [b"x"] * 8, 10) == (2, 2)  # the batch holds 10 values


@pytest.mark.parametrize("args, error, message", [
    (((), 0, "e", 0, [], 3), TypeError, "messages and values must be lists, not tuple and list"),
    (([], 0, "e", 0, (), 3), TypeError, "messages and values must be lists, not list and tuple"),
    (([], -1, "e", 0, [], 3), ValueError, "start must be 0 or more and size positive, not -1 and 3"),
    (([], 0, "e", 0, [], 0), ValueError, "start must be 0 or more and size positive, not 0 and 0"),
])
def test_arguments_refused_alike(codec, args, error, message):
    with pytest.raises(error, match=message):
        codec.take_run(*args)


records = st.lists(st.builds(record, st.sampled_from(["e", "b"]), st.integers(0, 1), st.integers(0, 40),
                             st.none() | st.binary(max_size=4), st.none() | st.just(EOF)), max_size=30)


@pytest.mark.both_implementations
@given(records, st.integers(0, 31), st.integers(1, 8), st.integers(0, 8))
@settings(max_examples=400, deadline=None)
def test_both_implementations_take_what_the_per_record_loop_took(messages, start, size, held):
    start = min(start, len(messages))
    expected_values = [b"h"] * held
    expected = reference(messages, start, "e", 0, expected_values, size)
    for implementation in ext.implementations().values():
        values = [b"h"] * held
        assert implementation.take_run(messages, start, "e", 0, values, size) == expected
        assert values == expected_values
