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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grading_throughput import LAB, solution_course  # noqa: E402
from report import write_section  # noqa: E402

from servelab.grading import _autograde as autograde  # noqa: E402
from servelab.grading._crosscheck import TIMINGS_ENV  # noqa: E402


def one_grading(prometheus: bool = False, metrics_ms: int | None = None) -> tuple[float, float, list[dict]]:
    """(seconds of the whole `grade` call, seconds of the student's nbgrader run, timing rows);
    `prometheus`: as before the grader turned it off for labs that never query it; `metrics_ms`:
    Ray's metrics export interval on the graded cluster (None: the grader's)."""
    labs, interval = autograde.PROMETHEUS_LABS, autograde.METRICS_INTERVAL_MS
    if prometheus:
        autograde.PROMETHEUS_LABS = labs | {LAB}
    if metrics_ms:
        autograde.METRICS_INTERVAL_MS = metrics_ms
    course = solution_course(1)
    timings = Path(tempfile.mkdtemp(prefix="slt")) / "timings.jsonl"
    os.environ[TIMINGS_ENV] = str(timings)
    try:
        start = time.perf_counter()
        [result] = autograde.grade(course, LAB, workers=1, show=False)
        whole = time.perf_counter() - start
        assert result.score == result.max_score, autograde.table([result])
        return whole, result.seconds, [json.loads(line) for line in timings.read_text().splitlines()]
    finally:
        autograde.PROMETHEUS_LABS, autograde.METRICS_INTERVAL_MS = labs, interval
        os.environ.pop(TIMINGS_ENV, None)
        shutil.rmtree(course, ignore_errors=True)
        shutil.rmtree(timings.parent, ignore_errors=True)


def phases(whole: float, nbgrader_s: float, rows: list[dict]) -> list[tuple[str, float]]:
    cells = [r for r in rows if r["what"] == "cell"]
    cross = sum(r["seconds"] for r in rows if r["what"] == "cross-check")
    by_id = {r["grade_id"]: r["seconds"] for r in cells}
    # Cross-checks ran inside their cells' laps: the laps alone cover the kernel's whole run.
    kernel = sum(r["seconds"] for r in rows if r["what"] != "cross-check")
    other = [r for r in cells if not r["graded"] and r["grade_id"] not in ("setup", "deploy", "teardown")]
    out = [
        ("nbgrader and the grader around the kernel (start-up, writing, sandbox, leftovers)", nbgrader_s - kernel),
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
    before = one_grading(prometheus=True, metrics_ms=10_000)
    after = one_grading(metrics_ms=10_000)
    small = one_grading()
    rows = list(zip(phases(*before), phases(*after), phases(*small)))
    for (name, b), (_, a), (_, c) in rows:
        print(f"  {b:6.1f} s  {a:6.1f} s  {c:6.1f} s  {name}", flush=True)
    table = "\n".join(f"| {name} | {b:.1f} | {a:.1f} | {c:.1f} | {b / before[0]:.0%} |"
                      for (name, b), (_, a), (_, c) in rows)
    body = f"""
One solution submission of lab 2 through `servelab grade` (1 worker, sandboxed, cross-checked),
graded three times in this run: as the grader ran it before (a Prometheus beside the learner's
cluster, Ray's metrics exported every 10 s), without the Prometheus (now the case for every lab
whose checks never query it), and also with Ray's metrics exported every second on the graded
cluster (now the grader's setting: lab 2's composition check waits for Serve's request counters
twice, in the kernel and in the cross-check). The rows add up to the whole; the share is of the
first run's whole. The same submission graded on the `small` profile (stand-in agents, fewer
dashboard modules) measured no faster here (46.8 s against 46.7, 2026-12-06), so the grader
keeps the profile a learner would have.

| part | before: Prometheus, metrics every 10 s | no Prometheus | no Prometheus, metrics every 1 s (now) | share (first) |
|---|---|---|---|---|
{table}
| **whole** | **{before[0]:.1f}** | **{after[0]:.1f}** | **{small[0]:.1f}** | |
| **ratio** to the first | 1 | {before[0] / after[0]:.2f}× | {before[0] / small[0]:.2f}× | |
"""
    write_section("grading-breakdown", "Where a lab-2 grading's time goes", body)
    return {"with_prometheus_s": round(before[0], 1), "without_s": round(after[0], 1), "now_s": round(small[0], 1)}


if __name__ == "__main__":
    print(run())
