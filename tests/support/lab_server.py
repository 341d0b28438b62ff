"""A real JupyterLab server for tests: own port and token on 127.0.0.1, stopped by its own pid."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from servelab.cluster._ports import free_port


@contextmanager
def jupyter_lab(root: Path, *args: str, env: dict | None = None):
    """Yields (base URL, token) of `jupyter lab` serving `root`; its log is root/../jupyter.log."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(root.parent / f"jupyter-{port}.log", "w")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}",
           # its own workspace and settings: no tabs restored from an earlier run, no news popup
           f"--LabApp.workspaces_dir={root.parent / 'workspaces'}",
           f"--LabApp.user_settings_dir={root.parent / 'settings'}", "--LabApp.news_url=None", *args]
    cmd += ["--allow-root"] if os.getuid() == 0 else []
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"jupyter lab exited; see {log.name}"
            try:
                if requests.get(f"{base}/api/status", headers={"Authorization": f"token {token}"},
                                timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"jupyter lab did not answer in 120 s; see {log.name}"
            time.sleep(0.5)
        yield base, token
    finally:
        stop_group(server)
        log.close()


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group `proc` leads (it was started in a session of its own), then SIGKILL."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
