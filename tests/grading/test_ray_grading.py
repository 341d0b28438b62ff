"""`servelab grade --ray`: a class graded as Ray tasks on a multi-node cluster gets the grades the
submissions earn (test_autograde sees the grader on this machine give the same), and a worker
node killed mid-run costs only a retry.

The grading cluster is a local one: a head with no CPUs for tasks and two one-CPU worker nodes,
as a RayJob's cluster would have worker pods. The submissions are the scenario quiz's, which
needs no cluster of its own, so the test pays for grading, not for learners' services."""

import csv
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from submissions import quiz_answers, quiz_failed, submit

from servelab.cluster.testing import start_for_fixture
from servelab.faults._verbs import LocalFaults
from servelab.grading import _course as grading
from servelab.grading._labs import scratch_course

pytestmark = [pytest.mark.grading, pytest.mark.live]

LAB = "quiz-scenarios"
LIMIT_S = 25


@pytest.fixture(scope="module")
def course():
    root = scratch_course()
    grading.nbgrader(["generate_assignment", LAB], cwd=root)
    release = root / "release" / LAB / f"{LAB}.ipynb"
    for student, right in (("alice", 10), ("bob", 4), ("dave", 7), ("frank", 0)):
        submit(root, LAB, student, grading.fill(release, quiz_answers(right)))
    submit(root, LAB, "carol", raw="{ this is not a notebook")
    slow = grading.fill(release, quiz_answers(10))
    answer = next(c for c in slow.cells if c.metadata.get("nbgrader", {}).get("solution"))
    answer.source = "import time\ntime.sleep(600)\n" + answer.source
    submit(root, LAB, "erin", slow)   # over its limit: zero, on Ray as at home
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def earned():
    """student -> (score, failed cells, whether the summary names an error), from how each
    submission was built."""
    graded = {student: (float(right), quiz_failed(right), False)
              for student, right in (("alice", 10), ("bob", 4), ("dave", 7), ("frank", 0))}
    graded["erin"] = (0.0, [], True)        # stopped at its limit: no cell finished
    graded["carol"] = (None, [], True)      # not a notebook: not graded
    return graded


@pytest.fixture(scope="module")
def grading_cluster(request):
    # The small profile: its worker nodes' stand-in agents go with their raylet, where Ray's own
    # wait about 30 s for it on a stop; the tasks leave the profile behind (without_grading_cluster).
    cluster = start_for_fixture(request, num_cpus=0, prometheus=False, profile="small")
    for _ in range(2):
        cluster.add_worker(num_cpus=1, memory=7 * 1024**3, show=False)
    return cluster


def _copy_without_grades(course, tmp_path):
    """The course as an instructor has it before grading: config, sources, submissions."""
    fresh = tmp_path / "course"
    fresh.mkdir()
    shutil.copy(course / "nbgrader_config.py", fresh)
    for folder in ("source", "submitted"):
        shutil.copytree(course / folder, fresh / folder)
    return fresh


def _grade_on_ray(cluster, course, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "servelab.cli", "grade", LAB, "--course", str(course),
                             "--ray", cluster.gcs_address, "--limit", str(LIMIT_S), *extra],
                            env={**os.environ, **cluster.cli_env()},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _summary(course) -> dict[str, dict]:
    rows = list(csv.DictReader(open(course / f"summary-{LAB}.csv")))
    assert len(rows) == len({r["student"] for r in rows}), "a student summarised twice"
    return {r["student"]: r for r in rows}


def _as_earned(course, earned):
    summary = _summary(course)
    assert set(summary) == set(earned)
    for student, (score, failed, error) in earned.items():
        row = summary[student]
        assert (None if row["score"] == "" else float(row["score"])) == score, (student, row)
        assert sorted(row["failed_tests"].split()) == failed, (student, row)
        assert bool(row["error"]) == error, (student, row["error"])


def _grading_tasks(cluster) -> list[dict]:
    """Attempts of the grading tasks, as Ray's State API lists them."""
    rows = cluster.state_api._rows("/api/v0/tasks?limit=1000&detail=true")
    return [t for t in rows if t.get("func_or_class_name", t.get("name", "")).endswith("_grade_on_node")]


def _task_processes() -> list[psutil.Process]:
    """Anything still running out of a grading task's scratch folders (/tmp/slr<pid>_*): by its
    command line, its working folder or the SERVELAB_TMPDIR the grader gave it."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "environ"]):
        try:
            info = proc.info
            where = " ".join([*(info["cmdline"] or []), info["cwd"] or "",
                              (info["environ"] or {}).get("SERVELAB_TMPDIR", "")])
            if "/tmp/slr" in where:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_grades_on_ray_are_the_grades_earned(course, earned, grading_cluster, tmp_path):
    fresh = _copy_without_grades(course, tmp_path)
    proc = _grade_on_ray(grading_cluster, fresh)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out   # carol's is not a notebook: not graded, and the exit code says so
    assert "on 3 node(s)" in out and "graded on node" in out, out
    _as_earned(fresh, earned)
    assert (fresh / "feedback" / "bob" / LAB / f"{LAB}.html").exists()
    grades = {row["student_id"]: row for row in csv.DictReader(open(fresh / "grades.csv"))}
    assert float(grades["dave"]["raw_score"]) == 7 and float(grades["frank"]["raw_score"]) == 0
    # Recorded once, by the driver, and so resumable: a second run grades nobody again.
    again = _grade_on_ray(grading_cluster, fresh, "--limit", "5")
    out2, _ = again.communicate(timeout=300)
    assert out2.count("graded before") == 4, out2      # not carol (no notebook) nor erin (stopped)
    assert "carol: graded on node" in out2 and "erin: graded on node" in out2
    assert _task_processes() == []


@pytest.mark.extended
def test_a_worker_node_killed_mid_run_costs_only_a_retry(course, earned, grading_cluster, tmp_path):
    fresh = _copy_without_grades(course, tmp_path)
    scratch_before = set(Path("/tmp").glob("slr*_*"))
    proc = _grade_on_ray(grading_cluster, fresh)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    # Kill a worker node while it runs a submission (six submissions, one CPU each: once the
    # first result is back, both nodes are busy with the next ones).
    deadline = time.monotonic() + 300
    while not any("graded on node" in ln for ln in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.5)
    running = [t for t in _grading_tasks(grading_cluster) if t["state"] == "RUNNING"]
    assert running, "no submission running to kill a node under"
    victim = running[0]["node_id"]
    LocalFaults(grading_cluster).stop_node({"node_id": victim})
    proc.wait(timeout=600)
    reader.join(timeout=10)
    out = "".join(lines)
    _as_earned(fresh, earned)
    # Ray ran the lost submission again (a second attempt of its task) on the node left.
    assert any(t["attempt_number"] > 0 for t in _grading_tasks(grading_cluster)), out
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{fresh / 'gradebook.db'}") as gb:
        recorded = sorted(s.student.id for s in gb.find_assignment(LAB).submissions)
    assert recorded == sorted(s for s in earned if s != "carol"), out   # each once, none lost (erin: 0)
    assert _task_processes() == []
    # The killed task's scratch course went with the next task on the machine (_sweep_dead_tasks).
    pids = [(d, d.name[3:].split("_")[0]) for d in set(Path("/tmp").glob("slr*_*")) - scratch_before]
    assert [d for d, pid in pids if pid.isdigit() and not psutil.pid_exists(int(pid))] == []
