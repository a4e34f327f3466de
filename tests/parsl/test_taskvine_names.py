"""The TaskVine names on tether: every TaskVine setting is accepted, and mapped or warned about once."""
from __future__ import annotations

import dataclasses
import inspect
import os
import warnings

import parsl.executors.taskvine as parsl_taskvine
import pytest
from parsl import python_app
from parsl.executors.taskvine import factory_config as parsl_factory
from parsl.executors.taskvine import manager_config as parsl_manager
from parsl.providers import (CondorProvider, GridEngineProvider, LocalProvider, PBSProProvider,
                             SlurmProvider)

from tether.manager import txlog
from tether.parsl import IgnoredOptionWarning, TetherExecutor, TetherStaging, options
from tether.parsl.taskvine import (TaskVineExecutor, TaskVineFactoryConfig, TaskVineManagerConfig,
                                   TaskVineStaging)
from tether.parsl.taskvine_config import FOREVER, MAPPED, UNUSED

from .conftest import parsl_with

PAIRS = [(parsl_manager.TaskVineManagerConfig, TaskVineManagerConfig),
         (parsl_factory.TaskVineFactoryConfig, TaskVineFactoryConfig)]

# a value other than TaskVine's default for each field tether has no use for
UNUSED_SAMPLES = {
    "project_name": "proj", "init_command": "source setup.sh", "env_pack": "env.tar.gz", "app_pack": True,
    "extra_pkgs": ["numpy"], "python_env": "env.tar.gz", "library_config": {"num_slots": 2},
    "autolabel": True, "autolabel_algorithm": "max", "autolabel_window": 5, "autocategory": False,
    "enable_peer_transfers": False, "wait_for_workers": 2, "tune_parameters": {"x": 1},
    "factory_timeout": 60, "scratch_dir": "scratch", "workers_per_cycle": 4, "worker_executable": "w",
    "_project_port": 9000, "_project_address": "host", "_project_name": "proj",
    "_project_password_file": "pw",
}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-process warnings as a new process would."""
    monkeypatch.setattr(options, "_warned", set())


def names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("theirs, ours", PAIRS, ids=["manager", "factory"])
def test_every_taskvine_field_is_accepted_with_its_default(theirs, ours):
    """The field list comes from Parsl's own dataclasses: a field Parsl adds and tether lacks fails here."""
    defaults = {f.name: f.default for f in dataclasses.fields(theirs)}
    assert names(ours) == names(theirs)
    for name, value in defaults.items():
        ours(**{name: value})
        assert name in MAPPED or name in UNUSED, f"{name}: neither mapped nor warned about"
    defaults.pop("port", None)   # TaskVine's default port depends on whether TaskVine is installed
    assert {k: v for k, v in dataclasses.asdict(ours()).items() if k != "port"} == defaults


def test_every_taskvine_executor_argument_is_accepted():
    theirs = [n for n in inspect.signature(parsl_taskvine.TaskVineExecutor.__init__).parameters if n != "self"]
    assert theirs == options.setting_names(TaskVineExecutor)
    ex = TaskVineExecutor(label="tv", worker_launch_method="factory", function_exec_mode="serverless",
                          manager_config=TaskVineManagerConfig(), factory_config=TaskVineFactoryConfig(),
                          provider=None, storage_access=[TaskVineStaging()], remote_monitoring_radio=None)
    assert isinstance(ex, TetherExecutor) and TaskVineStaging is TetherStaging
    assert "TaskVineExecutor(" in repr(ex) and "function_exec_mode='serverless'" in repr(ex)


def test_mapped_settings_reach_tether(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # nothing mapped warns
        ex = TaskVineExecutor(
            manager_config=TaskVineManagerConfig(port=9123, address="10.0.0.1", shared_fs=True, max_retries=5,
                                                 project_password_file=str(tmp_path / "pw"),
                                                 env_vars={"A": "1"}, vine_log_dir=str(tmp_path / "logs")),
            factory_config=TaskVineFactoryConfig(min_workers=2, max_workers=3, cores=4, memory=1000, disk=2000,
                                                 worker_options="--cache-budget 100", worker_timeout=45))
    assert isinstance(ex.provider, LocalProvider)
    assert (ex.provider.init_blocks, ex.provider.min_blocks, ex.provider.max_blocks) == (2, 2, 3)
    assert (ex.cores_per_node, ex.memory_per_node, ex.disk_per_node) == (4, 1000, 2000)
    assert (ex.port, ex.address, ex.shared_fs, ex.system_retries) == (9123, "10.0.0.1", True, 5)
    assert ex.secret_file == str(tmp_path / "pw") and ex.tether_run_dir == str(tmp_path / "logs")
    assert ex.task_env == {"A": "1"} and ex._task_defaults["env"] == {"A": "1"}
    assert ex.worker_options == "--connect-timeout 45 --cache-budget 100"
    assert TaskVineExecutor(manager_config=TaskVineManagerConfig(max_retries=None)).system_retries == FOREVER
    assert TaskVineExecutor(manager_config=TaskVineManagerConfig(max_retries=0)).system_retries == 0


def test_parsl_own_config_objects_are_read_the_same_way():
    ex = TaskVineExecutor(manager_config=parsl_manager.TaskVineManagerConfig(port=0, max_retries=2),
                          factory_config=parsl_factory.TaskVineFactoryConfig(cores=3, max_workers=2))
    assert (ex.system_retries, ex.cores_per_node, ex.provider.max_blocks) == (2, 3, 2)


@pytest.mark.parametrize("name", sorted(UNUSED))
def test_each_unused_setting_warns_once_naming_it(name):
    assert set(UNUSED_SAMPLES) == set(UNUSED)
    config = "manager_config" if name in names(TaskVineManagerConfig) else "factory_config"
    make = TaskVineManagerConfig if config == "manager_config" else TaskVineFactoryConfig
    with pytest.warns(IgnoredOptionWarning) as record:
        for _ in range(2):
            TaskVineExecutor(**{config: make(**{name: UNUSED_SAMPLES[name]})})
    ours = [w for w in record if w.category is IgnoredOptionWarning]   # not a stray warning of another test's
    mine = [str(w.message) for w in ours if f": {name} " in str(w.message)]
    assert len(mine) == 1 and "has no effect in tether" in mine[0], [str(w.message) for w in record]
    assert ours[0].filename == __file__   # the warning points at the line that gave the setting


def test_defaults_warn_about_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskVineExecutor(manager_config=TaskVineManagerConfig(), factory_config=TaskVineFactoryConfig())


def test_gpus_are_asked_of_slurm_but_not_counted():
    with pytest.warns(IgnoredOptionWarning, match="gpus is only partly used"):
        ex = TaskVineExecutor(factory_config=TaskVineFactoryConfig(batch_type="slurm", gpus=2))
    assert ex.provider.gpus_per_node == 2
    options._warned.clear()   # once per setting, whichever way: as a new process
    with pytest.warns(IgnoredOptionWarning, match="gpus has no effect"):
        TaskVineExecutor(factory_config=TaskVineFactoryConfig(gpus=2))


@pytest.mark.parametrize("make, mistake, meant", [
    (TaskVineManagerConfig, "max_retry", "max_retries"),
    (TaskVineManagerConfig, "vine_logdir", "vine_log_dir"),
    (TaskVineFactoryConfig, "batch_option", "batch_options"),
    (TaskVineFactoryConfig, "min_worker", "min_workers"),
    (TaskVineExecutor, "function_exec_mod", "function_exec_mode"),
    (TaskVineExecutor, "manager_conf", "manager_config"),
])
def test_a_misspelt_setting_is_a_type_error_naming_the_likely_one(make, mistake, meant):
    with pytest.raises(TypeError, match=f"'{mistake}'; did you mean '{meant}'"):
        make(**{mistake: 1})


def test_a_name_far_from_any_setting_is_named_alone():
    with pytest.raises(TypeError, match="'zzz'$"):
        TaskVineManagerConfig(zzz=1)


@pytest.mark.parametrize("batch_type, provider_class, batch_options, directives, walltime", [
    ("slurm", SlurmProvider, "--partition=debug -A proj --time=02:00:00",
     "#SBATCH --partition=debug\n#SBATCH -A proj\n#SBATCH --time=02:00:00\n", "02:00:00"),
    ("pbs", PBSProProvider, "-q long -l walltime=04:00:00", "#PBS -q long\n#PBS -l walltime=04:00:00\n", "04:00:00"),
    ("sge", GridEngineProvider, "-q all.q -l h_rt=01:00:00", "#$ -q all.q\n#$ -l h_rt=01:00:00\n", "01:00:00"),
    ("slurm", SlurmProvider, "#SBATCH --qos=high", "#SBATCH --qos=high", None),
])
def test_batch_types_become_their_parsl_providers(batch_type, provider_class, batch_options, directives,
                                                  walltime):
    ex = TaskVineExecutor(factory_config=TaskVineFactoryConfig(
        batch_type=batch_type, min_workers=0, max_workers=4, cores=8, memory=3000, batch_options=batch_options))
    p = ex.provider
    assert type(p) is provider_class
    assert (p.init_blocks, p.min_blocks, p.max_blocks, p.nodes_per_block) == (1, 0, 4, 1)
    assert p.scheduler_options.startswith(directives)
    if walltime:
        assert p.walltime == walltime
    if batch_type == "slurm":
        assert (p.cores_per_node, p.mem_per_node) == (8, 3)   # memory rounded up to whole GB
    if batch_type == "pbs":
        assert p.cpus_per_node == 8
    assert ex.cores_per_node == 8 and ex.memory_per_node == 3000


def test_condor_takes_requirements_and_submit_lines():
    ex = TaskVineExecutor(factory_config=TaskVineFactoryConfig(
        batch_type="condor", condor_requirements='OpSys == "LINUX"', batch_options="request_disk = 1000",
        cores=2, memory=2048, max_workers=5))
    p = ex.provider
    assert type(p) is CondorProvider and p.requirements == 'OpSys == "LINUX"'
    assert p.scheduler_options.startswith("request_disk = 1000")
    assert (p.cores_per_slot, p.mem_per_slot, p.max_blocks) == (2, 2.0, 5)


def test_worker_launch_methods():
    given = SlurmProvider(init_blocks=0)
    assert TaskVineExecutor(worker_launch_method="provider", provider=given).provider is given
    assert isinstance(TaskVineExecutor(worker_launch_method="provider").provider, LocalProvider)
    manual = TaskVineExecutor(worker_launch_method="manual").provider
    assert (manual.init_blocks, manual.max_blocks) == (0, 0)


@pytest.mark.parametrize("make", [
    lambda: TaskVineFactoryConfig(batch_type="lsf"),
    lambda: TaskVineFactoryConfig(min_workers=3, max_workers=1),
    lambda: TaskVineExecutor(worker_launch_method="by hand"),
    lambda: TaskVineExecutor(function_exec_mode="fast"),
    lambda: TaskVineExecutor(manager_config=TaskVineManagerConfig(max_retries=-1)),
    lambda: TaskVineExecutor(factory_config=TaskVineFactoryConfig(worker_timeout=0)),
])
def test_bad_values_are_value_errors(make):
    with pytest.raises(ValueError):
        make()


@python_app
def greeting():
    import os
    return os.environ.get("GREETING"), os.getpid()


def test_a_taskvine_program_runs_with_its_settings_in_effect(tmp_path):
    logs = tmp_path / "vine-logs"
    ex = TaskVineExecutor(
        manager_config=TaskVineManagerConfig(max_retries=2, vine_log_dir=str(logs), env_vars={"GREETING": "hi"}),
        factory_config=TaskVineFactoryConfig(batch_type="local", cores=2, memory=500, min_workers=1,
                                             max_workers=1),
        storage_access=[TaskVineStaging()])
    with parsl_with(ex, tmp_path / "runinfo", workers=1):
        results = [greeting().result(timeout=60) for _ in range(3)]
        assert {greeting for greeting, _ in results} == {"hi"}
        assert all(pid != os.getpid() for _, pid in results)
        run_dir = ex.manager.run_dir
        assert run_dir.parent == logs   # tether's run directory is where vine_log_dir says
        assert ex.manager.core.system_retries == 2
    events = list(txlog.read(run_dir / "transactions"))
    joined = [e.fields for e in events if (e.kind, e.event) == ("WORKER", "JOINED")]
    assert [(int(f[1]), int(f[2])) for f in joined] == [(2, 500)]   # the worker offered cores and memory
    assert sum((e.kind, e.event) == ("TASK", "DONE") for e in events) == 3
