"""Files a worker makes for itself: a URL it fetches, an archive it unpacks.

Both run in a thread (blocking I/O, off the worker's event loop) and write
only below the path they are given; the worker renames the result into its
cache. Every failure is a MakeError whose message names the URL or the
archive and what went wrong, which the tasks that read the file report.

URLs are fetched with the standard library (urllib): a worker then needs no
package beyond tether's own to read http, https and file URLs, and a fetch
is one GET, conditional when an earlier copy's validators are known (an
ETag, a Last-Modified), nothing a larger client would add to.
"""
from __future__ import annotations

import http.client
import os
import posixpath
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
from typing import NamedTuple

FETCH_TIMEOUT = 60.0        # seconds a connection may stay silent before the fetch fails
CHUNK = 1 << 20
READ_ONLY_FILE = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
READ_ONLY_DIR = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


class MakeError(Exception):
    """A file could not be made here; the message names what and why."""


class Fetched(NamedTuple):
    """What a fetch brought: size is None when the server said the earlier copy still holds (304)."""

    size: int | None
    validators: dict[str, str]


def fetch_url(url: str, dest: str, validators: dict[str, str] | None = None,
              timeout: float = FETCH_TIMEOUT) -> Fetched:
    """GET url into the file dest (conditional on validators when given). Raises MakeError."""
    request = urllib.request.Request(url, headers={"User-Agent": "tether-worker"})
    if validators:
        if validators.get("etag"):
            request.add_header("If-None-Match", validators["etag"])
        if validators.get("last_modified"):
            request.add_header("If-Modified-Since", validators["last_modified"])
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 304 and validators:
            return Fetched(None, validators)
        raise MakeError(f"could not fetch {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise MakeError(f"could not fetch {url}: {e.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise MakeError(f"could not fetch {url}: {type(e).__name__}: {e}") from None
    with response:
        status = getattr(response, "status", None)
        if status is not None and status != 200:   # (a 2xx without the body asked for)
            raise MakeError(f"could not fetch {url}: HTTP {status} {response.reason}")
        length = response.headers.get("Content-Length")
        got = 0
        try:
            with open(dest, "wb") as f:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
        except http.client.IncompleteRead as e:   # (how some Pythons say what the length check below says)
            raise MakeError(f"could not fetch {url}: the body ended after {got + len(e.partial)} of "
                            f"{length if length is not None else 'more'} bytes") from None
        except (http.client.HTTPException, TimeoutError, ConnectionError) as e:
            raise MakeError(f"could not fetch {url}: the body broke off after {got} bytes "
                            f"({type(e).__name__}: {e})") from None
        if length is not None and length.isdigit() and got != int(length):
            raise MakeError(f"could not fetch {url}: the body ended after {got} of {length} bytes")
        found = {"etag": response.headers.get("ETag") or "",
                 "last_modified": response.headers.get("Last-Modified") or ""}
    return Fetched(got, {k: v for k, v in found.items() if v})


def unpack(archive: str, dest: str, what: str) -> int:
    """Unpack the tar archive (plain, gzip, bzip2 or xz) into the new directory dest, read-only.

    Every member is checked before anything is written: one with an absolute
    path, a `..`, a link leading out of the archive's directory, or that is
    a device or a pipe refuses the whole archive. Returns the bytes of its
    files. what names the archive in messages.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                problem = _escapes(member)
                if problem:
                    raise MakeError(f"refused to unpack {what}: member {member.name!r} {problem}")
            os.mkdir(dest)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members, filter="data")
            else:   # (Python before 3.11.4: the checks above are the filter)
                tar.extractall(dest, members)
    except (tarfile.TarError, EOFError) as e:
        raise MakeError(f"could not unpack {what}: {type(e).__name__}: {e}") from None
    return seal(dest)


def _escapes(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be unpacked, or None."""
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        return "has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "climbs out with '..'"
    if member.issym():
        target = member.linkname
        if target.startswith("/"):
            return f"is a link to an absolute path ({target})"
        if _outside(posixpath.join(posixpath.dirname(name), target)):
            return f"is a link out of the archive ({target})"
    elif member.islnk():
        if member.linkname.startswith("/") or _outside(member.linkname):
            return f"is a hard link out of the archive ({member.linkname})"
    elif not (member.isfile() or member.isdir()):
        return "is not a file, directory or link (a device or a pipe)"
    return None


def _outside(path: str) -> bool:
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def seal(root: str) -> int:
    """Make a tree read-only for every task that reads it (writes, new or removed entries refused,
    for tasks not running as root). Returns the bytes of its files."""
    total = 0
    for directory, dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                os.chmod(path, stat.S_IMODE(st.st_mode) & READ_ONLY_FILE)
        for name in dirs:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, READ_ONLY_DIR)
    os.chmod(root, READ_ONLY_DIR)
    return total


def remove_tree(path: str) -> None:
    """Remove a tree seal() made read-only (its directories are opened for writing first)."""
    for directory, dirs, _ in os.walk(path):
        try:
            os.chmod(directory, stat.S_IRWXU)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
