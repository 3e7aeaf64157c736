import json
import logging

from snowmelt.config import LoggingConfig
from snowmelt.logs import RepeatFilter, configure


def make_record(msg, *args, level=logging.ERROR):
    return logging.LogRecord("snowmelt.kafka", level, __file__, 1, msg, args, None)


def test_repeat_filter_lets_one_line_per_window_through():
    now = [0.0]
    f = RepeatFilter(60, clock=lambda: now[0])
    assert f.filter(make_record("connect to %s failed", "b:1"))
    for _ in range(50):
        now[0] += 0.1
        assert not f.filter(make_record("connect to %s failed", "b:1"))
    assert f.filter(make_record("connect to %s failed", "c:1"))  # another message passes
    now[0] += 61
    record = make_record("connect to %s failed", "b:1")
    assert f.filter(record)
    assert "repeated 50 more times" in record.getMessage()


def test_messages_that_differ_only_in_their_numbers_are_repeats():
    # librdkafka's lines come formatted and count milliseconds: "(after 0ms ...)", "(after 3ms ...)"
    now = [0.0]
    f = RepeatFilter(60, clock=lambda: now[0])
    line = "FAIL [thrd:127.0.0.1:37239/bootstrap]: Connect to ipv4#127.0.0.1:37239 failed: Connection refused " \
           "(after {}ms in state CONNECT)"
    assert f.filter(make_record(line.format(0)))
    for ms in (3, 1, 12, 0):
        now[0] += 1.5
        assert not f.filter(make_record(line.format(ms)))
    assert f.filter(make_record("FAIL: Connect failed: No route to host"))  # another failure passes


def test_librdkafka_lines_passed_as_arguments_are_repeats_too():
    # confluent-kafka calls logger.log(level, "%s [%s] %s", facility, client name, librdkafka's line)
    now = [0.0]
    f = RepeatFilter(60, clock=lambda: now[0])
    line = "[thrd:127.0.0.1:38343/bootstrap]: Connect to ipv4#127.0.0.1:38343 failed: Connection refused " \
           "(after {}ms in state CONNECT)"
    assert f.filter(make_record("%s [%s] %s", "FAIL", "snowmelt#consumer-1", line.format(0)))
    for ms in (1, 6, 0, 23):
        now[0] += 1.5
        assert not f.filter(make_record("%s [%s] %s", "FAIL", "snowmelt#consumer-1", line.format(ms)))


def test_json_format_is_one_object_per_line(capsys):
    configure(LoggingConfig(level="INFO", format="json"))
    try:
        logging.getLogger("snowmelt.test").info("hello %s", "world")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        doc = json.loads(line)
        assert doc["msg"] == "hello world" and doc["level"] == "info" and doc["logger"] == "snowmelt.test"
        assert doc["ts"].endswith("Z")
    finally:
        logging.getLogger().handlers[:] = []
