"""An nbgrader started for a course goes with the process that started it (a round trip or a
grader killed mid-run must not leave an autograde, its kernels and their clusters running)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil


def test_nbgrader_dies_with_its_caller(tmp_path):
    # a stand-in `python -m nbgrader` that would run for a minute, first on the child's path
    # (a regular package: a folder without __init__.py would lose to the installed nbgrader)
    (tmp_path / "nbgrader").mkdir()
    (tmp_path / "nbgrader" / "__init__.py").write_text("")
    (tmp_path / "nbgrader" / "__main__.py").write_text("import time\ntime.sleep(60)\n")
    caller = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from servelab.grading._labs import nbgrader
        nbgrader(["autograde", "lab"], cwd=Path({str(tmp_path)!r}), check=False, env={{"PYTHONPATH": {str(tmp_path)!r}}})
    """)])
    child = None
    try:
        deadline = time.monotonic() + 30
        while not (children := psutil.Process(caller.pid).children()) and time.monotonic() < deadline:
            time.sleep(0.1)
        (child,) = children
        time.sleep(1)
        assert child.is_running() and "nbgrader" in " ".join(child.cmdline())  # the stand-in, still sleeping
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait()
        gone, alive = psutil.wait_procs([child], timeout=10)
        assert not alive, "nbgrader outlived the process that started it"
    finally:  # on failure too: the caller, and the stand-in it may have orphaned
        for proc in psutil.Process().children(recursive=True) + ([child] if child else []):
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
