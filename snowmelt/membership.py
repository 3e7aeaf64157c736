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

import contextlib
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
    """The broker's description of ``group`` as (state, member ids), from one admin client of its own.

    A description that fails drops the client: the next one starts from a
    new client, not from the coordinator the failed one may still point to.
    """

    def __init__(self, settings: dict, group: str, timeout: float = 10.0,
                 factory: Callable[[dict], Any] | None = None):
        self.settings = {**settings, "log_level": 0}
        self.group = group
        self.timeout = timeout
        self.factory = factory or _admin_client
        self._client = None

    @classmethod
    def of(cls, kafka, group: str) -> GroupDescriber:
        """For ``group`` on the brokers of the ``kafka`` config section (its own client id, ``-membership``)."""
        from snowmelt.health import kafka_client_settings

        return cls({**kafka_client_settings(kafka), "client.id": f"{kafka.client_id}-membership"}, group)

    @contextlib.contextmanager
    def _asking(self):
        """The admin client for one request (made when there is none); dropped if the request fails."""
        if self._client is None:
            self._client = self.factory(self.settings)
        try:
            yield self._client
        except Exception:
            self._client = None
            raise

    def __call__(self) -> tuple[Any, list[str]]:
        with self._asking() as client:
            future = client.describe_consumer_groups([self.group], request_timeout=self.timeout)[self.group]
            description = future.result(timeout=self.timeout + 5)
        return description.state, [m.member_id for m in description.members]

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
        with self._asking() as client:
            futures = client.list_offsets({TopicPartition(topic, partition): spec for topic, partition in partitions},
                                          isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=self.timeout)
            return {(tp.topic, tp.partition): future.result(timeout=self.timeout + 5).offset
                    for tp, future in futures.items()}


def _admin_client(settings: dict):
    from confluent_kafka.admin import AdminClient

    return AdminClient(settings)


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
