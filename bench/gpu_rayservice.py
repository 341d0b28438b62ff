"""The course's GPU RayService on the local target: `up` to Ready, to first HTTP 200, and its memory.

Each run is a fresh interpreter running `local.up(manifests/rayservice-support-assistant.yaml)`.
It then polls the RayService-shaped status until Ready and POSTs /support until the first 200,
sampling the proportional set size (PSS) of every process of the cluster each second.
The Ready figure includes the autoscaler adding a GPU node (the manifest starts with one, and
the Reranker's quarter GPU needs a second device).

Baseline, same run: a bare private Ray head with Serve's proxy (`LocalRay().start()`), the
fixed cost under every manifest. PSS baseline: that bare head's PSS.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import run_child, summary, write_section  # noqa: E402

RUNS = 3
MANIFEST = Path(__file__).resolve().parent.parent / "manifests" / "rayservice-support-assistant.yaml"

PSS = r"""
import psutil
def pss(cluster):
    total = 0
    for p in cluster.processes():
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total
"""

ONE_RUN = PSS + r"""
import json, sys, time
import requests
from servelab.targets import local
from servelab.targets._vocabulary import is_ready
t0 = time.perf_counter()
cluster = local.up(sys.argv[1], show=False, timeout=600)
t_up = time.perf_counter() - t0
peak, t_ready, t_200, last = 0, None, None, 0.0
try:
    while t_200 is None:
        if time.perf_counter() - last >= 1:
            peak, last = max(peak, pss(cluster)), time.perf_counter()
        if t_ready is None and is_ready(local.status(cluster)):
            t_ready = time.perf_counter() - t0
        if t_ready is not None:
            try:
                r = requests.post(cluster.serve_url + "/support", json={"ticket": "pod pending"}, timeout=10)
                if r.status_code == 200:
                    t_200 = time.perf_counter() - t0
            except requests.RequestException:
                pass
        assert time.perf_counter() - t0 < 900, "not Ready within 900 s"
        time.sleep(0.2)
    for _ in range(5):  # settled: replicas loaded, autoscaler idle
        peak = max(peak, pss(cluster))
        time.sleep(1)
    nodes = len(cluster.node_ids())
finally:
    cluster.stop(show=False)
print(json.dumps({"up": t_up, "ready": t_ready, "first_200": t_200, "pss": peak, "nodes": nodes}))
"""

BASELINE = PSS + r"""
import json, time
import servelab
t0 = time.perf_counter()
cluster = servelab.LocalRay("bench-base").start(show=False)
t = time.perf_counter() - t0
time.sleep(3)
mem = pss(cluster)
cluster.stop(show=False)
print(json.dumps({"start": t, "pss": mem}))
"""


def run() -> dict:
    runs, bases = [], []
    for i in range(RUNS):
        bases.append(run_child(BASELINE))
        runs.append(run_child(ONE_RUN, str(MANIFEST)))
        r = runs[-1]
        print(f"  run {i + 1}/{RUNS}: up {r['up']:.1f}s, Ready {r['ready']:.1f}s, first 200 {r['first_200']:.1f}s, "
              f"peak PSS {r['pss'] / 2**30:.2f} GiB on {r['nodes']} nodes "
              f"(baseline head {bases[-1]['start']:.1f}s, {bases[-1]['pss'] / 2**30:.2f} GiB)", flush=True)
    ready = [r["ready"] for r in runs]
    first = [r["first_200"] for r in runs]
    up = [r["up"] for r in runs]
    base_t = [b["start"] for b in bases]
    pss_gib = [r["pss"] / 2**30 for r in runs]
    base_pss = [b["pss"] / 2**30 for b in bases]
    t_ratio = statistics.median(ready) / statistics.median(base_t)
    m_ratio = statistics.median(pss_gib) / statistics.median(base_pss)
    body = f"""
`servelab up manifests/rayservice-support-assistant.yaml` on the local target: head, one CPU
and one GPU worker to start, and Ray's autoscaler adding GPU nodes ({runs[-1]['nodes']} Ray nodes at the end).

| figure | value |
|---|---|
| `up` returns (cluster, initial nodes, applications submitted) | {summary(up)} |
| `up` → RayService `Ready` | {summary(ready)} |
| `up` → first HTTP 200 from POST /support | {summary(first)} |
| baseline: bare private head + Serve proxy | {summary(base_t)} |
| **ratio** Ready / baseline | **{t_ratio:.1f}×** |
| peak PSS of every process of the cluster | median {statistics.median(pss_gib):.2f} GiB (min {min(pss_gib):.2f}, max {max(pss_gib):.2f}) |
| baseline: PSS of the bare head | median {statistics.median(base_pss):.2f} GiB |
| **ratio** peak PSS / baseline | **{m_ratio:.1f}×** |
"""
    write_section("gpu-rayservice", "GPU RayService on the local target: up to Ready, first 200, memory", body)
    return {"ready_median_s": statistics.median(ready), "first_200_median_s": statistics.median(first),
            "pss_median_gib": statistics.median(pss_gib), "ratio_time": t_ratio, "ratio_pss": m_ratio}


if __name__ == "__main__":
    print(run())
