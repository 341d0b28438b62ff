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
from servelab.targets import _kuberay as kuberay
from servelab.targets import _local_objects as objects
from servelab.targets._base import Target
from servelab.targets._manifest import ManifestError, read_manifest  # noqa: F401  (ManifestError is part of this API)
from servelab.targets._vocabulary import condition, diagnose_applications, is_ready, ready_condition

MANIFEST_STATE = objects.MANIFEST_STATE


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
    """Bring a manifest up (idempotent), deciding as KubeRay decides (servelab.targets._kuberay):

    - a new name: a new cluster;
    - `serveConfigV2` changed: submitted to the running cluster (in place);
    - `rayClusterConfig` changed only in replicas/minReplicas/maxReplicas (or groups appended
      at the end): the running cluster is scaled in place, nodes added or removed;
    - any other cluster change: `upgradeStrategy.type` decides. `None`: nothing happens, and
      `up` says so. `NewCluster` (the default): KubeRay would prepare a pending cluster beside
      the active one; this local target cannot run two clusters of one RayService yet, so it
      says so and replaces the cluster (downtime), and the status says that too.
    - a RayCluster whose pod templates changed: not applied to running pods (KubeRay's
      default), unless its `upgradeStrategy.type` is `Recreate`.

    die_with_owner=False lets the cluster outlive the caller (the CLI's case).
    """
    doc = read_manifest(path)
    name = doc["metadata"]["name"]
    cluster_spec, serve_config = _parts(doc)
    cluster = find(name)
    if cluster is None:
        return _create(doc, show, timeout, die_with_owner)
    have = objects.manifest_state(cluster)
    old_doc = have.get("doc")
    if old_doc is None or old_doc.get("kind") != doc["kind"]:  # not brought up from a manifest
        if show:
            print(f"{name}: a cluster of that name runs without this manifest: replacing it")
        cluster.stop(show=show)
        return _create(doc, show, timeout, die_with_owner)
    old_spec, old_serve = _parts(old_doc)
    change = kuberay.classify_update(old_spec, cluster_spec)
    if change != "new-cluster":  # replicas, bounds, appended groups, serveConfigV2: in place
        return _update_in_place(cluster, doc, old_doc, show, timeout, keep_cluster_spec=False)
    if doc["kind"] == "RayCluster":
        if ((doc["spec"].get("upgradeStrategy") or {}).get("type")) != "Recreate":
            if show:
                print(f"{name}: the pod templates changed; KubeRay does not apply that to running pods unless "
                      "spec.upgradeStrategy.type is Recreate, and neither does the local target")
            return _update_in_place(cluster, doc, old_doc, show, timeout, keep_cluster_spec=True)
        if show:
            print(f"{name}: the pod templates changed and upgradeStrategy.type is Recreate: every pod is re-created")
        cluster.stop(show=show)
        return _create(doc, show, timeout, die_with_owner, generation=have.get("generation", 1) + 1)
    strategy = kuberay.upgrade_type(doc["spec"])
    if strategy == "None":
        if show:
            print(f"{name}: rayClusterConfig changed, but upgradeStrategy.type is None: KubeRay leaves the running "
                  "cluster as it is, and so does the local target (delete the RayService and re-create it to apply)")
        return _update_in_place(cluster, doc, old_doc, show, timeout, keep_cluster_spec=True)
    if show:
        print(f"{name}: rayClusterConfig changed: KubeRay ({strategy}) would bring up a pending RayCluster beside "
              f"the active one and switch traffic once its applications are RUNNING. {LOCAL_UPGRADE_LIMIT}")
    cluster.stop(show=show)
    return _create(doc, show, timeout, die_with_owner, generation=have.get("generation", 1) + 1,
                   note=LOCAL_UPGRADE_LIMIT)


LOCAL_ENDPOINTS_NOTE = ("numServeEndpoints counts the head pod only: every node here shares 127.0.0.1, so Serve's "
                        "proxy runs on the head alone (on KubeRay, worker pods whose proxy passes the readiness "
                        "probe count too).")
LOCAL_UPGRADE_LIMIT = ("The local target runs one cluster per RayService, so it replaces the cluster instead: "
                       "the service is down until the new one is Ready (on KubeRay: no downtime).")


def _create(doc: dict, show: bool, timeout: float, die_with_owner: bool, generation: int = 1,
            note: str = "") -> LocalRay:
    name = doc["metadata"]["name"]
    cluster_spec, serve_config = _parts(doc)
    cluster = _start(name, cluster_spec, show, timeout, die_with_owner)
    try:
        state = {"doc": doc, "generation": generation, "note": note,
                 "rayClusterName": kuberay.ray_cluster_name(name, str(cluster.dir))
                 if doc["kind"] == "RayService" else name,
                 "desired": _desired(cluster_spec)}
        objects.write_manifest_state(cluster, state)
        if serve_config is not None:
            _deploy(cluster, serve_config, show)
    except BaseException:
        cluster.stop(show=False, keep_logs=True)
        raise
    return cluster


def _update_in_place(cluster: LocalRay, doc: dict, old_doc: dict, show: bool, timeout: float,
                     keep_cluster_spec: bool) -> LocalRay:
    """Apply `doc` to the running cluster: scale its groups, submit a changed serveConfigV2.
    keep_cluster_spec: the cluster spec is not applied (KubeRay would not either)."""
    state = objects.manifest_state(cluster)
    old_spec, old_serve = _parts(old_doc)
    new_spec, serve_config = _parts(doc)
    applied = json.loads(json.dumps(doc))
    changed = False
    if keep_cluster_spec:
        if doc["kind"] == "RayService":
            applied["spec"]["rayClusterConfig"] = old_spec
        else:
            applied["spec"] = old_spec
    elif old_spec != new_spec:
        changed = True
        _scale_in_place(cluster, new_spec, show, timeout)
        state["desired"] = _desired(new_spec)
    if serve_config is not None and serve_config != old_serve:
        changed = True
        if show:
            print(f"{cluster.name}: serveConfigV2 changed: submitting it to the running cluster (in place)")
        _deploy(cluster, serve_config, show)
    if doc != old_doc:
        state["generation"] = state.get("generation", 1) + 1  # metadata.generation: every spec change
    state["doc"] = applied
    objects.write_manifest_state(cluster, state)
    if show and not changed and doc == old_doc:
        print(f"{cluster.name}: already up and unchanged")
    return cluster


def _desired(cluster_spec: dict) -> dict[str, int]:
    """Each worker group's desired pods, as KubeRay counts them (GetWorkerGroupDesiredReplicas)."""
    return {str(g.get("groupName")): kuberay.group_desired_replicas(g)
            for g in cluster_spec.get("workerGroupSpecs") or []}


def _scale_in_place(cluster: LocalRay, new_spec: dict, show: bool, timeout: float) -> None:
    """Replicas, min and max changed (or groups appended): add or remove this group's nodes,
    as KubeRay adds or deletes worker pods; the cluster and its applications stay."""
    name = cluster.name
    if new_spec.get("enableInTreeAutoscaling"):
        if show:
            print(f"{name}: worker-group bounds changed; with the autoscaler on, it scales within them "
                  "(the local target restarts no node for this)")
        return
    want = _desired(new_spec)
    have = Counter(node_group(n) for n in cluster.nodes())
    shapes = {s.group: s for s in placement.node_shapes(new_spec)[1:]}
    budget = max_nodes() - sum(have.values())
    for group, count in want.items():
        extra = count - have.get(group, 0)
        if extra > 0:
            start = min(extra, max(budget, 0))
            if show:
                print(f"{name}: {group}: {have.get(group, 0)} -> {count} worker pod(s), in place"
                      + (f" ({extra - start} stay Pending: this machine's node cap)" if start < extra else ""))
            shape = shapes[group]
            for _ in range(start):
                cluster.add_worker(num_cpus=shape.cpus, num_gpus=shape.gpus, memory=shape.memory,
                                   labels={GROUP_LABEL: group}, timeout=timeout, show=show)
            budget -= start
        elif extra < 0:
            if show:
                print(f"{name}: {group}: {have.get(group, 0)} -> {count} worker pod(s), in place")
            _remove_workers(cluster, group, -extra)


def _remove_workers(cluster: LocalRay, group: str, count: int) -> None:
    """Stop `count` nodes of `group`, the ones with the fewest replicas first (KubeRay deletes
    random pods when replicas drop; Ray's autoscaler picks idle ones via workersToDelete)."""
    from servelab.faults._verbs import LocalFaults

    faults = LocalFaults(cluster)
    on = faults._replicas_by_node()
    nodes = sorted((n for n in cluster.nodes() if node_group(n) == group),
                   key=lambda n: len(on.get(n["node_id"], [])))
    for node in nodes[:count]:
        faults.stop_node(node)


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


KUBERAY_STATE = "kuberay.json"  # what KubeRay keeps in the object's status between reconciles


def _proxy_healthy(cluster: LocalRay) -> bool:
    """KubeRay's head-pod proxy health check (updateHeadPodServeLabel): GET /-/healthz on the
    head's serving port answers 200."""
    try:
        return requests.get(f"{cluster.serve_url}/-/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def status(cluster: LocalRay) -> dict:
    """The object's status as KubeRay 1.7 computes it (servelab.targets._kuberay), from what
    runs here, plus servelab's own reading: `layer` (None when nothing is wrong, else the layer
    to look at first), `placement` (replicas by group), `nodes` (Ray nodes by group), and
    `localTarget` (what the local target does differently, if anything).

    RayService: conditions (Ready from numServeEndpoints; UpgradeInProgress), activeServiceStatus
    and pendingServiceStatus (rayClusterName, applicationStatuses, rayClusterStatus),
    numServeEndpoints, observedGeneration, serviceStatus. RayCluster: state, replica counts,
    desired resources, conditions (HeadPodReady, RayClusterProvisioned). A cluster started
    without a manifest reports as the RayCluster it is.
    """
    state = objects.manifest_state(cluster)
    kind = (state.get("doc") or {}).get("kind", "RayCluster")
    saved_path = cluster.dir / KUBERAY_STATE
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        saved = {}
    try:
        groups = {n["node_id"]: node_group(n) for n in cluster.nodes()}
        apps = cluster.serve_api.applications()  # Serve runs on every local cluster
    except (ServeAPIError, requests.RequestException) as exc:
        return {"kind": kind, "name": cluster.name, "layer": "Ray runtime",
                "conditions": [condition(False, "ServeUnreachable", str(exc))]}
    statuses = kuberay.app_statuses(apps)
    placement_by_dep = {f"{a}/{d}": running_by_group(dep, groups)
                        for a, app in apps.items() for d, dep in (app.get("deployments") or {}).items()}
    serving = _proxy_healthy(cluster) if kind == "RayService" else None
    pods = objects.pods(cluster, head_serving=serving, state=state)
    generation = state.get("generation", 1)
    cluster_spec = _parts(state["doc"])[0] if state.get("doc") else {}
    cluster_status = kuberay.raycluster_status(objects.ray_cluster_name(cluster, state), cluster_spec, pods,
                                               saved.get("rayClusterStatus"), generation)
    report = {"kind": kind, "name": cluster.name, "placement": placement_by_dep,
              "nodes": dict(Counter(groups.values()))}
    if kind == "RayCluster":
        report.update(cluster_status)
        # servelab's own reading, kept apart from KubeRay's conditions: is anything wrong?
        layer = None if all(p["status"]["phase"] == "Running" for p in pods) else "Kubernetes"
        if layer is None and statuses and not kuberay.applications_ready(statuses):
            layer = diagnose_applications(statuses)[0]
        report["layer"] = layer
        report["applicationStatuses"] = statuses
        saved["rayClusterStatus"] = cluster_status
    else:
        # KubeRay creates the serve Service once the cluster's applications are all RUNNING
        # (reconcileServe -> reconcileServicesToReadyCluster); from then on the cluster is the
        # active one, and the head pod is an endpoint while its proxy health check passes.
        if kuberay.applications_ready(statuses):
            saved["serveService"] = True
        active = saved.get("serveService", False)
        name = objects.ray_cluster_name(cluster, state)
        endpoints = 1 if (active and serving) else 0
        conditions = kuberay.calculate_conditions(saved.get("conditions") or [], num_serve_endpoints=endpoints,
                                                  active_cluster=name if active else "",
                                                  pending_cluster="" if active else name,
                                                  generation=generation)
        service_status = {"rayClusterName": name, "applicationStatuses": statuses,
                          "rayClusterStatus": cluster_status}
        ready = kuberay.condition_is_true(conditions, kuberay.READY)
        # Ready first: lessons and checks read conditions[0] (KubeRay sets Ready before UpgradeInProgress)
        report.update({
            "conditions": conditions,
            "activeServiceStatus": service_status if active else {},
            "pendingServiceStatus": {} if active else service_status,
            "numServeEndpoints": endpoints,
            "observedGeneration": generation,
            "serviceStatus": kuberay.SERVICE_RUNNING if ready else kuberay.SERVICE_NOT_RUNNING,
        })
        # servelab's reading: Ready can be True while an update failed (the old version serves)
        report["layer"] = None if kuberay.applications_ready(statuses) else diagnose_applications(statuses)[0]
        saved.update(conditions=conditions, rayClusterStatus=cluster_status)
    notes = [state["note"]] if state.get("note") else []
    if kind == "RayService":
        notes.append(LOCAL_ENDPOINTS_NOTE)
    report["localTarget"] = " ".join(notes)
    if report.get("kind") == "RayService" and not report["activeServiceStatus"]:
        # before the first switch, KubeRay shows the applications under pendingServiceStatus;
        # servelab's readers look under activeServiceStatus, so both carry them
        report["activeServiceStatus"] = {"applicationStatuses": statuses}
    saved_path.write_text(json.dumps(saved))
    return report


def wait_ready(cluster: LocalRay, *, timeout: float = 300, show: bool = True) -> dict:
    """Wait for the Ready condition, as KubernetesTarget.wait_ready does. Before the first
    Ready, a deploy that failed ends the wait at once, and the error names the layer the status
    points at. Once Ready, a failed in-place update leaves Ready True (KubeRay's meaning: the
    old version still serves); the report's application status and `layer` show the failure."""
    last: dict = {}

    def ready():
        last.clear()
        last.update(status(cluster))
        if is_ready(last):
            return dict(last)
        apps = (last.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
        for name, app in apps.items():
            if app.get("status") == "DEPLOY_FAILED":  # a Failed ends the wait at once
                raise Failed(last.get("layer") or "application code",
                             f"application {name!r} DEPLOY_FAILED: {app.get('message', '')[-800:]}")
        return None

    try:
        return wait_for(ready, what=f"{cluster.name} Ready", layer="Serve", timeout=timeout, show=show)
    except Stuck:
        if not last.get("layer"):
            raise
        cond = ready_condition(last)
        raise Stuck(last["layer"], f"{cluster.name} not Ready after {timeout:.0f}s: "
                                   f"{cond.get('reason')}: {cond.get('message', '')}") from None


def wait_running(cluster: LocalRay, *, timeout: float = 300, show: bool = True) -> dict:
    """Wait until every application is RUNNING, and return the status. That is what KubeRay
    waits for before it sends traffic to a cluster (getAndCheckServeStatus); after an in-place
    update Ready stays True meanwhile, so `wait_ready` does not wait for the new version.
    A DEPLOY_FAILED application ends the wait at once (a `Failed` naming the layer)."""
    last: dict = {}

    def running():
        last.clear()
        last.update(status(cluster))
        apps = (last.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
        for name, app in apps.items():
            if app.get("status") == "DEPLOY_FAILED":
                raise Failed(last.get("layer") or "application code",
                             f"application {name!r} DEPLOY_FAILED: {app.get('message', '')[-800:]}")
        return dict(last) if kuberay.applications_ready(apps) else None

    try:
        return wait_for(running, what=f"{cluster.name}: every application RUNNING", layer="Serve",
                        timeout=timeout, show=show)
    except Stuck:
        if not last.get("layer"):
            raise
        raise Stuck(last["layer"], f"{cluster.name}: applications not RUNNING after {timeout:.0f}s") from None


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
