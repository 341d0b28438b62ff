"""node_supervisor: what a launcher execs into once its node is up (no Ray needed to test it)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from servelab.cluster import _node_supervisor as node_supervisor

# A stand-in launcher: starts "raylet" and "gcs_server" children (sleepers that die of
# SIGTERM like Ray's), prints their pids, then execs the supervisor as run_node does.
LAUNCHER = textwrap.dedent("""
    import json, os, subprocess, sys
    kids = [("raylet", subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid),
            ("gcs_server", subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid)]
    print(json.dumps(kids), flush=True)
    os.execv(sys.executable, [sys.executable, "-S", sys.argv[1], "servelab.cluster._worker_node", json.dumps(kids)])
""")


@pytest.fixture
def launched():
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, node_supervisor.__file__],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kids = dict(json.loads(proc.stdout.readline()))
    yield proc, kids
    for pid in [proc.pid, *kids.values()]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(5)


def _catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def _wait_for_exec(proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "servelab.cluster._worker_node" in psutil.Process(proc.pid).cmdline() and _catches_sigterm(proc.pid):
            return
        time.sleep(0.05)
    raise AssertionError("the launcher did not become the supervisor")


def test_same_pid_and_children_but_no_longer_the_launchers_imports(launched):
    proc, kids = launched
    _wait_for_exec(proc)
    me = psutil.Process(proc.pid)
    assert "-S" in me.cmdline() and me.cmdline()[-2] == "servelab.cluster._worker_node"
    assert sorted(c.pid for c in me.children()) == sorted(kids.values())
    assert me.memory_info().rss < 30 * 1024**2


def test_sigterm_stops_every_child_and_exits_cleanly(launched):
    proc, kids = launched
    _wait_for_exec(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not [pid for pid in kids.values() if psutil.pid_exists(pid)]


def test_a_child_that_dies_takes_the_node_down_and_says_which(launched):
    proc, kids = launched
    _wait_for_exec(proc)
    os.kill(kids["raylet"], signal.SIGKILL)
    assert proc.wait(10) == 1
    assert "('raylet', -9)" in proc.stderr.read()
    assert not psutil.pid_exists(kids["gcs_server"])
