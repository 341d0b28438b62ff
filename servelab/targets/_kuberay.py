"""KubeRay 1.7's own rules, as the local target needs them: names, labels, the spec hash,
the RayService conditions and the RayCluster status.

Each rule was read from ray-project/kuberay at tag v1.7.0 (paths below are under
`ray-operator/`); the unit tests that assert them name the same files. The local target
calls these with what it observes (serve endpoints, Serve's application statuses, Ray
nodes); the Kubernetes target reads the same fields from the real objects.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time

# controllers/ray/utils/constant.go
CLUSTER_LABEL = "ray.io/cluster"
NODE_TYPE_LABEL = "ray.io/node-type"
GROUP_LABEL = "ray.io/group"
IDENTIFIER_LABEL = "ray.io/identifier"
IS_RAY_NODE_LABEL = "ray.io/is-ray-node"
SERVE_LABEL = "ray.io/serve"
HEAD_GROUP = "headgroup"
APP_NAME_LABEL, APP_NAME = "app.kubernetes.io/name", "kuberay"
CREATED_BY_LABEL, CREATED_BY = "app.kubernetes.io/created-by", "kuberay-operator"
DEFAULT_PORTS = {"client": "10001", "dashboard": "8265", "gcs-server": "6379", "metrics": "8080", "serve": "8000"}
DEFAULT_DELETION_DELAY_S = 60  # RayClusterDeletionDelaySeconds' default (rayservice_controller.go)

# apis/ray/v1/rayservice_types.go: condition types and reasons, the deprecated serviceStatus
READY, UPGRADE_IN_PROGRESS = "Ready", "UpgradeInProgress"
INITIALIZING = "Initializing"
ZERO_SERVE_ENDPOINTS, NON_ZERO_SERVE_ENDPOINTS = "ZeroServeEndpoints", "NonZeroServeEndpoints"
BOTH_CLUSTERS, NO_PENDING, NO_ACTIVE = "BothActivePendingClustersExist", "NoPendingCluster", "NoActiveCluster"
SERVICE_RUNNING, SERVICE_NOT_RUNNING = "Running", ""
UPGRADE_TYPES = ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")

# k8s.io/apimachinery/pkg/util/rand: what rand.String(5) and the API server's generateName draw from
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(seed: str, length: int = 5) -> str:
    """Five characters of KubeRay's alphabet, derived from `seed` so the same Ray node keeps
    the same pod name across calls (KubeRay draws them at random once, at creation)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in digest[:length])


def pod_name_prefix(cluster: str, group: str | None) -> str:
    """`PodName` (controllers/ray/utils/util.go): the head's generateName is `<cluster>-head-`,
    a worker's `<cluster>-<group>-worker-`; the prefix is cut to 50 characters."""
    prefix = cluster if group is None else f"{cluster}-{group}"
    node_type = "head" if group is None else "worker"
    return f"{prefix[:50]}-{node_type}-".lower()


def pod_name(cluster: str, group: str | None, seed: str) -> str:
    return pod_name_prefix(cluster, group) + random_suffix(seed)


def ray_cluster_name(service: str, seed: str) -> str:
    """`GenerateRayClusterName` (utils/util.go): a RayService's cluster is `<service>-<5 random>`."""
    return f"{service}-{random_suffix(seed)}"


def head_service_name(owner: str) -> str:
    """`GenerateHeadServiceName` (utils/util.go): `<owner>-head-svc`."""
    return f"{owner}-head-svc"


def serve_service_name(owner: str) -> str:
    """`GenerateServeServiceName` (utils/util.go): `<owner>-serve-svc`."""
    return f"{owner}-serve-svc"


def pod_labels(cluster: str, group: str | None, template_labels: dict | None = None,
               serve: bool | None = None) -> dict[str, str]:
    """The labels KubeRay puts on a Ray pod (controllers/ray/common/pod.go, labelPod):
    the template's own labels, then KubeRay's, which win."""
    node_type = "head" if group is None else "worker"
    labels = dict(template_labels or {})
    labels.update({
        CLUSTER_LABEL: cluster,
        NODE_TYPE_LABEL: node_type,
        GROUP_LABEL: HEAD_GROUP if group is None else group,
        IDENTIFIER_LABEL: f"{cluster}-{node_type}",  # GenerateIdentifier (utils/util.go)
        IS_RAY_NODE_LABEL: "yes",
        APP_NAME_LABEL: APP_NAME,
        CREATED_BY_LABEL: CREATED_BY,
    })
    if serve is not None:
        labels[SERVE_LABEL] = "true" if serve else "false"
    return labels


# -- updates -------------------------------------------------------------------------------

def _without_replicas(cluster_spec: dict) -> dict:
    """`GenerateHashWithoutReplicasAndWorkersToDelete` (utils/util.go) mutes what must not
    cause a new cluster: every group's replicas, minReplicas, maxReplicas and
    scaleStrategy.workersToDelete, all pod templates' tolerations and schedulingGates,
    and the RayCluster's upgradeStrategy; `suspend` too (rayClusterSpecForHashing in
    rayservice_controller.go clears it before hashing)."""
    spec = copy.deepcopy(cluster_spec)
    spec.pop("suspend", None)

    def mute_template(group: dict) -> None:
        pod_spec = ((group.get("template") or {}).get("spec")) or {}
        pod_spec.pop("tolerations", None)
        pod_spec.pop("schedulingGates", None)

    mute_template(spec.get("headGroupSpec") or {})
    for group in spec.get("workerGroupSpecs") or []:
        for key in ("replicas", "minReplicas", "maxReplicas"):
            group.pop(key, None)
        (group.get("scaleStrategy") or {}).pop("workersToDelete", None)
        if group.get("scaleStrategy") == {}:
            group.pop("scaleStrategy")
        mute_template(group)
    spec.pop("upgradeStrategy", None)
    return spec


def spec_hash(cluster_spec: dict) -> str:
    """The hash KubeRay compares to decide on a new cluster (not KubeRay's bytes: Go and
    Python serialise differently; equal for the same fields, which is what counts)."""
    muted = _without_replicas(cluster_spec)
    return hashlib.sha1(json.dumps(muted, sort_keys=True).encode()).hexdigest()


def classify_update(old_spec: dict, new_spec: dict) -> str:
    """What KubeRay does with a changed `rayClusterConfig` (rayservice_controller.go,
    shouldPrepareNewCluster and the worker-groups check):

    - "unchanged": equal hash and the same groups; only replicas/min/max may differ (the
      running cluster scales, in place);
    - "appended": worker groups were added at the end and nothing else changed (in place);
    - "new-cluster": any other change (the upgrade strategy decides what follows).
    """
    if spec_hash(old_spec) == spec_hash(new_spec):
        return "unchanged"
    old_groups = old_spec.get("workerGroupSpecs") or []
    new_groups = new_spec.get("workerGroupSpecs") or []
    if len(new_groups) > len(old_groups):
        head = {**new_spec, "workerGroupSpecs": new_groups[:len(old_groups)]}
        if spec_hash(old_spec) == spec_hash(head):
            return "appended"
    return "new-cluster"


def upgrade_type(service_spec: dict) -> str:
    """`spec.upgradeStrategy.type`, NewCluster when unset (isZeroDowntimeUpgradeEnabled)."""
    return ((service_spec.get("upgradeStrategy") or {}).get("type")) or "NewCluster"


def deletion_delay_s(service_spec: dict) -> int:
    """`spec.rayClusterDeletionDelaySeconds`, default 60 (rayservice_controller.go)."""
    value = service_spec.get("rayClusterDeletionDelaySeconds")
    return DEFAULT_DELETION_DELAY_S if value is None else int(value)


# -- RayService conditions -------------------------------------------------------------------

def now_rfc3339(when: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


def set_condition(conditions: list[dict], type_: str, status: str, reason: str, message: str,
                  generation: int, when: float | None = None) -> None:
    """`meta.SetStatusCondition` as KubeRay's setCondition calls it: the transition time
    changes only when the status does."""
    new = {"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": now_rfc3339(when)}
    for i, old in enumerate(conditions):
        if old.get("type") == type_:
            if old.get("status") == status:
                new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
            conditions[i] = new
            return
    conditions.append(new)


def condition_is_true(conditions: list[dict], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def calculate_conditions(conditions: list[dict], *, num_serve_endpoints: int, active_cluster: str,
                         pending_cluster: str, generation: int, when: float | None = None) -> list[dict]:
    """`calculateConditions` (controllers/ray/rayservice_controller.go), on a copy of the
    previous conditions: Ready from the number of serve endpoints, UpgradeInProgress from
    which clusters exist. (KubeRay's initializing timeout is opt-in by annotation; not here.)"""
    out = copy.deepcopy(conditions or [])
    if not out:
        message = "RayService is initializing"
        set_condition(out, READY, "False", INITIALIZING, message, generation, when)
        set_condition(out, UPGRADE_IN_PROGRESS, "False", INITIALIZING, message, generation, when)
    if num_serve_endpoints > 0:
        set_condition(out, READY, "True", NON_ZERO_SERVE_ENDPOINTS,
                      "Number of serve endpoints is greater than 0", generation, when)
    elif condition_is_true(out, READY):
        set_condition(out, READY, "False", ZERO_SERVE_ENDPOINTS,
                      "Number of serve endpoints dropped to 0", generation, when)
    if active_cluster and pending_cluster:
        set_condition(out, UPGRADE_IN_PROGRESS, "True", BOTH_CLUSTERS,
                      "Both active and pending Ray clusters exist", generation, when)
    elif active_cluster:
        set_condition(out, UPGRADE_IN_PROGRESS, "False", NO_PENDING,
                      "Active Ray cluster exists and no pending Ray cluster", generation, when)
    else:
        upgrade = next((c for c in out if c.get("type") == UPGRADE_IN_PROGRESS), None)
        if upgrade is None or upgrade.get("reason") not in (INITIALIZING, "InitializingTimeout"):
            set_condition(out, UPGRADE_IN_PROGRESS, "Unknown", NO_ACTIVE,
                          "No active Ray cluster exists, and the RayService is not initializing. "
                          "Please open a GitHub issue in the KubeRay repository.", generation, when)
    return out


def applications_ready(app_statuses: dict) -> bool:
    """`getAndCheckServeStatus` (rayservice_controller.go): a cluster is ready to take traffic
    when it has at least one application and every one is RUNNING."""
    return bool(app_statuses) and all(a.get("status") == "RUNNING" for a in app_statuses.values())


def app_statuses(serve_applications: dict) -> dict:
    """Serve's REST listing in the shape of `applicationStatuses` (AppStatus in
    rayservice_types.go: status, message, serveDeploymentStatuses{status, message})."""
    out = {}
    for name, app in (serve_applications or {}).items():
        deployments = {d: {"status": dep.get("status"), "message": dep.get("message", "")}
                       for d, dep in (app.get("deployments") or {}).items()}
        out[name or "default"] = {"status": app.get("status"), "message": app.get("message", ""),
                                  "serveDeploymentStatuses": deployments}
    return out


# -- RayCluster status --------------------------------------------------------------------------

def _pod_resources(template: dict) -> dict[str, float]:
    """`CalculatePodResource` (utils/util.go): per container, requests, then limits for names
    without a request; summed over containers."""
    from servelab.manifests.placement import quantity

    total: dict[str, float] = {}
    for container in ((template or {}).get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        merged = dict(resources.get("requests") or {})
        for key, value in (resources.get("limits") or {}).items():
            merged.setdefault(key, value)
        for key, value in merged.items():
            total[key] = total.get(key, 0.0) + quantity(value)
    return total


def format_quantity(value: float, binary: bool = False) -> str:
    """A number as Kubernetes prints a quantity: "5", "500m", "6Gi"."""
    if binary:
        for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if value >= size and value % size == 0:
                return f"{int(value // size)}{suffix}"
    if value == int(value):
        return str(int(value))
    return f"{round(value * 1000)}m"


def desired_resources(cluster_spec: dict) -> dict[str, str]:
    """`CalculateDesiredResources` (utils/util.go) and `sumGPUs` (raycluster_controller.go):
    the head pod plus each group's pod times its `replicas` (not clamped), as quantities."""
    totals: dict[str, float] = dict(_pod_resources((cluster_spec.get("headGroupSpec") or {}).get("template")))
    for group in cluster_spec.get("workerGroupSpecs") or []:
        if group.get("suspend"):
            continue
        hosts = int(group.get("numOfHosts") or 1)
        for key, value in _pod_resources(group.get("template")).items():
            totals[key] = totals.get(key, 0.0) + value * hosts * int(group.get("replicas") or 0)
    gpus = sum(v for k, v in totals.items() if k.endswith("gpu"))
    return {"desiredCPU": format_quantity(totals.get("cpu", 0.0)),
            "desiredMemory": format_quantity(totals.get("memory", 0.0), binary=True),
            "desiredGPU": format_quantity(gpus),
            "desiredTPU": format_quantity(totals.get("google.com/tpu", 0.0))}


def _pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def raycluster_status(cluster_name: str, cluster_spec: dict, pods: list[dict], previous: dict | None,
                      generation: int, when: float | None = None) -> dict:
    """`calculateStatus` (controllers/ray/raycluster_controller.go) over the cluster's pods
    (Kubernetes pod documents): replica counts, desired resources, state, conditions."""
    previous = previous or {}
    workers = [p for p in pods if (p["metadata"].get("labels") or {}).get(NODE_TYPE_LABEL) == "worker"]
    groups = cluster_spec.get("workerGroupSpecs") or []
    desired = sum(group_desired_replicas(g) for g in groups)
    status = {
        "readyWorkerReplicas": sum(_running(p) and _pod_ready(p) for p in workers),  # CalculateReadyReplicas
        "availableWorkerReplicas": sum(_running(p) for p in workers),  # CalculateAvailableReplicas
        "desiredWorkerReplicas": desired,
        # CalculateMinReplicas / CalculateMaxReplicas (utils/util.go): times numOfHosts, max saturating
        "minWorkerReplicas": sum(int(g.get("minReplicas") or 0) * int(g.get("numOfHosts") or 1)
                                 for g in groups if not g.get("suspend")),
        "maxWorkerReplicas": min(2**31 - 1, sum(
            int(g.get("maxReplicas") if g.get("maxReplicas") is not None else 2**31 - 1) * int(g.get("numOfHosts") or 1)
            for g in groups if not g.get("suspend"))),
        **desired_resources(cluster_spec),
        "observedGeneration": generation,
    }
    all_running = bool(pods) and all(_running(p) and _pod_ready(p) for p in pods)  # CheckAllPodsRunning
    state = previous.get("state")
    if len(pods) == desired + 1 and all_running:
        state = "ready"
    if state:
        status["state"] = state
    status["lastUpdateTime"] = now_rfc3339(when)
    transitions = dict(previous.get("stateTransitionTimes") or {})
    if state and state != previous.get("state"):
        transitions[state] = now_rfc3339(when)
    if transitions:
        status["stateTransitionTimes"] = transitions
    conditions = copy.deepcopy(previous.get("conditions") or [])
    head = next((p for p in pods if (p["metadata"].get("labels") or {}).get(NODE_TYPE_LABEL) == "head"), None)
    if head is None:
        set_condition(conditions, "HeadPodReady", "False", "HeadPodNotFound", "Head Pod not found", generation, when)
    else:
        ready = _pod_ready(head)
        set_condition(conditions, "HeadPodReady", "True" if ready else "False",
                      "HeadPodRunningAndReady" if ready else "Unknown", "", generation, when)
        # the default head Service is headless, so serviceIP is the pod's IP (raycluster_controller.go)
        status["head"] = {"podIP": head["status"].get("podIP"), "podName": head["metadata"]["name"],
                          "serviceIP": head["status"].get("podIP"), "serviceName": head_service_name(cluster_name)}
        status["endpoints"] = dict(DEFAULT_PORTS)
    if not condition_is_true(conditions, "RayClusterProvisioned"):  # set once, the first time all are ready
        if all_running:
            set_condition(conditions, "RayClusterProvisioned", "True", "AllPodRunningAndReadyFirstTime",
                          "All Ray Pods are ready for the first time", generation, when)
        else:
            set_condition(conditions, "RayClusterProvisioned", "False", "RayClusterPodsProvisioning",
                          "RayCluster Pods are being provisioned for first time", generation, when)
    # not suspending and not suspended: both False, reason = the type, no message
    set_condition(conditions, "RayClusterSuspended", "False", "RayClusterSuspended", "", generation, when)
    set_condition(conditions, "RayClusterSuspending", "False", "RayClusterSuspending", "", generation, when)
    for cond in conditions:  # the RayCluster's conditions carry no observedGeneration
        cond.pop("observedGeneration", None)
    status["conditions"] = conditions
    return status


def group_desired_replicas(group: dict) -> int:
    """`GetWorkerGroupDesiredReplicas` (utils/util.go): replicas clamped to [minReplicas,
    maxReplicas], times numOfHosts; 0 for a suspended group."""
    if group.get("suspend"):
        return 0
    low = int(group.get("minReplicas") or 0)
    high = group.get("maxReplicas")
    count = group.get("replicas")
    count = low if count is None or count < low else int(count)
    if high is not None and count > int(high):
        count = int(high)
    return count * int(group.get("numOfHosts") or 1)
