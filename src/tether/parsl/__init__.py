"""Parsl front end: run Parsl apps on tether workers, with temp files and look-ahead.

    from tether.parsl import TetherExecutor, TetherStaging

This is the only part of tether that imports parsl, an extra: without it,
importing this package says how to install it.
"""
try:
    import parsl as _parsl  # noqa: F401
except ImportError as e:
    raise ImportError("tether.parsl needs Parsl, which is not installed: pip install 'tether[parsl]' "
                      "(from a clone of tether: pip install '.[parsl]')", name="parsl") from e
from .executor import TetherExecutor
from .options import IgnoredOptionWarning
from .plan import TEMP_SCHEMES
from .staging import TetherStaging

__all__ = ["TetherExecutor", "TetherStaging", "TEMP_SCHEMES", "IgnoredOptionWarning"]
