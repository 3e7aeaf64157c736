"""snowmelt/membership.py: when a consumer counts as left outside its group, and for how long."""
from __future__ import annotations

import io
import json
import signal
import sys
import threading
from types import SimpleNamespace

import pytest
from confluent_kafka import ConsumerGroupState, IsolationLevel

from snowmelt.membership import (DescriberDied, GroupDescriber, JoinState, MembershipWatch, Verdict,
                                 check_membership, member_id_view, place, watch_membership)

ME = "snowmelt-1-5f0c"
OTHER = "snowmelt-2-77aa"


@pytest.mark.parametrize("state, members, join_state, outside", [
    (ConsumerGroupState.STABLE, [ME, OTHER], "steady", False),  # a member, partitions or not
    (ConsumerGroupState.EMPTY, [], "steady", False),  # its own view wins: the session is librdkafka's to end
    (ConsumerGroupState.EMPTY, [], "wait-join", True),  # the broker dropped it and no one is left
    (ConsumerGroupState.EMPTY, [], "init", True),
    (ConsumerGroupState.EMPTY, [], None, True),  # statistics without a group section
    (ConsumerGroupState.STABLE, [OTHER], "wait-join", True),  # the others carried on without it
    (ConsumerGroupState.DEAD, [], "wait-unassign-call", True),
    (ConsumerGroupState.PREPARING_REBALANCING, [OTHER], "wait-join", False),  # its join under way
    (ConsumerGroupState.COMPLETING_REBALANCING, [OTHER, ME], "wait-sync", False),
    (ConsumerGroupState.UNKNOWN, [], "init", False),  # a state this code does not know is not a verdict
    ("Stable", [OTHER], "init", True),
])
def test_a_librdkafka_consumer_is_outside_when_it_is_not_steady_in_a_group_at_rest(state, members, join_state,
                                                                                   outside):
    view = JoinState(max_age=15)
    view.on_stats(json.dumps({"cgrp": {"join_state": join_state}}))
    verdict = place(state, members, *view(members))
    assert verdict.outside is outside
    if outside:
        assert "is not one of them (its join state: " in verdict.why


@pytest.mark.parametrize("state, members, member_id, outside", [
    (ConsumerGroupState.STABLE, [ME, OTHER], ME, False),
    (ConsumerGroupState.EMPTY, [], ME, True),  # the broker dropped it; it still holds its old id
    (ConsumerGroupState.STABLE, [OTHER], "", True),
    (ConsumerGroupState.STABLE, [OTHER], None, True),
    (ConsumerGroupState.PREPARING_REBALANCING, [OTHER], "", False),
])
def test_an_aiokafka_consumer_is_outside_when_its_member_id_is_not_listed_in_a_group_at_rest(
        state, members, member_id, outside):
    verdict = place(state, members, *member_id_view(lambda: member_id)(members))
    assert verdict.outside is outside
    if outside:
        assert f"(its member id: {member_id or 'none'})" in verdict.why


def test_the_join_state_is_read_from_librdkafkas_statistics_and_unknown_without_recent_ones():
    now = [100.0]
    state = JoinState(max_age=15, clock=lambda: now[0])
    assert state([]) == (None, "no recent statistics")  # none yet
    state.on_stats(json.dumps({"name": "c#consumer-1", "cgrp": {"state": "up", "join_state": "steady"}}))
    assert state([]) == (True, "its join state: steady")
    state.on_stats("not json")
    assert state.value == "steady"
    now[0] += 10
    state.on_stats(json.dumps({"name": "c#consumer-1", "cgrp": {"join_state": "wait-join"}}))
    assert state([]) == (False, "its join state: wait-join")
    now[0] += 16  # the loader's thread held in one call: no statistics delivered
    assert state([])[0] is None


def test_a_consumer_whose_view_is_unknown_is_not_judged():
    """Its thread held in a synchronous commit that never returns (seen: the loader's write intent, its
    commits swallowed): no statistics come, and a group listing a member may be listing it."""
    verdict, seconds = check_membership(lambda members: (None, "no recent statistics"),
                                        lambda: (ConsumerGroupState.STABLE, [ME]), MembershipWatch(0), False, 1.0)
    assert verdict is None and seconds is None


OUT = Verdict(True, "outside")
IN = Verdict(False, "a member")


def test_the_watch_counts_time_outside_in_a_row_and_anything_else_starts_it_again():
    watch = MembershipWatch(timeout=30)
    assert watch.check(OUT, 100.0) is None
    assert watch.check(OUT, 129.0) is None
    assert watch.check(OUT, 130.0) == 30.0
    watch = MembershipWatch(timeout=30)
    for breaker in (IN, None):  # back in the group; or the broker did not answer (an outage)
        assert watch.check(OUT, 100.0) is None
        assert watch.check(breaker, 120.0) is None
        assert watch.check(OUT, 125.0) is None
        assert watch.check(OUT, 150.0) is None  # 25 s since it was seen outside again
        assert watch.check(OUT, 155.0) == 30.0
        watch = MembershipWatch(timeout=30)


def _run(describe, view=lambda members: (False, "init"), stopping=lambda: False, checks=20, timeout=3.0):
    """watch_membership on a clock that moves 1 s per check, for at most ``checks`` checks."""
    now = [0.0]
    calls = []
    done = threading.Event()

    def clock():
        now[0] += 1.0
        if now[0] > checks:
            done.set()
        return now[0]

    def on_outside(verdict, seconds):
        calls.append((verdict, seconds))

    watch_membership(view, describe, MembershipWatch(timeout), stopping, on_outside, done, 0.0, clock)
    return calls


def test_the_watch_thread_reports_once_after_the_timeout_outside_and_then_ends():
    calls = _run(lambda: (ConsumerGroupState.EMPTY, []))
    assert len(calls) == 1
    verdict, seconds = calls[0]
    assert verdict.outside and seconds == 3.0 and "EMPTY" in verdict.why


def test_a_member_an_outage_or_a_draining_loader_is_never_reported():
    assert _run(lambda: (ConsumerGroupState.STABLE, [ME]), view=member_id_view(lambda: ME)) == []

    def unreachable():
        raise RuntimeError("KafkaError{code=_TIMED_OUT}")
    assert _run(unreachable) == []
    assert _run(lambda: (ConsumerGroupState.EMPTY, []), stopping=lambda: True) == []



def test_an_outage_between_two_sightings_outside_starts_the_count_again():
    answers = [(ConsumerGroupState.EMPTY, [])] * 2 + [None] * 3 + [(ConsumerGroupState.EMPTY, [])] * 20
    asked = []

    def describe():
        answer = answers[len(asked)]
        asked.append(answer)
        if answer is None:
            raise RuntimeError("broker down")
        return answer
    calls = _run(describe, timeout=3.0, checks=30)
    # outside at checks 1-2, the outage at 3-5, outside again from 6: reported at 9, 3 s after 6
    assert [seconds for _, seconds in calls] == [3.0]
    assert len(asked) == 9


class _Admin:
    def __init__(self, outcomes):
        self.outcomes = outcomes
        self.calls = 0

    def describe_consumer_groups(self, groups, request_timeout):
        outcome = self.outcomes[self.calls]
        self.calls += 1
        future = SimpleNamespace(result=lambda timeout: outcome() if callable(outcome) else outcome)
        return {groups[0]: future}


def test_the_describing_process_makes_a_new_admin_client_after_a_failure_only(monkeypatch):
    from snowmelt import membership

    description = SimpleNamespace(state=ConsumerGroupState.STABLE, members=[SimpleNamespace(member_id=ME)])

    def fail():
        raise RuntimeError("timed out")
    made = []

    def factory(settings):
        made.append(settings)
        return _Admin([description, fail, description])
    monkeypatch.setattr(membership, "_admin_client", factory)
    setup = {"settings": {"bootstrap.servers": "b:9092", "log_level": 0}, "group": "g", "timeout": 1.0}
    answers = io.BytesIO()
    membership.serve_descriptions(io.BytesIO(json.dumps(setup).encode() + b"\n" + b"{}\n" * 3), answers)
    assert [json.loads(line) for line in answers.getvalue().splitlines()] == [
        {"ok": True, "state": "STABLE", "members": [ME]},
        {"ok": False, "error": "RuntimeError: timed out"},
        {"ok": True, "state": "STABLE", "members": [ME]}]
    assert made == [setup["settings"]] * 2  # a second client after the failure only


def test_the_describing_process_ends_quietly_when_its_role_is_gone_before_the_answer(monkeypatch):
    from snowmelt import membership

    class Gone(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")
    description = SimpleNamespace(state=ConsumerGroupState.EMPTY, members=[])
    monkeypatch.setattr(membership, "_admin_client", lambda settings: _Admin([description]))
    setup = {"settings": {}, "group": "g", "timeout": 1.0}
    membership.serve_descriptions(io.BytesIO(json.dumps(setup).encode() + b"\n{}\n{}\n"), Gone())  # no raise


#: a describing process that answers once, then dies as librdkafka's failed assertion kills it
ANSWER_THEN_ABORT = """
import json, os, sys
setup = json.loads(sys.stdin.readline())
sys.stdin.readline()
settings = setup["settings"]
print(json.dumps({"ok": True, "state": "STABLE", "members": ["me", f"pid-{os.getpid()}", setup["group"],
                                                             settings["sasl.password"][::-1]]}), flush=True)
sys.stdin.readline()
os.abort()
"""


def test_a_describing_process_that_dies_is_an_outage_and_the_next_check_starts_another(caplog):
    settings = {"bootstrap.servers": "b:9092", "sasl.password": "secret"}
    describe = GroupDescriber(settings, "g", timeout=1.0, command=[sys.executable, "-c", ANSWER_THEN_ABORT])
    try:
        state, members = describe()
        assert state == "STABLE" and members[0] == "me" and members[2:] == ["g", "terces"]  # its setup
        assert "secret" not in " ".join(describe._describer._proc.args)  # credentials go on its input
        with pytest.raises(RuntimeError, match="ended"):
            describe()  # the child aborted: this process goes on
        assert "the process describing group g ended (exit status -6)" in caplog.text
        again = describe()  # from a new process
        assert again[0] == "STABLE" and again[1][1] != members[1]
        verdict, seconds = check_membership(lambda members: (False, "its member id: none"), describe,
                                           MembershipWatch(0.0), False, 0.0)
        assert (verdict, seconds) == (None, None)  # the second process died too: not counted
        describe()
        third = describe._describer._proc
        describe.close()
        assert third.poll() is not None  # ended with its input
    finally:
        describe.close()


# ---------------------------------------------------------------- the partitions' ends

A, B = ("enriched", 0), ("enriched", 1)


class _Future:
    def __init__(self, value):
        self.value = value

    def result(self, timeout):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _EndsAdmin:
    """AdminClient's list_offsets: each partition's end or start, or a failure."""

    def __init__(self, ends, starts, fail=False):
        self.ends, self.starts, self.fail = ends, starts, fail
        self.asked = []

    def list_offsets(self, specs, isolation_level, request_timeout):
        assert isolation_level == IsolationLevel.READ_COMMITTED  # the end a reader of committed records sees
        kind = "ends" if "Latest" in type(next(iter(specs.values()))).__name__ else "starts"
        self.asked.append((kind, sorted((tp.topic, tp.partition) for tp in specs)))
        table = self.ends if kind == "ends" else self.starts
        return {tp: _Future(RuntimeError("leader not available") if self.fail
                            else SimpleNamespace(offset=table[(tp.topic, tp.partition)])) for tp in specs}

    def list_consumer_group_offsets(self, *args, **kwargs):
        raise AssertionError("the admin client's OffsetFetch crashes on NOT_COORDINATOR (librdkafka 5040)")


def test_the_describer_gives_the_partitions_ends_or_starts_from_list_offsets_alone():
    admin = _EndsAdmin({A: 50, B: 7}, {A: 0, B: 3})
    describer = GroupDescriber({"bootstrap.servers": "b:9092"}, "g", timeout=1.0, factory=lambda settings: admin)
    assert describer.ends([A, B]) == {A: 50, B: 7}
    assert describer.ends([B], first=True) == {B: 3}
    assert describer.ends([]) == {}
    assert admin.asked == [("ends", [A, B]), ("starts", [B])]


def test_the_describer_drops_its_client_when_the_ends_cannot_be_read():
    made = []

    def factory(settings):
        made.append(_EndsAdmin({A: 2}, {A: 0}, fail=not made))
        return made[-1]
    describer = GroupDescriber({"bootstrap.servers": "b:9092"}, "g", timeout=1.0, factory=factory)
    with pytest.raises(RuntimeError):
        describer.ends([A])
    assert describer.ends([A]) == {A: 2} and len(made) == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_describing_process_outlives_a_stop_signal_sent_to_the_whole_process_group(sig, capfd):
    # Ctrl-C in a terminal, or a service manager stopping the role's whole group: the role drains, and its
    # describer ends with the role's input, not with a KeyboardInterrupt of its own
    describe = GroupDescriber({"bootstrap.servers": "127.0.0.1:9"}, "g", timeout=0.5)
    try:
        with pytest.raises(RuntimeError) as first:
            describe()  # no broker there: the child answers with the error
        assert not isinstance(first.value, DescriberDied)
        child = describe._describer._proc
        child.send_signal(sig)
        with pytest.raises(RuntimeError) as second:
            describe()
        assert not isinstance(second.value, DescriberDied), capfd.readouterr().err
        assert describe._describer._proc is child and child.poll() is None
        assert "KeyboardInterrupt" not in capfd.readouterr().err
    finally:
        describe.close()
