"""The status of a local RayService or RayCluster, computed as KubeRay 1.7 computes it.

KubeRay keeps conditions (and their transition times) in the object between reconciles; here
they live in the RayService's service folder (`status.json`) and in each cluster's folder
(`kuberay.json`, its RayCluster status), and every `status()` call is one reconcile.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path

import requests

from servelab.clients._serve import ServeAPIError, running_by_group
from servelab.clients._state import node_group
from servelab.cluster import _service as service
from servelab.cluster._localray import STATE_FILE, LocalRay
from servelab.targets import _kuberay as kuberay
from servelab.targets import _local_objects as objects
from servelab.targets._vocabulary import condition, diagnose_applications

# An empty RayServiceStatus as the API server returns it (apis/ray/v1/rayservice_types.go: the
# embedded RayClusterStatus is a struct, and its resource.Quantity fields print as "0")
EMPTY_CLUSTER_STATUS = {"desiredCPU": "0", "desiredGPU": "0", "desiredMemory": "0", "desiredTPU": "0"}
CLUSTER_STATUS = "kuberay.json"  # a cluster's last RayCluster status (state and conditions persist)
SERVICE_STATUS = "status.json"  # a RayService's last conditions

LOCAL_ENDPOINTS_NOTE = ("numServeEndpoints counts the head pod only: every node here shares 127.0.0.1, so Serve's "
                        "proxy runs on the head alone (on KubeRay, worker pods whose proxy passes the readiness "
                        "probe count too).")

LOCAL_SCHEDULING_NOTE = ("Pods are placed by count, not by size: this machine stands for the node pool and runs up to "
                         "SERVELAB_MAX_NODES Ray nodes, so a pod is Pending only past that cap; its CPU, GPU and "
                         "memory become the Ray node's logical resources but are not checked against free memory, "
                         "as the Kubernetes scheduler checks a node's allocatable resources.")


def _save(path: Path, value: dict) -> None:
    """Atomic: the notebook, `servelab get -w` and watcher threads read these at any moment."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def proxy_healthy(cluster: LocalRay) -> bool:
    """KubeRay's head-pod proxy health check (updateHeadPodServeLabel): GET /-/healthz on the
    head's serving port answers 200."""
    try:
        return requests.get(f"{cluster.proxy_url}/-/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def cluster_at(folder: str | None) -> LocalRay | None:
    """The running cluster whose folder this is (None if there is none, or it stopped)."""
    if not folder:
        return None
    try:
        cluster = LocalRay.from_state(Path(folder) / STATE_FILE)
    except (OSError, ValueError, KeyError):
        return None
    return cluster if cluster.running else None


def _cluster_view(cluster: LocalRay, head_serving: bool | None) -> dict:
    """One cluster's pods, RayCluster status and Serve applications. A cluster whose APIs do
    not answer yet (a pending cluster starting) keeps its last status and shows no applications."""
    try:
        return _read_cluster(cluster, head_serving)
    except (ServeAPIError, requests.RequestException, OSError) as exc:  # OSError: its folder going with it
        state = objects.manifest_state(cluster)
        return {"name": objects.ray_cluster_name(cluster, state), "status": _load(cluster.dir / CLUSTER_STATUS),
                "pods": [], "apps": {}, "statuses": {}, "groups": {}, "note": state.get("note", ""),
                "unreachable": str(exc)}


def _read_cluster(cluster: LocalRay, head_serving: bool | None) -> dict:
    state = objects.manifest_state(cluster)
    doc = state.get("doc") or {}
    spec = (doc.get("spec") or {}).get("rayClusterConfig", doc.get("spec")) if doc.get("kind") == "RayService" \
        else (doc.get("spec") or {})
    pods = objects.pods(cluster, head_serving=head_serving, state=state)
    name = objects.ray_cluster_name(cluster, state)
    saved = _load(cluster.dir / CLUSTER_STATUS)
    cluster_status = kuberay.raycluster_status(name, spec or {}, pods, saved,
                                               objects.raycluster_generation(state))
    _save(cluster.dir / CLUSTER_STATUS, cluster_status)
    apps = cluster.serve_api.applications()
    groups = {n["node_id"]: node_group(n) for n in objects.alive_nodes(cluster)}
    return {"name": name, "status": cluster_status, "pods": pods, "apps": apps,
            "statuses": kuberay.app_statuses(apps), "groups": groups, "note": state.get("note", "")}


def raycluster_status(cluster: LocalRay) -> dict:
    """One cluster's RayCluster status (KubeRay's calculateStatus), whatever owns it."""
    state = objects.manifest_state(cluster)
    serving = proxy_healthy(cluster) if state.get("service") else None
    return _cluster_view(cluster, head_serving=serving)["status"]


LOCAL_GONE_NOTE = ("The active RayCluster {name} has no running pods (its processes ended: its owner stopped, or a "
                   "fault took them). KubeRay would re-create its pods; the local target cannot: `up` the manifest "
                   "again to bring the RayService back.")


def _gone_view(cluster_dir: str, svc: dict) -> dict:
    """A cluster the RayService still names whose processes are gone. Its RayCluster would still
    exist on Kubernetes, with no pods: named in the status, head pod not found."""
    state = _load(Path(cluster_dir) / objects.MANIFEST_STATE)
    name = state.get("rayClusterName") or kuberay.ray_cluster_name(svc.get("name", ""), cluster_dir)
    spec = ((state.get("doc") or svc.get("doc") or {}).get("spec") or {}).get("rayClusterConfig") or {}
    previous = _load(Path(cluster_dir) / CLUSTER_STATUS)
    cluster_status = kuberay.raycluster_status(name, spec, [], previous, objects.raycluster_generation(state))
    return {"name": name, "status": cluster_status, "pods": [], "apps": {}, "statuses": {}, "groups": {},
            "note": LOCAL_GONE_NOTE.format(name=name), "gone": True}


def _servelab_reading(view: dict) -> dict:
    """servelab's own additions: replicas by group, Ray nodes by group."""
    placement = {f"{a}/{d}": running_by_group(dep, view["groups"])
                 for a, app in view["apps"].items() for d, dep in (app.get("deployments") or {}).items()}
    return {"placement": placement, "nodes": dict(Counter(view["groups"].values()))}


def status(cluster: LocalRay) -> dict:
    """The object's status as KubeRay 1.7 computes it, plus servelab's reading: `layer` (None
    when nothing is wrong, else the layer to look at first), `placement` (replicas by group),
    `nodes` (Ray nodes by group) and `localTarget` (what this target does differently).

    RayService: conditions (Ready from numServeEndpoints; UpgradeInProgress),
    activeServiceStatus and pendingServiceStatus (rayClusterName, applicationStatuses,
    rayClusterStatus), numServeEndpoints, observedGeneration, serviceStatus. RayCluster (or a
    cluster started without a manifest): state, replica counts, desired resources, conditions.
    """
    state = objects.manifest_state(cluster)
    try:
        if state.get("service"):
            return _service_status(Path(state["service"]), cluster)
        return _cluster_status(cluster)
    except (ServeAPIError, requests.RequestException, OSError) as exc:
        kind = (state.get("doc") or {}).get("kind", "RayCluster")
        return {"kind": kind, "name": cluster.name, "layer": "Ray runtime",
                "conditions": [condition(False, "ServeUnreachable", str(exc))]}


def _cluster_status(cluster: LocalRay) -> dict:
    view = _cluster_view(cluster, head_serving=None)
    report = {"kind": "RayCluster", "name": cluster.name, **view["status"], **_servelab_reading(view),
              "applicationStatuses": view["statuses"]}
    layer = None if all(p["status"]["phase"] == "Running" for p in view["pods"]) else "Kubernetes"
    if layer is None and view["statuses"] and not kuberay.applications_ready(view["statuses"]):
        layer = diagnose_applications(view["statuses"])[0]
    report["layer"] = layer
    report["localTarget"] = " ".join(n for n in (view["note"], LOCAL_SCHEDULING_NOTE) if n)
    return report


def _service_status(folder: Path, fallback: LocalRay) -> dict:
    """calculateStatus and calculateConditions (rayservice_controller.go) over the RayService's
    clusters: the active one (behind the serve Service) and a pending one during an upgrade."""
    svc = service.read(folder)
    active, pending = cluster_at(svc.get("active")), cluster_at(svc.get("pending"))
    serving = active is not None and proxy_healthy(active)
    active_view = _cluster_view(active, head_serving=serving) if active else None
    if active is None and svc.get("active"):
        active_view = _gone_view(svc["active"], svc)
    pending_view = _cluster_view(pending, head_serving=proxy_healthy(pending)) if pending else None
    saved = _load(folder / SERVICE_STATUS)
    generation = svc.get("generation", 1)
    endpoints = 1 if serving else 0
    conditions = kuberay.calculate_conditions(
        saved.get("conditions") or [], num_serve_endpoints=endpoints,
        active_cluster=active_view["name"] if active_view else "",
        pending_cluster=pending_view["name"] if pending_view else "", generation=generation)
    _save(folder / SERVICE_STATUS, {"conditions": conditions})

    def service_status(view: dict | None, with_apps: bool) -> dict:
        if view is None:  # Go writes the empty struct: its rayClusterStatus with zero quantities
            return {"rayClusterStatus": dict(EMPTY_CLUSTER_STATUS, head={})}
        out = {"rayClusterName": view["name"], "rayClusterStatus": view["status"]}
        if with_apps:
            out["applicationStatuses"] = view["statuses"]
        return out

    ready = kuberay.condition_is_true(conditions, kuberay.READY)
    # KubeRay reconciles the active cluster's applications only while no pending cluster exists
    report = {
        "kind": "RayService", "name": svc.get("name", fallback.name),
        "conditions": conditions,
        "activeServiceStatus": service_status(active_view, with_apps=pending_view is None),
        "pendingServiceStatus": service_status(pending_view, with_apps=True),
        "numServeEndpoints": endpoints,
        "observedGeneration": generation,
        "serviceStatus": kuberay.SERVICE_RUNNING if ready else kuberay.SERVICE_NOT_RUNNING,
        "lastUpdateTime": kuberay.now_rfc3339(),
    }
    if not report["serviceStatus"]:
        del report["serviceStatus"]  # NotRunning is "" in Go, and omitted (omitempty)
    main = pending_view or active_view
    if main is None:
        report["layer"] = "Ray runtime"
        return report
    report.update(_servelab_reading(active_view or main))
    if main.get("gone"):
        report["layer"] = "Kubernetes"  # no pods: the first thing `kubectl get pods` would show
    else:
        report["layer"] = None if kuberay.applications_ready(main["statuses"]) \
            else diagnose_applications(main["statuses"])[0]
    gone = active_view["note"] if active_view and active_view.get("gone") else ""
    notes = [n for n in (gone, svc.get("note"), LOCAL_ENDPOINTS_NOTE, LOCAL_SCHEDULING_NOTE) if n]
    report["localTarget"] = " ".join(notes)
    return report


def applications(report: dict) -> dict:
    """The applications a report is about: the pending cluster's during an upgrade (or before
    the first switch), else the active cluster's."""
    pending = (report.get("pendingServiceStatus") or {}).get("applicationStatuses")
    if pending is not None:
        return pending
    return (report.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
