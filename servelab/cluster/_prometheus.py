"""A Prometheus server beside a local cluster, as kube-prometheus-stack runs beside KubeRay's.

Debian's `prometheus` (`make system`, Binder's apt.txt) on 127.0.0.1, in the cluster's own
folder. It finds every node of the cluster through the file Ray writes for this very purpose:
the dashboard's ReportHead lists each live node's metrics port, the autoscaler's and the
dashboard's own in `<temp dir>/prom_metrics_service_discovery.json` every 5 s (Prometheus's
file-based service discovery). It evaluates the course's rules (servelab/observe/rules.yaml)
and the learner's own (`<cluster dir>/prometheus/rules/*.yaml`, picked up by `reload()`).

It carries the cluster's marker in its environment, so it stops with the cluster's other
processes and is never mistaken for anyone else's.

On or off: SERVELAB_PROMETHEUS=on|off; otherwise the profile decides. `default`: on. `small`:
off, because on about 2 GB every process counts (BENCHMARKS.md has Prometheus's share) and
that profile's dashboard leaves out ReportHead, which writes the discovery file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import requests
import yaml

from servelab.cluster import _processes as processes
from servelab.cluster._ports import LOOPBACK
from servelab.observe._waiting import Failed, wait_for

ENV = "SERVELAB_PROMETHEUS"
FOLDER = "prometheus"            # inside the cluster's folder: config, data, the learner's rules
LOG = "prometheus.log"
SCRAPE_INTERVAL = "5s"           # short, for lessons; Ray itself exports every 10 s
DISCOVERY_FILE = "prom_metrics_service_discovery.json"  # ray._private.ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE
COURSE_RULES = Path(__file__).resolve().parent.parent / "observe" / "rules.yaml"
PROMETHEUS_RULE_HEADER = """\
# The course's recording rules and alerts for Ray Serve, for kube-prometheus-stack.
# Generated from servelab/observe/rules.yaml, which the local target's Prometheus loads:
#   python -m servelab.cluster._prometheus > manifests/monitoring/prometheus-rules.yaml
# (tests/unit/test_prometheus_rules.py fails when the two differ).
"""


def choice(profile_wants: bool, profile_name: str, asked: bool | None = None) -> tuple[bool, str]:
    """(run it?, why not): `asked` (an argument), else SERVELAB_PROMETHEUS, else the profile."""
    if asked is None:
        env = os.environ.get(ENV, "").strip().lower()
        if env in ("1", "on", "yes", "true"):
            asked = True
        elif env in ("0", "off", "no", "false"):
            return False, f"off ({ENV}={os.environ[ENV]})"
        elif env:
            raise ValueError(f"{ENV}={os.environ[ENV]!r}: use on or off")
    if asked is False:
        return False, "off (asked)"
    if asked is None and not profile_wants:
        return False, (f"off on the {profile_name} profile, to save memory ({ENV}=on starts it; "
                       "its dashboard writes no discovery file, so only the head is scraped)")
    if binary() is None:
        return False, "not installed: `make system` (Debian's prometheus package) brings it"
    return True, ""


def binary() -> str | None:
    return shutil.which("prometheus")


def config(cluster_dir: Path, *, minimal_dashboard: bool, head_metrics: str) -> dict:
    """prometheus.yml for one cluster: every node through Ray's discovery file (the head's
    metrics port as a fixed target when the dashboard writes no such file)."""
    folder = cluster_dir / FOLDER
    scrape = {"job_name": "ray", "scrape_interval": SCRAPE_INTERVAL}
    if minimal_dashboard:
        scrape["static_configs"] = [{"targets": [head_metrics]}]
    else:
        scrape["file_sd_configs"] = [{"files": [str(cluster_dir / "r" / "session_latest" / DISCOVERY_FILE)],
                                      "refresh_interval": "5s"}]
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(COURSE_RULES), str(folder / "rules" / "*.yaml")],
        "scrape_configs": [scrape],
    }


def launch(cluster_dir: Path, port: int, env: dict, *, dashboard_modules: tuple[str, ...] | None,
           head_metrics: str, die_with_parent_thread: bool) -> subprocess.Popen:
    """Start Prometheus for the cluster in `cluster_dir`. dashboard_modules: the profile's (None:
    all); without ReportHead no discovery file is written, so only the head is scraped."""
    minimal_dashboard = dashboard_modules is not None and "ReportHead" not in dashboard_modules
    folder = cluster_dir / FOLDER
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(yaml.safe_dump(
        config(cluster_dir, minimal_dashboard=minimal_dashboard, head_metrics=head_metrics), sort_keys=False))
    cmd = [binary() or "prometheus", f"--config.file={folder / 'prometheus.yml'}",
           f"--storage.tsdb.path={folder / 'data'}", "--storage.tsdb.retention.time=1d",
           f"--web.listen-address={LOOPBACK}:{port}", "--web.enable-lifecycle",  # POST /-/reload
           "--log.level=warn"]
    return processes.spawn_node(cmd, env, cluster_dir / LOG, die_with_parent_thread=die_with_parent_thread)


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float, show: bool) -> None:
    def ready():
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log.exists() else ""
            raise Failed("Ray runtime", f"Prometheus exited while starting (code {proc.returncode}):\n{tail}")
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200

    wait_for(ready, what="Prometheus", layer="Ray runtime", timeout=timeout, show=show, hint=f"its log: {log}")


def check_rules(folder: Path, name: str, text: str) -> None:
    """`promtool check rules` on `text`, written to a hidden file in `folder` (not *.yaml, so a
    Prometheus that reads that folder never sees it); raises PrometheusError with its findings."""
    from servelab.clients.prometheus import PrometheusError

    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"rules name {name!r}: letters, digits, - and _ only")
    if shutil.which("promtool") is None:
        raise PrometheusError("promtool is not installed, so the rules cannot be checked",
                              hint="`make system` (Debian's prometheus package) brings it")
    folder.mkdir(parents=True, exist_ok=True)
    candidate = folder / f".{name}.check.yaml"
    candidate.write_text(text)
    try:
        checked = subprocess.run(["promtool", "check", "rules", str(candidate)], capture_output=True, text=True,
                                 timeout=60)
    finally:
        candidate.unlink(missing_ok=True)
    if checked.returncode != 0:
        findings = (checked.stdout + checked.stderr).replace(str(candidate), f"{name}.yaml").strip()
        raise PrometheusError(f"promtool rejects the rules:\n{findings}",
                              hint="each finding names the group, the rule and the field")


def add_rules(cluster_dir: Path, prometheus, name: str, text: str, timeout: float = 30) -> list[dict]:
    """Check `text` (a Prometheus rules file) with promtool, put it beside the cluster's other
    rules as <name>.yaml, reload Prometheus and return the groups it loaded from it."""
    folder = cluster_dir / FOLDER / "rules"
    check_rules(folder, name, text)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    prometheus.reload()
    deadline = time.monotonic() + timeout
    while True:  # the reload is asynchronous: wait until the file's groups are there
        groups = [g for g in prometheus.rules() if g.get("file") == str(path)]
        if groups or time.monotonic() > deadline:
            return groups
        time.sleep(0.5)


def prometheus_rule() -> str:
    """The course's rules as kube-prometheus-stack's PrometheusRule (manifests/monitoring/)."""
    groups = yaml.safe_load(COURSE_RULES.read_text())["groups"]
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "servelab-serve", "namespace": "prometheus-system",
                        "labels": {"release": "prometheus"}},  # the chart's rule selector: the Helm release
           "spec": {"groups": groups}}
    return PROMETHEUS_RULE_HEADER + yaml.safe_dump(doc, sort_keys=False, width=1000)


if __name__ == "__main__":
    print(prometheus_rule(), end="")
