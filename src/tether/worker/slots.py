"""Where `tether worker` keeps its cache when no --cache-dir is given: one
directory per user and node, kept between runs, so that what an earlier run
sent to the node is not sent again.

The root is $XDG_CACHE_HOME/tether/HOST (~/.cache/tether/HOST), HOST being
this node's name: home directories are often shared by a cluster's nodes,
and each node's cache should stay its own, neither read over the network by
another node nor guarded by a lock that other nodes may not see.
$TETHER_CACHE_DIR, when set, is the root as given (a node-local disk).

Several workers may run on one node at once. The root holds slot
directories worker-0, worker-1, ..., each with a lock file beside it
(worker-0.lock). A worker takes the first slot whose lock file it can lock
(flock, exclusive, without waiting) and keeps it locked until it exits; only
the holder reads or writes a slot, so live workers share no file and need no
other coordination. The kernel drops the lock of a process that ends however
it ends, so a killed worker's slot, with the content-named files it left,
goes to the next worker that asks. Lock files are never removed: removing
one that another process has open could let two workers hold the same slot.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

PRIVATE = 0o700
MAX_SLOTS = 4096   # far more workers than one node runs at once


class CacheDirError(Exception):
    """The cache directory cannot be used; the message names it and says what to do instead."""


def problem(path: Path, why: str) -> CacheDirError:
    return CacheDirError(f"cannot use {path} for the worker's cache: {why}; pass --cache-dir DIR "
                         "(or set TETHER_CACHE_DIR) to put it elsewhere")


def default_root() -> Path:
    """The directory holding this node's slots, from the environment (see the module's text)."""
    given = os.environ.get("TETHER_CACHE_DIR")
    if given:
        return Path(given)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):   # the XDG rule: a relative path is to be ignored
        base = Path(xdg)
    else:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:
            raise CacheDirError("cannot find a home directory for the worker's cache; pass --cache-dir DIR "
                                "(or set TETHER_CACHE_DIR)") from None
    host = socket.gethostname().replace(os.sep, "_") or "localhost"
    return base / "tether" / host


class Slot:
    """A slot directory, this process's until release() or its exit."""

    def __init__(self, path: Path, lock_fd: int):
        self.path = path
        self._fd: int | None = lock_fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing the only descriptor drops the lock
            self._fd = None


def take_slot(root: Path) -> Slot:
    """Lock the first free slot under root (made private to this user if new) and return it."""
    make_private(root)
    if not os.access(root, os.W_OK | os.X_OK):
        raise problem(root, "it is not writable")
    for i in range(MAX_SLOTS):
        lock = root / f"worker-{i}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except PermissionError:
            continue   # another user's slot, in a root shared on purpose
        except OSError as e:
            raise problem(root, f"cannot open {lock.name}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue   # a live worker's
        except OSError as e:
            os.close(fd)
            raise problem(root, f"cannot lock {lock.name}: {e.strerror}") from None
        path = root / f"worker-{i}"
        try:
            path.mkdir(mode=PRIVATE, exist_ok=True)
            usable = os.access(path, os.W_OK | os.X_OK)
        except OSError:
            usable = False
        if not usable:   # not a directory of this user's: leave it alone
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())   # the holder, for a person looking
        return Slot(path, fd)
    raise problem(root, f"none of its {MAX_SLOTS} slots could be taken")


def make_private(root: Path) -> None:
    """Make root and any missing parent, each readable by this user only."""
    missing = []
    p = root
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE)
        except FileExistsError:
            if not d.is_dir():
                raise problem(root, f"{d} is not a directory") from None
        except OSError as e:
            raise problem(root, f"cannot create {d}: {e.strerror}") from None


def usable_dir(path: Path) -> None:
    """A directory named with --cache-dir: made if missing (as before), or a clear error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheDirError(f"cannot use {path} for the worker's cache: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheDirError(f"cannot use {path} for the worker's cache: it is not writable")
