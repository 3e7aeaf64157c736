"""``ext.take_run``: a loader's run of consumed records appended to its batch, both implementations.

Checked against the loop ``loaders.runner.Loader._take`` ran per record before
(re-written here as ``reference``), on stand-in messages and on real
confluent-kafka ``Message`` objects.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext


class Msg:
    """A consumed record as confluent-kafka's ``Message`` answers for one."""

    def __init__(self, topic, partition, offset, value, error=None):
        self._t, self._p, self._o, self._v, self._e = topic, partition, offset, value, error

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def value(self):
        return self._v

    def error(self):
        return self._e

    def __repr__(self):
        return f"Msg({self._t!r}, {self._p}, {self._o}, {self._v!r}, {self._e!r})"


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
    messages = [Msg("e", 0, 5, b"a"), Msg("e", 0, 6, None), Msg("e", 1, 7, b"x"), Msg("e", 0, 8, b"b")]
    values = [b"first"]
    assert codec.take_run(messages, 0, "e", 0, values, 100) == (2, 6)
    assert values == [b"first", b"a", b""]
    assert codec.take_run(messages, 3, "e", 0, values, 100) == (4, 8)
    assert codec.take_run(messages, 4, "e", 0, values, 100) == (4, -1)  # nothing left
    assert codec.take_run([Msg("e", 0, 1, b"a", error="broken")], 0, "e", 0, values, 100) == (0, -1)
    assert codec.take_run([Msg("other", 0, 1, b"a")], 0, "e", 0, values, 100) == (0, -1)


def test_a_run_ends_with_the_record_that_ends_a_batch(codec):
    messages = [Msg("e", 0, offset, b"v") for offset in range(1, 10)]
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


records = st.lists(st.builds(Msg, st.sampled_from(["e", "b"]), st.integers(0, 1), st.integers(0, 40),
                             st.none() | st.binary(max_size=4), st.none() | st.just("broken")), max_size=30)


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


def test_real_confluent_kafka_messages(codec):
    from confluent_kafka import Message

    messages = [Message(topic="enriched", partition=2, offset=offset, value=value)
                for offset, value in zip(range(7, 10), [b"a", None, b"c"])]
    messages.append(Message(topic="enriched", partition=3, offset=10, value=b"d"))
    values = []
    assert codec.take_run(messages, 0, "enriched", 2, values, 100) == (3, 9)
    assert values == [b"a", b"", b"c"]
