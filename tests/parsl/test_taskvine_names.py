"""The TaskVine names map onto TetherExecutor; settings that mean nothing here are refused."""
from __future__ import annotations

import pytest
from parsl.providers import LocalProvider

from tether.parsl import TetherExecutor, TetherStaging
from tether.parsl.taskvine import (TaskVineExecutor, TaskVineFactoryConfig, TaskVineManagerConfig,
                                   TaskVineStaging)


def test_factory_and_manager_settings_become_executor_settings():
    ex = TaskVineExecutor(manager_config=TaskVineManagerConfig(port=9123, shared_fs=True),
                          factory_config=TaskVineFactoryConfig(min_workers=2, max_workers=3, cores=4, memory=1000),
                          storage_access=[TaskVineStaging()])
    assert isinstance(ex, TetherExecutor) and TaskVineStaging is TetherStaging
    assert isinstance(ex.provider, LocalProvider)
    assert (ex.provider.init_blocks, ex.provider.min_blocks, ex.provider.max_blocks) == (2, 2, 3)
    assert (ex.cores_per_node, ex.memory_per_node, ex.port, ex.shared_fs) == (4, 1000, 9123, True)
    assert "TaskVineExecutor(" in repr(ex)


@pytest.mark.parametrize("make, error", [
    (lambda: TaskVineFactoryConfig(batch_type="condor"), ValueError),
    (lambda: TaskVineFactoryConfig(min_workers=3, max_workers=1), ValueError),
    (lambda: TaskVineManagerConfig(enable_peer_transfers=False), TypeError),
    (lambda: TaskVineExecutor(worker_launch_method="manual"), ValueError),
])
def test_settings_tether_cannot_honour_are_refused(make, error):
    with pytest.raises(error):
        make()
