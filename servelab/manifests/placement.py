"""What Ray resources each node of a KubeRay cluster offers, and whether replicas fit.

KubeRay's rule, applied to the Ray container (the first one) of each group:
a limit whose key ends in `gpu` becomes `num-gpus`, the cpu limit (else the
request, rounded up to whole CPUs) becomes `num-cpus`, the memory limit becomes `memory`; values set
explicitly in `rayStartParams` win.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 1e-3}


def quantity(value) -> float:
    """A Kubernetes quantity ("500m", "2", "4Gi") as a number."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or (match.group(2) and match.group(2) not in _SUFFIX):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX.get(match.group(2), 1)


@dataclass(frozen=True)
class NodeShape:
    group: str  # "head" or the worker group's name
    cpus: float
    gpus: float
    memory: float | None
    max_nodes: int  # nodes of this shape at maxReplicas (1 for the head)


def _shape(group: str, spec: dict, max_nodes: int) -> NodeShape:
    params = spec.get("rayStartParams") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    resources = containers[0].get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}

    def pick(param, from_pod):
        return quantity(params[param]) if param in params else from_pod

    cpu = limits.get("cpu", requests.get("cpu"))
    gpus = sum(quantity(v) for k, v in limits.items() if str(k).endswith("gpu"))
    memory = limits.get("memory")
    return NodeShape(
        group=group,
        # KubeRay rounds a pod's CPU quantity up to whole CPUs ("500m" -> 1).
        cpus=pick("num-cpus", float(math.ceil(quantity(cpu) - 1e-9)) if cpu is not None else 0.0),
        gpus=pick("num-gpus", gpus),
        memory=pick("memory", quantity(memory) if memory is not None else None),
        max_nodes=max_nodes,
    )


def container_env(group: dict) -> tuple[dict[str, str], list[str]]:
    """The `env` of a group's Ray container (the first one), as its Ray processes see it: the
    entries with a literal `value`, and what only an API server can resolve: the names of those
    taken `valueFrom` a Secret, a ConfigMap or the pod's own fields, and each `envFrom` source
    (as "envFrom configMapRef NAME")."""
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    literal, unresolved = {}, []
    for source in containers[0].get("envFrom") or []:
        for ref in ("configMapRef", "secretRef"):
            if isinstance(source, dict) and isinstance(source.get(ref), dict):
                unresolved.append(f"envFrom {ref} {source[ref].get('name', '?')}")
    for entry in containers[0].get("env") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        if "valueFrom" in entry:
            unresolved.append(str(entry["name"]))
        else:  # Kubernetes' default for an entry without a value is the empty string
            literal[str(entry["name"])] = str(entry.get("value", ""))
    return literal, unresolved


def desired_replicas(group: dict) -> int:
    """How many pods KubeRay runs for a worker group: `replicas` clamped to [minReplicas,
    maxReplicas] (GetWorkerGroupDesiredReplicas, controllers/ray/utils/util.go)."""
    from servelab.targets._kuberay import group_desired_replicas  # no import cycle at load time

    return group_desired_replicas(group)


def node_shapes(cluster_spec: dict) -> list[NodeShape]:
    """Head first, then one shape per worker group (at its maxReplicas)."""
    shapes = [_shape("head", cluster_spec.get("headGroupSpec") or {}, 1)]
    for group in cluster_spec.get("workerGroupSpecs") or []:
        most = group.get("maxReplicas", group.get("replicas", 0))
        shapes.append(_shape(str(group.get("groupName", "?")), group, int(most or 0)))
    return shapes


@dataclass(frozen=True)
class Demand:
    """Replicas of one deployment, each needing cpus and gpus."""
    name: str
    cpus: float
    gpus: float
    replicas: int


def unplaceable(shapes: list[NodeShape], demands: list[Demand]) -> dict[str, int]:
    """Replicas per deployment that cannot be placed even with every group at maxReplicas.

    First-fit decreasing over every node the cluster can have: the biggest
    replicas (GPU first) are placed first, as they are the hardest to fit.
    Fractional GPUs pack onto one device (four 0.25-GPU replicas per GPU).
    """
    nodes = [[s.cpus, s.gpus] for s in shapes for _ in range(s.max_nodes)]
    left: dict[str, int] = {}
    eps = 1e-9
    for d in sorted(demands, key=lambda d: (d.gpus, d.cpus), reverse=True):
        for _ in range(d.replicas):
            for node in nodes:
                if node[0] + eps >= d.cpus and node[1] + eps >= d.gpus:
                    node[0] -= d.cpus
                    node[1] -= d.gpus
                    break
            else:
                left[d.name] = left.get(d.name, 0) + 1
    return left


def largest(shapes: list[NodeShape]) -> tuple[float, float]:
    """The most CPUs and the most GPUs any single node offers."""
    usable = [s for s in shapes if s.max_nodes > 0] or [NodeShape("none", 0, 0, None, 0)]
    return max(s.cpus for s in usable), max(s.gpus for s in usable)


def gpus_per_device(gpus: float) -> int:
    """How many replicas asking for `gpus` share one device (0 for whole GPUs)."""
    return math.floor(1 / gpus + 1e-9) if 0 < gpus < 1 else 0
