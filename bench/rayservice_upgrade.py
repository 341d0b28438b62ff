"""A NewCluster upgrade of the RAG RayService under bounded load, on the local target.

Each run is a fresh interpreter: `local.up(manifests/rayservice-rag.yaml)` to Ready, then bounded
load (4 closed-loop clients, POST /rag/) while `local.up` of the same manifest with a new worker
image (a pod-template change: KubeRay's NewCluster upgrade) prepares the pending cluster and
switches the serve Service; the load goes on until the old cluster is deleted. PSS of every
process of both clusters and of the serve Service is sampled twice a second throughout.

The same run then does the change the other way, `upgrade="replace"` (stop, then start), under
the same load: what the pending cluster saves. Baselines, same run: the first `up` to Ready
(one cluster from nothing) and the peak PSS of the one running cluster before the upgrade.
rayClusterDeletionDelaySeconds is 10 here (KubeRay's default is 60) to keep the run short.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import run_child, summary, write_section  # noqa: E402

RUNS = 2
MANIFEST = Path(__file__).resolve().parent.parent / "manifests" / "rayservice-rag.yaml"

ONE_RUN = r"""
import json, sys, threading, time
import psutil, yaml
from servelab.cluster import _processes as processes
from servelab.cluster._localray import default_root
from servelab.faults import load
from servelab.targets import local

doc = yaml.safe_load(open(sys.argv[1]))
doc["metadata"]["name"] = "bench-upgrade"
doc["spec"]["rayClusterDeletionDelaySeconds"] = 10
def write(image, name):
    for group in doc["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        group["template"]["spec"]["containers"][0]["image"] = image
    path = f"/tmp/{name}-{time.time_ns()}.yaml"
    open(path, "w").write(yaml.safe_dump(doc))
    return path

def pss():
    total = 0
    for p in processes.processes_under(str(default_root())):
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total

def under_load(change, url):
    stop, out, peak = threading.Event(), {}, [0]
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], pss()); time.sleep(0.5)
    loader = threading.Thread(target=lambda: out.update(r=load.run(url, {"question": "pods pending"}, concurrency=4,
                              count=50000, duration_s=400, timeout_s=15, stop=stop)))
    sampler = threading.Thread(target=sample)
    loader.start(); sampler.start(); time.sleep(3)
    t0 = time.perf_counter()
    try:
        result = change()
    finally:
        t = time.perf_counter() - t0
    time.sleep(3)
    stop.set(); loader.join(); sampler.join()
    return result, t, out["r"], peak[0]

t0 = time.perf_counter()
cluster = local.up(write("servelab-rag:2.60.0", "v1"), show=False, timeout=600)
local.wait_running(cluster, timeout=600, show=False)
t_first = time.perf_counter() - t0
one = max(pss() for _ in range(5) if not time.sleep(0.5))
url = cluster.serve_url + "/rag/"
try:
    def upgrade():
        called = time.perf_counter()
        new = local.up(write("servelab-rag:2.60.0-b", "v2"), show=False, timeout=600)
        switched = time.perf_counter() - called  # local.up returns once the serve Service moved
        old = [c for c in local.LocalRay.find() if c.name == "bench-upgrade" and c.dir != new.dir]
        while any(c.processes() for c in old):  # the deletion delay, with the load still on
            time.sleep(0.5)
        return new, switched
    (new, switched), t_switch, sent, peak_two = under_load(upgrade, url)
    _, t_replace, sent_replace, _ = under_load(
        lambda: local.up(write("servelab-rag:2.60.0-c", "v3"), show=False, timeout=600, upgrade="replace"), url)
finally:
    local.down("bench-upgrade")
print(json.dumps({"first": t_first, "switch": switched, "t_switch": t_switch,
                  "gap": sent.longest_gap_s(), "gap_replace": sent_replace.longest_gap_s(), "failed": sent.failed, "ok": sent.ok, "one": one, "two": peak_two,
                  "t_replace": t_replace, "failed_replace": sent_replace.failed, "ok_replace": sent_replace.ok}))
"""


def run() -> dict:
    runs = []
    for i in range(RUNS):
        r = run_child(ONE_RUN, str(MANIFEST), timeout=2400)
        runs.append(r)
        print(f"  run {i + 1}/{RUNS}: first up to RUNNING {r['first']:.1f}s; NewCluster upgrade: traffic switched "
              f"after {r['switch']:.1f}s, old cluster gone after {r['t_switch']:.1f}s, {r['failed']} failed of {r['failed'] + r['ok']}; "
              f"longest gap without an answer {r['gap']:.1f}s; replace {r['t_replace']:.1f}s, {r['failed_replace']} failed "
              f"of {r['failed_replace'] + r['ok_replace']}, longest gap {r['gap_replace']:.1f}s; PSS one cluster {r['one'] / 2**30:.2f} GiB, "
              f"both {r['two'] / 2**30:.2f} GiB", flush=True)
    first = [r["first"] for r in runs]
    switch = [r["switch"] for r in runs]
    upgrade = [r["t_switch"] for r in runs]
    replace = [r["t_replace"] for r in runs]
    one = [r["one"] / 2**30 for r in runs]
    two = [r["two"] / 2**30 for r in runs]
    failed = [r["failed"] for r in runs]
    sent = [r["failed"] + r["ok"] for r in runs]
    failed_r = [r["failed_replace"] for r in runs]
    sent_r = [r["failed_replace"] + r["ok_replace"] for r in runs]
    body = f"""
`local.up` of `manifests/rayservice-rag.yaml` with a new worker image (a pod-template change:
KubeRay's `NewCluster` upgrade), under 4 closed-loop clients POSTing /rag/ from before the change
until after the old cluster was deleted (`rayClusterDeletionDelaySeconds: 10` here).

| figure | value |
|---|---|
| baseline: first `up` of the RayService to every application RUNNING | {summary(first)} |
| NewCluster upgrade: `up` called → traffic switched to the new cluster | {summary(switch)} |
| **ratio** switch / first up | **{statistics.median(switch) / statistics.median(first):.1f}×** |
| NewCluster upgrade: `up` called → old cluster deleted | {summary(upgrade)} |
| failed requests during the NewCluster upgrade | **{sum(failed)} of {sum(sent)}** |
| longest time without a successful answer, NewCluster upgrade | {summary([r["gap"] for r in runs])} |
| the same change with `upgrade="replace"` (stop, then start) | {summary(replace)} |
| failed requests with `upgrade="replace"` (closed loop: clients retry at once, so failures pile up) | {sum(failed_r)} of {sum(sent_r)} |
| longest time without a successful answer, `upgrade="replace"` | {summary([r["gap_replace"] for r in runs])} |
| peak PSS, one cluster (baseline) | median {statistics.median(one):.2f} GiB |
| peak PSS, both clusters and the serve Service during the upgrade | median {statistics.median(two):.2f} GiB |
| **ratio** peak during upgrade / one cluster | **{statistics.median(two) / statistics.median(one):.1f}×** |
"""
    write_section("rayservice-upgrade", "A NewCluster RayService upgrade under load on the local target", body)
    return {"switch_median_s": statistics.median(switch), "failed": sum(failed), "failed_replace": sum(failed_r),
            "pss_ratio": statistics.median(two) / statistics.median(one)}


if __name__ == "__main__":
    print(run())
