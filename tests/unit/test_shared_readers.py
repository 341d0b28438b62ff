"""The helpers every concern shares: a node's group, a deployment's replicas by state and by
group, the State API with the cluster's token, and starting and stopping a node's process."""

import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler

import pytest
import requests
from loopback_http import serving

from servelab.clients._serve import count_running, replicas_in, running_by_group
from servelab.clients._state import GROUP_LABEL, StateAPI, node_group
from servelab.cluster import _processes as processes

DEPLOYMENT = {"replicas": [
    {"replica_id": "a", "state": "RUNNING", "node_id": "n1"},
    {"replica_id": "b", "state": "RUNNING", "node_id": "n2"},
    {"replica_id": "c", "state": "STARTING", "node_id": "n2"},
    {"replica_id": "d", "state": "RUNNING", "node_id": "gone"},
]}


def test_a_nodes_group_comes_from_its_label_and_the_head_is_its_own_group():
    assert node_group({"is_head_node": True, "labels": {GROUP_LABEL: "cpu-workers"}}) == "head"
    assert node_group({"labels": {GROUP_LABEL: "gpu-workers"}}) == "gpu-workers"
    assert node_group({"labels": {"ray.io/node-group": "gpu-workers"}}) == "gpu-workers"  # a KubeRay pod's node
    assert node_group({"labels": {}}) == "worker"  # started by hand, without a group


def test_replicas_are_counted_by_state_and_by_the_group_of_their_node():
    assert [r["replica_id"] for r in replicas_in(DEPLOYMENT)] == ["a", "b", "d"]
    assert [r["replica_id"] for r in replicas_in(DEPLOYMENT, state=None)] == ["a", "b", "c", "d"]
    assert count_running(DEPLOYMENT) == 3 and count_running({}) == 0
    assert running_by_group(DEPLOYMENT, {"n1": "head", "n2": "gpu-workers"}) == {"head": 1, "gpu-workers": 1, "?": 1}


class FakeDashboard(BaseHTTPRequestHandler):
    """The two State API routes servelab reads, behind a token."""

    def do_GET(self):
        if self.headers.get("Authorization") != "Bearer secret":
            self.send_response(401)
            self.end_headers()
            return
        if self.path.startswith("/api/v0/nodes"):
            rows = [{"node_id": "n1", "state": "ALIVE"}, {"node_id": "n0", "state": "DEAD"}]
        else:
            assert "filter_values=ServeController" in self.path
            rows = [{"pid": 7, "state": "ALIVE"}, {"pid": None, "state": "ALIVE"}, {"pid": 8, "state": "DEAD"}]
        body = json.dumps({"data": {"result": {"result": rows}}}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_state_api_sends_the_token_and_lists_only_what_is_alive():
    with serving(FakeDashboard) as url:
        api = StateAPI(url + "/", token="secret")
        assert [n["node_id"] for n in api.nodes()] == ["n1"]
        assert [a["pid"] for a in api.actors("ServeController")] == [7]
        with pytest.raises(requests.HTTPError):
            StateAPI(url, token="wrong").nodes()


def test_a_node_process_gets_its_own_session_and_log_and_stops_within_its_timeout(tmp_path):
    log = tmp_path / "node.log"
    proc = processes.spawn_node([sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"],
                                env={}, log_path=log)
    try:
        deadline = time.monotonic() + 10
        while "up" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text().strip() == "up"
        assert subprocess.run(["ps", "-o", "sid=", "-p", str(proc.pid)], capture_output=True,
                              text=True).stdout.strip() == str(proc.pid)  # its own session
    finally:
        processes.stop_child(proc, timeout=5)
    assert proc.returncode is not None


def test_stopping_a_child_that_ignores_sigterm_ends_in_sigkill(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    processes.stop_child(proc, timeout=0.5)
    assert proc.returncode == -9 and time.monotonic() - started < 5
