"""Seconds per submission and submissions per hour for lab 2 through `servelab grade`,
with 1 worker and with N (its default here), kernels sandboxed and test cells
cross-checked as instructors grade; plus 1 worker without the sandbox, to show what
isolation costs. The same batch of solution submissions each time, in a fresh scratch
course. The sandboxed 1-worker run is the baseline of the ratios."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

from servelab.grading import _autograde as autograde
from servelab.grading import _course as grading  # noqa: E402
from servelab.grading._labs import nbgrader, scratch_course  # noqa: E402

LAB = "lab2-rag-pipeline"
SUBMISSIONS = 4


def solution_course(submissions: int = SUBMISSIONS) -> Path:
    """A scratch course with the lab's solution submitted by students s0, s1, ..."""
    course = scratch_course()
    nbgrader(["generate_assignment", LAB], cwd=course)
    student_nb = course / "release" / LAB / f"{LAB}.ipynb"
    for i in range(submissions):
        folder = course / "submitted" / f"s{i}" / LAB
        folder.mkdir(parents=True)
        nbformat.write(grading.fill(student_nb, grading.solution_answers(LAB)), folder / f"{LAB}.ipynb")
    return course


def batch(workers: int, use_sandbox: bool = True) -> float:
    course = solution_course()
    try:
        start = time.perf_counter()
        results = autograde.grade(course, LAB, workers=workers, use_sandbox=use_sandbox, show=False)
        elapsed = time.perf_counter() - start
        assert all(r.score == r.max_score for r in results), autograde.table(results)
        return elapsed
    finally:
        shutil.rmtree(course, ignore_errors=True)


def run() -> dict:
    n = max(2, autograde.default_workers(LAB))
    serial = batch(1)
    print(f"  1 worker, sandboxed: {serial:.0f} s for {SUBMISSIONS}", flush=True)
    parallel = batch(n)
    print(f"  {n} workers, sandboxed: {parallel:.0f} s for {SUBMISSIONS}", flush=True)
    bare = batch(1, use_sandbox=False)
    print(f"  1 worker, no sandbox: {bare:.0f} s for {SUBMISSIONS}", flush=True)
    per = {"serial": serial / SUBMISSIONS, "parallel": parallel / SUBMISSIONS, "bare": bare / SUBMISSIONS}
    body = f"""
{SUBMISSIONS} solution submissions of lab 2 (every test against a live RAG pipeline), graded by
`servelab grade` with full marks required. Sandboxed means bubblewrap around each kernel
and every passing test cell run again from outside it (the default).

| run | seconds per submission | submissions per hour |
|---|---|---|
| 1 worker, sandboxed (baseline) | {per["serial"]:.0f} | {3600 / per["serial"]:.0f} |
| {n} workers (the default here), sandboxed | {per["parallel"]:.0f} | {3600 / per["parallel"]:.0f} |
| 1 worker, `--no-sandbox` | {per["bare"]:.0f} | {3600 / per["bare"]:.0f} |
| **ratio** 1 worker / {n} workers | **{serial / parallel:.2f}×** | |
| **ratio** sandboxed / not sandboxed, 1 worker | **{serial / bare:.2f}×** | |
"""
    write_section("grading-throughput", f"Grading throughput: lab 2, 1 and {n} workers", body)
    return {"serial_s": serial, "parallel_s": parallel, "unsandboxed_s": bare, "workers": n,
            "speedup": serial / parallel, "sandbox_cost": serial / bare}


if __name__ == "__main__":
    print(run())
