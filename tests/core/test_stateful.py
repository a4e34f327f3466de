"""Random histories of a simulated cluster, checked after every step and at the end.

Hypothesis drives tether.simulate.Cluster (the real Scheduler and one real
WorkerState per worker, joined as the manager's engine and the worker
process join them) through random histories: task graphs of every shape
(chains that form groups, fan-out, fan-in, diamonds, consumers submitted
before their producers, outputs brought home, kept temps), time passing,
runs ending with success or with the task's own or a system failure,
workers lost (noticed at once or late), retired (asked to leave) and added (some with a user input
already cached), stalled links, files lost from caches, files wanted by the
user, outputs that cannot be written home and tasks cancelled. Workers
differ in speed, so the rebalancer takes group members back from slow ones;
a rule takes members back as it does, at any moment; retractions race with
starts.

After every step: Scheduler.validate() and WorkerState.validate() of every
live worker, and no task settled twice. At the end, with a worker alive and
every fault stopped, the cluster runs until nothing more happens; then every
submitted task has exactly one Complete or one Fail (every Future ends),
nothing is pending in the core, nothing is in flight, every wanted file was
delivered or refused, a task completed only after each of its inputs had
been made, each live worker holds exactly the files the core counts there,
and no temp that nothing needs is left in a cache.

The default profile is short, for CI (200 histories, about 12 s). For a
long search (5,000 histories of up to 80 steps, about 7 minutes):

    HYPOTHESIS_PROFILE=long pytest tests/core/test_stateful.py

Add --hypothesis-seed=N to search elsewhere. A failing history is printed
step by step, with each value drawn; tests/core/test_histories.py replays
the ones found so far, cut down to what matters.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tether.core import graph
from tether.core import SYSTEM_REASONS, Complete, FileSpec, Scheduler, TaskSubmitted, rebalance
from tether.simulate import Cluster

MAX_TASKS = 40
MAX_WORKERS = 5
SOURCES = [FileSpec(f"file-{i}", size=2_000, source=True) for i in range(3)]
DURATIONS = st.sampled_from([0.05, 0.2, 0.5, 1.0, 2.0])
SPEEDS = st.sampled_from([0.25, 1.0, 1.0, 2.0])
ENDINGS = st.sampled_from([None, None, None, "exit", "output", *sorted(SYSTEM_REASONS)])

PROFILES = {
    "default": dict(max_examples=200, stateful_step_count=50),
    "long": dict(max_examples=5_000, stateful_step_count=80),
}


class ClusterHistory(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.sim = Cluster(Scheduler(system_retries=2, blocklist_after=3, blocklist_seconds=2.0, park=True),
                           latency=0.01, bandwidth=1e6, tick=0.25)
        self.tasks = 0
        self.made: list[str] = []          # files some submitted task makes
        self.keep: dict[str, bool] = {}    # made file -> kept
        self.home: set[str] = set()        # made files that go home
        self.orphans: list[str] = []       # files read by a task whose producer is not submitted yet
        self.inputs: dict[int, list[str]] = {}
        self.producer: dict[str, int] = {}
        self.released: set[str] = set()    # made files the user can no longer name
        self.sim.add_worker(cores=2)
        self.sim.add_worker(cores=2, speed=0.25)   # a slow one: the rebalancer moves members off it

    @initialize(placement=st.sampled_from(["graph", "graph", "groups"]),
                order=st.sampled_from(["critical", "depth", "breadth"]), prune=st.sampled_from([0, 0, 1, 2, None]))
    def choose_options(self, placement, order, prune):
        """How the core places, orders and prunes in this history (nothing has been handled yet)."""
        core = self.sim.core
        core.placement, core.order, core.prune = placement, order, prune

    # ------------------------------------------------------------ helpers

    def _submit(self, inputs: list[str], outputs: list[FileSpec], data, **kw) -> int:
        self.tasks += 1
        tid = self.tasks
        specs = tuple(s for s in SOURCES if s.name in inputs) + tuple(
            FileSpec(n, keep=self.keep.get(n, False)) for n in inputs if not n.startswith("file-"))
        for f in outputs:
            self.producer[f.name] = tid
            self.keep[f.name] = f.keep
            if f.home:
                self.home.add(f.name)
            if f.name in self.orphans:
                self.orphans.remove(f.name)
            self.made.append(f.name)
        self.inputs[tid] = list(inputs)
        event = TaskSubmitted(tid, specs, tuple(outputs), cores=data.draw(st.sampled_from([1, 1, 1, 2]), "cores"),
                              retries=data.draw(st.integers(0, 1), "retries"), **kw)
        self.sim.submit(event, duration=data.draw(DURATIONS, "duration"))
        return tid

    def _new_output(self, data, tid_hint: int) -> FileSpec:
        kind = data.draw(st.sampled_from(["temp", "temp", "kept", "home"]), "output")
        name = f"{'out' if kind == 'home' else 'temp'}-{tid_hint}-{len(self.made)}"
        return FileSpec(name, home=kind == "home", keep=kind == "kept")

    def _movable(self) -> list[tuple[str, tuple[int, ...]]]:
        core = self.sim.core
        return [(w.id, tuple(m.id for m in suffix)) for w in core.workers.values() if w.alive
                for g in rebalance._groups_on(w) for suffix in [rebalance._not_started(g, w, core)] if suffix]

    def _existing(self, data) -> str:
        pool = [s.name for s in SOURCES] + self._named() + self.orphans
        return data.draw(st.sampled_from(pool), "input")

    def _named(self) -> list[str]:
        """Made files the user still holds a handle to."""
        return [n for n in self.made if n not in self.released]

    def _releasable(self) -> list[str]:
        """Named files no fetch is waiting for (a fetch holds its file's handle)."""
        return [n for n in self._named() if n not in self.orphans and self.sim.wants.get(n, "") is not None]

    # ------------------------------------------------------------ the user

    @precondition(lambda self: self.tasks < MAX_TASKS)
    @rule(data=st.data(), length=st.integers(1, 5))
    def submit_chain(self, data, length):
        """A chain (a group when its members are unstarted); its head reads a source, or any file: fan-out."""
        previous = self._existing(data)
        for _ in range(length):
            out = self._new_output(data, self.tasks + 1)
            self._submit([previous], [out], data)
            previous = out.name
        self.sim.flush()

    @precondition(lambda self: self.tasks < MAX_TASKS and len(self.made) >= 2)
    @rule(data=st.data(), width=st.integers(2, 3))
    def submit_join(self, data, width):
        """Fan-in; a diamond when the inputs share an ancestor."""
        pool = sorted(set(self._named() + [s.name for s in SOURCES]))
        inputs = data.draw(st.lists(st.sampled_from(pool), min_size=2, max_size=width, unique=True), "inputs")
        self._submit(inputs, [self._new_output(data, self.tasks + 1)], data)
        self.sim.flush()

    @precondition(lambda self: self.tasks < MAX_TASKS)
    @rule(data=st.data())
    def submit_consumer_first(self, data):
        """A task reading a file whose producer is submitted later (or only at the end)."""
        name = f"temp-early-{self.tasks + 1}"
        self.orphans.append(name)
        inputs = [name] + ([self._existing(data)] if data.draw(st.booleans(), "two inputs") else [])
        self._submit(sorted(set(inputs)), [self._new_output(data, self.tasks + 1)], data)
        self.sim.flush()

    @precondition(lambda self: self.orphans)
    @rule(data=st.data())
    def submit_producer(self, data):
        name = data.draw(st.sampled_from(self.orphans), "orphan")
        self._submit([data.draw(st.sampled_from([s.name for s in SOURCES]), "source")], [FileSpec(name)], data)
        self.sim.flush()

    @precondition(lambda self: self._named())
    @rule(data=st.data())
    def want(self, data):
        self.sim.want(data.draw(st.sampled_from(self._named()), "wanted"))
        self.sim.flush()

    @precondition(lambda self: self._releasable())
    @rule(data=st.data())
    def release(self, data):
        """The user drops a file's handle: the core may let go of it, and of lineage only it needed."""
        name = data.draw(st.sampled_from(self._releasable()), "released")
        self.released.add(name)
        self.sim.release(name)
        self.sim.flush()

    @precondition(lambda self: self.home - self.sim.homes)
    @rule(data=st.data())
    def refuse_home(self, data):
        self.sim.refuse_home(data.draw(st.sampled_from(sorted(self.home - self.sim.homes)), "unwritable"))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def cancel(self, data):
        self.sim.cancel(data.draw(st.integers(1, self.tasks), "cancelled"))
        self.sim.flush()

    # ------------------------------------------------------------ time and the workers

    @rule(seconds=st.sampled_from([0.01, 0.1, 0.3, 1.0, 3.0]))
    def let_time_pass(self, seconds):
        self.sim.run(until=self.sim.now + seconds, limit=20_000)

    @rule()
    def settle(self):
        self.sim.run(limit=20_000)

    @precondition(lambda self: self.sim.running())
    @rule(data=st.data(), ending=ENDINGS)
    def end_a_run(self, data, ending):
        _, tid = data.draw(st.sampled_from(self.sim.running()), "run")
        self.sim.end_run(tid, ending)
        self.sim.flush()

    @precondition(lambda self: len(self.sim.alive()) < MAX_WORKERS)
    @rule(cores=st.integers(1, 3), speed=SPEEDS, cached=st.booleans())
    def add_worker(self, cores, speed, cached):
        """A worker joins, maybe with a user input in its cache from an earlier run."""
        self.sim.add_worker(cores=cores, speed=speed, cached={SOURCES[0].name: SOURCES[0].size} if cached else None)

    @precondition(lambda self: self._movable())
    @rule(data=st.data())
    def take_back(self, data):
        """Members not started yet are taken back from their worker, as the rebalancer does (racing starts)."""
        wid, suffix = data.draw(st.sampled_from(self._movable()), "members")
        core = self.sim.core
        core.move([core.tasks[t] for t in suffix], core.workers[wid], None)
        self.sim.flush()

    @precondition(lambda self: self.sim.alive())
    @rule(data=st.data(), noticed_after=st.sampled_from([0.0, 0.0, 0.05, 1.0]))
    def lose_worker(self, data, noticed_after):
        self.sim.lose_worker(data.draw(st.sampled_from(self.sim.alive()), "lost"), noticed_after)
        self.sim.flush()

    @precondition(lambda self: self.sim.alive())
    @rule(data=st.data())
    def retire_worker(self, data):
        """A worker is asked to leave (scale-in, idle timeout): the core sends it away once its temps are safe."""
        self.sim.retire(data.draw(st.sampled_from(self.sim.alive()), "retiring"))
        self.sim.flush()

    @precondition(lambda self: self.sim.alive())
    @rule(data=st.data(), seconds=st.sampled_from([0.3, 1.0, 4.0]))
    def stall(self, data, seconds):
        self.sim.stall(data.draw(st.sampled_from(self.sim.alive()), "stalled"), seconds)

    @precondition(lambda self: any(self.sim.workers[w].state.present for w in self.sim.alive()))
    @rule(data=st.data())
    def lose_file(self, data):
        holders = [w for w in self.sim.alive() if self.sim.workers[w].state.present]
        wid = data.draw(st.sampled_from(holders), "holder")
        self.sim.lose_file(wid, data.draw(st.sampled_from(sorted(self.sim.workers[wid].state.present)), "file"))
        self.sim.flush()

    # ------------------------------------------------------------ checks

    @invariant()
    def valid(self):
        self.sim.validate()
        twice = {t: o for t, o in self.sim.outcomes.items() if len(o) > 1}
        assert not twice, f"tasks settled more than once: {twice}"

    def teardown(self):
        """Stop the faults, give every orphan its producer and the cluster a worker, and run to the end."""
        sim = self.sim
        for name in list(self.orphans):
            self.tasks += 1
            self.producer[name] = self.tasks
            self.made.append(name)
            self.inputs[self.tasks] = [SOURCES[0].name]
            sim.submit(TaskSubmitted(self.tasks, (SOURCES[0],), (FileSpec(name),)), duration=0.1)
        self.orphans.clear()
        for w in sim.workers.values():
            w.stalled_until = min(w.stalled_until, sim.now)   # messages held back still arrive in order
        sim.add_worker(cores=3)
        sim.run(limit=20_000)
        sim.validate()
        assert sim.quiet(), "something is still in flight"
        unsettled = sorted(t for t in range(1, self.tasks + 1) if len(sim.outcomes.get(t, ())) != 1)
        assert not unsettled, (f"tasks whose Future did not end exactly once: {unsettled} "
                               f"({[sim.core.tasks[t] for t in unsettled if t in sim.core.tasks]})")
        assert sim.core.pending_count() == 0, sim.core.counts_by_state()
        waiting = [n for n, outcome in sim.wants.items() if outcome is None]
        assert not waiting, f"wanted files never delivered nor refused: {waiting}"
        for wid in sim.alive():
            held = {n for n in sim.workers[wid].state.present if n in sim.core.files}   # cached before: its own
            counted = {f.name for f in sim.core.workers[wid].files if sim.core.workers[wid] in f.replicas}
            assert held == counted, (f"worker {wid} holds {sorted(held - counted)} unknown to the core; the core "
                                     f"counts {sorted(counted - held)} there, which it does not hold")
        prune = sim.core.prune
        for f in sim.core.files.values():
            if f.producer is not None and not (f.home or f.keep or f.wanted or f.consumers) and f.had_consumers \
                    and (f.released or (prune is not None and graph.settled_below(f, prune))):
                assert not f.replicas, f"temp {f.name} is needed by no task but still held by {f.replicas}"
        self._note_coverage()
        self._check_outcomes()
        # the user lets go of every file: the core lets go of every task and every file a task made
        for name in self._named():
            sim.release(name)
        sim.run(limit=20_000)
        sim.validate()
        assert not sim.core.tasks, f"tasks kept after every file was released: {list(sim.core.tasks.values())}"
        made = [f for f in sim.core.files.values() if f.producer is not None]
        assert not made, f"files kept after every file was released: {made}"
        for wid in sim.alive():
            left = sorted(n for n in sim.workers[wid].state.present if n in self.producer)
            assert not left, f"worker {wid} still caches {left} after every file was released"

    def _check_outcomes(self):
        sim = self.sim
        for tid, (outcome,) in sim.outcomes.items():
            if type(outcome) is not Complete:
                continue
            runs = [r for r in sim.successes.get(tid, ()) if r[2] <= sim.settled_at[tid]]
            assert runs, f"task {tid} completed without a successful run"
            started = runs[-1][1]
            for name in self.inputs[tid]:
                if name in self.producer:
                    made = sim.made_at.get(name)
                    assert made is not None and made <= started, (
                        f"task {tid} completed, its run started at {started}, but its input {name} was "
                        f"made at {made}")

    def _note_coverage(self):
        """What the history went through (pytest --hypothesis-show-statistics lists how often)."""
        core, sim = self.sim.core.counters, self.sim.counters
        for what, count in (("members moved", core.moves), ("temps made again", core.reruns),
                            ("system failures", core.system_failures), ("workers blocklisted", core.blocklisted),
                            ("retractions too late", sim["retracted_too_late"]), ("tasks rejected", sim["rejected"]),
                            ("fetches failed", sim["fetches_failed"]), ("tasks failed", core.tasks_failed),
                            ("workers retired", sim["retired"]),
                            ("temps kept by the manager", len(self.sim.parking))):
            if count:
                event(what)


profile = PROFILES[os.environ.get("HYPOTHESIS_PROFILE", "default")]
ClusterHistory.TestCase.settings = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                                            **profile)
TestClusterHistory = pytest.mark.slow(ClusterHistory.TestCase)
