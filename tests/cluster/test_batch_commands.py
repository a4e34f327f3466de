"""The stand-in batch commands, driven by Parsl's own providers: submit, status, cancel, queueing.

No tether here: what is checked is that each provider reads the stand-in's
answers as it would a real batch system's, and that a job ends whole.
Jobs run on this host (no namespaces), so these run without root, but for
the one that checks that jobs run in their nodes' namespaces.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from parsl.jobs.states import JobState, JobStatus
from parsl.launchers import SimpleLauncher, SingleNodeLauncher, SrunLauncher
from parsl.providers import CondorProvider, PBSProProvider, SlurmProvider, TorqueProvider

from tether_bench.batch.cluster import BatchCluster
from tether_bench.cluster import unavailable_reason

NAMESPACE_REASON = unavailable_reason()

PROVIDERS = {
    "slurm": lambda: SlurmProvider(launcher=SrunLauncher(), walltime="00:01:00"),
    "pbs": lambda: PBSProProvider(launcher=SimpleLauncher(), scheduler_options="#PBS -V"),
    "torque": lambda: TorqueProvider(launcher=SimpleLauncher(), scheduler_options="#PBS -V"),
    "condor": lambda: CondorProvider(launcher=SingleNodeLauncher(), scheduler_options="getenv = true"),
}
SYSTEM = {"slurm": "slurm", "pbs": "pbs", "torque": "pbs", "condor": "condor"}


@pytest.fixture
def one_node(tmp_path):
    with BatchCluster(tmp_path / "batch", nodes=1, namespaces=False, grace=5) as batch:
        yield batch
    assert not batch.left, f"processes of finished jobs still run: {batch.left}"


def states(provider, ids):
    return [s.state for s in provider.status(ids)]


def run(command: str, cwd: Path) -> str:
    """A batch command's output, run in cwd (where jobs without -o/--output write theirs)."""
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True).stdout


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_provider_submits_queues_watches_and_cancels_jobs(name, one_node, tmp_path):
    provider = PROVIDERS[name]()
    provider.script_dir = str(tmp_path)
    mark = tmp_path / "marks"
    mark.mkdir()
    # the first job holds the only node (and leaves an orphan behind), so the second one queues
    first = provider.submit(f"(setsid sleep 300 &); echo $$ > {mark}/first; sleep 300", 1, "first")
    second = provider.submit(f"echo ran > {mark}/second", 1, "second")
    wait_for(lambda: (mark / "first").exists(), "the first job to start")
    assert states(provider, [first, second]) == [JobState.RUNNING, JobState.PENDING]

    assert provider.cancel([first]) == [True]
    wait_for(lambda: (mark / "second").exists(), "the second job to run once the node was free")
    one_node.spool.settle(timeout=30)
    if name != "torque":   # TorqueProvider takes a job that qstat no longer lists as completed
        provider.resources[first]["status"] = JobStatus(JobState.RUNNING)   # forget what cancel() noted
        assert states(provider, [first]) == [JobState.CANCELLED if name != "pbs" else JobState.COMPLETED]
    assert states(provider, [second]) == [JobState.COMPLETED]
    jobs = one_node.jobs(SYSTEM[name])
    assert [j["state"] for j in jobs] == ["CANCELLED", "COMPLETED"]
    assert jobs[1]["started"] >= jobs[0]["ended"], "the second job started while the node was taken"
    assert not one_node.spool.leftovers(), "the cancelled job's orphan outlived it"
    assert not any((one_node.spool.job_dir(j["number"]) / "tmp").exists() for j in jobs)


def test_a_job_past_its_walltime_is_ended_as_timed_out(tmp_path):
    with BatchCluster(tmp_path / "batch", nodes=1, namespaces=False, grace=1) as batch:
        script = tmp_path / "late.sh"
        script.write_text("#!/bin/bash\n#SBATCH --time=0:01\nsleep 300\n")
        number = int(run(f"sbatch {script}", tmp_path).split()[-1])
        wait_for(lambda: batch.spool.read(number)["state"] == "TIMEOUT", "the job to time out")
        assert run(f"squeue -h -o '%i %t' -j {number}", tmp_path).split() == [str(number), "TO"]
    assert not batch.left


def test_squeue_sacct_and_qstat_answer_as_the_providers_expect(one_node, tmp_path):
    # SlurmProvider uses squeue only where `sacct -X` fails, as on a Slurm without accounting
    assert subprocess.run("sacct -X", shell=True, capture_output=True).returncode != 0
    provider = SlurmProvider(launcher=SimpleLauncher())
    assert provider._cmd.startswith("squeue")
    script = tmp_path / "quick.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    job_id = run(f"qsub -V {script}", tmp_path).strip()
    wait_for(lambda: one_node.jobs("pbs")[0]["state"] == "COMPLETED", "the job to end")
    # a finished PBS job is listed only with -x, as PBS Pro does
    assert job_id not in run(f"qstat {job_id}", tmp_path)
    assert f'"{job_id}"' in run(f"qstat -x -f -F json {job_id}", tmp_path)


@pytest.mark.root
@pytest.mark.skipif(NAMESPACE_REASON is not None, reason=f"jobs run on this host: {NAMESPACE_REASON}")
def test_each_job_runs_in_the_network_namespace_of_its_node(tmp_path):
    with BatchCluster(tmp_path / "batch", nodes=2) as batch:
        script = tmp_path / "where.sh"
        script.write_text(f"#!/bin/bash\nreadlink /proc/self/ns/net > {tmp_path}/ns.$SLURM_JOB_ID\n"
                          f"ip -o -4 addr show scope global | awk '{{print $4}}' > {tmp_path}/addr.$SLURM_JOB_ID\n")
        numbers = [int(run(f"sbatch {script}", tmp_path).split()[-1]) for _ in range(2)]
        assert batch.spool.settle(timeout=30) == []
        jobs = {j["number"]: j for j in batch.jobs("slurm")}
        namespaces = {n["name"]: n["netns"] for n in batch.spool.nodes}
        for n in numbers:   # the job was in its node's namespace, with the node's address and no other
            inode = os.stat(f"/run/netns/{namespaces[jobs[n]['node']]}").st_ino
            assert (tmp_path / f"ns.{n}").read_text().strip() == f"net:[{inode}]"
            assert (tmp_path / f"addr.{n}").read_text().split("/")[0] == batch.node_host(jobs[n]["node"])
    assert not batch.left
