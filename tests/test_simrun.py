"""`tether simulate`: its figures on a trace small enough to work out by hand, and its errors."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tether.cli import main
from tether.simrun import Setup, parse_bandwidth, prepare, scheduler_options, simulate, workload
from tether.traces import TraceError, generate, load

MB = 1_000_000


def write_trace(path, tasks, sizes):
    """A WfFormat 1.5 file: tasks as (id, inputs, outputs, runtime)."""
    spec = [{"id": i, "name": i, "inputFiles": ins, "outputFiles": outs, "parents": [], "children": []}
            for i, ins, outs, _ in tasks]
    doc = {"name": "by-hand", "schemaVersion": "1.5",
           "workflow": {"specification": {"tasks": spec, "files": [{"id": f, "sizeInBytes": n}
                                                                    for f, n in sizes.items()]},
                        "execution": {"tasks": [{"id": i, "runtimeInSeconds": r} for i, _, _, r in tasks]}}}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def fork(tmp_path):
    """a reads the input (1 MB) for 10 s and makes mid (2 MB); b and c each read mid for 5 s and make
    half a megabyte, which goes home. Listed readers first: the order is the reader's to fix."""
    return write_trace(tmp_path / "fork.json", [
        ("b", ["mid"], ["out-b"], 5.0), ("c", ["mid"], ["out-c"], 5.0), ("a", ["in"], ["mid"], 10.0)],
        {"in": MB, "mid": 2 * MB, "out-b": MB // 2, "out-c": MB // 2})


def test_figures_of_a_fork_worked_out_by_hand(fork):
    """Two workers, 1 MB/s links, messages taking no time.

    0-1 s    the input comes from the manager to the first worker (1 MB)
    1-11 s   a runs there; b, its group's next member, waits there for mid
    11-16 s  b runs there; out-b goes home 16-16.5 s
    11-13 s  c is ready: the other worker is idle, so mid goes there from the first (2 MB)
    13-18 s  c runs there; out-c goes home 18-18.5 s: the makespan
    The first worker held in + mid + out-b (3.5 MB) at once, the second mid + out-c (2.5 MB).
    """
    r = simulate(load(fork), Setup(workers=2, bandwidth=MB, latency=0.0))
    assert (r.tasks, r.completed, r.failed) == (3, 3, 0)
    assert r.makespan_s == pytest.approx(18.5)
    assert (r.bytes_manager_to_worker, r.bytes_worker_to_worker, r.bytes_worker_to_manager) == (MB, 2 * MB, MB)
    assert (r.peak_disk_max, r.peak_disk_median) == (3.5 * MB, 3 * MB)
    assert r.scheduling_s > 0 and r.scheduling_s_per_task == pytest.approx(r.scheduling_s / 3)
    assert 0 < r.scheduling_cpu_s <= r.cpu_s
    # scaled: every run a tenth as long plus 0.2 s of overhead, every file a tenth as big
    r = simulate(load(fork), Setup(workers=2, bandwidth=MB, latency=0.0, time_scale=0.1, size_scale=0.1,
                                   overhead=0.2))
    assert r.makespan_s == pytest.approx(0.1 + 1.2 + 0.2 + 0.7 + 0.05)
    assert (r.bytes_manager_to_worker, r.bytes_worker_to_worker, r.bytes_worker_to_manager) == (
        MB // 10, 2 * MB // 10, MB // 10)


def test_one_worker_runs_the_fork_in_turn_and_moves_nothing_between_workers(fork):
    """0-1 input; 1-11 a; 11-16 b and 16-21 c on the one core (or c then b); the outputs go home
    while the next runs; the last 21-21.5 s. A shared link: the manager receives one at a time."""
    r = simulate(load(fork), Setup(workers=1, bandwidth=MB, latency=0.0))
    assert r.makespan_s == pytest.approx(21.5)
    assert (r.bytes_manager_to_worker, r.bytes_worker_to_worker, r.bytes_worker_to_manager) == (MB, 0, MB)


def test_copies_have_files_of_their_own_and_a_limit_cuts_the_last_copy(fork):
    trace = load(fork)
    assert [t.id for t in trace.tasks] == ["a", "b", "c"]   # producers first
    events = list(workload(trace, 3, Setup(), limit=7))
    assert [e.task for e, _, _ in events] == list(range(1, 8))
    first, second = events[0][0], events[3][0]
    assert first.inputs[0].source and first.inputs[0].name.startswith("file-")
    assert first.outputs[0].name.startswith("temp-") and events[1][0].outputs[0].home
    assert first.inputs[0].name != second.inputs[0].name and first.outputs[0].name != second.outputs[0].name
    r = simulate(trace, Setup(workers=2, bandwidth=MB, latency=0.0), copies=3)
    assert (r.tasks, r.completed, r.copies) == (9, 9, 3)
    assert (r.bytes_manager_to_worker, r.bytes_worker_to_manager) == (3 * MB, 3 * MB)
    assert prepare(str(fork), tasks=7)[1:] == (3, 7) and prepare(str(fork), copies=2)[1:] == (2, None)


def test_bandwidths_in_bits_and_bytes():
    assert parse_bandwidth("1gbit") == parse_bandwidth("1Gbit/s") == parse_bandwidth("1gbps") == 125e6
    assert parse_bandwidth("125MB/s") == 125e6 and parse_bandwidth("1MiB") == 2**20
    assert parse_bandwidth("100mbit") == 12.5e6 and parse_bandwidth("5e6") == 5e6
    for bad in ("fast", "0", "-1gbit", "1 parsec"):
        with pytest.raises(ValueError, match="bandwidth"):
            parse_bandwidth(bad)


def test_options_the_scheduler_does_not_take_yet_are_named():
    kwargs, ignored = scheduler_options(Setup(placement="none", order="depth", prune=None))
    assert kwargs["group_tasks"] is False
    # each option is passed under its own name once Scheduler takes it, and named until then
    for name, value in (("order", "depth"), ("prune", None)):
        assert (kwargs.get(name, "absent") == value) != (f"{name}={value}" in ignored)
    assert scheduler_options(Setup())[0] == {"bandwidth": Setup().bandwidth}   # nothing given: its defaults


def test_options_go_to_a_scheduler_that_takes_them_by_name():
    from tether.core import Scheduler

    class Taking(Scheduler):
        def __init__(self, *, group_tasks=True, bandwidth=125e6, placement="groups", order="breadth", prune=2):
            super().__init__(group_tasks=group_tasks, bandwidth=bandwidth)
            self.options = (placement, order, prune)

    setup = Setup(placement="graph", order="critical", prune=None)
    kwargs, ignored = scheduler_options(setup, Taking)
    assert ignored == [] and Taking(**kwargs).options == ("graph", "critical", None)
    assert kwargs["group_tasks"] is True
    assert scheduler_options(Setup(prune=3), Taking)[0] == {"bandwidth": setup.bandwidth, "prune": 3}


def test_a_recipe_is_generated_and_copied_to_the_tasks_asked_for():
    trace = generate("blast", 50, seed=3)
    assert trace.name.startswith("blast") and 40 <= len(trace.tasks) <= 60
    assert generate("blast", 50, seed=3) == trace   # the same seed, the same workflow
    made = trace.made()
    assert all(i in made for t in trace.tasks[1:] for i in t.inputs if i in made)
    with pytest.raises(TraceError, match="no WfCommons recipe named 'nope'"):
        generate("nope", 50)


def test_the_command_prints_and_writes_its_figures(fork, tmp_path):
    out = tmp_path / "sim.json"
    result = CliRunner().invoke(main, ["simulate", str(fork), "--workers", "2", "--bandwidth", "8mbit",
                                       "--latency", "0", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "makespan          18.50 s" in result.output and "worker->worker    2,000,000 B" in result.output
    figures = json.loads(out.read_text())
    assert figures["makespan_s"] == pytest.approx(18.5) and figures["tasks"] == 3


@pytest.mark.parametrize("args, message", [
    (["nothing-like-a-trace"], "neither a WfFormat file nor a WfCommons recipe"),
    (["{fork}", "--bandwidth", "quick"], "expected a bandwidth"),
    (["{fork}", "--tasks", "5", "--copies", "2"], "not both"),
    (["{fork}", "--prune", "deep"], "expected a depth"),
    (["{bad}"], "not a WfFormat workflow"),
])
def test_bad_input_is_named(fork, tmp_path, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = CliRunner().invoke(main, ["simulate", *(a.format(fork=fork, bad=bad) for a in args)])
    assert result.exit_code == 2 and message in result.output, result.output


def test_the_manager_s_link_sends_one_input_at_a_time(tmp_path):
    """Two tasks on two workers each read an input of their own (1 MB at 1 MB/s) and run 1 s: with shared
    links the second input waits for the first, so one task ends at 2 s and the other at 3 s."""
    trace = load(write_trace(tmp_path / "two.json", [("x", ["in-x"], ["out-x"], 1.0), ("y", ["in-y"], ["out-y"], 1.0)],
                             {"in-x": MB, "in-y": MB, "out-x": 0, "out-y": 0}))
    r = simulate(trace, Setup(workers=2, bandwidth=MB, latency=0.0))
    assert r.makespan_s == pytest.approx(3.0) and r.bytes_manager_to_worker == 2 * MB


def test_a_batching_manager_calls_the_core_less_and_ends_no_later_here(tmp_path):
    """Two tasks end 0.1 s apart: handed over as they come, or what arrived within 0.2 s at once."""
    trace = load(write_trace(tmp_path / "two.json", [("x", ["in-x"], ["out-x"], 1.0), ("y", ["in-y"], ["out-y"], 1.1)],
                             {"in-x": 0, "in-y": 0, "out-x": 0, "out-y": 0}))
    one, batched = (simulate(trace, Setup(workers=2, bandwidth=MB, latency=0.01, batch=b)) for b in (0.0, 0.2))
    assert batched.handles < one.handles and batched.completed == one.completed == 2
    # hello, assignment, (empty) input 10 ms each, the longer run 1.1 s, its report and its output home 10 ms
    # each: nothing waited for a batch
    assert batched.makespan_s == one.makespan_s == pytest.approx(1.15)


def test_without_shared_links_each_transfer_has_the_whole_bandwidth():
    from tether.core import FileSpec, Scheduler, TaskSubmitted
    from tether.simulate import Cluster

    ends = {}
    for shared in (False, True):
        c = Cluster(Scheduler(), latency=0.0, bandwidth=MB, shared_links=shared)
        c.add_worker()
        c.add_worker()
        for tid in (1, 2):
            c.submit(TaskSubmitted(tid, (FileSpec(f"file-{tid}", size=MB, source=True),),
                                   (FileSpec(f"out-{tid}", home=True),)), duration=1.0, sizes={f"out-{tid}": 0})
        c.run()
        ends[shared] = sorted(c.settled_at.values())
    assert ends[False] == pytest.approx([2.0, 2.0]) and ends[True] == pytest.approx([2.0, 3.0])
