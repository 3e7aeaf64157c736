"""bench.topics.produce_all: a benchmark's input topic filled whole, the producer's full queue waited out."""
import pytest

from bench.topics import produce_all


class QueueOf:
    """A stand-in for confluent-kafka's Producer whose queue holds ``room`` records until polled."""

    def __init__(self, room: int, unacknowledged: int = 0):
        self.room, self.queued, self.sent, self.polls = room, 0, [], 0
        self.unacknowledged = unacknowledged

    def produce(self, topic, value, key=None):
        if self.queued >= self.room:
            raise BufferError("Local: Queue full")
        self.queued += 1
        self.sent.append((topic, value, key))

    def poll(self, timeout):
        self.polls += 1
        self.queued = 0  # delivered

    def flush(self, timeout):
        return self.unacknowledged


def test_every_record_is_written_in_order_however_often_the_queue_fills():
    producer = QueueOf(room=3)
    keys = iter(range(100))
    produce_all(producer, "raw", [b"%d" % i for i in range(10)], key=lambda: b"k%d" % next(keys))
    assert producer.sent == [("raw", b"%d" % i, b"k%d" % i) for i in range(10)]  # one key a record
    assert producer.polls == 3


def test_records_left_unacknowledged_are_an_error():
    with pytest.raises(RuntimeError, match="2 records to raw not acknowledged within 5 s"):
        produce_all(QueueOf(room=10, unacknowledged=2), "raw", [b"a", b"b"], timeout=5)
