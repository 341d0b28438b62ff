"""The Kubernetes objects KubeRay would create for a local cluster: pods, Services, and the
RayService/RayCluster object itself, as documents shaped like the API server's.

Each Ray node of the local cluster is the pod KubeRay would run it in: KubeRay's name and
labels (servelab.targets._kuberay), the pod template's image and resources, phase and Ready
from the node's state. A worker the manifest wants but this machine does not start (the node
cap) is a Pending pod with a FailedScheduling event. What a local pod cannot show as Kubernetes
would (image pulls, a kubelet's events, container restarts: KubeRay re-creates a Ray pod
rather than restart it) is said in its annotations, not invented.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from servelab.clients._state import GROUP_LABEL, node_group
from servelab.cluster._localray import LocalRay, max_nodes
from servelab.cluster._ports import LOOPBACK
from servelab.manifests import placement
from servelab.targets import _kuberay as kuberay

MANIFEST_STATE = "manifest.json"  # the manifest as applied, its generation, desired pods per group
NAMESPACE = "default"
NODE_NAME = "localhost"  # the one "Kubernetes node" of the local target: this machine
NOTE_ANNOTATION = "servelab.io/local-target"


def manifest_state(cluster: LocalRay) -> dict:
    try:
        return json.loads((cluster.dir / MANIFEST_STATE).read_text())
    except (OSError, ValueError):
        return {}


def write_manifest_state(cluster: LocalRay, state: dict) -> None:
    tmp = cluster.dir / (MANIFEST_STATE + ".tmp")  # atomic: status readers run in other processes
    tmp.write_text(json.dumps(state))
    tmp.replace(cluster.dir / MANIFEST_STATE)


def ray_cluster_name(cluster: LocalRay, state: dict | None = None) -> str:
    state = manifest_state(cluster) if state is None else state
    return state.get("rayClusterName") or cluster.name


def raycluster_generation(state: dict) -> int:
    """The RayCluster object's metadata.generation: a RayService's cluster is an object of its
    own, created at 1 and bumped when KubeRay updates its spec in place; a RayCluster brought up
    from its own manifest has the manifest's generation."""
    return state.get("rayClusterGeneration", state.get("generation", 1))


def _parts(doc: dict) -> tuple[dict, str]:
    spec = doc.get("spec") or {}
    return (spec.get("rayClusterConfig") or {}, "RayService") if doc.get("kind") == "RayService" \
        else (spec, doc.get("kind") or "RayCluster")


def group_shapes(cluster: LocalRay) -> dict[str, placement.NodeShape] | None:
    """What a pod of each worker group made now offers, from the templates of the manifest
    applied last; None for a cluster not brought up from a manifest."""
    doc = manifest_state(cluster).get("doc")
    if not doc:
        return None
    return {s.group: s for s in placement.node_shapes(_parts(doc)[0])[1:]}


def _group_specs(cluster_spec: dict) -> dict[str, dict]:
    return {str(g.get("groupName")): g for g in cluster_spec.get("workerGroupSpecs") or []}


def keep_pod_templates(cluster: LocalRay, old_spec: dict) -> None:
    """Record the template each running node's pod was made from, before the RayCluster's
    templates change: `pods` keeps showing it, as a pod on Kubernetes keeps its spec."""
    state = manifest_state(cluster)
    old_groups = {"head": old_spec.get("headGroupSpec") or {}, **_group_specs(old_spec)}
    kept = state.setdefault("pod_templates", {})
    for node in alive_nodes(cluster):
        kept.setdefault(node["node_id"], old_groups.get(node_group(node), {}))
    write_manifest_state(cluster, state)


def _container(template: dict | None) -> dict:
    containers = ((template or {}).get("spec") or {}).get("containers") or [{}]
    return containers[0]


def _iso(seconds: float) -> str:
    return kuberay.now_rfc3339(seconds)


def _stopped(cluster: LocalRay) -> set[str]:
    try:
        return set((cluster.dir / "stopped-nodes").read_text().split())
    except OSError:
        return set()


def alive_nodes(cluster: LocalRay) -> list[dict]:
    """The Ray nodes that run: the State API's ALIVE nodes but those servelab stopped (Ray
    keeps a killed node ALIVE until its health checks run out; a deleted pod is gone at once)."""
    stopped = _stopped(cluster)
    return [n for n in cluster.nodes() if n["node_id"] not in stopped]


def _starting_workers(cluster: LocalRay, alive: list[dict]) -> dict[str, int]:
    """How many worker node processes run whose Ray node has not joined yet, by group."""
    cluster._adopt_workers()
    running: dict[str, int] = {}
    for record in cluster.workers:
        try:
            proc = psutil.Process(record["pid"])
            if abs(proc.create_time() - record.get("started", 0)) > 1e-3 or proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        group = (record.get("labels") or {}).get(GROUP_LABEL, "worker")
        running[group] = running.get(group, 0) + 1
    joined: dict[str, int] = {}
    for node in alive:
        joined[node_group(node)] = joined.get(node_group(node), 0) + 1
    return {g: n - joined.get(g, 0) for g, n in running.items() if n > joined.get(g, 0)}


def pods(cluster: LocalRay, *, head_serving: bool | None = None, state: dict | None = None) -> list[dict]:
    """One pod document per Ray node (head first), then the pods that are not running.

    head_serving: the head's `ray.io/serve` label (a RayService's head gets it from KubeRay's
    proxy health check); None: no such label (a RayCluster).
    """
    state = manifest_state(cluster) if state is None else state
    doc = state.get("doc") or {}
    cluster_spec, kind = _parts(doc)
    name = ray_cluster_name(cluster, state)
    groups = _group_specs(cluster_spec)
    serve = kind == "RayService"
    out, seen = [], {}
    alive = alive_nodes(cluster)
    nodes = sorted(alive, key=lambda n: (not n.get("is_head_node"), n.get("start_time_ms") or 0))
    for node in nodes:
        group = node_group(node)
        is_head = group == "head"
        spec = (state.get("pod_templates") or {}).get(node["node_id"]) or (
            (cluster_spec.get("headGroupSpec") or {}) if is_head else groups.get(group, {}))
        labels = kuberay.pod_labels(name, None if is_head else group,
                                    ((spec.get("template") or {}).get("metadata") or {}).get("labels"),
                                    serve=(bool(head_serving) if is_head else True) if serve else None)
        started = (node.get("start_time_ms") or time.time() * 1000) / 1000
        pod = _pod(kuberay.pod_name(name, None if is_head else group, node["node_id"]), labels, spec,
                   phase="Running", ready=True, started=started, node_id=node["node_id"])
        pod["status"]["podIP"] = node.get("node_ip") or LOOPBACK
        out.append(pod)
        seen[group] = seen.get(group, 0) + 1
    for group, count in _starting_workers(cluster, alive).items():
        spec = groups.get(group, {})
        for index in range(count):
            labels = kuberay.pod_labels(name, group, None, serve=True if serve else None)
            out.append(_pod(kuberay.pod_name(name, group, f"{cluster.dir}-{group}-starting-{len(alive)}-{index}"),
                            labels, spec, phase="Running", ready=False, started=time.time(),
                            note="the Ray node is starting: it has not joined the cluster yet"))
            seen[group] = seen.get(group, 0) + 1
    desired = state.get("desired") or {}
    autoscaled = bool(cluster_spec.get("enableInTreeAutoscaling"))
    capped = len(out) >= max_nodes()  # no room for another Ray node: the scheduler's verdict
    for group, want in desired.items():
        if autoscaled:
            break  # the autoscaler decides how many; its own status says what it waits for
        for index in range(max(0, want - seen.get(group, 0))):
            spec = groups.get(group, {})
            labels = kuberay.pod_labels(name, group, None, serve=True if serve else None)
            pod = _pod(kuberay.pod_name(name, group, f"{cluster.dir}-{group}-pending-{index}"), labels, spec,
                       phase="Pending", ready=False, started=None,
                       note="" if capped else "the Ray node for this pod is about to start")
            if capped:
                pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                "message": _unschedulable()}]
                pod["events"] = [{"type": "Warning", "reason": "FailedScheduling", "from": "default-scheduler",
                                  "message": _unschedulable()}]
            else:  # not created yet: the cluster is still starting its nodes, one after the other
                pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"},
                                               {"type": "Ready", "status": "False"}]
            out.append(pod)
    return out


def _unschedulable() -> str:
    cap = max_nodes()
    return (f"0/1 nodes are available: 1 Too many pods. (local target: this machine stands for the node pool, "
            f"and runs at most SERVELAB_MAX_NODES={cap} Ray nodes, head included; raise it if memory allows)")


def _pod(name: str, labels: dict, group_spec: dict, *, phase: str, ready: bool, started: float | None,
         node_id: str | None = None, note: str = "") -> dict:
    container = _container(group_spec.get("template"))
    default_name = "ray-head" if labels.get(kuberay.NODE_TYPE_LABEL) == "head" else "ray-worker"
    annotations = {NOTE_ANNOTATION: note or "a Ray node on this machine; KubeRay re-creates a Ray pod instead "
                                            "of restarting its container, so restarts stay 0"}
    if node_id:
        annotations["servelab.io/ray-node-id"] = node_id
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, "annotations": annotations,
                     **({"creationTimestamp": _iso(started)} if started else {})},
        "spec": {"containers": [{"name": container.get("name", default_name), "image": container.get("image", ""),
                                 "resources": container.get("resources") or {}}],
                 **({"nodeName": NODE_NAME} if phase != "Pending" else {})},
        "status": {"phase": phase,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   # imageID is required in the API's ContainerStatus: "" as the kubelet reports it
                   # before a pull, which is honest here (no image runs on the local target)
                   "containerStatuses": [{"name": container.get("name", default_name), "ready": ready,
                                          "restartCount": 0, "image": container.get("image", ""), "imageID": "",
                                          "state": {"running": {"startedAt": _iso(started)}} if started
                                          else {"waiting": {"reason": "ContainerCreating"}}}]
                   if phase != "Pending" else []},
        "events": [],
    }
    if started and phase != "Pending":
        pod["status"]["startTime"] = _iso(started)
        pod["events"].append({"type": "Normal", "reason": "Started", "from": "servelab (local target)",
                              "message": "Started the Ray node for this pod on 127.0.0.1"
                                         + (f" (node {node_id[:8]})" if node_id else "")})
    return pod


def _head_ports(cluster: LocalRay) -> list[dict]:
    ports = cluster.ports
    return [{"name": "gcs-server", "port": 6379, "localPort": ports.gcs},
            {"name": "dashboard", "port": 8265, "localPort": ports.dashboard},
            {"name": "metrics", "port": 8080, "localPort": ports.metrics},
            {"name": "serve", "port": 8000, "localPort": ports.serve}]


def _head_selector(name: str) -> dict:
    return {kuberay.CLUSTER_LABEL: name, kuberay.NODE_TYPE_LABEL: "head"}


def list_objects(clusters: list[LocalRay], resource: str) -> list[dict]:
    """What the API server would list for `resource` ("pod", "service", "rayservice",
    "raycluster") across these clusters: a RayService once, each of its clusters as a RayCluster."""
    from servelab.cluster import _service as service
    from servelab.targets import _local_status as local_status

    out, services_seen = [], set()
    for cluster in clusters:
        state = manifest_state(cluster)
        folder = state.get("service")
        name = ray_cluster_name(cluster, state)
        if resource == "pod":
            out += pods(cluster, head_serving=local_status.proxy_healthy(cluster) if folder else None, state=state)
        elif resource == "raycluster":
            doc = state.get("doc") or {}
            spec = doc.get("spec") or {}
            spec = spec.get("rayClusterConfig", spec) if doc.get("kind") == "RayService" else spec
            status = local_status.raycluster_status(cluster)
            out.append(_ray_object("RayCluster", name, spec, status, raycluster_generation(state),
                                   cluster._owner_started))
        elif resource == "service":
            out.append(_service(kuberay.head_service_name(name), _head_selector(name), _head_ports(cluster)))
        if resource in ("service", "rayservice") and folder and folder not in services_seen:
            services_seen.add(folder)
            svc = service.read(Path(folder))
            report = local_status.status(cluster)
            doc = svc.get("doc") or state.get("doc") or {}
            owner = svc.get("name", cluster.name)
            if resource == "rayservice":
                status = {k: v for k, v in report.items()
                          if k not in ("kind", "name", "placement", "nodes", "layer")}
                out.append(_ray_object("RayService", owner, doc.get("spec") or {}, status,
                                       svc.get("generation", 1), cluster._owner_started))
                continue
            active = local_status.cluster_at(svc.get("active"))
            if active is not None:  # KubeRay creates these once a cluster first took traffic
                active_name = ray_cluster_name(active)
                out.append(_service(kuberay.head_service_name(owner), _head_selector(active_name),
                                    _head_ports(active)))
                out.append(_service(kuberay.serve_service_name(owner),
                                    {kuberay.CLUSTER_LABEL: active_name, kuberay.SERVE_LABEL: "true"},
                                    [{"name": "serve", "port": 8000, "localPort": svc["port"]}]))
    return out


def _ray_object(kind: str, name: str, spec: dict, status: dict, generation: int, created: float | None) -> dict:
    return {"apiVersion": "ray.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE, "generation": generation,
                         "creationTimestamp": _iso(created or time.time())},
            "spec": spec, "status": status}


def _service(name: str, selector: dict, ports: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "annotations": {NOTE_ANNOTATION: "reached on this machine at 127.0.0.1:<localPort>"}},
            "spec": {"type": "ClusterIP", "clusterIP": LOOPBACK, "selector": selector,
                     "ports": [{"name": p["name"], "port": p["port"], "targetPort": p["port"],
                                "localPort": p["localPort"]} for p in ports]}}


def node_log_files(cluster: LocalRay, pod: dict) -> list[Path]:
    """The log files of the Ray node behind a pod: its launcher's output and its raylet's log."""
    node_id = (pod["metadata"].get("annotations") or {}).get("servelab.io/ray-node-id")
    if not node_id:
        return []
    logs = cluster.dir / "r" / "session_latest" / "logs"
    files = []
    is_head = pod["metadata"]["labels"].get(kuberay.NODE_TYPE_LABEL) == "head"
    if is_head:
        files.append(cluster.dir / "head.log")
    for path in sorted(logs.glob("raylet*.out")):
        try:
            with path.open(errors="replace") as handle:
                if node_id in handle.read(200_000):
                    files.append(path)
                    break
        except OSError:
            continue
    return [f for f in files if f.exists()]
