"""Memory of the learner's whole stack on the heaviest lab: JupyterLab, its kernel and every Ray process.

Binder gives a learner at most 2 GB, and the memory that counts there is everything in the
container: the JupyterLab server, the notebook's kernel and the Ray cluster the kernel
started. This benchmark starts a real JupyterLab, opens a session on a copy of lab 4's
solution notebook (the RAG RayService with a CPU and a GPU worker group), runs its cells in
that session's kernel, and sums the proportional set size (PSS: shared pages split among
the processes sharing them, so the sum is what the stack really takes) over every process
under JupyterLab once a second. Peak and the breakdown at the peak are reported per profile
(SERVELAB_PROFILE=default / small).

Baseline, same run: JupyterLab with an idle kernel, no cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LAB = "lab4-rayservice-gpu"
GOAL_BYTES = 1.6e9  # the "1.6 GB", read strictly (1.49 GiB)

# What each process is, from its command line (first match wins: launchers' command lines
# mention dashboard ports, so they come first); raylets and the GCS go by name.
ROLES = (("servelab.cluster._worker_node", "worker-node launchers"), ("servelab.cluster._head_node", "head launcher"),
         ("_standin_agents.py", "stand-in agents (small profile)"),
         ("ServeReplica", "Serve replicas"), ("ServeController", "Serve controller"),
         ("ProxyActor", "Serve proxy"), ("ray::IDLE", "idle Ray workers"), ("ray::DashboardAgent", "Ray dashboard agents"),
         ("ray::RuntimeEnvAgent", "Ray runtime-env agents"), ("ray.util.client.server", "Ray Client server"),
         ("dashboard", "Ray dashboard (head + modules)"),
         ("log_monitor", "Ray log monitor"), ("monitor.py", "Ray autoscaler"),
         ("ipykernel", "notebook kernel"), ("jupyter", "JupyterLab server"))
BY_NAME = {"raylet": "raylets", "gcs_server": "Ray GCS", "prometheus": "Prometheus"}


def role(proc: psutil.Process) -> str:
    try:
        name, text = proc.name(), " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return "gone"
    if name in BY_NAME:  # their command lines name their agents' programs
        return BY_NAME[name]
    return next((r for key, r in ROLES if key in text), "other")


def stack_pss(root: psutil.Process) -> tuple[int, Counter]:
    """Sum of PSS over `root` and all its descendants, and the same by role."""
    total, by_role = 0, Counter()
    try:
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, by_role
    for p in procs:
        try:
            pss = p.memory_full_info().pss
        except psutil.Error:
            continue
        total += pss
        by_role[role(p)] += pss
    return total, by_role


class Sampler(threading.Thread):
    def __init__(self, root: psutil.Process):
        super().__init__(daemon=True)
        self.root, self.stop, self.peak, self.at_peak, self.samples = root, threading.Event(), 0, Counter(), []

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.wait(1.0):
            total, by_role = stack_pss(self.root)
            self.samples.append((round(time.monotonic() - t0, 1), total))
            if total > self.peak:
                self.peak, self.at_peak = total, by_role


def start_lab(root: Path, env: dict) -> tuple[subprocess.Popen, str, str]:
    from servelab.cluster._ports import free_port

    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(root / "jupyter.log", "w"),
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, (root / "jupyter.log").read_text()[-2000:]
        try:
            if requests.get(f"{base}/api/status", params={"token": token}, timeout=2).ok:
                return proc, base, token
        except requests.ConnectionError:
            time.sleep(0.5)


def run_in_session(base: str, token: str, path: str, cells: list[str], runtime_dir: str) -> None:
    """Run code cells in the kernel of a JupyterLab session on `path` (as the learner's Run All)."""
    from jupyter_client import BlockingKernelClient

    r = requests.post(f"{base}/api/sessions", params={"token": token}, timeout=60,
                      json={"path": path, "type": "notebook", "name": Path(path).name, "kernel": {"name": "python3"}})
    r.raise_for_status()
    kernel_id = r.json()["kernel"]["id"]
    client = BlockingKernelClient(connection_file=str(Path(runtime_dir) / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        for code in cells:
            reply = client.execute_interactive(code, timeout=900, output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"cell failed: {code[:200]}\n{reply['content'].get('evalue')}")
    finally:
        client.stop_channels()


def measure(profile: str | None, label: str | None = None, extra_env: dict | None = None) -> dict:
    """Peak stack PSS for lab 4 on `profile` (None: JupyterLab and an idle kernel, no cluster)."""
    import nbformat

    work = Path(tempfile.mkdtemp(prefix="stackmem-"))
    lab_dir = work / "labs" / LAB
    lab_dir.mkdir(parents=True)
    shutil.copy(REPO / "grading" / "source" / LAB / f"{LAB}.ipynb", lab_dir)
    nb = nbformat.read(lab_dir / f"{LAB}.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "selfcheck" not in c.source]
    stop_cell = cells.pop()  # cluster.stop(): measured before it runs
    runtime = work / "runtime"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "SERVELAB_TARGET": "local",
           "SERVELAB_TMPDIR": str(work / "ray")}
    if profile:
        env["SERVELAB_PROFILE"] = profile
    env.update(extra_env or {})
    lab, base, token = start_lab(work, env)
    sampler = Sampler(psutil.Process(lab.pid))
    sampler.start()
    started = time.monotonic()
    try:
        run_in_session(base, token, f"labs/{LAB}/{LAB}.ipynb", cells if profile else ["1 + 1"], str(runtime))
        time.sleep(5)  # settled: replicas loaded, the dashboard polled
        seconds = time.monotonic() - started
        if profile:
            run_in_session(base, token, f"labs/{LAB}/{LAB}.ipynb", [stop_cell], str(runtime))
    finally:
        sampler.stop.set()
        sampler.join(5)
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    return {"profile": label or profile or "baseline", "peak": sampler.peak, "seconds": seconds,
            "at_peak": dict(sampler.at_peak.most_common())}


def profiles() -> list[str]:
    """The local target's profiles (servelab.cluster._profiles), the small one last."""
    from servelab.cluster._profiles import PROFILES

    return sorted(PROFILES, key=lambda name: name == "small")


def run() -> dict:
    # The launchers' light wait (node_supervisor) against what it replaced, on the small profile.
    heavy = measure("small", "small, launchers keep Ray loaded", {"SERVELAB_LIGHT_LAUNCHER": "0"})
    results = [measure(None)] + [measure(p) for p in profiles()]
    results.insert(-1, heavy)
    base = results[0]["peak"]
    rows = []
    for r in results:
        gib = r["peak"] / 2**30
        print(f"  {r['profile']}: peak {gib:.2f} GiB ({r['peak'] / base:.1f}× baseline)", flush=True)
        rows.append(f"| {r['profile']} | {gib:.2f} GiB ({r['peak'] / 1e9:.2f} GB) | {r['peak'] / base:.1f}× |")
    small = results[-1]
    parts = "\n".join(f"| {name} | {pss / 2**20:.0f} MiB |" for name, pss in small["at_peak"].items())
    verdict = "meets" if small["peak"] <= GOAL_BYTES else "misses"
    body = f"""
Lab 4's solution (RAG RayService: head, CPU group, GPU group) run in the kernel of a real
JupyterLab session; PSS summed over JupyterLab and every process under it, once a second.
Baseline: the same JupyterLab with an idle kernel and no cluster. Goal for the small
profile (Binder's 2 GB, with room to spare): at most {GOAL_BYTES / 1e9:.1f} GB ({GOAL_BYTES / 2**30:.2f} GiB) —
the {small['profile']} profile {verdict} it.
"Launchers keep Ray loaded" is the small profile with `SERVELAB_LIGHT_LAUNCHER=0`: each
node's launcher waits with Ray imported instead of exec'ing into `_node_supervisor.py`.

| profile | peak PSS of the whole stack | ratio to baseline |
|---|---|---|
{chr(10).join(rows)}

The {small['profile']} profile at its peak, by process role:

| role | PSS |
|---|---|
{parts}
"""
    write_section("stack-memory", "Memory of the whole learner stack on the heaviest lab (lab 4)", body)
    return {r["profile"]: round(r["peak"] / 2**30, 3) for r in results}


if __name__ == "__main__":
    print(json.dumps(run()))
