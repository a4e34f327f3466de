"""The memo record on disk: one small JSON file per task fingerprint, and the bytes it names.

    DIR/records/ab/abcd....json   what a successful task gave: exit status, stdout, stderr,
                                  its value and its outputs, each as a blob's hash and size;
                                  a first line with the hash of the JSON after it
    DIR/blobs/ef/ef01...          bytes, named by their own hash (blake2b), never changed
    DIR/tmp/                      files being written; renamed into place when whole

Every file is written under DIR/tmp, flushed to disk and renamed into
place, blobs before the record that names them, so a record read is whole
and its blobs are there. Runs sharing DIR need no lock: a blob's name is
its content, so two writers of one blob write the same bytes, and two
writers of one record each write a whole, valid record (the last rename
wins). A record that cannot be read, fails its own checksum, or names a
missing or wrong-sized blob is ignored with a MemoWarning naming it; the
task runs again and its new record replaces it.

A record is trusted: a Python value in it is unpickled. DIR is made
private to its user (0700) when this makes it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import secrets
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("tether.memo")

FORMAT = 1
MAGIC = b"tether-memo-record"
CHUNK = 1 << 20
STALE_TMP = 24 * 3600.0   # seconds after which a file left in tmp/ by a process that died is removed
_tmp_ids = itertools.count(1)


class MemoWarning(UserWarning):
    """A memo record could not be used (corrupted, half-written, or naming missing bytes): the task runs again."""


def default_dir() -> Path:
    """$TETHER_MEMO_DIR, else $XDG_CACHE_HOME/tether/memo, else ~/.cache/tether/memo."""
    given = os.environ.get("TETHER_MEMO_DIR")
    if given:
        return Path(given)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tether" / "memo"


@dataclass
class Record:
    """What one successful task gave. Blobs are (hash, size); outputs by sandbox name ("" for an Executor
    call's result)."""

    fingerprint: str
    kind: str
    label: str = ""
    exit: int = 0
    stdout: str = ""
    stderr: str = ""
    value: tuple[str, int] | None = None
    outputs: dict[str, tuple[str, int]] = field(default_factory=dict)
    created: float = 0.0

    def body(self) -> dict:
        return {"format": FORMAT, "fingerprint": self.fingerprint, "kind": self.kind, "label": self.label,
                "exit": self.exit, "stdout": self.stdout, "stderr": self.stderr,
                "value": list(self.value) if self.value else None,
                "outputs": {k: list(v) for k, v in sorted(self.outputs.items())}, "created": self.created}


class Unusable(Exception):
    """Why a record on disk cannot be used."""


class MemoStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"memo directory {self.root} exists and is not a directory")
        if not self.root.exists():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in ("records", "blobs", "tmp"):
            (self.root / sub).mkdir(exist_ok=True)
        if not os.access(self.root / "tmp", os.W_OK | os.X_OK):
            raise PermissionError(f"memo directory {self.root} is not writable")
        self._records = os.path.join(self.root, "records")   # as strings: a hit costs few path operations
        self._blobs = os.path.join(self.root, "blobs")
        self._clear_stale_tmp()

    # ------------------------------------------------------------ paths

    def record_path(self, fingerprint: str) -> Path:
        return Path(self._record_file(fingerprint))

    def _record_file(self, fingerprint: str) -> str:
        return f"{self._records}/{fingerprint[:2]}/{fingerprint}.json"

    def blob_path(self, blob: str) -> Path:
        return Path(self._blob_file(blob))

    def _blob_file(self, blob: str) -> str:
        return f"{self._blobs}/{blob[:2]}/{blob}"

    def tmp_path(self) -> Path:
        return self.root / "tmp" / f"{os.getpid()}-{next(_tmp_ids)}-{secrets.token_hex(4)}"

    def _clear_stale_tmp(self) -> None:
        now = time.time()
        for p in (self.root / "tmp").iterdir():
            try:
                if now - p.stat().st_mtime > STALE_TMP:
                    p.unlink()
            except OSError:
                pass

    # ------------------------------------------------------------ reading

    def lookup(self, fingerprint: str) -> Record | None:
        """The record of this fingerprint; None when there is none, or it is unusable (a MemoWarning says why)."""
        path = self._record_file(fingerprint)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            self.unusable(Path(path), f"it cannot be read: {e}")
            return None
        try:
            return self._parse(data, fingerprint)
        except Unusable as e:
            self.unusable(Path(path), str(e))
            return None

    def _parse(self, data: bytes, fingerprint: str) -> Record:
        head, _, text = data.partition(b"\n")
        magic, _, check = head.partition(b" ")
        if magic != MAGIC:
            raise Unusable("it is not a memo record")
        try:
            body = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise Unusable("it is not whole JSON (half-written or corrupted)") from None
        if check.decode(errors="replace") != _hash(text):
            raise Unusable("its checksum does not match its content (corrupted)")
        if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("fingerprint") != fingerprint:
            raise Unusable("it is of another format or fingerprint")
        try:
            value = body["value"]
            rec = Record(fingerprint, str(body["kind"]), str(body["label"]), int(body["exit"]), str(body["stdout"]),
                         str(body["stderr"]), (str(value[0]), int(value[1])) if value else None,
                         {str(k): (str(v[0]), int(v[1])) for k, v in body["outputs"].items()},
                         float(body["created"]))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise Unusable(f"a field is missing or wrong ({type(e).__name__}: {e})") from None
        for what, blob in (("its value", rec.value), *((f"output {k!r}", b) for k, b in rec.outputs.items())):
            if blob is None:
                continue
            try:
                size = os.stat(self._blob_file(blob[0])).st_size
            except OSError:
                raise Unusable(f"{what} names blob {blob[0]}, which is missing") from None
            if size != blob[1]:
                raise Unusable(f"{what} names blob {blob[0]} of {blob[1]} bytes, which has {size}")
        return rec

    def unusable(self, path: Path, why: str) -> None:
        text = f"memo record {path} is unusable: {why}; ignored, the task runs again"
        log.warning("%s", text)
        warnings.warn(text, MemoWarning, stacklevel=2)

    def read_blob(self, blob: tuple[str, int]) -> bytes:
        """A blob's bytes, checked against its hash (Unusable when they differ)."""
        data = self.blob_path(blob[0]).read_bytes()
        if _hash(data) != blob[0]:
            raise Unusable(f"blob {blob[0]} does not match its hash (corrupted)")
        return data

    def copy_out(self, blob: tuple[str, int], dest: Path) -> None:
        """Write a blob to dest whole (a temporary file beside it, renamed), checked against its hash."""
        tmp = dest.with_name(f".{dest.name}.memo-{secrets.token_hex(4)}")
        h = hashlib.blake2b(digest_size=20)
        try:
            with open(self.blob_path(blob[0]), "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != blob[0]:
                raise Unusable(f"blob {blob[0]} does not match its hash (corrupted)")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------ writing

    def put_file(self, path: Path, move: bool) -> tuple[str, int]:
        """Keep a file's bytes as a blob: moved in (a file under tmp/), or copied (any other file)."""
        if move:
            h = hashlib.blake2b(digest_size=20)
            size = 0
            with open(path, "rb+") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                os.fsync(f.fileno())
            return self._place(path, h.hexdigest(), size)
        tmp = self.tmp_path()
        h = hashlib.blake2b(digest_size=20)
        size = 0
        try:
            with open(path, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            return self._place(tmp, h.hexdigest(), size)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        tmp = self.tmp_path()
        try:
            _write_synced(tmp, data)
            return self._place(tmp, _hash(data), len(data))
        finally:
            tmp.unlink(missing_ok=True)

    def _place(self, tmp: Path, blob: str, size: int) -> tuple[str, int]:
        dest = self.blob_path(blob)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp, dest)   # the same name is the same bytes: replacing a copy another run made is harmless
        return blob, size

    def write(self, record: Record) -> Path:
        """Write a record whole, after the blobs it names: a reader sees the old one or this one."""
        text = json.dumps(record.body(), separators=(",", ":")).encode()
        data = MAGIC + b" " + _hash(text).encode() + b"\n" + text
        dest = self.record_path(record.fingerprint)
        dest.parent.mkdir(exist_ok=True)
        tmp = self.tmp_path()
        try:
            _write_synced(tmp, data)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
