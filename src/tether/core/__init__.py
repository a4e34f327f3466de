"""Decisions with no I/O: the task graph, groups, placement, recovery.

Driven by events, returning commands (see events.py); the manager is the
asyncio shell that feeds it.
"""
from .events import *  # noqa: F401,F403
from .lifecycle import FileState, IllegalTransition, TaskState  # noqa: F401
from .model import State  # noqa: F401
from .scheduler import Scheduler  # noqa: F401
