"""Seconds from `make lab` to a usable JupyterLab, on an environment that is already installed.

Usable means: the URL with its token is printed, the JupyterLab page loads with it, and the
start page's notebook can be read through the contents API (what the browser asks for when
it opens the default URL). `make lab` first regenerates the student labs whose source changed
(none, on a clean checkout: each records a hash of its source).

Baseline, same run: `jupyter lab` started directly with the same options.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import summary, write_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RUNS = 3
START_PAGE = "notebooks/00-start-here.ipynb"


def _usable_after(cmd: list[str], port: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        while True:
            assert proc.poll() is None, "".join(lines[-30:])
            assert time.perf_counter() - t0 < 300, "not usable within 300 s:\n" + "".join(lines[-30:])
            found = [m for line in list(lines) for m in re.findall(rf"http://127\.0\.0\.1:{port}/\S*token=(\w+)", line)]
            if found:
                try:
                    page = requests.get(f"http://127.0.0.1:{port}/lab?token={found[0]}", timeout=10)
                    nb = requests.get(f"http://127.0.0.1:{port}/api/contents/{START_PAGE}",
                                      headers={"Authorization": f"token {found[0]}"}, timeout=10)
                    if page.ok and "JupyterLab" in page.text and nb.ok:
                        return time.perf_counter() - t0
                except requests.RequestException:
                    pass
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def run() -> dict:
    from servelab.cluster._ports import free_port

    make, direct = [], []
    for i in range(RUNS):
        port = free_port()
        make.append(_usable_after(["make", "lab", f"LAB_PORT={port}", "NO_BROWSER=1"], port))
        port = free_port()
        direct.append(_usable_after([str(REPO / ".venv" / "bin" / "jupyter"), "lab", "--no-browser",
                                     "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}"]
                                    + (["--allow-root"] if os.getuid() == 0 else []), port))
        print(f"  run {i + 1}/{RUNS}: make lab {make[-1]:.1f}s, jupyter lab {direct[-1]:.1f}s", flush=True)
    ratio = statistics.median(make) / statistics.median(direct)
    body = f"""
From `make lab` (environment already installed) to a usable JupyterLab: URL printed, page
served, start page readable. `make lab` regenerates only labs whose source changed (none here).

| figure | value |
|---|---|
| `make lab` → usable | {summary(make)} |
| baseline: `jupyter lab` → usable | {summary(direct)} |
| **ratio** | **{ratio:.2f}×** |
"""
    write_section("lab-launch", "`make lab` to a usable JupyterLab", body)
    return {"make_lab_median_s": statistics.median(make), "ratio": ratio}


if __name__ == "__main__":
    print(run())
