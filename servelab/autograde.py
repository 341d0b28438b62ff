"""`servelab grade LAB`: a folder of submissions graded the way an instructor runs nbgrader.

The course folder is an nbgrader course root (nbgrader_config.py, source/<lab>/, and
submitted/<student>/<lab>/ as `nbgrader collect` or an LMS export leaves it). Each student
is autograded by the real nbgrader CLI in a process of its own, with a wall-clock limit, so
one broken or endless submission costs only its own points. Then feedback HTML, grades.csv
and a per-student summary (score, failed test cells, seconds, error) are written.

Re-running skips students already in the gradebook unless `force` is given, so an
interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .labs import nbgrader, venv_env

DEFAULT_LIMIT_S = 30 * 60
TIMED_OUT = "stopped"


@dataclass
class Graded:
    student: str
    score: float | None = None        # None: nbgrader could not grade it
    max_score: float | None = None
    failed: list[str] = field(default_factory=list)   # test cells short of full points
    seconds: float = 0.0
    error: str = ""
    skipped: bool = False             # graded by an earlier run

    def row(self) -> dict:
        return {"student": self.student, "score": "" if self.score is None else self.score,
                "max_score": "" if self.max_score is None else self.max_score,
                "failed_tests": " ".join(self.failed), "seconds": round(self.seconds, 1),
                "error": self.error, "skipped": self.skipped}


class GradingError(Exception):
    """The course folder itself is unusable (not one student's problem)."""


def submissions(course: Path, lab: str) -> list[str]:
    """Students with a notebook for `lab` under submitted/."""
    root = course / "submitted"
    return sorted(p.name for p in root.iterdir()
                  if (p / lab).is_dir() and any((p / lab).glob("*.ipynb"))) if root.exists() else []


def _check_course(course: Path, lab: str) -> None:
    if not (course / "nbgrader_config.py").exists():
        raise GradingError(f"{course} is not an nbgrader course root (no nbgrader_config.py); "
                           f"pass --course with the folder that holds source/ and submitted/")
    if not (course / "source" / lab).is_dir():
        known = sorted(p.name for p in (course / "source").iterdir()) if (course / "source").exists() else []
        raise GradingError(f"no lab {lab!r} in {course / 'source'} (it has: {', '.join(known) or 'nothing'})")


def _graded_already(course: Path, lab: str) -> set[str]:
    from nbgrader.api import Gradebook, MissingEntry

    db = course / "gradebook.db"
    if not db.exists():
        return set()
    done = set()
    with Gradebook(f"sqlite:///{db}") as gb:
        for student in gb.students:
            try:
                gb.find_submission(lab, student.id)
            except MissingEntry:
                continue
            if (course / "autograded" / student.id / lab).is_dir():
                done.add(student.id)
    return done


def _autograde_one(course: Path, lab: str, student: str, limit_s: float, force: bool) -> tuple[float, str]:
    """Run `nbgrader autograde` for one student in its own process group; (seconds, error)."""
    args = [sys.executable, "-m", "nbgrader", "autograde", lab, f"--student={student}"]
    if force:
        args.append("--force")
    start = time.monotonic()
    proc = subprocess.Popen(args, cwd=course, env=venv_env({"SERVELAB_PORTS": "free"}), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        # The kernel and anything it started share the group: end all of it.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        # Half-written output is not a grade: remove it so that a re-run tries again.
        shutil.rmtree(course / "autograded" / student / lab, ignore_errors=True)
        return time.monotonic() - start, f"{TIMED_OUT} after the {limit_s:.0f} s limit"
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        errors = [ln for ln in out.splitlines() if "ERROR" in ln or "Error" in ln]
        tail = errors or out.strip().splitlines() or ["nbgrader autograde failed"]
        return seconds, tail[-1].strip()[:300]
    return seconds, ""


def _scores(course: Path, lab: str, graded: dict[str, Graded]) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        lab_max = gb.find_assignment(lab).max_score
        for student, result in graded.items():
            if result.error.startswith(TIMED_OUT):
                # Its kernel was killed: no cell finished, so no points.
                result.score, result.max_score = 0.0, lab_max
                continue
            try:
                sub = gb.find_submission(lab, student)
            except MissingEntry:
                continue
            if not (course / "autograded" / student / lab).is_dir():
                continue
            result.score, result.max_score = sub.score, sub.max_score
            result.failed = sorted(g.name for nb in sub.notebooks for g in nb.grades
                                   if g.max_score and (g.score or 0) < g.max_score)


def grade(course: Path, lab: str, *, force: bool = False, limit_s: float = DEFAULT_LIMIT_S,
          workers: int = 1, show: bool = True) -> list[Graded]:
    """Autograde every submission of `lab` in `course`; write feedback, grades.csv and
    summary-<lab>.csv; return one Graded per student."""
    course = Path(course).resolve()
    _check_course(course, lab)
    if not (course / "release" / lab).is_dir():
        nbgrader(["generate_assignment", lab], cwd=course)
    students = submissions(course, lab)
    done = set() if force else _graded_already(course, lab)
    results = {s: Graded(s) for s in students}
    todo = []
    for student in students:
        if student in done:
            results[student].skipped = True
            if show:
                print(f"{student}: graded before (use --force to regrade)")
        else:
            todo.append(student)

    def one(student: str) -> None:
        if show:
            print(f"{student}: grading...", flush=True)
        results[student].seconds, results[student].error = _autograde_one(course, lab, student, limit_s, force)
        if show:
            print(f"{student}: done in {results[student].seconds:.0f} s", flush=True)

    # Each worker's kernels start their own clusters: free ports keep them apart.
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(one, todo))
    _scores(course, lab, results)
    for result in results.values():
        if result.score is None and not result.error:
            result.error = "not graded (see nbgrader's log above)"
    feedback = nbgrader(["generate_feedback", lab, *(["--force"] if force else [])], cwd=course, check=False)
    if feedback.returncode != 0 and show:
        print("feedback: nbgrader generate_feedback reported errors:\n" + feedback.stdout[-1500:])
    nbgrader(["export", "--to", "grades.csv"], cwd=course, check=False)
    out = list(results.values())
    _write_summary(course / f"summary-{lab}.csv", out)
    if show:
        print(table(out))
        print(f"\nfeedback: {course / 'feedback'}   grades: {course / 'grades.csv'}   "
              f"summary: {course / f'summary-{lab}.csv'}")
    return out


def _write_summary(path: Path, results: list[Graded]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Graded("x").row()))
        writer.writeheader()
        for r in results:
            writer.writerow(r.row())


def table(results: list[Graded]) -> str:
    """A plain-text summary: one line per student."""
    lines = [f"{'student':16} {'score':>11} {'seconds':>8}  failed tests / error"]
    for r in results:
        score = "—" if r.score is None else f"{r.score:g}/{r.max_score:g}"
        note = r.error or " ".join(r.failed) or "all passed"
        lines.append(f"{r.student:16} {score:>11} {r.seconds:8.1f}  {note}"
                     + ("  (earlier run)" if r.skipped else ""))
    return "\n".join(lines)
