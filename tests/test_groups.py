"""Task groups with real workers: shapes, hand-off, retries, lost workers, slow workers."""
from __future__ import annotations

import collections
import os
import signal
from pathlib import Path


from tether import Manager, Task

from .conftest import start_worker, stop, wait_until


def run_log(path: Path) -> collections.Counter:
    """How many times each task ran, from the lines the tasks appended."""
    return collections.Counter(path.read_text().split()) if path.exists() else collections.Counter()


def chain(m: Manager, name: str, length: int, log: Path, out: Path, cmd: str = "true", **kw):
    """A chain whose members log their runs; the last one's file comes home."""
    futures, prev = [], None
    for i in range(length):
        made = m.declare_file(out) if i == length - 1 else m.declare_temp()
        body = f"echo {name}{i} >> {log}; {cmd}; "
        body += "cat in > out; " if prev else ""
        body += f"echo {name}{i} >> out"
        futures.append(m.submit(Task(body, inputs={"in": prev} if prev else {}, outputs={"out": made}, **kw)))
        prev = made
    return futures


def expected(name: str, length: int) -> str:
    return "".join(f"{name}{i}\n" for i in range(length))


def test_each_chain_runs_on_one_worker_with_no_transfer(tmp_path):
    log = tmp_path / "log"
    with Manager(workers=2, cores_per_worker=1) as m:
        runs = {n: chain(m, n, 10, log, tmp_path / f"{n}.out") for n in "abc"}
        for n, futures in runs.items():
            infos = [f.result(60) for f in futures]
            assert len({i.worker for i in infos}) == 1, f"chain {n} was split"
            assert all(i.hop_latency is not None for i in infos[1:])
            assert (tmp_path / f"{n}.out").read_text() == expected(n, 10)
        s = m.stats()
        assert s["bytes_worker_to_worker"] == 0
        assert s["bytes_worker_to_manager"] == sum(len(expected(n, 10)) for n in "abc")


def test_parsldock_shape_runs_on_one_worker(tmp_path):
    with Manager(workers=2, cores_per_worker=1) as m:
        rec = m.declare_buffer(b"receptor\n")
        t = {k: m.declare_temp() for k in ("pdbqt", "ligand", "docked", "scored")}
        report = m.declare_file(tmp_path / "report")
        fs = [
            m.submit(Task("cat r > pdbqt", inputs={"r": rec}, outputs={"pdbqt": t["pdbqt"]})),
            m.submit(Task("echo ligand > ligand", inputs={"pdbqt": t["pdbqt"]}, outputs={"ligand": t["ligand"]})),
            m.submit(Task("cat pdbqt ligand > docked", inputs={"pdbqt": t["pdbqt"], "ligand": t["ligand"]},
                          outputs={"docked": t["docked"]})),
            m.submit(Task("cat docked pdbqt > scored", inputs={"docked": t["docked"], "pdbqt": t["pdbqt"]},
                          outputs={"scored": t["scored"]})),
            m.submit(Task("cat scored ligand > report", inputs={"scored": t["scored"], "ligand": t["ligand"]},
                          outputs={"report": report})),
        ]
        assert len({f.result(60).worker for f in fs}) == 1
        assert (tmp_path / "report").read_text() == "receptor\nligand\nreceptor\nligand\n"
        assert m.stats()["bytes_worker_to_worker"] == 0


def test_fan_out_consumers_are_not_serialized_behind_the_first(tmp_path):
    with Manager(workers=2, cores_per_worker=1) as m:
        m.wait_for_workers()
        x = m.declare_temp()
        m.submit(Task("echo x > x", outputs={"x": x}))
        consumers = [m.submit(Task("sleep 0.5; cat x", inputs={"x": x})) for _ in range(2)]
        a, b = (f.result(60) for f in consumers)
        # they ran side by side on the two workers, one of them with a peer copy of x
        assert a.worker != b.worker
        assert a.started < b.finished and b.started < a.finished
        assert m.stats()["bytes_worker_to_worker"] == 2


def test_fan_in_goes_where_most_input_bytes_are(tmp_path):
    with Manager(workers=2, cores_per_worker=1) as m:
        m.wait_for_workers()
        small, big = m.declare_temp(), m.declare_temp()
        fs = m.submit(Task("echo small > s", outputs={"s": small}))
        fb = m.submit(Task("head -c 5000000 /dev/zero > b", outputs={"b": big}))
        fi = m.submit(Task("cat s b | wc -c", inputs={"s": small, "b": big}))
        assert fi.result(60).stdout.strip() == "5000006"
        assert fi.result().worker == fb.result().worker
        assert m.stats()["bytes_worker_to_worker"] in (0, 6)


def test_diamond(tmp_path):
    with Manager(workers=2, cores_per_worker=1) as m:
        a, b, c = m.declare_temp(), m.declare_temp(), m.declare_temp()
        out = m.declare_file(tmp_path / "d")
        m.submit(Task("echo a > a", outputs={"a": a}))
        m.submit(Task("cat a > b; echo b >> b", inputs={"a": a}, outputs={"b": b}))
        m.submit(Task("cat a > c; echo c >> c", inputs={"a": a}, outputs={"c": c}))
        m.submit(Task("cat b c > d", inputs={"b": b, "c": c}, outputs={"d": out})).result(60)
        assert (tmp_path / "d").read_text() == "a\nb\na\nc\n"


def test_failed_member_is_retried_alone(tmp_path):
    log, flag = tmp_path / "log", tmp_path / "failed-once"
    with Manager(workers=2, cores_per_worker=1) as m:
        futures = chain(m, "m", 5, log, tmp_path / "out", retries=1,
                        cmd=f'if [ "$(tail -n1 {log})" = m2 ] && [ ! -e {flag} ]; then touch {flag}; exit 1; fi')
        infos = [f.result(60) for f in futures]
    assert run_log(log) == {"m0": 1, "m1": 1, "m2": 2, "m3": 1, "m4": 1}
    assert [i.attempts for i in infos] == [1, 1, 2, 1, 1]
    assert len({i.worker for i in infos}) == 1   # retried where its input was
    assert (tmp_path / "out").read_text() == expected("m", 5)


def test_worker_killed_mid_chain_only_lost_work_is_redone(tmp_path):
    log = tmp_path / "log"
    with Manager(workers=2, cores_per_worker=1) as m:
        m.wait_for_workers()
        a = chain(m, "a", 8, log, tmp_path / "a.out", cmd="sleep 0.2")
        b = chain(m, "b", 8, log, tmp_path / "b.out", cmd="sleep 0.2")
        wait_until(lambda: run_log(log)["a3"] and run_log(log)["b3"], timeout=60)
        victim_name = a[0].result().worker
        victim = next(w for w in m._local if w.name == victim_name)
        os.kill(victim.proc.pid, signal.SIGKILL)
        for f in a + b:
            f.result(120)
        runs = run_log(log)
        assert (tmp_path / "a.out").read_text() == expected("a", 8)
        assert (tmp_path / "b.out").read_text() == expected("b", 8)
        other = "b" if b[0].result().worker != victim_name else "a"
        lost = "a" if other == "b" else "b"
        # the chain on the surviving worker ran once; the lost one ran again from its start,
        # because its earlier temps were collected and the latest one went with the worker
        assert all(runs[f"{other}{i}"] == 1 for i in range(8))
        assert all(runs[f"{lost}{i}"] in (1, 2) for i in range(8))
        assert runs[f"{lost}0"] == 2
        assert m.stats()["reruns"] >= 1


def test_slow_worker_members_move_to_an_idle_worker(tmp_path):
    """One worker is made slow for real: every task it runs sleeps ten times longer."""
    log = tmp_path / "log"
    with Manager(workers=0) as m:
        procs = [start_worker(m, "fast", tmp_path, "--cores", "1", env={"STEP": "0.05"}),
                 start_worker(m, "slow", tmp_path, "--cores", "1", env={"STEP": "0.5"})]
        try:
            m.wait_for_workers(2)
            runs = {n: chain(m, n, 12, log, tmp_path / f"{n}.out", cmd='sleep "$STEP"') for n in "ab"}
            for f in runs["a"] + runs["b"]:
                f.result(120)
            on_slow = next(n for n in "ab" if runs[n][0].result().worker == "slow")
            tail_workers = {f.result().worker for f in runs[on_slow][3:]}
            assert "fast" in tail_workers, "nothing moved off the slow worker"
            s = m.stats()
            assert s["moves"] >= 1 and s["bytes_worker_to_worker"] > 0
            for n in "ab":
                assert (tmp_path / f"{n}.out").read_text() == expected(n, 12)
            assert all(c == 1 for c in run_log(log).values())   # moved, not run twice
        finally:
            for p in procs:
                stop(p)
