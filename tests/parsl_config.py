"""Parsl's own test suite against TetherExecutor: `pytest <parsl>/tests --config tests/parsl_config.py`.

One tether worker on this machine, started through Parsl's LocalProvider,
offering all its cores. See the README ("Parsl's test suite") for the
command, the filter and the results.
"""
from parsl.config import Config
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider

from tether.parsl import TetherExecutor


def fresh_config() -> Config:
    return Config(
        executors=[TetherExecutor(
            label="tether",
            provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, launcher=SimpleLauncher()),
        )],
        strategy="none",
    )
