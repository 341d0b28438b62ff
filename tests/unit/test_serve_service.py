"""The local serve Service (servelab/cluster/_service.py) against stand-in clusters.

Each stand-in "cluster" is a folder with the cluster.json and token a real one has, an owner
process (a sleeping child) and one loopback HTTP server playing both its dashboard (Serve's
REST API) and its Serve proxy. The service process itself is real: it proxies real HTTP and
runs KubeRay's promotion (rayservice_controller.go: a pending cluster takes traffic once every
application is RUNNING and the head's proxy answers /-/healthz) and the deletion after
rayClusterDeletionDelaySeconds.
"""

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler

import psutil
import pytest
import requests
from loopback_http import serving

from servelab.cluster import _processes as processes
from servelab.cluster import _service as service
from servelab.cluster._ports import Ports, free_port

PORT_FIELDS = list(Ports.__dataclass_fields__)


def handler_for(label: str, apps_status: dict):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, code: int, body: bytes, headers=()):
            self.send_response(code)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/api/serve/applications/":
                assert self.headers["Authorization"] == "Bearer token-" + label
                body = {"applications": {"app": {"status": apps_status["status"]}}}
                return self._send(200, json.dumps(body).encode())
            if self.path == "/-/healthz":
                return self._send(200, b"success")
            if self.path == "/stream":  # a chunked answer, as a streaming Serve response is
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (b"one ", b"two ", label.encode()):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
                return None
            return self._send(200, json.dumps({"cluster": label, "path": self.path}).encode(),
                              [("Content-Type", "application/json"), ("X-Cluster", label)])

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            return self._send(201, json.dumps({"cluster": label, "echo": body.decode()}).encode())

    return Handler


def stand_in_cluster(stack: ExitStack, root, label: str, apps_status: dict) -> str:
    """A folder a LocalRay could have written, with a live owner and a live HTTP server."""
    url = stack.enter_context(serving(handler_for(label, apps_status)))
    port = int(url.rsplit(":", 1)[1])
    folder = root / f"c{label}"
    folder.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                             env={**os.environ, processes.MARKER: str(folder)})
    stack.callback(owner.wait)  # callbacks run last-in first-out: kill, then reap
    stack.callback(lambda: owner.poll() is None and owner.kill())
    (folder / "auth_token").write_text("token-" + label)
    (folder / "cluster.json").write_text(json.dumps({
        "name": "svc", "dir": str(folder), "owner_pid": owner.pid,
        "owner_started": psutil.Process(owner.pid).create_time(), "num_cpus": 1, "num_gpus": 0,
        "ports": {**dict.fromkeys(PORT_FIELDS, 0), "serve": port, "dashboard": port}, "workers": []}))
    return str(folder)


def wait(condition, seconds=15):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.fixture
def stack():
    with ExitStack() as stack:
        yield stack


def test_the_service_follows_kuberays_promotion_and_deletion(tmp_path, stack):
    old_apps, new_apps = {"status": "RUNNING"}, {"status": "DEPLOYING"}
    old = stand_in_cluster(stack, tmp_path, "old", old_apps)
    folder = service.create(tmp_path, "svc", free_port(), deletion_delay_s=1)
    stack.callback(service.stop, folder)
    with service.locked(folder) as state:
        state["pending"] = old
    service.start(folder, dict(os.environ))
    url = f"http://127.0.0.1:{service.read(folder)['port']}"
    session = requests.Session()  # keep-alive: the next request after the switch goes to the new cluster

    # the first cluster is pending until it is ready, then it is the active one
    wait(lambda: service.read(folder).get("active") == old)
    reply = session.get(url + "/hello?x=1")
    assert reply.json() == {"cluster": "old", "path": "/hello?x=1"} and reply.headers["X-Cluster"] == "old"
    assert session.post(url + "/echo", data=b"payload").json() == {"cluster": "old", "echo": "payload"}
    assert session.get(url + "/stream").text == "one two old"

    # an upgrade: a pending cluster takes no traffic until its applications are all RUNNING
    new = stand_in_cluster(stack, tmp_path, "new", new_apps)
    with service.locked(folder) as state:
        state["pending"] = new
    time.sleep(2.5)
    assert service.read(folder)["active"] == old and session.get(url + "/").json()["cluster"] == "old"
    new_apps["status"] = "RUNNING"
    wait(lambda: service.read(folder).get("active") == new)
    assert session.get(url + "/").json()["cluster"] == "new"  # the same keep-alive client, moved
    state = service.read(folder)
    assert state["pending"] is None and [d["dir"] for d in state["deleting"]] == [old]

    # the old cluster's processes go after the deletion delay, by their own pids
    wait(lambda: not processes.processes_under(old) and service.read(folder)["deleting"] == [])
    assert processes.processes_under(new)


def test_no_endpoint_yet_is_a_503_that_says_why(tmp_path, stack):
    pending = stand_in_cluster(stack, tmp_path, "p", {"status": "DEPLOY_FAILED"})
    folder = service.create(tmp_path, "svc", free_port(), deletion_delay_s=1)
    stack.callback(service.stop, folder)
    with service.locked(folder) as state:
        state["pending"] = pending
    service.start(folder, dict(os.environ))
    reply = requests.get(f"http://127.0.0.1:{service.read(folder)['port']}/anything", timeout=5)
    assert reply.status_code == 503 and "svc-serve-svc has no ready endpoints" in reply.json()["error"]


def test_the_service_ends_when_its_clusters_are_gone(tmp_path, stack):
    cluster = stand_in_cluster(stack, tmp_path, "only", {"status": "RUNNING"})
    folder = service.create(tmp_path, "svc", free_port(), deletion_delay_s=1)
    with service.locked(folder) as state:
        state["pending"] = cluster
    pid = service.start(folder, dict(os.environ))
    assert service.find(tmp_path, "svc") == folder and service.folder_of(cluster) == folder
    owner = psutil.Process(json.loads((tmp_path / "conly" / "cluster.json").read_text())["owner_pid"])
    owner.kill()  # the cluster died with its owner (a crashed kernel)
    wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, seconds=20)
    assert not folder.exists()
