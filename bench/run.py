"""Run every benchmark; each one prints its figures and rewrites its section of BENCHMARKS.md."""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Benchmarks must not take 8000/8265 from a learner's running lab.
os.environ.setdefault("SERVELAB_PORTS", "free")
# One BLAS thread per process, as Ray gives its workers: in-process baselines
# would otherwise oversubscribe the 2 cores and look worse than they are.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SERVELAB_TMPDIR", tempfile.mkdtemp(prefix="b", dir="/tmp"))

import autograde  # noqa: E402
import fault_recovery  # noqa: E402
import gpu_rayservice  # noqa: E402
import grading_breakdown  # noqa: E402
import grading_ray  # noqa: E402
import grading_throughput  # noqa: E402
import lab1_startup  # noqa: E402
import lab_launch  # noqa: E402
import nbgrader_start  # noqa: E402
import prometheus_cost  # noqa: E402
import rag_hops  # noqa: E402
import rag_throughput  # noqa: E402
import rayservice_upgrade  # noqa: E402
import retrieval  # noqa: E402
import serve_mode  # noqa: E402
import stack_memory  # noqa: E402
import stage_cuts  # noqa: E402

BENCHES = (("lab1 startup", lab1_startup), ("lab1 autograde", autograde), ("grading throughput", grading_throughput),
           ("grading on Ray", grading_ray), ("grading breakdown", grading_breakdown),
           ("nbgrader start", nbgrader_start),
           ("GPU RayService", gpu_rayservice),
           ("RAG retrieval", retrieval), ("RAG throughput", rag_throughput), ("RAG hops", rag_hops), ("Serve's throughput mode", serve_mode),
           ("three candidate cuts", stage_cuts), ("fault recovery", fault_recovery),
           ("RayService upgrade under load", rayservice_upgrade),
           ("make lab to usable JupyterLab", lab_launch), ("stack memory on lab 4", stack_memory),
           ("Prometheus beside a cluster", prometheus_cost))
only = sys.argv[1:]  # e.g. `python bench/run.py gpu_rayservice`
for name, bench in BENCHES:
    if only and bench.__name__ not in only:
        continue
    print(f"{name}:", flush=True)
    start = time.perf_counter()
    print(f"  {bench.run()}  ({time.perf_counter() - start:.0f}s)", flush=True)
print("wrote BENCHMARKS.md")
