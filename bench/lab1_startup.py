"""Seconds from "start a local Ray" to the first HTTP 200 of lab 1's app (median of 5).

Each run is a fresh interpreter, as a learner's kernel is: start the private
cluster, deploy the lab's own solution code, poll until POST /normalize
answers 200. Baseline, measured in the same run: a fresh interpreter that
only imports ray and Serve (the fixed cost under everything else).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from report import summary, write_section  # noqa: E402

RUNS = 5

ONE_RUN = r"""
import json, time
t0 = time.perf_counter()
import requests, servelab
from ray import serve
from servelab.grading import _course as grading
cluster = servelab.LocalRay("bench").start(show=False)
t_cluster = time.perf_counter() - t0
cluster.connect()
namespace = {"serve": serve}
for grade_id in ("normalizer", "deploy"):
    exec(grading.solution_answers("lab1-serve-basics")[grade_id], namespace)
while True:
    try:
        if requests.post(cluster.serve_url + "/normalize", json={"text": "Hi"}, timeout=5).status_code == 200:
            break
    except requests.RequestException:
        pass
    time.sleep(0.05)
t_200 = time.perf_counter() - t0
cluster.stop(show=False)
print(json.dumps({"cluster": t_cluster, "first_200": t_200}))
"""

BASELINE = "import time; t0 = time.perf_counter(); import ray; from ray import serve; print(time.perf_counter() - t0)"


def run() -> dict:
    runs, baselines = [], []
    for i in range(RUNS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True)
        baselines.append(time.perf_counter() - t)
        out = subprocess.run([sys.executable, "-c", ONE_RUN], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  run {i + 1}/{RUNS}: cluster {runs[-1]['cluster']:.1f}s, first 200 {runs[-1]['first_200']:.1f}s "
              f"(baseline {baselines[-1]:.1f}s)", flush=True)
    first = [r["first_200"] for r in runs]
    cluster = [r["cluster"] for r in runs]
    ratio = statistics.median(first) / statistics.median(baselines)
    body = f"""
| figure | value |
|---|---|
| start local Ray → first HTTP 200 of lab 1's app | {summary(first)} |
| of which: cluster up (head, dashboard, Serve proxy) | {summary(cluster)} |
| baseline: fresh interpreter importing ray + Serve | {summary(baselines)} |
| **ratio** first 200 / baseline | **{ratio:.1f}×** |
"""
    write_section("lab1-startup", "Lab 1: local Ray start to first HTTP 200", body)
    return {"first_200_median_s": statistics.median(first), "ratio": ratio}


if __name__ == "__main__":
    print(run())
