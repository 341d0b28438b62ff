"""Seconds to autograde one lab 1 submission with the real nbgrader CLI.

The submission is the instructor's solution (every test runs against the live
endpoint). Baseline, measured in the same run: autograding a one-cell
assignment that starts no cluster — what nbgrader and a kernel cost alone.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import summary, write_section  # noqa: E402

from servelab.course import layout
from servelab.grading import _course as grading  # noqa: E402

RUNS = 3
LAB = "lab1-serve-basics"


def baseline_course(tmp: Path) -> Path:
    """A grading/ tree with one trivial assignment, same config as the course."""
    src = tmp / "source" / "baseline"
    src.mkdir(parents=True)
    (tmp / "nbgrader_config.py").write_text((layout().grading / "nbgrader_config.py").read_text())
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    cell = nbformat.v4.new_code_cell("assert 1 + 1 == 2")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "locked": True, "points": 1,
                                 "schema_version": 3, "solution": False, "task": False}
    nb.cells = [cell]
    nbformat.write(nb, src / "baseline.ipynb")
    return tmp


def time_autograde(lab: str, grading_root: Path, answers: dict[str, str]) -> float:
    with grading.Course(lab, grading_root) as course:
        course.submit("student", grading.fill(course.student_version, answers))
        start = time.perf_counter()
        course.autograde()
        elapsed = time.perf_counter() - start
        result = course.results()["student"]
        assert result.total == result.max_total, result  # a timing of a broken run means nothing
        return elapsed


def run() -> dict:
    import tempfile

    base_root = baseline_course(Path(tempfile.mkdtemp(prefix="servelab-bench-")))
    labs, bases = [], []
    for i in range(RUNS):
        bases.append(time_autograde("baseline", base_root, {}))
        labs.append(time_autograde(LAB, layout().grading, grading.solution_answers(LAB)))
        print(f"  run {i + 1}/{RUNS}: lab 1 {labs[-1]:.1f}s, baseline {bases[-1]:.1f}s", flush=True)
    ratio = statistics.median(labs) / statistics.median(bases)
    body = f"""
| figure | value |
|---|---|
| `nbgrader autograde` of one lab 1 submission (solution, live endpoint) | {summary(labs)} |
| baseline: autograde of a one-cell assignment, no cluster | {summary(bases)} |
| **ratio** lab 1 / baseline | **{ratio:.1f}×** |
"""
    write_section("lab1-autograde", "Lab 1: autograding one submission", body)
    return {"autograde_median_s": statistics.median(labs), "ratio": ratio}


if __name__ == "__main__":
    print(run())
