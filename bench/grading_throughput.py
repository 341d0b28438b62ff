"""Seconds per submission and submissions per hour for lab 2 through `servelab grade`,
with 1 worker and with 2 (the same batch of solution submissions, each run in a fresh
scratch course). The 1-worker run is the baseline of the ratio."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402
from servelab import autograde, grading  # noqa: E402
from servelab.labs import nbgrader, scratch_course  # noqa: E402

LAB = "lab2-rag-pipeline"
SUBMISSIONS = 4


def batch(workers: int) -> float:
    course = scratch_course()
    try:
        nbgrader(["generate_assignment", LAB], cwd=course)
        student_nb = course / "release" / LAB / f"{LAB}.ipynb"
        for i in range(SUBMISSIONS):
            folder = course / "submitted" / f"s{i}" / LAB
            folder.mkdir(parents=True)
            nbformat.write(grading.fill(student_nb, grading.solution_answers(LAB)), folder / f"{LAB}.ipynb")
        start = time.perf_counter()
        results = autograde.grade(course, LAB, workers=workers, show=False)
        elapsed = time.perf_counter() - start
        assert all(r.score == r.max_score for r in results), autograde.table(results)
        return elapsed
    finally:
        shutil.rmtree(course, ignore_errors=True)


def run() -> dict:
    serial = batch(1)
    print(f"  1 worker: {serial:.0f} s for {SUBMISSIONS}", flush=True)
    parallel = batch(2)
    print(f"  2 workers: {parallel:.0f} s for {SUBMISSIONS}", flush=True)
    per = {1: serial / SUBMISSIONS, 2: parallel / SUBMISSIONS}
    body = f"""
{SUBMISSIONS} solution submissions of lab 2 (every test against a live RAG pipeline), graded by
`servelab grade` with full marks required.

| workers | seconds per submission | submissions per hour |
|---|---|---|
| 1 (baseline) | {per[1]:.0f} | {3600 / per[1]:.0f} |
| 2 | {per[2]:.0f} | {3600 / per[2]:.0f} |
| **ratio** 1 worker / 2 workers | **{serial / parallel:.2f}×** | |
"""
    write_section("grading-throughput", "Grading throughput: lab 2, 1 and 2 workers", body)
    return {"serial_s": serial, "parallel_s": parallel, "speedup": serial / parallel}


if __name__ == "__main__":
    print(run())
