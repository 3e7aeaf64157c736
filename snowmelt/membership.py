"""Noticing a consumer left outside its group: a stall of the loaders and the enrich worker.

Kafka clients rejoin their group by themselves after a session timeout.  One
can still be left outside it for good: once, after the broker was frozen past
the consumer's session timeout (CI, ``test_faults.py::test_broker_frozen_then_thawed_mid_stream``),
a loader's consumer revoked its partitions, logged a request timing out in its
coordinator connection's queue, then nothing more for two minutes, with no
partition, while the broker answered everyone else.  After such a freeze
librdkafka's debug log shows it decommissioning the broker, the group
coordinator's included, and librdkafka has known bugs of requests waiting for
good on a decommissioned coordinator (librdkafka issue 5511).  The records
then wait on the consumer's partitions with no one to read them, and a role
that watches only the partitions it holds (:mod:`snowmelt.stall`) holds
none.

:func:`check_membership` puts two views side by side: the consumer's own
(``view``: for librdkafka, its join state from its statistics,
:class:`JoinState`, ``steady`` being a member with or without partitions;
for aiokafka, whether its member id is among the members) and the broker's
description of the group, from a client of its own in a child process
(:class:`GroupDescriber`).
A consumer that is not a member of a group at rest (``Stable``, ``Empty`` or
``Dead``: no rebalance under way, so no join of its is being answered) is
outside it (:func:`place`).  After ``timeout`` seconds of that in a row
(:class:`MembershipWatch`), the role logs it with its threads' stacks and
exits with status 4 (:data:`snowmelt.lifecycle.EXIT_STALLED`): its supervisor
(Kubernetes) restarts it, and what it had not committed is read again.  It
exits rather than make a new consumer in the process: closing a consumer
leaves the group through the coordinator it can no longer reach, and may wait
for good.

librdkafka's ``Consumer.memberid()`` is not used: it waits on librdkafka's
group thread, and was seen not to return while the consumer was outside its
group.  A broker that does not answer the description is an outage, not a
stall: the count starts again, as it does while the role drains after SIGTERM.
"""
from __future__ import annotations

import contextlib
import json
import logging
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from snowmelt.lifecycle import EXIT_STALLED, exit_now, ignore_stop_signals

log = logging.getLogger("snowmelt.membership")

#: group states at rest: no rebalance under way, so the members listed are all there are
AT_REST = frozenset({"STABLE", "EMPTY", "DEAD"})
#: librdkafka's join state of a consumer in its group (with or without partitions)
STEADY = "steady"


@dataclass(frozen=True)
class Verdict:
    """How the broker's description of the group places this consumer."""

    outside: bool
    why: str


def place(state: Any, member_ids: list[str], member: bool, me: str) -> Verdict:
    """Whether a consumer is outside a group the broker describes in ``state`` with members ``member_ids``;
    ``member`` is the consumer's own view (a member or not), ``me`` says what that view rests on."""
    name = getattr(state, "name", str(state)).upper()
    if member:
        return Verdict(False, f"a member of the group ({name}, {len(member_ids)} members)")
    if name not in AT_REST:
        return Verdict(False, f"the group is {name}")  # a rebalance under way (or a state not known here)
    return Verdict(True, f"the broker lists the group as {name} with {len(member_ids)} members and no rebalance "
                         f"under way, and this consumer is not one of them ({me})")


#: a consumer's own view of its membership, given the member ids the broker lists: (a member? None when it
#: cannot tell, on what grounds)
View = Callable[[list[str]], tuple["bool | None", str]]


def member_id_view(member_id: Callable[[], str | None]) -> View:
    """The view of a client whose member id can be read without waiting (aiokafka's coordinator's)."""
    def view(member_ids: list[str]) -> tuple[bool | None, str]:
        mine = member_id()
        return bool(mine) and mine in member_ids, f"its member id: {mine or 'none'}"
    return view


class JoinState:
    """The consumer's join state as librdkafka's statistics report it (``on_stats`` is the consumer's
    ``stats_cb``, called on the loader's own thread from ``consume()``): ``steady`` in the group.

    Statistics come only while that thread polls: none for ``max_age`` seconds (a thread held in one
    call, or none yet) leaves the view unknown, not outside.
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.value: str | None = None
        self.max_age = max_age
        self.clock = clock
        self.at: float | None = None

    def on_stats(self, text: str) -> None:
        try:
            self.value = json.loads(text).get("cgrp", {}).get("join_state")
        except (ValueError, AttributeError):
            return
        self.at = self.clock()

    def __call__(self, member_ids: list[str]) -> tuple[bool | None, str]:
        """The :data:`View`: a member when ``steady``; unknown without recent statistics."""
        if self.at is None or self.clock() - self.at > self.max_age:
            return None, "no recent statistics"
        return self.value == STEADY, f"its join state: {self.value}"


class MembershipWatch:
    """Since when the consumer has been outside its group, verdict after verdict."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._since: float | None = None

    def check(self, verdict: Verdict | None, now: float) -> float | None:
        """The seconds outside once they reach ``timeout`` as of ``now``; None otherwise.

        ``verdict`` None (the broker did not answer, or the loader is stopping) starts the count again.
        """
        if verdict is None or not verdict.outside:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        seconds = now - self._since
        return seconds if seconds >= self.timeout else None


class GroupDescriber:
    """The broker's description of ``group`` as (state, member ids), and the ends of partitions.

    The description is librdkafka's DescribeConsumerGroups, asked in a child process of its own
    (:class:`_DescriberProcess`, about 30 MB resident).  librdkafka 2.16.0 aborts a process whose
    DescribeConsumerGroups is out when the group's coordinator dies (``rd_kafka_enq_once_del_source_return:
    Assertion `eonce->refcnt > 0' failed``): every role of the failover bench died of it at once, and so did
    processes asking in a loop while the coordinator was killed
    (``tests/integration/test_kafka_cluster.py``).  A child that dies is an outage of the description, and
    the next check starts another.  The ends are ListOffsets, asked of the partitions' leaders from this
    process: no coordinator is involved, and no process asking for them in a loop aborted while the brokers
    were killed.

    A request that fails drops its client: the next one starts from a new
    client, not from the broker the failed one may still point to.
    """

    def __init__(self, settings: dict, group: str, timeout: float = 10.0,
                 factory: Callable[[dict], Any] | None = None, command: list[str] | None = None):
        self.settings = {**settings, "log_level": 0}
        self.group = group
        self.timeout = timeout
        self.factory = factory or _admin_client
        self._client = None
        self._describer = _DescriberProcess(self.settings, group, timeout, command or DESCRIBER_COMMAND)

    @classmethod
    def of(cls, kafka, group: str) -> GroupDescriber:
        """For ``group`` on the brokers of the ``kafka`` config section (its own client id, ``-membership``)."""
        from snowmelt.health import kafka_client_settings

        return cls({**kafka_client_settings(kafka), "client.id": f"{kafka.client_id}-membership"}, group)

    def __call__(self) -> tuple[str, list[str]]:
        """(the group's state, e.g. ``STABLE``; its members' ids).  Raises when the broker does not answer."""
        return self._describer.ask()

    def close(self) -> None:
        """Stop the describing process (it also ends by itself when this process does)."""
        self._describer.close()

    def ends(self, partitions: list[tuple[str, int]], *, first: bool = False) -> dict[tuple[str, int], int]:
        """``(topic, partition) -> offset`` for ``partitions``: the end a reader of committed records reaches
        (the last stable offset, as the loaders and enrich read), or with ``first`` the partition's first
        offset.  ListOffsets, from the partitions' leaders: no group coordinator is asked.  Raises as
        :meth:`__call__` does.

        The group's committed offsets are not read here: librdkafka's admin client crashes the process
        (SIGSEGV) when an OffsetFetch is answered ``NOT_COORDINATOR``, as it is while the coordinator moves to
        another broker (librdkafka issue 5040, seen here when a broker died).  Each role knows what it
        committed."""
        from confluent_kafka import IsolationLevel, TopicPartition
        from confluent_kafka.admin import OffsetSpec

        if not partitions:
            return {}
        spec = OffsetSpec.earliest() if first else OffsetSpec.latest()
        if self._client is None:
            self._client = self.factory(self.settings)
        try:
            futures = self._client.list_offsets({TopicPartition(topic, partition): spec
                                                 for topic, partition in partitions},
                                                isolation_level=IsolationLevel.READ_COMMITTED,
                                                request_timeout=self.timeout)
            return {(tp.topic, tp.partition): future.result(timeout=self.timeout + 5).offset
                    for tp, future in futures.items()}
        except Exception:
            self._client = None
            raise


class DescriberDied(RuntimeError):
    """The process describing the group ended (a crash in librdkafka): an outage of the description."""


#: the describing process: this module run as a program (see :func:`serve_descriptions`)
DESCRIBER_COMMAND = (sys.executable, "-m", "snowmelt.membership")


class _DescriberProcess:
    """A child process that answers ``(state, member ids)`` of one group for each request sent to it.

    Started on the first request, and again after it died: a new interpreter
    running ``command`` (not a fork of this process and its librdkafka
    threads).  The client settings (credentials among them) go to it on its
    standard input, never on its command line; then one line a request, one
    JSON line an answer.  It ends when its input closes (this process closed
    it, or died).  Its standard error is this process's: what librdkafka
    writes as it aborts lands in the role's log.  One request at a time (a
    lock): the roles ask from one thread at a time anyway.
    """

    def __init__(self, settings: dict, group: str, timeout: float, command: tuple[str, ...] | list[str]):
        self.settings, self.group, self.timeout, self.command = settings, group, timeout, list(command)
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def ask(self) -> tuple[str, list[str]]:
        with self._lock:
            if self._proc is None:
                self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                self._write({"settings": self.settings, "group": self.group, "timeout": self.timeout})
            try:
                self._write({})
                line = self._read_line(self.timeout + 10)
            except (OSError, ValueError) as exc:  # its end of a pipe closed: it died
                raise self._ended() from exc
            if not line:
                raise self._ended()
            answer = json.loads(line)
            if not answer["ok"]:
                raise RuntimeError(answer["error"])
            return answer["state"], answer["members"]

    def _ended(self) -> DescriberDied:
        """The child has died: reaped, logged, and the error to raise."""
        code = self._stop()
        log.warning("the process describing group %s ended (exit status %s); another is started on the next check",
                    self.group, code)
        return DescriberDied(f"the describing process ended ({code})")

    def _write(self, message: dict) -> None:
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        self._proc.stdin.flush()

    def _read_line(self, timeout: float) -> bytes:
        """The next line of the child's output: b"" once it has ended; ``TimeoutError`` (the child stopped)."""
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            self._stop()
            raise TimeoutError(f"no description of group {self.group} within {timeout:.0f}s")
        return self._proc.stdout.readline()

    def _stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            return proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()


def _admin_client(settings: dict):
    from confluent_kafka.admin import AdminClient

    return AdminClient(settings)


def serve_descriptions(requests: BinaryIO, answers: BinaryIO) -> None:
    """The describing process's body: the first line of ``requests`` gives the client settings, the group
    and the timeout; for each further line, one JSON line on ``answers``: the group's state and member ids,
    or the error.  Returns when ``requests`` ends or ``answers`` is closed.  A failed request drops the admin
    client."""
    first = requests.readline()
    if not first:
        return
    setup = json.loads(first)
    settings, group, timeout = setup["settings"], setup["group"], setup["timeout"]
    client = None
    for _ in iter(requests.readline, b""):
        try:
            if client is None:
                client = _admin_client(settings)
            future = client.describe_consumer_groups([group], request_timeout=timeout)[group]
            description = future.result(timeout=timeout + 5)
            answer = {"ok": True, "state": description.state.name,
                      "members": [m.member_id for m in description.members]}
        except Exception as exc:
            client = None
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            answers.write(json.dumps(answer).encode() + b"\n")
            answers.flush()
        except BrokenPipeError:  # the role ended while this request was out
            return


def exit_outside(role_log: logging.Logger, group: str, verdict: Verdict, seconds: float, stacks: str) -> None:
    """End the process at once with status 4, committing nothing: the consumer is outside ``group``."""
    exit_now(role_log, EXIT_STALLED, "stalled: the consumer has been outside group %s for %.0fs while the broker "
             "answers (%s); exiting without committing so that the process is restarted and the records are read "
             "again. Where it was:\n%s", group, seconds, verdict.why, stacks)


def check_membership(view: View, describe: Callable[[], tuple[Any, list[str]]], watch: MembershipWatch,
                     stopping: bool, now: float) -> tuple[Verdict | None, float | None]:
    """One check: the verdict (None when not checked: stopping, the broker did not answer, or the consumer's
    view is unknown) and, once the consumer has been outside its group for the watch's timeout, the seconds
    it has been."""
    verdict = None
    if not stopping:
        try:
            state, members = describe()
            member, me = view(members)
            if member is not None:  # a consumer that cannot tell is not judged
                verdict = place(state, members, member, me)
        except Exception as exc:  # an outage: not counted
            log.debug("group membership not checked: %s", exc)
    return verdict, watch.check(verdict, now)


def watch_membership(view: View, describe: Callable[[], tuple[Any, list[str]]], watch: MembershipWatch,
                     stopping: Callable[[], bool], on_outside: Callable[[Verdict, float], None],
                     done: threading.Event, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Every ``interval`` seconds until ``done``, :func:`check_membership`; ``on_outside(verdict, seconds)``
    once the consumer has been outside its group for the watch's timeout (a thread's body)."""
    while not done.wait(interval):
        verdict, seconds = check_membership(view, describe, watch, stopping(), clock())
        if seconds is not None:
            on_outside(verdict, seconds)
            return


if __name__ == "__main__":  # the describing process (GroupDescriber): it ends with its role's end of the pipe
    ignore_stop_signals()
    serve_descriptions(sys.stdin.buffer, sys.stdout.buffer)
