"""Parsl front end: run Parsl apps on tether workers, with temp files and look-ahead.

    from tether.parsl import TetherExecutor, TetherStaging

This is the only part of tether that imports parsl.
"""
from .executor import TetherExecutor
from .options import IgnoredOptionWarning
from .plan import TEMP_SCHEMES
from .staging import TetherStaging

__all__ = ["TetherExecutor", "TetherStaging", "TEMP_SCHEMES", "IgnoredOptionWarning"]
