"""tether: a data-aware workflow executor.

Temp files stay on the workers that made them, move worker to worker only
when they must, and sequences of dependent tasks are committed to one worker.
"""
from .contexts import Context, ContextError, context
from .executor import Executor, ExecutorFuture
from .files import File
from .manager.manager import Manager, TaskFuture
from .memo import MemoWarning
from .task import (DependencyFailed, InternalError, LargeArgumentWarning, PythonTask, RemoteError,
                   SerializationError, SystemFailure, Task, TaskFailed, TaskResult)

__all__ = ["Executor", "ExecutorFuture", "Manager", "Task", "PythonTask", "TaskFailed", "DependencyFailed",
           "SystemFailure", "InternalError", "RemoteError", "SerializationError", "LargeArgumentWarning", "TaskResult",
           "TaskFuture", "File", "Context", "ContextError", "context", "MemoWarning"]
__version__ = "0.1.0"
