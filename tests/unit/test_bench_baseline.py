"""The in-process baseline every cost-of-distribution ratio divides by must be the same stages at
their best in one process: BLAS on one thread, as Ray runs it in each replica."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import rag_throughput  # noqa: E402


@pytest.mark.parametrize("threads", [None, "2"])
def test_the_in_process_baseline_refuses_more_than_one_blas_thread(monkeypatch, threads):
    # Measured 2026-12-07 on this machine: 148 req/s at 8 clients unset, 290 with OMP_NUM_THREADS=1.
    if threads is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
    with pytest.raises(SystemExit, match="OMP_NUM_THREADS=1.*bench/run.py"):
        rag_throughput.in_process(None, 1)


def test_the_in_process_baseline_runs_with_one_blas_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(rag_throughput, "REQUESTS", 4)
    asked = []

    class Pipeline:
        def ask(self, question, top_k):
            asked.append((question, top_k))

    figures = rag_throughput.in_process(Pipeline(), 2)
    assert len(asked) == 4 and all(k == 3 for _, k in asked)
    assert set(figures) == {"rps", "p50", "p99"} and figures["rps"] > 0
