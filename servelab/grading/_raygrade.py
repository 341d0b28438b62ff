"""`servelab grade LAB --ray ADDRESS`: the same grading, one Ray task per submission.

A class outgrows one machine; the engine the course teaches spreads the work. The driver (the
process running `servelab grade`, on a RayJob its head pod) keeps the course folder and the
gradebook; each submission becomes one Ray task with a declared shape (SHAPE) that, on
whichever node it lands:

1. unpacks a scratch course: nbgrader_config.py, source/LAB, a snapshot of the gradebook (the
   assignment's cells and checksums) and the student's submitted/S/LAB, so no node shares a
   file system with the driver;
2. runs exactly the serial grader's `_autograde_one` there (sandboxed kernel, its own private
   Ray cluster for the learner's services on ports and a temp dir of its own, the cross-check,
   the wall-clock limit);
3. returns (seconds, error, node) and a tar of autograded/S/LAB: the executed notebook.

The driver records each returned notebook with nbgrader itself (`autograde --no-execute` on the
executed notebook: SaveAutoGrades and the late penalty, as for a serial run) so the gradebook
is written in one place, once. A node that dies mid-grade makes Ray run its tasks again
elsewhere (max_retries); a task whose retries run out is "not graded" and tried again by the
next run, never given a score it did not earn.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import tarfile
import tempfile
from pathlib import Path

from servelab.grading import _autograde as autograde
from servelab.grading._labs import nbgrader

# What one submission asks of a node: the memory is the sandbox's own limit (GradingRun), the
# CPUs those the serial grader gives it (two for labs that measure time, autograde.TIMED_LABS).
MEMORY_BYTES = 6 * 1024**3
RETRIES = 3  # runs of a submission whose node died, before it counts as not graded


def shape(lab: str) -> dict:
    """Ray resources one submission of `lab` declares."""
    return {"num_cpus": 2 if lab in autograde.TIMED_LABS else 1, "memory": MEMORY_BYTES}


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def _tar_notebooks(folder: Path) -> bytes:
    """The graded notebooks of a submission's folder, and nothing else: the kernel worked in
    that folder, and whatever the learner's code left there (links, pipes) stays on the node."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.glob("*.ipynb")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=path.name, recursive=False)
    return buffer.getvalue()


def _untar(data: bytes, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(into, filter="data")  # no absolute paths, links out or devices


def _gradebook_snapshot(db: Path) -> bytes:
    """A consistent copy of the driver's gradebook (sqlite's backup API, not a file copy
    racing a writer)."""
    with tempfile.TemporaryDirectory(prefix="slgb") as tmp:
        copy = Path(tmp) / "gradebook.db"
        with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        return copy.read_bytes()


def _course_parts(course: Path, lab: str) -> bytes:
    """What every node needs of the course, packed once for Ray's object store."""
    with tempfile.TemporaryDirectory(prefix="slcp") as tmp:
        part = Path(tmp)
        shutil.copy(course / "nbgrader_config.py", part)
        shutil.copytree(course / "source" / lab, part / "source" / lab)
        (part / "gradebook.db").write_bytes(_gradebook_snapshot(course / "gradebook.db"))
        return _tar(part)


SCRATCH_PREFIX = autograde.RAY_SCRATCH_PREFIX


def _sweep_dead_tasks() -> None:
    """Remove scratch courses of earlier tasks on this node whose worker died with them (a node
    restarted in place, a worker killed): nothing else would."""
    import psutil

    for folder in Path("/tmp").glob(f"{SCRATCH_PREFIX}*_*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("_", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _grade_on_node(parts: bytes, submitted: bytes, lab: str, student: str, limit_s: float,
                   use_sandbox: bool | None) -> dict:
    """The Ray task: one submission graded on this node as the serial grader grades it. Never
    raises for the submission's own faults: they are its error, like a serial run's."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    _sweep_dead_tasks()
    # Short (Ray's socket paths) and named by this worker's pid, for _sweep_dead_tasks.
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}_", dir="/tmp") as tmp:
        course = Path(tmp) / "c"
        _untar(parts, course)
        _untar(submitted, course / "submitted" / student / lab)
        try:
            sandboxed = autograde._isolation(use_sandbox)
        except autograde.GradingError as exc:
            return {"node": node, "seconds": 0.0, "error": f"on node {node[:8]}: {exc}", "sandboxed": False,
                    "autograded": None}
        run = autograde.GradingRun(course, use_sandbox=sandboxed, memory_bytes=MEMORY_BYTES, inside_ray=True,
                                   lab=lab)
        try:
            seconds, error = autograde._autograde_one(course, lab, student, limit_s, True, run)
        finally:
            run.close()
        out = course / "autograded" / student / lab
        notebook_there = out.is_dir() and any(out.glob("*.ipynb"))
        return {"node": node, "seconds": seconds, "error": error, "sandboxed": sandboxed,
                "autograded": _tar_notebooks(out) if notebook_there and not error else None}


def _record(course: Path, lab: str, finished: dict[str, bytes]) -> dict[str, str]:
    """Write graded notebooks that came back from the nodes into the course: nbgrader autograde
    --no-execute on each executed notebook (with the submission's own timestamp.txt) saves its
    grades and late penalty in the driver's gradebook and leaves autograded/S/LAB. Returns
    student -> what went wrong recording it ("" when recorded)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="slst") as stage:
        staged = {}
        for student, data in finished.items():
            into = Path(stage) / student / lab
            try:
                _untar(data, into)
            except (tarfile.TarError, OSError) as exc:
                shutil.rmtree(into, ignore_errors=True)
                out[student] = f"recording on the driver: the graded notebook came back unreadable ({exc})"
                continue
            stamp = course / "submitted" / student / lab / "timestamp.txt"
            if stamp.exists():
                shutil.copy(stamp, into / "timestamp.txt")
            staged[student] = {p.name for p in into.glob("*.ipynb")}
            # Whatever an earlier run left for this student is not this grade.
            shutil.rmtree(course / "autograded" / student / lab, ignore_errors=True)
        if not staged:
            return out
        done = nbgrader(["autograde", lab, "--force", "--no-execute",
                         f"--CourseDirectory.submitted_directory={stage}"], cwd=course, check=False)
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if "ERROR" in ln] or ["failed"]
    for student, notebooks in staged.items():
        there = {p.name for p in (course / "autograded" / student / lab).glob("*.ipynb")}
        recorded = bool(notebooks) and notebooks <= there
        out[student] = "" if recorded else f"recording on the driver: {lines[-1].strip()[:300]}"
        autograde.mark_graded(course, lab, student, recorded)
    return out


def _forget(course: Path, lab: str, student: str) -> None:
    """An earlier grade of a submission whose grading failed now (--force) must not stand for it."""
    shutil.rmtree(course / "autograded" / student / lab, ignore_errors=True)
    autograde.mark_graded(course, lab, student, False)


def _record_stopped(course: Path, lab: str, students: list[str]) -> None:
    """Submissions stopped at their limit are in the gradebook with no points, as a serial run
    leaves them (nbgrader adds the submission when it starts grading it), so grades.csv lists them."""
    if not students:
        return
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(lab, student)


def run(course: Path, lab: str, students: list[str], address: str, *, limit_s: float,
        use_sandbox: bool | None, show: bool = True) -> dict[str, tuple[float, str]]:
    """Grade `students` on the Ray cluster at `address`; record each in the course as it returns.
    Returns student -> (seconds on its node, error)."""
    import ray
    from ray.exceptions import RayError

    out: dict[str, tuple[float, str]] = {}
    if not students:
        return out
    connected_here = not ray.is_initialized()
    if connected_here:
        ray.init(address=address, namespace="servelab-grading", logging_level="WARNING", log_to_driver=False)
    try:
        task = ray.remote(_grade_on_node).options(max_retries=RETRIES, retry_exceptions=False, **shape(lab))
        parts = ray.put(_course_parts(course, lab))
        pending = {task.remote(parts, _tar(course / "submitted" / s / lab), lab, s, limit_s, use_sandbox): s
                   for s in students}
        if show:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            print(f"{len(students)} submission(s) as Ray tasks of {shape(lab)['num_cpus']} CPU and "
                  f"{MEMORY_BYTES / 1024**3:g} GiB on {len(nodes)} node(s) at {address}", flush=True)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0, fetch_local=True)
            if not ready:
                continue
            finished: dict[str, bytes] = {}
            for ref in ready:
                student = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayError as exc:  # its node died RETRIES + 1 times, or Ray itself failed
                    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                    out[student] = (0.0, f"not graded: its Ray task failed ({first})")
                    _forget(course, lab, student)
                    continue
                out[student] = (result["seconds"], result["error"])
                if result["autograded"]:
                    finished[student] = result["autograded"]
                else:
                    _forget(course, lab, student)
                if show:
                    # A node decides for itself whether bwrap runs there (a pod may forbid user
                    # namespaces): the instructor is told of every kernel that ran without it.
                    print(f"{student}: graded on node {result['node'][:8]} in {result['seconds']:.0f} s"
                          + ("" if result["sandboxed"] else ", kernel NOT sandboxed")
                          + (f" ({result['error']})" if result["error"] else ""), flush=True)
            recorded = _record(course, lab, finished) if finished else {}
            for student, complaint in recorded.items():
                if complaint:
                    out[student] = (out[student][0], complaint)
        _record_stopped(course, lab, [s for s, (_, error) in out.items() if error.startswith(autograde.TIMED_OUT)])
    finally:
        if connected_here:
            ray.shutdown()
    return out


def without_grading_cluster(env: dict) -> dict:
    """A task's environment minus what ties it to the grading cluster, so the learner's own
    cluster started by the kernel is as private as under the serial grader: no RAY_* address,
    token or tuning, no servelab cluster marker, profile or fault folder, and no ray_site."""
    from servelab.cluster._localray import RAY_SITE

    # OMP_NUM_THREADS: Ray sets it to the task's CPUs in its workers; a serial grader's kernel
    # and the learner's replicas have no such limit.
    dropped = {"SERVELAB_CLUSTER_DIR", "SERVELAB_FAULT_DIR", "SERVELAB_PROFILE", "MALLOC_ARENA_MAX",
               "OMP_NUM_THREADS"}
    clean = {k: v for k, v in env.items() if not k.startswith("RAY_") and k not in dropped}
    path = [p for p in clean.get("PYTHONPATH", "").split(os.pathsep) if p and p != RAY_SITE]
    if path:
        clean["PYTHONPATH"] = os.pathsep.join(path)
    else:
        clean.pop("PYTHONPATH", None)
    return clean

