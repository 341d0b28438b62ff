"""What the Prometheus beside a local cluster costs: memory (PSS) and CPU, idle and under load.

One cluster serves the RAG pipeline. For 45 s it is idle, then for 45 s 8 closed-loop clients
load it; once a second the benchmark reads the PSS of Prometheus and of the cluster's other
processes, and their CPU time. Baseline, same run: the cluster's own processes. Then the
small profile (Binder's), whose Prometheus is off unless SERVELAB_PROMETHEUS=on: its cluster
with and without Prometheus, in the same run, so the difference is Prometheus's share.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import run_child, write_section  # noqa: E402

PHASE_S = 45

CHILD = r"""
import json, os, sys, threading, time
import psutil
from servelab.cluster._localray import LocalRay
from servelab.cluster import _processes as processes
from servelab.faults import load

profile, prometheus, phase_s = sys.argv[1], sys.argv[2] == "on", float(sys.argv[3])
os.environ["SERVELAB_PORTS"] = "free"
cluster = LocalRay("bench-prom", num_cpus=3, profile=profile, prometheus=prometheus).start(show=False)
try:
    cluster.serve_api.deploy({"proxy_location": "HeadOnly",
                              "http_options": {"host": "127.0.0.1", "port": cluster.ports.serve},
                              "applications": [{"name": "rag", "route_prefix": "/rag",
                                                "import_path": "servelab.apps.rag:app"}]})
    while cluster.serve_api.applications().get("rag", {}).get("status") != "RUNNING":
        time.sleep(1)

    def sample():
        pss = {"prometheus": 0, "cluster": 0}
        cpu = {"prometheus": 0.0, "cluster": 0.0}
        for p in processes.processes_under(str(cluster.dir)):
            try:
                kind = "prometheus" if p.name() == "prometheus" else "cluster"
                pss[kind] += p.memory_full_info().pss
                t = p.cpu_times()
                cpu[kind] += t.user + t.system
            except psutil.Error:
                pass
        return pss, cpu

    phases = {}
    for phase in ("idle", "load"):
        stop = threading.Event()
        if phase == "load":
            worker = threading.Thread(target=load.run, args=(cluster.serve_url + "/rag", {"question": "restart a pod"}),
                                      kwargs={"concurrency": 8, "count": 100000, "duration_s": phase_s, "stop": stop})
            worker.start()
        _, cpu0 = sample()
        t0, peak = time.monotonic(), {"prometheus": 0, "cluster": 0}
        while time.monotonic() - t0 < phase_s:
            time.sleep(1)
            pss, _ = sample()
            peak = {k: max(peak[k], pss[k]) for k in peak}
        _, cpu1 = sample()
        elapsed = time.monotonic() - t0
        if phase == "load":
            stop.set(); worker.join()
        phases[phase] = {"peak_pss": peak, "cpu_cores": {k: (cpu1[k] - cpu0[k]) / elapsed for k in cpu0}}
    print(json.dumps(phases))
finally:
    cluster.stop(show=False)
"""


def measure(profile: str, prometheus: str) -> dict:
    print(f"  {profile} profile, Prometheus {prometheus} ...", flush=True)
    return run_child(CHILD, profile, prometheus, str(PHASE_S), timeout=900)


def mib(b: float) -> str:
    return f"{b / 2**20:.0f} MiB"


def run() -> dict:
    default = measure("default", "on")
    small_off, small_on = measure("small", "off"), measure("small", "on")
    rows = []
    for phase in ("idle", "load"):
        d = default[phase]
        prom_pss, cluster_pss = d["peak_pss"]["prometheus"], d["peak_pss"]["cluster"]
        prom_cpu, cluster_cpu = d["cpu_cores"]["prometheus"], d["cpu_cores"]["cluster"]
        rows.append(f"| {phase} | {mib(prom_pss)} | {mib(cluster_pss)} | {prom_pss / cluster_pss:.1%} | "
                    f"{prom_cpu * 100:.1f}% of a core | {cluster_cpu * 100:.0f}% | {prom_cpu / cluster_cpu:.1%} |")
    small_total_off = max(small_off[p]["peak_pss"]["cluster"] for p in ("idle", "load"))
    small_total_on = max(small_on[p]["peak_pss"]["cluster"] + small_on[p]["peak_pss"]["prometheus"]
                         for p in ("idle", "load"))
    small_prom = max(small_on[p]["peak_pss"]["prometheus"] for p in ("idle", "load"))
    body = f"""
One local cluster (3 logical CPUs) serving the RAG pipeline: {PHASE_S} s idle, then {PHASE_S} s of 8 closed-loop
clients. Peak PSS and CPU (user + system time over the phase) of Prometheus beside the cluster's
own Ray processes, measured once a second in the same run (scrape every 5 s; the head, the
dashboard and each node's metrics endpoint, through Ray's discovery file).

Default profile (Prometheus on by default):

| phase | Prometheus PSS | cluster PSS | ratio | Prometheus CPU | cluster CPU | ratio |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Small profile (Binder; Prometheus off unless `SERVELAB_PROMETHEUS=on`), the same cluster and
load, peak PSS of the cluster's processes:

| | peak PSS |
|---|---|
| without Prometheus | {mib(small_total_off)} |
| with Prometheus | {mib(small_total_on)} ({small_total_on / small_total_off:.2f}×; Prometheus itself {mib(small_prom)}) |

The whole small-profile learner stack on lab 4 (section "Memory of the whole learner stack")
would grow by about Prometheus's own {mib(small_prom)}: that is why it stays off there by default.
"""
    write_section("prometheus-cost", "Prometheus beside a local cluster: memory and CPU", body)
    return {"default": default, "small_off": small_off, "small_on": small_on}


if __name__ == "__main__":
    if os.environ.get("SERVELAB_PROMETHEUS"):
        os.environ.pop("SERVELAB_PROMETHEUS")  # each measurement says what it wants
    print(json.dumps(run()))
