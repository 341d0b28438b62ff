"""The nbgrader a course starts (`_labs.NBGRADER_CLI`): it goes with the process that started it
(a round trip or a grader killed mid-run must not leave an autograde, its kernels and their
clusters running), and it starts without jsonschema's IRI grammar but with its own arguments."""

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


def test_nbgrader_runs_without_the_iri_grammar_and_gets_its_arguments(tmp_path):
    from servelab.grading._labs import NBGRADER_CLI

    # The stand-in says what a real nbgrader would find: jsonschema loaded without rfc3987-syntax
    # (the 1.5 s grammar), and the arguments the grader passed.
    (tmp_path / "nbgrader").mkdir()
    (tmp_path / "nbgrader" / "__init__.py").write_text("")
    (tmp_path / "nbgrader" / "__main__.py").write_text(
        "import sys, jsonschema\nprint(sys.modules['rfc3987_syntax'] is None, sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([*NBGRADER_CLI, "autograde", "lab1", "--force"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "True ['autograde', 'lab1', '--force']"
    # and the real one, as the grader starts it
    real = subprocess.run([*NBGRADER_CLI, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert "nbgrader version" in real.stdout
