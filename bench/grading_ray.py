"""Grading lab 2 as Ray tasks (`servelab grade --ray`) against grading it here, in one run.

The same batch of solution submissions, each a fresh scratch course, full marks required:
1. serially with 1 worker (the baseline: one submission at a time on this machine);
2. as Ray tasks on a local grading cluster with 1 worker node of 1 CPU (so also one at a
   time: the ratio to 1 is what going through Ray costs per submission: packing the course,
   a scratch course on the node, recording on the driver);
3. the same cluster with 2 worker nodes (two at a time, as the serial grader's 2 workers).

The grading cluster runs on the same two cores as the submissions' own clusters, so 3 shows
the mechanics of spreading work, not more hardware: on a real cluster each node brings its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grading_throughput import LAB, SUBMISSIONS, solution_course  # noqa: E402
from report import write_section  # noqa: E402

from servelab.cluster._localray import LocalRay  # noqa: E402
from servelab.grading import _autograde as autograde  # noqa: E402


def _full_marks(course: Path) -> None:
    import csv

    rows = list(csv.DictReader(open(course / f"summary-{LAB}.csv")))
    assert len(rows) == SUBMISSIONS and all(r["score"] and r["score"] == r["max_score"] for r in rows), rows


def serial(workers: int = 1) -> float:
    course = solution_course()
    try:
        start = time.perf_counter()
        autograde.grade(course, LAB, workers=workers, show=False)
        elapsed = time.perf_counter() - start
        _full_marks(course)
        return elapsed
    finally:
        shutil.rmtree(course, ignore_errors=True)


def on_ray(cluster: LocalRay) -> float:
    course = solution_course()
    try:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "servelab.cli", "grade", LAB, "--course", str(course),
                               "--ray", cluster.gcs_address], env={**os.environ, **cluster.cli_env()},
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _full_marks(course)
        return elapsed
    finally:
        shutil.rmtree(course, ignore_errors=True)


def run() -> dict:
    base = serial()
    print(f"  here, 1 worker: {base:.0f} s for {SUBMISSIONS}", flush=True)
    pair = serial(workers=2)
    print(f"  here, 2 workers: {pair:.0f} s for {SUBMISSIONS}", flush=True)
    with LocalRay("bench-grading", num_cpus=0, prometheus=False) as cluster:
        cluster.add_worker(num_cpus=1, memory=7 * 1024**3, show=False)
        one = on_ray(cluster)
        print(f"  Ray, 1 grading node: {one:.0f} s", flush=True)
        cluster.add_worker(num_cpus=1, memory=7 * 1024**3, show=False)
        two = on_ray(cluster)
        print(f"  Ray, 2 grading nodes: {two:.0f} s", flush=True)
    per = {"serial": base / SUBMISSIONS, "pair": pair / SUBMISSIONS, "one": one / SUBMISSIONS,
           "two": two / SUBMISSIONS}
    body = f"""
{SUBMISSIONS} solution submissions of lab 2, sandboxed and cross-checked, full marks required, each
batch in a fresh course. "Ray" is `servelab grade --ray` on a local grading cluster (a head
with no CPUs for tasks, worker nodes of 1 CPU and 7 GiB), every submission one task of
1 CPU and 6 GiB that grades it on its node and sends the graded notebook back to be
recorded. The grading nodes share this machine's two cores with the submissions' own
clusters: the 2-node row shows work spread over nodes, not more hardware.

| run | seconds per submission | submissions per hour |
|---|---|---|
| here, 1 worker (baseline) | {per["serial"]:.0f} | {3600 / per["serial"]:.0f} |
| here, 2 workers | {per["pair"]:.0f} | {3600 / per["pair"]:.0f} |
| Ray, 1 grading node | {per["one"]:.0f} | {3600 / per["one"]:.0f} |
| Ray, 2 grading nodes | {per["two"]:.0f} | {3600 / per["two"]:.0f} |
| **ratio** Ray 1 node / here 1 worker (what Ray adds per submission) | **{one / base:.2f}×** | |
| **ratio** Ray 1 node / Ray 2 nodes | **{one / two:.2f}×** | |
| **ratio** Ray 2 nodes / here 2 workers | **{two / pair:.2f}×** | |
"""
    write_section("grading-ray", "Grading lab 2 on Ray: 1 and 2 grading nodes against here", body)
    return {"serial_s": base, "serial2_s": pair, "ray1_s": one, "ray2_s": two}


if __name__ == "__main__":
    print(run())
