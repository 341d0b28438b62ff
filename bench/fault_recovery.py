"""Faults under load on the RAG RayService (local target): what clients lose, how long until it is back.

The cluster is manifests/rayservice-rag.yaml (CPU group, GPU group, Ray's
autoscaler). First a run without any fault, as the baseline; then each fault
verb once, in the same run, with the same load: 2 closed-loop clients on
/rag/, 5 s per-request timeout. For each: requests failed out of sent, the
longest time without a successful answer, seconds until the fault's recovery
rule held (servelab.faults._verbs), and throughput against the baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

from servelab.faults import (
    LocalFaults,  # noqa: E402
    load,
    recovery,  # noqa: E402
)
from servelab.targets import local  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "manifests" / "rayservice-rag.yaml"
QUESTION = {"question": "Why does my Serve replica stay PENDING?"}
CLIENTS = 2
BASELINE_S = 20
CASES = [  # (label, inject, extra options)
    ("kill-replica Retriever (2 replicas)", lambda f: f.kill_replica("rag", "Retriever"), {}),
    ("kill-replica Retriever, client retries once", lambda f: f.kill_replica("rag", "Retriever"), {"retries": 1}),
    ("hang-replica Retriever", lambda f: f.hang_replica("rag", "Retriever"), {}),
    ("fail-health Retriever", lambda f: f.fail_health("rag", "Retriever"), {}),
    ("kill-node gpu-workers (its busiest node)", lambda f: f.kill_node("gpu-workers"), {"max_s": 180}),
    ("bad-rollout (import_path typo), rolled back at DEPLOY_FAILED",
     lambda f: f.bad_rollout(REPO / "manifests" / "faults" / "rag-bad-import.yaml"), {}),
    ("kill-controller", lambda f: f.kill_controller(), {}),
    ("kill-proxy", lambda f: f.kill_proxy(), {}),
]


def run() -> dict:
    cluster = local.up(MANIFEST, show=False, timeout=300)
    try:
        local.wait_ready(cluster, timeout=300, show=False)
        url = f"{cluster.serve_url}/rag/"
        faults = LocalFaults(cluster)
        load.run(url, QUESTION, concurrency=CLIENTS, count=20, duration_s=30)  # warm every stage
        base = load.run(url, QUESTION, concurrency=CLIENTS, count=load.MAX_COUNT, duration_s=BASELINE_S)
        results = []
        for label, inject, options in CASES:
            result = recovery.measure(faults, inject, url, QUESTION, concurrency=CLIENTS, timeout_s=5,
                                      show=False, **{"max_s": 120, **options})
            print(f"  {label}: {result.as_dict()}", flush=True)
            results.append((label, result))
            local.wait_running(cluster, timeout=180, show=False)  # the next fault starts from a healthy service
    finally:
        cluster.stop(show=False)

    def row(label, r):
        d = r.as_dict()
        back = f"{d['seconds_to_recover']:.1f}" if r.recovered else f"not within {120:.0f} s"
        ratio = r.report.throughput / base.throughput if base.throughput else float("nan")
        return (f"| {label} | {d['failed']} / {d['sent']} | {d['longest_gap_s']:.1f} | {back} "
                f"| {ratio:.2f}x |")

    rows = "\n".join(row(label, r) for label, r in results)
    body = f"""
`bench/fault_recovery.py`: `manifests/rayservice-rag.yaml` on the local target (head, a CPU
worker, GPU workers from Ray's autoscaler), {CLIENTS} closed-loop clients on `/rag/`, 5 s
per-request timeout, each fault injected 3 s into its run (`servelab.faults.recovery.measure`).
Baseline without a fault, same run: {base.throughput:.1f} answers/s, {base.failed} failed of
{base.sent}, longest gap {base.longest_gap_s():.2f} s.

| fault | failed / sent | longest gap without a success (s) | seconds to recover | throughput vs baseline |
|---|---|---|---|---|
{rows}

"Recovered" is each fault's own rule: the faulty replicas gone and the deployment back to
its target of RUNNING, HEALTHY replicas; the actor back with a new pid; for the bad rollout,
every application RUNNING again, counted from the rollback. The Retriever probes health every
2 s with a 5 s deadline and Serve acts after 3 failures in a row, so a hung replica is out
after about 15 s plus its 5 s graceful-shutdown allowance.
"""
    write_section("fault_recovery", "Faults under load: failed requests, gaps, recovery", body)
    return {label: {"failed": r.report.failed, "sent": r.report.sent,
                    "gap_s": round(r.report.longest_gap_s(), 1),
                    "recover_s": None if not r.recovered else round(r.seconds_to_recover, 1)}
            for label, r in results}


if __name__ == "__main__":
    print(run())
