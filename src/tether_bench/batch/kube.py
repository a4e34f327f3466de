"""A stand-in Kubernetes API server: pods are jobs of the spool, run as processes on its nodes.

Parsl's KubernetesProvider talks to the API through the `kubernetes`
client, and makes three calls: create a pod (POST
/api/v1/namespaces/NS/pods), read it (GET .../pods/NAME, for
status.phase: Pending, Running, Succeeded, Failed) and delete it (DELETE
.../pods/NAME). This server answers those over HTTP on loopback. A pod's
first container runs as a job (its command and args, its env, nothing of
the image: the image stands for this machine); a deleted pod's job is
cancelled and the pod is gone (404) from then on.

    with KubeApiServer(spool, work_dir) as api:    # writes a kubeconfig, points the client at it
        KubernetesProvider(image="any", ...)
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .spool import CANCELLED, COMPLETED, FAILED, PENDING, RUNNING, TIMEOUT, Spool, minimal_env

PHASE = {PENDING: "Pending", RUNNING: "Running", COMPLETED: "Succeeded", FAILED: "Failed", TIMEOUT: "Failed"}
_POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/?]+))?/?(?:\?.*)?$")


class KubeApiServer:
    """The API server, on a thread of this process; jobs are submitted to `spool` as system "kubernetes"."""

    def __init__(self, spool: Spool, work_dir: str | os.PathLike):
        self.spool = spool
        self.work_dir = Path(work_dir).absolute()
        self.kubeconfig = self.work_dir / "kubeconfig"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}   # (namespace, name) -> the pod as created
        self._lock = threading.Lock()
        self._previous: tuple[str | None, Any] | None = None

    def __enter__(self) -> "KubeApiServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:   # quiet: the requests are the provider's business
                pass

            def do_POST(self) -> None:
                api._answer(self, "POST")

            def do_GET(self) -> None:
                api._answer(self, "GET")

            def do_DELETE(self) -> None:
                api._answer(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kube-api-stand-in", daemon=True)
        self._thread.start()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(json.dumps({   # JSON is YAML too
            "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
            "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
            "users": [{"name": "stand-in", "user": {"token": "stand-in"}}],
            "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "stand-in"}}]}))
        self._point_client_here()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._previous is not None:
            env, default = self._previous
            if env is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = env
            module = sys.modules.get("kubernetes.config.kube_config")
            if module is not None and default is not None:
                module.KUBE_CONFIG_DEFAULT_LOCATION = default
            self._previous = None

    def _point_client_here(self) -> None:
        """KUBECONFIG names our kubeconfig; a client imported earlier read KUBECONFIG then, so it is told too."""
        module = sys.modules.get("kubernetes.config.kube_config")
        self._previous = (os.environ.get("KUBECONFIG"),
                          getattr(module, "KUBE_CONFIG_DEFAULT_LOCATION", None) if module else None)
        os.environ["KUBECONFIG"] = str(self.kubeconfig)
        if module is not None:
            module.KUBE_CONFIG_DEFAULT_LOCATION = str(self.kubeconfig)

    # ------------------------------------------------------------ requests

    def _answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        m = _POD.match(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"{}") if length else {}
        if m is None:
            return _reply(request, 404, _status(404, "NotFound", f"the stand-in serves pods only, not {request.path}"))
        namespace, name = m.group(1), m.group(2)
        if method == "POST" and name is None:
            return self._create(request, namespace, body)
        if name is None:
            return _reply(request, 405, _status(405, "MethodNotAllowed", f"{method} on a pod collection"))
        with self._lock:
            pod = self._pods.get((namespace, name))
        job = self.spool.job(pod["job"], "kubernetes") if pod is not None else None
        if pod is None or job is None or job["state"] == CANCELLED:
            return _reply(request, 404, _status(404, "NotFound", f'pods "{name}" not found'))
        if method == "GET":
            return _reply(request, 200, self._pod(pod, job))
        if method == "DELETE":
            self.spool.cancel(pod["job"])
            return _reply(request, 200, self._pod(pod, job, deleting=True))
        return _reply(request, 405, _status(405, "MethodNotAllowed", method))

    def _create(self, request: BaseHTTPRequestHandler, namespace: str, body: dict[str, Any]) -> None:
        name = body.get("metadata", {}).get("name")
        containers = body.get("spec", {}).get("containers") or []
        if not name or not containers:
            return _reply(request, 422, _status(422, "Invalid", "a pod needs metadata.name and a container"))
        with self._lock:
            if (namespace, name) in self._pods:
                return _reply(request, 409, _status(409, "AlreadyExists", f'pods "{name}" already exists'))
        container = containers[0]
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            return _reply(request, 422, _status(422, "Invalid", "the stand-in runs a container's command; "
                                                                "it has no image to take one from"))
        env = minimal_env()
        env.update({e["name"]: e.get("value", "") for e in container.get("env") or []})
        host, port = self.url.rsplit("//", 1)[1].rsplit(":", 1)
        env.update({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "HOSTNAME": name})
        out = self.work_dir / "pods" / namespace
        out.mkdir(parents=True, exist_ok=True)

        def make(number: int) -> dict:
            return {"name": name, "argv": argv, "cwd": "{tmp}", "env": env, "stdout": str(out / f"{name}.log"),
                    "stderr": str(out / f"{name}.log"), "pod": name, "namespace": namespace}

        job = self.spool.submit("kubernetes", make)
        pod = {"namespace": namespace, "name": name, "job": job["number"], "body": body,
               "uid": str(uuid.uuid4()), "created": _now()}
        with self._lock:
            self._pods[(namespace, name)] = pod
        _reply(request, 201, self._pod(pod, job))

    def _pod(self, pod: dict[str, Any], job: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
        body = pod["body"]
        metadata = dict(body.get("metadata") or {}, namespace=pod["namespace"], uid=pod["uid"],
                        creationTimestamp=pod["created"])
        if deleting:
            metadata["deletionTimestamp"] = _now()
        host = self.spool.node_host(job["node"]) if job["node"] else None
        status: dict[str, Any] = {"phase": PHASE.get(job["state"], "Unknown")}
        if job["node"]:
            status.update(hostIP=host or "127.0.0.1", podIP=host or "127.0.0.1",
                          startTime=_iso(job["started"]) if job["started"] else pod["created"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body.get("spec") or {},
                "status": status}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _reply(request: BaseHTTPRequestHandler, code: int, data: dict[str, Any]) -> None:
    payload = json.dumps(data).encode()
    request.send_response(code)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(payload)))
    request.end_headers()
    request.wfile.write(payload)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _iso(time.time())
