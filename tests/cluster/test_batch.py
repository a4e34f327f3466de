"""TetherExecutor under Parsl's Slurm, PBS Pro, HTCondor and Kubernetes providers, on stand-ins.

Each block is a job (or pod) of the stand-in; its `tether worker` runs inside the
job (as root, in the job's own network namespace: another "host"). Apps
pass temp files between them; afterwards no job process is left and every
job ended cancelled or completed. One test lets Parsl's 'simple' strategy
scale blocks out under a burst of tasks and back in when idle.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager

import parsl
import pytest
from parsl import bash_app, python_app
from parsl.config import Config
from parsl.data_provider.files import File
from parsl.launchers import SimpleLauncher, SingleNodeLauncher, SrunLauncher
from parsl.providers import CondorProvider, KubernetesProvider, PBSProProvider, SlurmProvider

from tether.parsl import TetherExecutor
from tether_bench.batch.cluster import BatchCluster
from tether_bench.batch.kube import KubeApiServer
from tether_bench.batch.spool import TERMINAL

# what each system's job tells its processes of itself (the stand-ins set them as the real ones do)
JOB_VARIABLE = {"slurm": "SLURM_JOB_ID", "pbs": "PBS_JOBID", "condor": "_CONDOR_SCRATCH_DIR",
                "kubernetes": "KUBERNETES_SERVICE_HOST"}
try:
    import kubernetes  # noqa: F401  (KubernetesProvider's client)
    NO_KUBERNETES = None
except ImportError:
    NO_KUBERNETES = "KubernetesProvider needs the kubernetes client, which is not installed"


@contextmanager
def provider(system: str, batch: BatchCluster, blocks: int = 2, **scaling):
    """The real Parsl provider, with a launcher that suits it and the job's environment passed on."""
    limits = {"init_blocks": blocks, "min_blocks": 0, "max_blocks": blocks, **scaling}
    if system == "slurm":
        yield SlurmProvider(launcher=SrunLauncher(), walltime="00:10:00", **limits)
    elif system == "pbs":   # as with PBS, the submitter's environment only with -V
        yield PBSProProvider(launcher=SimpleLauncher(), scheduler_options="#PBS -V", **limits)
    elif system == "condor":   # and with HTCondor, only with getenv
        yield CondorProvider(launcher=SingleNodeLauncher(), scheduler_options="getenv = true", **limits)
    else:   # a pod's environment is its image's: worker_init puts tether's command on PATH
        with KubeApiServer(batch.spool, batch.work_dir / "kube"):
            yield KubernetesProvider(image="stand-in", worker_init=f"export PATH={batch.bin_dir}:$PATH", **limits)


@contextmanager
def parsl_on_batch(batch: BatchCluster, run_dir, system: str, **options):
    """Parsl loaded with a TetherExecutor whose blocks are jobs of `system`; unloaded on leaving."""
    scaling = {k: options.pop(k) for k in ("init_blocks", "min_blocks", "max_blocks") if k in options}
    blocks = scaling.pop("max_blocks", 2)
    with provider(system, batch, blocks, **scaling) as p:
        ex = TetherExecutor(label="batch", provider=p, address=batch.address, cores_per_worker=1)
        dfk = parsl.load(Config(executors=[ex], run_dir=str(run_dir), **{"strategy": "none", **options}))
        try:
            yield ex
        finally:
            dfk.cleanup()


def check_ended_whole(batch: BatchCluster, system: str) -> list[dict]:
    """Every job of `system` ended cancelled or completed, left no process and no TMPDIR behind."""
    assert batch.spool.settle(timeout=60) == []
    jobs = batch.jobs(system)
    assert jobs and {j["state"] for j in jobs} <= {"CANCELLED", "COMPLETED"}, [j["state"] for j in jobs]
    assert not batch.spool.leftovers(), "processes of ended jobs still run"
    assert not any((batch.spool.job_dir(j["number"]) / "tmp").exists() for j in jobs)
    return jobs


@python_app
def make(text, outputs=[]):
    with open(outputs[0], "w") as f:
        f.write(text)


@bash_app
def shout(inputs=[], outputs=[]):
    return f"tr a-z A-Z < {inputs[0]} > {outputs[0]}"


@python_app
def read_where(variable, inputs=[]):
    """The file's text and where this ran: the job (by its variables) and the network namespace."""
    import os
    with open(inputs[0]) as f:
        return f.read(), os.environ.get(variable), os.environ.get("TETHER_BATCH_JOB"), os.readlink("/proc/self/ns/net")


@pytest.fixture
def batch(tmp_path):
    with BatchCluster(tmp_path / "batch", nodes=3, grace=5) as b:
        yield b
    assert not b.left, f"job processes outlived the run: {b.left}"


@pytest.mark.parametrize("system", ["slurm", "pbs", "condor", "kubernetes"])
@pytest.mark.slow
@pytest.mark.netns
def test_apps_pass_temps_on_workers_inside_batch_jobs(system, batch, tmp_path):
    if system == "kubernetes" and NO_KUBERNETES:
        pytest.skip(NO_KUBERNETES)
    if not batch.namespaced:
        print(f"\njobs run on this host, not in namespaces: {batch.namespace_reason}")
    with parsl_on_batch(batch, tmp_path / "runinfo", system) as ex:
        chains = []
        for i in range(3):
            made = make(f"chain {i}", outputs=[File(f"temp://made{i}")])
            loud = shout(inputs=[made.outputs[0]], outputs=[File(f"temp://loud{i}")])
            chains.append(read_where(JOB_VARIABLE[system], inputs=[loud.outputs[0]]))
        results = [c.result(timeout=120) for c in chains]
        hosts = {link.host for link in ex.manager.engine.links.values()}
        running = {j["number"]: j for j in batch.jobs(system) if j["state"] == "RUNNING"}
    assert [r[0] for r in results] == [f"CHAIN {i}" for i in range(3)]
    for _, variable, marker, netns in results:
        assert variable, f"the app did not run inside a {system} job"
        number = int(marker.rsplit(".", 1)[1])
        assert number in running, f"the app ran in job {number}, which was not running"
        if batch.namespaced:
            assert netns != os.readlink("/proc/self/ns/net"), "the app ran in this host's namespace"
    if batch.namespaced:   # every worker reached the manager from the address of its job's node
        assert hosts <= {batch.node_host(j["node"]) for j in running.values()}
    jobs = check_ended_whole(batch, system)
    assert len(jobs) == 2


@pytest.mark.slow
@pytest.mark.netns
def test_blocks_scale_out_under_a_burst_and_in_when_idle(batch, tmp_path):
    """Parsl's 'simple' strategy: more blocks (up to three) for six tasks, none once idle, a new one for new work."""
    with parsl_on_batch(batch, tmp_path / "runinfo", "slurm", init_blocks=0, min_blocks=0, max_blocks=3,
                        strategy="simple", strategy_period=0.2, max_idletime=1.0) as ex:
        burst = [nap(0.5, JOB_VARIABLE["slurm"]) for _ in range(6)]
        first = {f.result(timeout=120) for f in burst}
        assert 2 <= len(batch.jobs("slurm")) <= 3, "the burst did not make Parsl ask for more blocks"
        assert first <= {str(j["number"]) for j in batch.jobs("slurm")}
        wait_for(lambda: all(j["state"] in TERMINAL for j in batch.jobs("slurm")), "the idle blocks to go")
        # a block scaled in is retired first: its worker leaves as asked, and its job may end on its own
        # before the cancel reaches it
        assert {j["state"] for j in batch.jobs("slurm")} <= {"CANCELLED", "COMPLETED"}
        wait_for(lambda: ex.connected_workers() == 0, "the cancelled blocks' workers to leave")
        again = nap(0, JOB_VARIABLE["slurm"]).result(timeout=120)
        assert int(again) > max(int(n) for n in first), "the task after scaling in ran on an old block"
    check_ended_whole(batch, "slurm")


@python_app
def nap(seconds, variable):
    import os
    import time
    time.sleep(seconds)
    return os.environ.get(variable)


def wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)
