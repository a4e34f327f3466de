"""What the whole known graph says about order and placement, beyond one task at a time.

Three things the scheduler asks of the graph:

  order      which ready task goes first: the deepest (depth, the default:
             finish a branch before starting another, so its temps are
             collected early and a worker's disk holds few at once), the one
             with the longest known path of tasks still after it (critical),
             or the shallowest (breadth: level by level, as submitted)
  affinity   where a task should run so that files meeting later in one
             consumer are made on one worker: a worker with a free core
             takes, among the first ready tasks, the one whose inputs it
             holds and whose partners (the other producers of its outputs'
             consumers) ran or run there; a task whose partners are busy
             elsewhere is left to the workers near them
  pruning    how long a temp outlives its readers: depth 0 deletes it once
             every reader succeeded; depth k waits until the tasks k levels
             below its readers ended too (a lost file below is then
             remade from nearby); no pruning keeps temps until released

Levels and heights are counts of tasks on the longest known paths, kept as
the graph grows; a height is propagated at most HEIGHT_REACH levels up, so
a long chain costs a bounded amount per task added, and only under the
critical order (the others rank by levels, which cost O(inputs) a task).
"""
from __future__ import annotations

from typing import Iterable

from .lifecycle import FileState, TaskState
from .model import FileNode, TaskNode, WorkerNode

PLACEMENTS = ("graph", "groups", "none")
ORDERS = ("critical", "depth", "breadth")
HEIGHT_REACH = 64      # levels a new task's height is carried up through its ancestors
CANDIDATES = 32        # ready tasks a free worker looks at when it chooses by affinity
PARTNER_READS = 64     # inputs of one consumer looked at for partners (a wide fan-in costs no more)
PARTNER_CONSUMERS = 8  # consumers of one output looked at for partners
ELSEWHERE = 0.5        # weight of partner bytes on other workers against those on this one
# a member read through its enum class costs a Python-level lookup each time: read once here for the loops
_SOURCE, _HOME, _RECIPE = FileState.SOURCE, FileState.HOME, FileState.RECIPE
_READY = TaskState.READY
ENDED = (TaskState.DONE, TaskState.HOMING, TaskState.FAILED, TaskState.CANCELLED)   # will not read again


def check_options(placement: str | None, order: str, prune: int | None, group_tasks: bool = True) -> str:
    """The placement meant (None: as group_tasks says), after a clear error naming any option that is wrong."""
    if placement is None:
        placement = "graph" if group_tasks else "none"
    if placement not in PLACEMENTS:
        raise ValueError(f"placement={placement!r}: expected one of {', '.join(PLACEMENTS)}")
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: expected one of {', '.join(ORDERS)}")
    if prune is not None and (isinstance(prune, bool) or not isinstance(prune, int) or prune < 0):
        raise ValueError(f"prune={prune!r}: expected a depth of 0 or more, or None to keep temps until released")
    return placement


def link(t: TaskNode, heights: bool) -> bool:
    """Place t in the graph's levels; with heights (only order "critical" ranks by them), take its
    height from the consumers submitted before it and carry it up to its producers.

    Depth and breadth need levels alone, set here in O(inputs): a long chain
    then costs no walk of HEIGHT_REACH ancestors per task added. Returns
    whether a ready task's height changed (its place in the ready queue is
    then out of date)."""
    level = 0
    for f in t.inputs:
        p = f.producer
        if p is not None and p.level >= level:
            level = p.level + 1
    t.level = level
    if not heights:
        return False
    for f in t.outputs:
        for c in f.consumers:   # read by tasks submitted before it
            if c.height >= t.height:
                t.height = c.height + 1
    stale = False
    frontier = [t]
    for _ in range(HEIGHT_REACH):
        above = []
        for c in frontier:
            h = c.height + 1
            for f in c.inputs:
                p = f.producer
                if p is not None and p.height < h:
                    p.height = h
                    stale = stale or p.state is _READY
                    above.append(p)
        if not above:
            break
        frontier = above
    return stale


def rank(t: TaskNode, order: str) -> int:
    """t's place among ready tasks of equal priority: smaller goes first."""
    if order == "critical":
        return -t.height
    if order == "depth":
        return -t.level
    return t.level


def partners(t: TaskNode) -> tuple[FileNode, ...]:
    """The files that may meet t's outputs in a consumer: its consumers' other inputs (affinity
    skips those served from home or made by each worker).

    Worked out once and kept on t until a consumer of its outputs comes or goes
    (consumers_changed): a free worker asks for them for each of its candidates,
    and a consumer's inputs never change. Consumers are looked at by id (a set's
    order follows memory addresses): the same events give the same partners, and
    so the same placements."""
    found = t.partners
    if found is None:
        found = t.partners = tuple(find_partners(t))
    return found


def find_partners(t: TaskNode) -> Iterable[FileNode]:
    """partners(t), worked out afresh."""
    outputs = t.outputs
    for f in outputs:
        n = 0
        for c in sorted(f.consumers, key=_task_id):
            if c is t:
                continue
            n += 1
            if n > PARTNER_CONSUMERS:
                break
            for g in c.inputs[:PARTNER_READS]:
                if g not in outputs:
                    yield g


def consumers_changed(f: FileNode) -> None:
    """A task began or stopped reading f: its producer's partners are found again when next asked for."""
    p = f.producer
    if p is not None:
        p.partners = None


def _task_id(t: TaskNode) -> int:
    return t.id


def affinity(t: TaskNode, w: WorkerNode, guess: float, scored: dict | None = None) -> float:
    """Bytes t finds or meets on w, less a share of those it would meet elsewhere.

    Its inputs already on w count whole; a partner file on w (or being made
    there) counts its size (guess, while it is not made); a partner on other
    workers counts against, so that tasks whose partners run elsewhere are
    left to the workers there.

    scored: kept by a caller that scores several tasks for one w while nothing
    changes. Tasks that feed one wide consumer share their partners, and those
    with the same bytes on w share the score too: the sum is made once, in
    the same order, so it is the same float."""
    score = 0.0
    for f in t.inputs:
        if w in f.replicas or w in f.pending:
            score += f.size
    meets = partners(t)
    if scored is not None:
        key = (score, meets)
        known = scored.get(key)
        if known is not None:
            return known
    for g in meets:
        state = g.state
        if state is _SOURCE or state is _HOME or state is _RECIPE:
            continue   # served from home, or made by each worker: any worker has it, it meets nothing
        size = g.size or guess
        if w in g.replicas or w in g.pending:
            score += size
        elif g.replicas:
            score -= ELSEWHERE * size
        else:
            p = g.producer
            if p is not None and p.worker is not None:
                score += size if p.worker is w else -ELSEWHERE * size
    if scored is not None:
        scored[key] = score
    return score


def settled_below(f: FileNode, depth: int) -> bool:
    """Have f's readers, and the tasks `depth` levels below them, all ended (succeeded, or failed for good)?"""
    readers = f.readers
    if readers is None:
        return True
    for r in readers:
        if r.state not in ENDED:
            return False
        if depth > 0 and not all(settled_below(o, depth - 1) for o in r.outputs):
            return False
    return True


def above(t: TaskNode, depth: int) -> Iterable[FileNode]:
    """The files up to `depth` levels above t's inputs: those t's success may let go (depth-k pruning)."""
    seen: set[int] = set()
    frontier = [t]
    for _ in range(depth):
        nxt = []
        for c in frontier:
            for f in c.inputs:
                p = f.producer
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    nxt.append(p)
                    for g in p.inputs:
                        yield g
        frontier = nxt
