"""Which tasks form a group: a sequence committed to one worker.

The rule: a task C continues the group G when
  - C consumes a file made by G's last member (the tail), and
  - every file C reads that some task makes is made by a member of G, and
  - the tail has not finished, or it finished on the worker G is committed
    to and what C reads from it is still there (a consumer submitted late
    still goes where its data is, without a transfer), and
  - no other task has continued the tail yet (a fan-out does not serialize:
    the first consumer continues, the others are placed on their own).
Fan-in (made-inputs from several groups) and diamonds therefore start new
groups, placed by locality when they are ready.

Tasks may be submitted in any order, so the rule is tried whenever both
ends of an edge are known: when a consumer is added, and again when one of
its producers is added. A task with no group of its own yet is a group of
one (task.group is None) so that plain task graphs cost nothing here.
"""
from __future__ import annotations

import itertools
from typing import Iterable

from .lifecycle import FINISHED, FileState, TaskState
from .model import Group, TaskNode


class Grouper:
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def group_of(self, task: TaskNode) -> Group:
        if task.group is None:
            task.group = Group(next(self._ids), task)
        return task.group

    def try_attach(self, consumer: TaskNode) -> Group | None:
        """Append consumer's group to its producers' group if the rule allows.

        Returns the group that grew, or None.
        """
        mine = consumer.group
        if mine is not None and (mine.members[0] is not consumer or mine.worker is not None):
            return None  # not a head, or already committed to a worker
        producers = set()
        for f in consumer.inputs:
            if f.source or f.state is FileState.RECIPE:
                continue   # made by no task: each worker has it, or makes its own
            if f.producer is None:
                return None  # not known yet: tried again when the producer arrives
            producers.add(f.producer)
        if not producers:
            return None
        groups = {id(p.group) if p.group is not None else id(p) for p in producers}
        if len(groups) != 1:
            return None  # fan-in: made-inputs come from several groups
        anchor = next(iter(producers))
        theirs = anchor.group
        tail = theirs.tail if theirs is not None else anchor
        if tail not in producers or not _can_continue(tail, consumer):
            return None
        if theirs is not None and theirs is mine:
            return None
        joining = mine.members if mine is not None else [consumer]
        if theirs is not None and theirs.worker is not None:
            if not theirs.worker.staying or not all(theirs.worker.fits(m) for m in joining):
                return None
        theirs = self.group_of(tail)
        theirs.members.extend(joining)
        for m in joining:
            m.group = theirs
        return theirs

    def regroup(self, tasks: Iterable[TaskNode]) -> list[Group]:
        """Form groups afresh among tasks to be planned again (after a loss).

        The tasks leave their old groups; groups are then rebuilt by the same
        rule, in submission order, as if the tasks had just been submitted.
        """
        tasks = sorted(set(tasks), key=lambda t: t.id)
        leaving = set(tasks)
        for old in {id(t.group): t.group for t in tasks if t.group is not None}.values():
            old.members = [m for m in old.members if m not in leaving]
        for t in tasks:
            t.group = None
        grown: dict[int, Group] = {}
        for t in tasks:
            g = self.try_attach(t)
            if g is not None:
                grown[id(g)] = g
        return list(grown.values())


def _can_continue(tail: TaskNode, consumer: TaskNode) -> bool:
    if tail.state not in FINISHED:
        return True
    g = tail.group
    if tail.state not in (TaskState.DONE, TaskState.HOMING) or g is None or g.worker is None or not g.worker.staying:
        return False
    w = g.worker
    return all(w in f.replicas for f in consumer.inputs if f.producer is tail)
