"""`tether status`: a running manager seen from another shell, over a real link, by a real command."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

from tether import Manager, PythonTask, Task
from tether.status import NoManager, NotAuthenticated, query

from .conftest import start_worker, stop, wait_until


def tether_status(address: str, secret_file, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tether", "status", address, "--secret-file", str(secret_file),
                           *extra], capture_output=True, text=True, timeout=60)


def local_address(m: Manager) -> str:
    return f"127.0.0.1:{m.address.rsplit(':', 1)[1]}"


def test_status_shows_the_worker_the_tasks_the_groups_and_the_bytes_moved(tmp_path):
    data = tmp_path / "in.txt"
    data.write_bytes(b"x" * 10_000)
    with Manager(workers=0, host="127.0.0.1") as m:
        worker = start_worker(m, "w1", tmp_path, "--cores", "2")
        try:
            m.wait_for_workers(1)
            address = local_address(m)
            src = m.declare_file(data)
            mid = m.declare_temp()
            out = m.declare_file(tmp_path / "out.txt")
            # a chain passing a temp (one group of two), an output written home, a call with its arguments
            first = m.submit(Task("cat in.txt in.txt > mid.txt", inputs={"in.txt": src}, outputs={"mid.txt": mid}))
            second = m.submit(Task("cat mid.txt > out.txt", inputs={"mid.txt": mid}, outputs={"out.txt": out}))
            call = m.submit(PythonTask(len, args=(b"a" * 5_000,)))
            assert first.result(60).exit_code == 0 and second.result(60).exit_code == 0
            assert call.result(60) == 5_000
            assert (tmp_path / "out.txt").stat().st_size == 20_000
            # two tasks hold both cores, a third waits its turn (queued on the worker, or ready here)
            sleepers = [m.submit(Task("sleep 120")) for _ in range(3)]
            wait_until(lambda: query(address, m._secret).workers[0].running == 2, timeout=30, interval=0.2)

            run = tether_status(address, m.secret_file, "--json")
            assert run.returncode == 0, run.stderr
            status = json.loads(run.stdout)
            stats = m.stats()

            assert status["run"] == m.run
            assert 0 < status["uptime_s"] < 600
            [w] = status["workers"]
            assert (w["id"], w["host"], w["cores"], w["cores_used"], w["running"]) == ("w1", "127.0.0.1", 2, 2, 2)
            assert w["assigned"] == 0
            assert w["cache_bytes"] >= 10_000          # the input, at least, is in its cache
            assert w["cache_peak_bytes"] >= w["cache_bytes"]
            assert status["cores"] == {"total": 2, "used": 2}

            tasks = status["tasks"]
            assert tasks["done"] == 3
            assert tasks["running"] == w["running"] + w["queued"]   # the core's RUNNING: running or next in line
            assert w["queued"] + tasks["ready"] + tasks["waiting"] == 1
            assert tasks["failed"] == tasks["cancelled"] == 0
            assert tasks["total"] == sum(v for k, v in tasks.items() if k != "total") == stats["tasks_submitted"] == 6
            assert status["groups"] == {"count": 1, "tasks": 2}

            moved = status["bytes"]
            assert moved == {"manager_to_worker": stats["bytes_manager_to_worker"],
                             "worker_to_manager": stats["bytes_worker_to_manager"],
                             "worker_to_worker": stats["bytes_worker_to_worker"],
                             "arguments": stats["bytes_arguments_to_worker"]}
            assert moved["manager_to_worker"] >= 10_000   # the input went out
            assert moved["worker_to_manager"] >= 20_000   # the output came home
            assert moved["arguments"] >= 5_000           # the call's pickled argument
            assert status["cache_bytes"] == w["cache_bytes"]
            assert status["broken"] is None

            text = tether_status(address, m.secret_file)
            assert text.returncode == 0, text.stderr
            assert f"manager {address}  run {m.run}" in text.stdout
            for line in (r"tasks running\s+[23]\b", r"tasks done\s+3\b", r"tasks in all\s+6\b", r"cores\s+2 used of 2",
                         r"groups\s+1 \(2 tasks\)"):
                assert re.search(line, text.stdout), (line, text.stdout)
            row = next(line for line in text.stdout.splitlines() if " w1 " in line)
            cells = [c.strip() for c in re.split(r"[│|]", row) if c.strip()]
            # id, host, cores, used, running, queued, assigned
            assert cells[:5] == ["w1", "127.0.0.1", "2", "2", "2"] and cells[5] in ("0", "1") and cells[6] == "0"

            # the same over TLS, which the manager offers on loopback too
            encrypted = tether_status(address, m.secret_file, "--json", "--tls", "always")
            assert encrypted.returncode == 0, encrypted.stderr
            assert json.loads(encrypted.stdout)["workers"][0]["running"] == 2

            # asking changed nothing: the sleepers still run on the worker, still connected
            assert not any(f.done() for f in sleepers[:2])
            assert m.stats()["workers"] == 1
        finally:
            stop(worker)
    assert worker.returncode is not None


def test_a_wrong_secret_is_refused_with_a_sentence(tmp_path):
    bad = tmp_path / "bad-secret"
    bad.write_text("not-the-secret-of-this-manager")
    with Manager(workers=0, host="127.0.0.1") as m:
        address = local_address(m)
        for tls in ("never", "always"):
            run = tether_status(address, bad, "--tls", tls)
            assert run.returncode == 1
            assert run.stderr.startswith(f"tether status: could not authenticate to {address}: "), run.stderr
            assert "Traceback" not in run.stderr and run.stdout == ""
        try:
            query(address, b"not-the-secret-of-this-manager", "never")
        except NotAuthenticated as e:
            assert "refused the secret" in str(e)
        else:
            raise AssertionError("a wrong secret was accepted")
        assert query(address, m._secret).run == m.run   # the manager still answers those who hold it


def test_nobody_listening_is_said_plainly(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("a-secret-of-enough-length")
    with socket.socket() as s:   # a port that was free a moment ago, with nothing behind it now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    started = time.monotonic()
    run = tether_status(address, secret)
    assert run.returncode == 1
    assert run.stderr.startswith(f"tether status: no manager at {address}: "), run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert time.monotonic() - started < 30
    try:
        query(address, b"a-secret-of-enough-length")
    except NoManager as e:
        assert str(e).startswith(f"no manager at {address}")
    else:
        raise AssertionError("a status came from nowhere")


def test_something_that_is_not_a_manager_is_not_taken_for_one(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("a-secret-of-enough-length")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        client = subprocess.Popen([sys.executable, "-m", "tether", "status", address, "--secret-file", str(secret)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            out, err = client.communicate(timeout=60)
        finally:
            stop(client)
    assert client.returncode == 1
    assert err.startswith(f"tether status: no manager at {address}: "), err
    assert "Traceback" not in err
