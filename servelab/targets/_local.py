"""The local target: a KubeRay manifest brought up as a private Ray cluster on this machine.

One Ray node per head and per worker-group replica, with the resources KubeRay
would derive from the pod spec (servelab.manifests.placement); a RayService's
serveConfigV2 is deployed through Serve's REST API, as KubeRay deploys it.
Status is reported in RayService vocabulary, so the same checks read both targets.

With `enableInTreeAutoscaling: true`, Ray's autoscaler runs over the worker
groups (servelab.cluster._autoscaler); otherwise each group stays at `replicas`.

The module functions (`up`, `status(cluster)`, `wait_ready(cluster)`, `down(name)`,
`find(name)`) are what lessons and labs call; `LocalTarget` is the same target
behind the `Target` interface the Kubernetes target shares.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import requests
import yaml

from servelab.clients._serve import ServeAPIError, running_by_group
from servelab.clients._state import GROUP_LABEL, node_group
from servelab.cluster._localray import AUTOSCALER_CONFIG, PROXY_LOCATION, LocalRay, max_nodes
from servelab.cluster._ports import LOOPBACK
from servelab.manifests import placement
from servelab.observe._waiting import Failed, Stuck, wait_for
from servelab.targets._base import Target
from servelab.targets._manifest import ManifestError, read_manifest  # noqa: F401  (ManifestError is part of this API)
from servelab.targets._vocabulary import condition, diagnose_applications, is_ready

MANIFEST_STATE = "manifest.json"


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _parts(doc: dict) -> tuple[dict, dict | None]:
    spec = doc["spec"]
    if doc["kind"] == "RayService":
        return spec["rayClusterConfig"], yaml.safe_load(spec["serveConfigV2"])
    return spec, None


def find(name: str) -> LocalRay | None:
    for cluster in LocalRay.find():
        if cluster.name == name:
            return cluster
    return None


def up(path: str | Path, *, show: bool = True, timeout: float = 300,
       die_with_owner: bool = True) -> LocalRay:
    """Bring a manifest up (idempotent): new cluster, in-place Serve update, or replacement.

    die_with_owner=False lets the cluster outlive the caller (the CLI's case).
    """
    doc = read_manifest(path)
    name = doc["metadata"]["name"]
    cluster_spec, serve_config = _parts(doc)
    wanted = {"cluster": _digest(cluster_spec), "serve": _digest(serve_config)}
    cluster = find(name)
    if cluster is not None:
        have = json.loads((cluster.dir / MANIFEST_STATE).read_text()) if (cluster.dir / MANIFEST_STATE).exists() else {}
        if have.get("cluster") == wanted["cluster"]:
            if have.get("serve") != wanted["serve"] and serve_config is not None:
                if show:
                    print(f"{name}: only serveConfigV2 changed: updating the applications in place")
                _deploy(cluster, serve_config, show)
                (cluster.dir / MANIFEST_STATE).write_text(json.dumps(wanted))
            elif show:
                print(f"{name}: already up and unchanged")
            return cluster
        if show:
            print(f"{name}: rayClusterConfig changed: replacing the cluster (KubeRay builds a new one)")
        cluster.stop(show=show)
    cluster = _start(name, cluster_spec, show, timeout, die_with_owner)
    try:
        if serve_config is not None:
            _deploy(cluster, serve_config, show)
        (cluster.dir / MANIFEST_STATE).write_text(json.dumps(wanted))
    except BaseException:
        cluster.stop(show=False, keep_logs=True)
        raise
    return cluster


def _start(name: str, cluster_spec: dict, show: bool, timeout: float, die_with_owner: bool) -> LocalRay:
    shapes = placement.node_shapes(cluster_spec)
    head = shapes[0]
    autoscale = bool(cluster_spec.get("enableInTreeAutoscaling"))
    cluster = LocalRay(name, num_cpus=int(head.cpus), num_gpus=int(head.gpus), memory=head.memory,
                       die_with_owner=die_with_owner,
                       autoscale=cluster_spec if autoscale else None)
    cluster.start(timeout=timeout, show=show)
    try:
        if autoscale:
            _wait_initial_nodes(cluster, timeout, show)
        else:
            for shape, count in _fixed_plan(shapes, cluster_spec):
                for _ in range(count):
                    cluster.add_worker(num_cpus=shape.cpus, num_gpus=shape.gpus, memory=shape.memory,
                                       labels={GROUP_LABEL: shape.group}, timeout=timeout, show=show)
    except BaseException:
        cluster.stop(show=False, keep_logs=True)
        raise
    return cluster


def _fixed_plan(shapes: list, cluster_spec: dict) -> list[tuple]:
    """(shape, count) per worker group at `replicas`, within this machine's node cap."""
    plan = []
    for shape, group in zip(shapes[1:], cluster_spec.get("workerGroupSpecs") or []):
        count = group.get("replicas", group.get("minReplicas", 0)) or 0
        count = max(group.get("minReplicas", 0) or 0, min(count, group.get("maxReplicas", count)))
        plan.append((shape, count))
    budget = max_nodes() - 1
    if sum(n for _, n in plan) <= budget:
        return plan
    print(f"warning: the manifest asks for {sum(n for _, n in plan)} worker nodes; this machine's cap "
          f"is {budget} (SERVELAB_MAX_NODES={budget + 1} counts the head). Starting fewer:")
    trimmed = []
    for shape, count in plan:
        keep = min(count, max(budget, 0))
        budget -= keep
        if keep < count:
            print(f"  {shape.group}: {keep} of {count}")
        trimmed.append((shape, keep))
    return trimmed


def _wait_initial_nodes(cluster: LocalRay, timeout: float, show: bool) -> None:
    """With the autoscaler, the provider starts `replicas` nodes per group: wait until they joined."""
    config = json.loads((cluster.dir / AUTOSCALER_CONFIG).read_text())
    expected = 1 + sum(t["count"] for t in config["provider"]["initial_workers"].values())
    wait_for(lambda: len(cluster.node_ids()) >= expected,
             what=f"{expected - 1} initial worker node(s) from the autoscaler's provider",
             layer="Ray runtime", timeout=timeout, show=show,
             hint=f"Autoscaler log: {cluster.dir}/r/session_latest/logs/monitor.log; "
                  f"node logs: {cluster.dir}/node-*.log")


def _deploy(cluster: LocalRay, serve_config: dict, show: bool) -> None:
    config = dict(serve_config)
    http = dict(config.get("http_options") or {})
    if http.get("host") not in (None, LOOPBACK) and show:
        print(f"note: http_options.host {http['host']!r} becomes {LOOPBACK} on the local target")
    http.update(host=LOOPBACK, port=cluster.ports.serve)
    config["http_options"] = http
    config["proxy_location"] = PROXY_LOCATION
    cluster.serve_api.deploy(config)


def status(cluster: LocalRay) -> dict:
    """A RayService-shaped status: conditions, application and deployment statuses, placement."""
    try:
        groups = {n["node_id"]: node_group(n) for n in cluster.nodes()}
        apps = cluster.serve_api.applications()
    except (ServeAPIError, requests.RequestException) as exc:
        return {"name": cluster.name, "conditions": [condition(False, "ServeUnreachable", str(exc))],
                "layer": "Ray runtime"}
    statuses, placement_by_dep = {}, {}
    for app_name, app in apps.items():
        deps = {}
        for dep_name, dep in (app.get("deployments") or {}).items():
            deps[dep_name] = {"status": dep.get("status"), "message": dep.get("message", "")}
            placement_by_dep[f"{app_name}/{dep_name}"] = running_by_group(dep, groups)
        statuses[app_name] = {"status": app.get("status"), "message": app.get("message", ""),
                              "serveDeploymentStatuses": deps}
    ready = bool(statuses) and all(a["status"] == "RUNNING" for a in statuses.values())
    layer, reason = diagnose_applications(statuses) if not ready else (None, "RunningAndHealthy")
    return {
        "name": cluster.name,
        "conditions": [condition(ready, reason, "" if ready else f"look at the {layer} layer first")],
        "activeServiceStatus": {"applicationStatuses": statuses},
        "placement": placement_by_dep,
        "nodes": dict(Counter(groups.values())),
        "layer": layer,
    }


def wait_ready(cluster: LocalRay, *, timeout: float = 300, show: bool = True) -> dict:
    """Wait for the Ready condition, as KubernetesTarget.wait_ready does; a deploy that
    failed ends the wait at once, and the error names the layer the status points at."""
    last: dict = {}

    def ready():
        last.clear()
        last.update(status(cluster))
        apps = (last.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
        for name, app in apps.items():
            if app.get("status") == "DEPLOY_FAILED":  # a Failed ends the wait at once
                raise Failed(last.get("layer") or "application code",
                             f"application {name!r} DEPLOY_FAILED: {app.get('message', '')[-800:]}")
        return dict(last) if is_ready(last) else None

    try:
        return wait_for(ready, what=f"{cluster.name} Ready", layer="Serve", timeout=timeout, show=show)
    except Stuck:
        if not last.get("layer"):
            raise
        raise Stuck(last["layer"], f"{cluster.name} not Ready after {timeout:.0f}s: "
                                   f"{last['conditions'][0].get('message', '')}") from None


def down(name: str) -> bool:
    cluster = find(name)
    if cluster is None:
        return False
    cluster.stop()
    return True


class LocalTarget(Target):
    """The local target behind the `Target` interface: the module functions above, by name or handle.

    A handle is the LocalRay cluster `up` returns. die_with_owner=False lets clusters outlive
    the caller (the CLI's case); by default they end with this process, as `local.up`'s do.
    """

    options = ("die_with_owner",)

    def __init__(self, *, die_with_owner: bool = True):
        self.die_with_owner = die_with_owner

    def __repr__(self) -> str:
        return f"LocalTarget(die_with_owner={self.die_with_owner})"

    def find(self, ref) -> LocalRay | None:
        """The running cluster a name (or handle) stands for, or None."""
        return ref if isinstance(ref, LocalRay) else find(ref)

    def up(self, path: str | Path, *, wait: bool = False, timeout: float = 300, show: bool = True) -> LocalRay:
        cluster = up(path, show=show, timeout=timeout, die_with_owner=self.die_with_owner)
        if wait:
            wait_ready(cluster, timeout=timeout, show=show)
        return cluster

    def status(self, name) -> dict:
        cluster = self.find(name)
        if cluster is None:
            return {"name": self.name_of(name), "layer": "Ray runtime",
                    "conditions": [condition(False, "NotFound", f"no local cluster named {self.name_of(name)!r} "
                                                                "is running")]}
        return status(cluster)

    def wait_ready(self, name, *, timeout: float = 300, show: bool = True) -> dict:
        cluster = self.find(name)
        if cluster is None:
            raise Failed("Ray runtime", f"no local cluster named {self.name_of(name)!r} is running",
                         hint="bring it up first: `servelab up FILE`, or `local.up(FILE)` in Python")
        return wait_ready(cluster, timeout=timeout, show=show)

    def down(self, name) -> bool:
        return down(self.name_of(name))

    def endpoints(self, name) -> dict:
        cluster = self.find(name)
        if cluster is None:
            return {"serve": None, "dashboard": None,
                    "hint": f"no local cluster named {self.name_of(name)!r} is running (servelab status lists them)"}
        return {"serve": cluster.serve_url, "dashboard": cluster.dashboard_url, "hint": ""}

    def names(self) -> list[str]:
        return [cluster.name for cluster in LocalRay.find()]
