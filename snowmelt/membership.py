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
description of the group, from a client of its own (:class:`GroupDescriber`).
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

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snowmelt.lifecycle import EXIT_STALLED, exit_now

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

    The description is librdkafka's DescribeConsumerGroups, asked in a child
    process of its own (:class:`_DescriberProcess`): a coordinator that dies
    while that request is out aborts the process that asked
    (``rd_kafka_enq_once_del_source_return: Assertion `eonce->refcnt > 0'
    failed``, librdkafka 2.16.0: every role aborted at once in the failover
    bench, and four processes of four asking in a loop at a coordinator's
    kill, ``tests/integration/test_kafka_cluster.py``).  A child that dies is
    an outage of the description, and the next one starts another.  The ends
    are ListOffsets, asked of the partitions' leaders from this process: no
    coordinator is involved, and none of those processes aborted.

    A request that fails drops its client: the next one starts from a new
    client, not from the broker the failed one may still point to.
    """

    def __init__(self, settings: dict, group: str, timeout: float = 10.0,
                 factory: Callable[[dict], Any] | None = None, describe: Callable[..., None] | None = None):
        self.settings = {**settings, "log_level": 0}
        self.group = group
        self.timeout = timeout
        self.factory = factory or _admin_client
        self._client = None
        self._describer = _DescriberProcess(self.settings, group, timeout, describe or serve_descriptions)

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


class _DescriberProcess:
    """A child process that answers ``(state, member ids)`` of one group for each request sent to it.

    Started on the first request (``spawn``: a fresh interpreter, not a fork of
    this process and its librdkafka threads) and again after it died; it ends
    when this process closes its end of the pipe, or dies.  One request at a
    time (a lock): the roles ask from one thread at a time anyway.
    """

    def __init__(self, settings: dict, group: str, timeout: float, serve: Callable[..., None]):
        self.settings, self.group, self.timeout, self.serve = settings, group, timeout, serve
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()

    def ask(self) -> tuple[str, list[str]]:
        with self._lock:
            if self._proc is None:
                self._start()
            try:
                self._conn.send(None)
                if not self._conn.poll(self.timeout + 10):
                    raise TimeoutError(f"no description of group {self.group} within {self.timeout + 10:.0f}s")
                ok, value = self._conn.recv()
            except (OSError, EOFError) as exc:  # the child died (its end of the pipe closed)
                code = self._stop()
                log.warning("the process describing group %s ended (exit status %s); another is started on the "
                            "next check", self.group, code)
                raise DescriberDied(f"the describing process ended ({code})") from exc
            except TimeoutError:
                self._stop()
                raise
            if not ok:
                raise RuntimeError(value)
            return value

    def _start(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe()
        proc = context.Process(target=self.serve, args=(theirs, self.settings, self.group, self.timeout),
                               name=f"snowmelt-describe-{self.group}", daemon=True)
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, mine

    def _stop(self) -> int | None:
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        proc.join(2)
        if proc.exitcode is None:
            proc.kill()
            proc.join(2)
        return proc.exitcode

    def close(self) -> None:
        with self._lock:
            self._stop()


def _admin_client(settings: dict):
    from confluent_kafka.admin import AdminClient

    return AdminClient(settings)


def serve_descriptions(conn, settings: dict, group: str, timeout: float) -> None:
    """The describing process's body: for each request on ``conn``, ``(True, (state, member ids))`` or
    ``(False, why)``; it returns when the other end closes.  A failed request drops the admin client."""
    client = None
    while True:
        try:
            conn.recv()
        except (EOFError, OSError):
            return
        try:
            if client is None:
                client = _admin_client(settings)
            future = client.describe_consumer_groups([group], request_timeout=timeout)[group]
            description = future.result(timeout=timeout + 5)
            answer = (True, (description.state.name, [m.member_id for m in description.members]))
        except Exception as exc:
            client = None
            answer = (False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except (BrokenPipeError, OSError):
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
