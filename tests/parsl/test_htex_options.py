"""HTEX's option names on TetherExecutor, with HTEX's meanings."""
from __future__ import annotations

import inspect
import shlex
import warnings

import pytest
from parsl import python_app
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider, SlurmProvider

from tether.manager import txlog
from tether.parsl import IgnoredOptionWarning, TetherExecutor, options
from tether.parsl.htex import UNUSED

from .conftest import parsl_with

# a value asking for something tether does not do, for each HTEX option it has no use for
UNUSED_SAMPLES = {
    "heartbeat_period": 10, "prefetch_capacity": 4, "poll_period": 5, "interchange_port_range": (55000, 56000),
    "interchange_launch_cmd": ["interchange.py"], "loopback_address": "::1", "encrypted": False,
    "cpu_affinity": "block", "manager_selector": object(), "drain_period": 600, "address_probe_timeout": 10,
    "worker_logdir_root": "logs",
}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(options, "_warned", set())


def htex_defaults() -> dict:
    params = inspect.signature(HighThroughputExecutor.__init__).parameters
    return {name: p.default for name, p in params.items() if name != "self"}


def test_every_htex_option_is_accepted_with_its_default():
    """The list comes from the installed HTEX: an option Parsl adds and tether lacks fails here."""
    defaults = htex_defaults()
    missing = set(defaults) - set(options.setting_names(TetherExecutor))
    assert not missing, f"HTEX options TetherExecutor does not take: {sorted(missing)}"
    with pytest.warns(IgnoredOptionWarning):   # HTEX's defaults include settings tether has no use for
        ex = TetherExecutor(**defaults)
    assert 54000 <= ex.manager_port < 55000 and ex.heartbeat == 120.0 and ex._task_defaults == {"cores": 1}


def test_apps_get_cores_and_memory_and_workers_offer_room_for_max_workers_per_node():
    ex = TetherExecutor(cores_per_worker=2, mem_per_worker=1.5, max_workers_per_node=3)
    assert ex._task_defaults == {"cores": 2, "memory": 1536}
    assert ex._offer == {"cores": 6, "memory": None, "disk": None}
    assert ex.workers_per_node == 3   # Parsl's scaling counts apps at once per block


def test_cores_per_node_caps_what_max_workers_per_node_asks_for():
    assert TetherExecutor(cores_per_node=4, max_workers_per_node=8)._offer["cores"] == 4
    assert TetherExecutor(cores_per_node=16, max_workers_per_node=2, cores_per_worker=3)._offer["cores"] == 6
    ex = TetherExecutor(cores_per_node=8, memory_per_node=4000, disk_per_node=9000)
    assert ex._offer == {"cores": 8, "memory": 4000, "disk": 9000} and ex.workers_per_node == 8
    assert TetherExecutor(cores_per_node=8, memory_per_node=4096, mem_per_worker=2).workers_per_node == 2


def test_max_workers_is_the_old_name_of_max_workers_per_node():
    assert TetherExecutor(max_workers=5)._offer["cores"] == 5
    with pytest.raises(ValueError, match="max_workers is HTEX's older name"):
        TetherExecutor(max_workers=5, max_workers_per_node=4)


def test_accelerators_cap_apps_at_once_and_say_they_are_not_pinned():
    with pytest.warns(IgnoredOptionWarning, match="available_accelerators is only partly used"):
        ex = TetherExecutor(available_accelerators=["0", "1"], max_workers_per_node=8)
    assert ex._offer["cores"] == 2
    options._warned.clear()
    with pytest.warns(IgnoredOptionWarning):
        assert TetherExecutor(available_accelerators=3)._offer["cores"] == 3


def test_ports_and_heartbeat():
    assert TetherExecutor(worker_port=9200).manager_port == 9200
    assert TetherExecutor(port=9201).manager_port == 9201
    ranged = TetherExecutor(worker_port_range=(54100, 54200))
    assert 54100 <= ranged.manager_port < 54200
    assert TetherExecutor(heartbeat_threshold=60).heartbeat == 60.0
    assert TetherExecutor(heartbeat=10).heartbeat == 10


@pytest.mark.parametrize("settings, says", [
    ({"cores_per_worker": 0.5}, "cores_per_node"),
    ({"cores_per_worker": 0}, "cores_per_worker"),
    ({"cores_per_worker": 4, "cores_per_node": 2}, "more than each worker offers"),
    ({"mem_per_worker": 4, "memory_per_node": 1000}, "more than each worker offers"),
    ({"mem_per_worker": -1}, "mem_per_worker"),
    ({"max_workers_per_node": 0}, "max_workers_per_node"),
    ({"cores_per_node": 2.5}, "cores_per_node"),
    ({"port": 9000, "worker_port": 9001}, "give one"),
    ({"port": 9000, "worker_port_range": (9000, 9100)}, "give one"),
    ({"worker_port_range": (9100, 9000)}, "worker_port_range"),
    ({"heartbeat": 10, "heartbeat_threshold": 60}, "give one"),
    ({"available_accelerators": "0,1"}, "available_accelerators"),
    ({"launch_cmd": "process_worker_pool.py {debug} --max_workers_per_node={max_workers_per_node}"},
     "{debug}, {max_workers_per_node}"),
])
def test_bad_or_conflicting_settings_are_value_errors_saying_what_to_write(settings, says):
    with pytest.raises(ValueError, match=None) as info:
        TetherExecutor(**settings)
    assert says in str(info.value)


def test_a_misspelt_option_is_a_type_error_naming_the_likely_one():
    with pytest.raises(TypeError, match="'max_worker_per_node'; did you mean 'max_workers_per_node'"):
        TetherExecutor(max_worker_per_node=2)
    with pytest.raises(TypeError, match="'cores_per_nod'; did you mean 'cores_per_node'"):
        TetherExecutor(cores_per_nod=2)


@pytest.mark.parametrize("name", sorted(UNUSED))
def test_each_unused_option_warns_once_naming_it(name):
    assert set(UNUSED_SAMPLES) == set(UNUSED)
    with pytest.warns(IgnoredOptionWarning) as record:
        TetherExecutor(**{name: UNUSED_SAMPLES[name]})
        TetherExecutor(**{name: UNUSED_SAMPLES[name]})
    ours = [w for w in record if w.category is IgnoredOptionWarning]   # not a stray warning of another test's
    assert [str(w.message) for w in ours] == [f"TetherExecutor: {name} has no effect in tether: {UNUSED[name][1]}"]
    assert ours[0].filename == __file__


def test_htex_defaults_that_ask_for_nothing_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TetherExecutor(encrypted=True, cpu_affinity="none", prefetch_capacity=0, loopback_address="127.0.0.1",
                       cores_per_worker=1.0, worker_debug=False, available_accelerators=())


def test_worker_command_carries_the_worker_size_and_debug(tmp_path):
    ex = TetherExecutor(provider=SlurmProvider(init_blocks=0), address="127.0.0.1", cores_per_worker=2,
                        max_workers_per_node=4, memory_per_node=8000, worker_debug=True)
    ex.run_dir = str(tmp_path)
    ex.start()
    try:
        words = shlex.split(ex._get_launch_command("3"))
    finally:
        ex.shutdown()
    assert words[:3] == ["tether", "-vv", "worker"]
    assert words[words.index("--cores") + 1] == "8" and words[words.index("--memory") + 1] == "8000"


@python_app
def small(parsl_resource_specification={}):
    return "ok"


def test_an_htex_style_program_runs_with_each_app_taking_its_cores(tmp_path):
    """Two apps at once of two cores each: the worker offers four cores; a task asking for one gets one."""
    ex = TetherExecutor(provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, launcher=SimpleLauncher()),
                        cores_per_worker=2, mem_per_worker=0.25, max_workers_per_node=2, worker_debug=True)
    with parsl_with(ex, tmp_path / "runinfo", workers=1):
        assert [small().result(timeout=60) for _ in range(2)] == ["ok", "ok"]
        assert small(parsl_resource_specification={"cores": 1}).result(timeout=60) == "ok"
        run_dir = ex.manager.run_dir
    events = list(txlog.read(run_dir / "transactions"))
    joined = [int(e.fields[1]) for e in events if (e.kind, e.event) == ("WORKER", "JOINED")]
    assert joined == [4]
    submitted = [(int(e.fields[1]), int(e.fields[2])) for e in events if (e.kind, e.event) == ("TASK", "SUBMITTED")]
    assert submitted == [(2, 256), (2, 256), (1, 256)]
