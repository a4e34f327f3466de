"""Files each worker makes for itself, with real workers: URLs from a local HTTP server, archives
unpacked once per worker, mini-tasks run once per worker, and a packed Python environment."""
from __future__ import annotations

import http.server
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from tether import Manager, PythonTask, SystemFailure, Task


class Site(http.server.ThreadingHTTPServer):
    """An HTTP server in a thread: paths -> (body, ETag); it records every request it answers."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.seen: list[tuple[str, str | None, int]] = []   # (path, If-None-Match, status)
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def requests(self, path: str) -> list[tuple[str | None, int]]:
        with self.lock:
            return [(tag, status) for p, tag, status in self.seen if p == path]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        site: Site = self.server
        tag = self.headers.get("If-None-Match")
        if self.path == "/truncated":   # says 1000 bytes, sends 10 and closes
            status, body, length = 200, b"0123456789", 1000
        elif self.path in site.files:
            body, etag = site.files[self.path]
            status, length = (304, 0) if tag == etag else (200, len(body))
        else:
            status, body, length = 404, b"", 0
        with site.lock:
            site.seen.append((self.path, tag, status))
        if status == 404:
            self.send_error(404)
            return
        self.send_response(status)
        if self.path in site.files:
            self.send_header("ETag", site.files[self.path][1])
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if status == 200:
            self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    s = Site()
    yield s
    s.shutdown()
    s.server_close()


@pytest.fixture(scope="module")
def m():
    with Manager(workers=2, cores_per_worker=2, progress=False) as manager:
        manager.wait_for_workers()
        yield manager


def tar_gz(members: dict[str, bytes | tuple[str, str]]) -> bytes:
    """A tar.gz in memory: name -> bytes (a file) or (kind, target) for a "sym" or "hard" link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, what in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(what, tuple):
                info.type = tarfile.SYMTYPE if what[0] == "sym" else tarfile.LNKTYPE
                info.linkname = what[1]
                tar.addfile(info)
            else:
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
    return buf.getvalue()


# ------------------------------------------------------------------ URLs


def test_a_url_is_fetched_once_per_worker_and_shared_by_its_tasks(m, site):
    site.files["/words.txt"] = (b"pear\napple\n", '"v1"')
    words = m.declare_url(site.url("/words.txt"))
    futures = [m.submit(Task("sort words.txt", inputs={"words.txt": words})) for _ in range(6)]
    results = [f.result(60) for f in futures]
    assert all(r.stdout == "apple\npear\n" for r in results)
    workers = {r.worker for r in results}
    assert site.requests("/words.txt") == [(None, 200)] * len(workers)   # one GET on each worker, no more


def test_a_failed_fetch_names_the_url_and_why(m, site):
    with socket.socket() as s:   # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/data"
    missing, cut = site.url("/missing"), site.url("/truncated")
    futures = {url: m.submit(Task("cat in", inputs={"in": m.declare_url(url)})) for url in (missing, closed, cut)}
    for url, why in ((missing, "HTTP 404"), (closed, "Connection refused"), (cut, "ended after 10 of 1000 bytes")):
        with pytest.raises(SystemFailure) as e:
            futures[url].result(60)
        assert f"could not fetch {url}: " in str(e.value) and why in str(e.value), str(e.value)
        assert e.value.reason == "input"


def test_bad_urls_are_refused_when_declared(m):
    for url, problem in (("ftp://host/x", "http, https or file"), ("http:///x", "names no host"),
                         ("file:relative", "absolute path")):
        with pytest.raises(ValueError, match=problem):
            m.declare_url(url)
    with pytest.raises(ValueError, match="made by each worker"):
        m.fetch(m.declare_url("http://example.org/x"))
    with pytest.raises(ValueError, match="each worker makes for itself"):
        Task("true", outputs={"x": m.declare_url("http://example.org/x")})


def test_a_kept_url_is_revalidated_by_a_later_run_and_a_304_keeps_the_copy(site, tmp_path):
    site.files["/table.csv"] = (b"a,b\n1,2\n", '"t1"')
    cache = tmp_path / "cache"
    seen = []
    for run in range(2):
        with Manager(workers=0, host="127.0.0.1", progress=False) as m:
            worker = subprocess.Popen([sys.executable, "-m", "tether", "worker", m.address, "--cache-dir", str(cache),
                                       "--secret-file", str(m.secret_file), "--name", f"w{run}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                table = m.declare_url(site.url("/table.csv"), keep=True)
                seen.append(m.submit(Task("cat t.csv", inputs={"t.csv": table})).result(60).stdout)
            finally:
                m.close()
                worker.wait(30)
    assert seen == ["a,b\n1,2\n"] * 2
    assert site.requests("/table.csv") == [(None, 200), ('"t1"', 304)]


# ------------------------------------------------------------------ archives


def test_an_archive_is_unpacked_once_per_worker_read_only_and_shared(m):
    archive = m.declare_buffer(tar_gz({"pkg/data.txt": b"42\n", "pkg/link.txt": ("sym", "data.txt")}))
    tree = m.declare_untar(archive)
    check = "stat -c '%i %a' env/pkg/data.txt; stat -c %a env/pkg; cat env/pkg/link.txt"
    if os.geteuid() != 0:   # (root writes whatever the modes say)
        check += "; if echo x >> env/pkg/data.txt; then echo WROTE; fi"
    results = [f.result(60) for f in [m.submit(Task(check, inputs={"env": tree})) for _ in range(6)]]
    inodes: dict[str, set[str]] = {}
    for r in results:
        inode_mode, dir_mode, data, *rest = r.stdout.split("\n")
        inode, mode = inode_mode.split()
        assert (mode, dir_mode, data) == ("444", "555", "42") and "WROTE" not in r.stdout, r.stdout
        inodes.setdefault(r.worker, set()).add(inode)
    assert all(len(seen) == 1 for seen in inodes.values()), inodes   # one copy on each worker, every task saw it


@pytest.mark.parametrize("member, problem", [
    ({"/etc/evil": b"x"}, "'/etc/evil' has an absolute path"),
    ({"a/../../evil": b"x"}, "'a/../../evil' climbs out with '..'"),
    ({"ok/passwd": ("sym", "/etc/passwd")}, "'ok/passwd' is a link to an absolute path"),
    ({"ok/up": ("sym", "../../outside")}, "'ok/up' is a link out of the archive"),
    ({"ok/hard": ("hard", "../outside")}, "'ok/hard' is a hard link out of the archive"),
])
def test_an_archive_with_a_member_that_escapes_is_refused_whole(m, member, problem):
    tree = m.declare_untar(m.declare_buffer(tar_gz({"fine.txt": b"ok", **member})))
    with pytest.raises(SystemFailure) as e:
        m.submit(Task("ls env", inputs={"env": tree})).result(60)
    assert "refused to unpack archive" in str(e.value) and problem in str(e.value), str(e.value)


def test_an_archive_fetched_from_a_url_is_unpacked(m, site):
    site.files["/tool.tar.gz"] = (tar_gz({"bin/tool": b"#!/bin/sh\necho tool ran\n"}), '"k"')
    tree = m.declare_untar(m.declare_url(site.url("/tool.tar.gz")))
    assert m.submit(Task("sh t/bin/tool", inputs={"t": tree})).result(60).stdout == "tool ran\n"


# ------------------------------------------------------------------ mini-tasks


def test_a_mini_task_runs_once_per_worker_and_its_directory_is_shared(m, tmp_path):
    log = tmp_path / "runs.log"
    build = Task(f'mkdir tool && cp src.sh tool/run.sh && echo "$TETHER_WORKER" >> {log}',
                 inputs={"src.sh": m.declare_buffer(b"echo built tool says $1\n")},
                 outputs={"tool": m.declare_temp()})
    tool = m.declare_minitask(build)
    results = [f.result(60) for f in [m.submit(Task(f"sh tool/run.sh {i}", inputs={"tool": tool}))
                                      for i in range(6)]]
    assert [r.stdout for r in results] == [f"built tool says {i}\n" for i in range(6)]
    runs = log.read_text().split()
    assert sorted(runs) == sorted({r.worker for r in results})   # once on each worker that read it


def write_greeting(name):
    with open("greeting.txt", "w") as f:
        f.write(f"hello {name}\n")


def test_a_python_mini_task_makes_a_file(m):
    greeting = m.declare_minitask(PythonTask(write_greeting, args=("env",), outputs={"greeting.txt": m.declare_temp()}))
    assert m.submit(Task("cat g", inputs={"g": greeting})).result(60).stdout == "hello env\n"


def test_a_failing_mini_task_fails_its_readers_naming_it(m):
    broken = Task("echo cannot build >&2; exit 3", outputs={"x": m.declare_temp()})
    made = m.declare_minitask(broken)
    with pytest.raises(SystemFailure) as e:
        m.submit(Task("cat x", inputs={"x": made})).result(60)
    assert f"mini-task {broken.id} making" in str(e.value) and "exit code 3: cannot build" in str(e.value)


def test_a_mini_task_is_checked_when_declared(m):
    with pytest.raises(ValueError, match="exactly one output"):
        m.declare_minitask(Task("true"))
    with pytest.raises(ValueError, match="declare_temp"):
        m.declare_minitask(Task("true", outputs={"x": m.declare_file("x.out")}))
    out = m.declare_temp()
    m.declare_minitask(Task("echo > x", outputs={"x": out}))
    with pytest.raises(ValueError, match="read the File declare_minitask returned"):
        m.submit(Task("cat x", inputs={"x": out}))


# ------------------------------------------------------------------ software environments


def packed_venv(tmp_path: Path) -> bytes:
    """A venv (made here, no network) holding a package this interpreter lacks, packed as a tar.gz."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--copies", str(env)], check=True)
    site_dir = env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site_dir / "tether_envdemo").mkdir()
    (site_dir / "tether_envdemo" / "__init__.py").write_text("def hello():\n    return 'hello from the env'\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(env, arcname=".")
    return buf.getvalue()


def import_demo(site_dir):
    import sys
    sys.path.insert(0, site_dir)
    try:
        import tether_envdemo
        return tether_envdemo.hello()
    finally:
        sys.path.remove(site_dir)
        sys.modules.pop("tether_envdemo", None)


def test_a_packed_python_environment_is_used_by_shell_and_python_tasks(m, tmp_path):
    with pytest.raises(ModuleNotFoundError):
        m.submit(PythonTask(import_demo, args=("nowhere",))).result(60)   # the workers' Python lacks it
    env = m.declare_untar(m.declare_buffer(packed_venv(tmp_path)))
    shell = m.submit(Task("env/bin/python -c 'import tether_envdemo, sys; print(tether_envdemo.hello())'",
                          inputs={"env": env}))
    assert shell.result(60).stdout == "hello from the env\n"
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"

    def from_env():
        import os
        return import_demo(os.path.abspath(f"env/lib/{minor}/site-packages"))

    assert m.submit(PythonTask(from_env, inputs={"env": env})).result(60) == "hello from the env"
