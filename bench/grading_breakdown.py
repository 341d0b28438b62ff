"""Where one lab-2 grading's time goes, through `servelab grade` as instructors run it (sandboxed,
cross-checked): nbgrader and the grader around the kernel, the kernel's start, each cell (the
setup cell starts the learner's private Ray cluster, the deploy cell runs the RAG pipeline),
the graded tests in the kernel, their cross-checks from outside, the kernel's shutdown, and the
batch's own work after grading (feedback, grades.csv, the class report). The cells' timings come
from the grader's executor (SERVELAB_GRADE_TIMINGS, servelab/grading/_crosscheck.py)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

from servelab.grading import _autograde as autograde  # noqa: E402
from servelab.grading import _course as grading  # noqa: E402
from servelab.grading._crosscheck import TIMINGS_ENV  # noqa: E402
from servelab.grading._labs import nbgrader, scratch_course  # noqa: E402

LAB = "lab2-rag-pipeline"


def one_grading(prometheus: bool = False) -> tuple[float, float, list[dict]]:
    """(seconds of the whole `grade` call, seconds of the student's nbgrader run, timing rows);
    `prometheus`: as before the grader turned it off for labs that never query it."""
    labs = autograde.PROMETHEUS_LABS
    if prometheus:
        autograde.PROMETHEUS_LABS = labs | {LAB}
    course = scratch_course()
    timings = Path(tempfile.mkdtemp(prefix="slt")) / "timings.jsonl"
    os.environ[TIMINGS_ENV] = str(timings)
    try:
        nbgrader(["generate_assignment", LAB], cwd=course)
        release = course / "release" / LAB / f"{LAB}.ipynb"
        folder = course / "submitted" / "s0" / LAB
        folder.mkdir(parents=True)
        nbformat.write(grading.fill(release, grading.solution_answers(LAB)), folder / f"{LAB}.ipynb")
        start = time.perf_counter()
        [result] = autograde.grade(course, LAB, workers=1, show=False)
        whole = time.perf_counter() - start
        assert result.score == result.max_score, autograde.table([result])
        return whole, result.seconds, [json.loads(line) for line in timings.read_text().splitlines()]
    finally:
        autograde.PROMETHEUS_LABS = labs
        os.environ.pop(TIMINGS_ENV, None)
        shutil.rmtree(course, ignore_errors=True)
        shutil.rmtree(timings.parent, ignore_errors=True)


def phases(whole: float, nbgrader_s: float, rows: list[dict]) -> list[tuple[str, float]]:
    cells = [r for r in rows if r["what"] == "cell"]
    cross = sum(r["seconds"] for r in rows if r["what"] == "cross-check")
    by_id = {r["grade_id"]: r["seconds"] for r in cells}
    kernel = sum(r["seconds"] for r in rows) - cross   # cross-checks ran inside their cells' laps
    other = [r for r in cells if not r["graded"] and r["grade_id"] not in ("setup", "deploy", "teardown")]
    out = [
        ("nbgrader and the grader around the kernel (start-up, writing, sandbox, leftovers)", nbgrader_s - kernel - cross),
        ("kernel start (sandboxed)", sum(r["seconds"] for r in rows if r["what"] == "kernel start")),
        ("setup cell: the learner's private Ray cluster starts", by_id.get("setup", 0.0)),
        ("learner's answer cells and the deploy cell (serve.run of the pipeline)",
         by_id.get("deploy", 0.0) + sum(r["seconds"] for r in other)),
        ("graded test cells, in the kernel", sum(r["seconds"] for r in cells if r["graded"]) - cross),
        ("cross-checks from outside the kernel", cross),
        ("teardown cell: the learner's cluster stops", by_id.get("teardown", 0.0)),
        ("kernel shutdown", sum(r["seconds"] for r in rows if r["what"] == "kernel shutdown")),
        ("after grading: feedback, grades.csv, summary, report", whole - nbgrader_s),
    ]
    return out


def run() -> dict:
    before = one_grading(prometheus=True)
    after = one_grading()
    rows = list(zip(phases(*before), phases(*after)))
    for (name, b), (_, a) in rows:
        print(f"  {b:6.1f} s  {a:6.1f} s  {name}", flush=True)
    table = "\n".join(f"| {name} | {b:.1f} | {a:.1f} | {a / before[0]:.0%} |" for (name, b), (_, a) in rows)
    body = f"""
One solution submission of lab 2 through `servelab grade` (1 worker, sandboxed, cross-checked),
graded twice in this run: with a Prometheus beside the learner's cluster (as before: the profile's
default) and without one (now, for every lab whose checks never query it). The rows add up to
the whole; the share is of the first run's whole.

| part | seconds, with Prometheus | seconds, without | share |
|---|---|---|---|
{table}
| **whole** | **{before[0]:.1f}** | **{after[0]:.1f}** | ratio **{before[0] / after[0]:.2f}×** |
"""
    write_section("grading-breakdown", "Where a lab-2 grading's time goes", body)
    return {"with_prometheus_s": round(before[0], 1), "without_s": round(after[0], 1)}


if __name__ == "__main__":
    print(run())
