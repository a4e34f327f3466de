"""Headless Chromium for the tests: the DOM after the page's scripts ran, and a page to drive.

`dump_dom` runs `chromium --dump-dom`. `Browser` speaks the DevTools
protocol over a pipe (`--remote-debugging-pipe`: JSON messages ended by a
NUL byte, the browser reading fd 3 and writing fd 4), so no websocket
library is needed. Tests skip, saying why, where Chromium is not installed
(.ci/run installs Debian's `chromium` on CI).
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SLOW = 180      # seconds: a loaded machine starts Chromium slowly


def need_chromium() -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does it on CI)")
    return CHROMIUM


def _profile() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="tether-chromium-")


def dump_dom(url: str, *extra: str) -> str:
    """The page's DOM, serialized after its load event (scripts run at load included)."""
    chromium = need_chromium()
    with _profile() as profile:
        done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *extra, "--dump-dom", url],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=SLOW, check=False)
    if done.returncode != 0 or not done.stdout:
        raise AssertionError(f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]!r}")
    return done.stdout.decode("utf-8")


def _high(*fds: int) -> list[int]:
    """The fds moved above 9, so that the child's dup2 onto 3 and 4 can neither clobber one of them nor be
    a no-op that leaves close-on-exec set."""
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    for fd in fds:
        os.close(fd)
    return moved


class Browser:
    """A headless Chromium driven through the DevTools protocol."""

    def __init__(self):
        chromium = need_chromium()
        self._profile = _profile()
        to_browser_r, to_browser_w = _high(*os.pipe())
        from_browser_r, from_browser_w = _high(*os.pipe())
        self._log = open(Path(self._profile.name) / "stderr.log", "wb")

        def plumb():        # in the child: the pipe ends become the fds Chromium expects (dup2 only: no locks,
            #                 so safe in a child forked from a process with threads)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log, close_fds=False,
            preexec_fn=plumb)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._out, self._in = to_browser_w, from_browser_r
        self._buffer = b""
        self._next_id = 0

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise ConnectionError(f"chromium closed its pipe (exit status {self.proc.poll()})")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = SLOW) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url: str) -> Page:
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        # the new target shows about:blank first, itself complete: wait for the page asked for
        page.wait_for("document.URL !== 'about:blank' && document.readyState === 'complete'")
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, TimeoutError, RuntimeError):     # gone already: it is stopped below either way
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._out, self._in):
            os.close(fd)
        self._log.close()
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def eval(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                        "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} raised in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression!r} still false after {timeout} s")
            time.sleep(interval)
