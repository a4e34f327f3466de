"""Memoization across runs: a task whose fingerprint matches an earlier success does not run again.

fingerprint.py says what a task's fingerprint holds; store.py keeps the
record on disk; planner.py decides hits where tasks are submitted;
recorder.py gathers and writes what a task that ran gave.
"""
from .store import MemoStore, MemoWarning, default_dir

__all__ = ["MemoStore", "MemoWarning", "default_dir"]
