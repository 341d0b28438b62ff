"""`servelab get|describe|logs|delete`: kubectl's verbs, columns and flags over both targets.

On the Kubernetes target they read and act on the real objects (the `kubernetes` client);
on the local target on the objects KubeRay would have created for the local cluster
(servelab.targets._local_objects). Each command prints the kubectl command it stands for
with --explain, so what a learner types here transfers.
"""

from __future__ import annotations

import calendar
import json
import time

import yaml

from servelab.errors import ServelabError
from servelab.targets import _kuberay as kuberay

RESOURCES = {  # the names kubectl takes for each resource, short names included
    "pods": "pod", "pod": "pod", "po": "pod",
    "services": "service", "service": "service", "svc": "service",
    "rayservices": "rayservice", "rayservice": "rayservice", "rayservices.ray.io": "rayservice",
    "rayservice.ray.io": "rayservice",
    "rayclusters": "raycluster", "raycluster": "raycluster", "rayclusters.ray.io": "raycluster",
    "raycluster.ray.io": "raycluster",
}


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    started = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    seconds = max(0, int(time.time() - started))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _matches(labels: dict, selector: str | None) -> bool:
    """kubectl's equality selectors: `k=v`, `k==v`, `k!=v`, comma-separated; `k` alone: has the key."""
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    return True


class LocalObjects:
    """The local target's objects, for every running cluster (or the one named)."""

    def __init__(self, name: str | None = None):
        from servelab.cluster._localray import LocalRay

        self.clusters = [c for c in LocalRay.find() if not name or c.name == name]

    def cluster_of(self, obj: dict):
        """The local cluster an object of `list` belongs to (by its ray.io/cluster label or name)."""
        from servelab.targets import _local_objects as objects

        wanted = (obj["metadata"].get("labels") or {}).get(kuberay.CLUSTER_LABEL)
        for cluster in self.clusters:
            if objects.ray_cluster_name(cluster) == wanted:
                return cluster
        raise ServelabError(f"no running local cluster holds {obj['metadata']['name']}", layer="Ray runtime")

    def list(self, resource: str) -> list[dict]:
        from servelab.targets import _local_objects as objects

        return objects.list_objects(self.clusters, resource)


class KubernetesObjects:
    """The same reads on a real cluster: the Kubernetes API through the `kubernetes` client."""

    def __init__(self, target, name: str | None = None):
        self.target, self.name = target, name

    def _core(self):
        from kubernetes import client

        return client.CoreV1Api(self.target.api_client)

    def list(self, resource: str) -> list[dict]:
        from kubernetes import client

        namespace = self.target._namespace()
        serialize = self.target.api_client.sanitize_for_serialization
        if resource == "pod":
            ray_pods = f"{kuberay.IS_RAY_NODE_LABEL}=yes"  # every pod KubeRay creates has it
            items = self._core().list_namespaced_pod(namespace, label_selector=ray_pods).items
            return [serialize(i) for i in items]
        if resource == "service":
            return [serialize(i) for i in self._core().list_namespaced_service(namespace).items]
        plural = {"rayservice": "rayservices", "raycluster": "rayclusters"}[resource]
        listing = client.CustomObjectsApi(self.target.api_client).list_namespaced_custom_object(
            "ray.io", "v1", namespace, plural)
        return listing.get("items") or []

    def events(self, name: str) -> list[dict]:
        namespace = self.target._namespace()
        items = self._core().list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return [{"type": e.type, "reason": e.reason, "from": (e.source.component if e.source else ""),
                 "message": e.message} for e in items]


# -- printing, as kubectl prints -------------------------------------------------------------------

def _pod_row(pod: dict, wide: bool) -> list[str]:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    ready = sum(1 for c in containers if c.get("ready"))
    total = len((pod.get("spec") or {}).get("containers") or [])
    row = [pod["metadata"]["name"], f"{ready}/{total}", status.get("phase", ""),
           str(sum(c.get("restartCount", 0) for c in containers)), _age(pod["metadata"].get("creationTimestamp"))]
    if wide:
        row += [status.get("podIP") or "<none>", (pod.get("spec") or {}).get("nodeName") or "<none>"]
    return row


def _service_row(svc: dict, wide: bool) -> list[str]:
    spec = svc.get("spec") or {}
    ports = ",".join(f"{p['port']}/TCP" + (f"(local {p['localPort']})" if p.get("localPort") else "")
                     for p in spec.get("ports") or [])
    row = [svc["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "None", "<none>", ports,
           _age(svc["metadata"].get("creationTimestamp"))]
    if wide:
        row.append(",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()))
    return row


def _rayservice_row(obj: dict, wide: bool) -> list[str]:
    status = obj.get("status") or {}  # the CRD's printer columns (rayservice_types.go)
    return [obj["metadata"]["name"], status.get("serviceStatus") or "", str(status.get("numServeEndpoints") or "")]


def _raycluster_row(obj: dict, wide: bool) -> list[str]:
    status = obj.get("status") or {}  # the CRD's printer columns (raycluster_types.go)
    row = [obj["metadata"]["name"], str(status.get("desiredWorkerReplicas", "")),
           str(status.get("availableWorkerReplicas", "")), status.get("desiredCPU", ""), status.get("desiredMemory", ""),
           status.get("desiredGPU", ""), status.get("state", ""), _age(obj["metadata"].get("creationTimestamp"))]
    if wide:
        head = status.get("head") or {}
        row[6:6] = [status.get("desiredTPU", "")]
        row += [head.get("podIP", ""), head.get("serviceIP", "")]
    return row


COLUMNS = {
    "pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE"], _pod_row),
    "service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _service_row),
    "rayservice": (["NAME", "SERVICE STATUS", "NUM SERVE ENDPOINTS"], [], _rayservice_row),
    "raycluster": (["NAME", "DESIRED WORKERS", "AVAILABLE WORKERS", "CPUS", "MEMORY", "GPUS", "STATUS", "AGE"],
                   ["HEAD POD IP", "HEAD SERVICE IP"], _raycluster_row),
}


def table(resource: str, items: list[dict], wide: bool = False) -> str:
    names, extra, row = COLUMNS[resource]
    header = names + (extra if wide else [])
    if wide and resource == "raycluster":
        header = names[:6] + ["TPUS"] + names[6:] + extra
    rows = [header] + [row(item, wide) for item in items]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def output(resource: str, items: list[dict], fmt: str | None) -> str:
    if fmt == "json":
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2)
    if fmt == "yaml":
        return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sort_keys=False)
    if fmt == "name":
        kind = resource if resource in ("pod", "service") else f"{resource}.ray.io"  # as kubectl prints it
        return "\n".join(f"{kind}/{i['metadata']['name']}" for i in items)
    if not items:
        return "No resources found in default namespace."
    return table(resource, items, wide=fmt == "wide")


def describe(resource: str, obj: dict, events: list[dict]) -> str:
    """`kubectl describe`: the fields a reader looks at first, then the events."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    lines = [f"Name:         {meta['name']}", f"Namespace:    {meta.get('namespace', 'default')}"]
    labels = meta.get("labels") or {}
    lines.append("Labels:       " + ("\n              ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"))
    annotations = meta.get("annotations") or {}
    lines.append("Annotations:  " + ("\n              ".join(f"{k}: {v}" for k, v in sorted(annotations.items()))
                                     or "<none>"))
    if resource == "pod":
        lines += [f"Node:         {spec.get('nodeName') or '<none>'}", f"Start Time:   {status.get('startTime', '<none>')}",
                  f"Status:       {status.get('phase')}", f"IP:           {status.get('podIP') or '<none>'}",
                  "Containers:"]
        for c in spec.get("containers") or []:
            lines += [f"  {c['name']}:", f"    Image:      {c.get('image')}"]
            for kind in ("limits", "requests"):
                values = (c.get("resources") or {}).get(kind) or {}
                if values:
                    lines.append(f"    {kind.capitalize()}:")
                    lines += [f"      {k}: {v}" for k, v in values.items()]
        lines.append("Conditions:\n  Type           Status")
        lines += [f"  {c['type']:<14} {c['status']}" for c in status.get("conditions") or []]
    else:
        lines.append(f"API Version:  {obj.get('apiVersion')}\nKind:         {obj.get('kind')}")
        if spec:
            lines.append("Spec:")
            lines += ["  " + line for line in yaml.safe_dump(spec, sort_keys=False).splitlines()]
        lines.append("Status:")
        lines += ["  " + line for line in yaml.safe_dump(status, sort_keys=False).splitlines()]
    lines.append("Events:")
    if not events:
        lines.append("  <none>")
    else:
        lines.append(f"  {'Type':<8} {'Reason':<18} {'From':<26} Message")
        lines += [f"  {e.get('type', ''):<8} {e.get('reason', ''):<18} {e.get('from', ''):<26} {e.get('message', '')}"
                  for e in events]
    return "\n".join(lines)


def find(items: list[dict], name: str, resource: str) -> dict:
    for item in items:
        if item["metadata"]["name"] == name:
            return item
    kind = {"pod": "pods", "service": "services", "rayservice": "rayservices.ray.io",
            "raycluster": "rayclusters.ray.io"}[resource]
    raise ServelabError(f'Error from server (NotFound): {kind} "{name}" not found',
                        hint=f"servelab get {resource}s lists them")
