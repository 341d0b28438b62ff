"""`servelab up / status / down` as a learner runs them, in real subprocesses."""

import json
import subprocess
import sys

import pytest
import requests

from servelab import LocalRay
from servelab.cluster import _processes as processes

pytestmark = pytest.mark.live


def servelab(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "servelab.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_up_status_down():
    up = servelab("up", "--name", "clitest")
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert "Serve:" in up.stdout and "Stop it with: servelab down --name clitest" in up.stdout
        [cluster] = [c for c in LocalRay.find() if c.name == "clitest"]
        assert cluster.running  # outlived the command that started it

        again = servelab("up", "--name", "clitest")
        assert again.returncode == 0 and "already running" in again.stdout

        status = servelab("status", "--name", "clitest")
        assert status.returncode == 0 and cluster.serve_url in status.stdout
        assert requests.get(f"{cluster.dashboard_url}/api/version", timeout=5,
                            headers={"Authorization": f"Bearer {cluster.token}"}).ok

        fault = servelab("fault", "kill-controller", "--name", "clitest", "--as-json")
        assert fault.returncode == 0, fault.stderr[-2000:]
        record = json.loads(fault.stdout[fault.stdout.index("{"):])
        assert record["verb"] == "kill-controller" and record["target"] == "local:clitest"
        no_group = servelab("fault", "kill-node", "gpu-workers", "--name", "clitest")
        assert no_group.returncode == 1 and "no ALIVE node in group 'gpu-workers'" in no_group.stderr
    finally:
        down = servelab("down", "--name", "clitest")
    assert down.returncode == 0, down.stderr
    assert processes.processes_under(str(cluster.dir)) == []
    assert servelab("status", "--name", "clitest").returncode == 1


def test_env_report_names_the_target():
    out = servelab("env")
    assert out.returncode == 0 and "ray         2.60.0" in out.stdout and "Target: local" in out.stdout
