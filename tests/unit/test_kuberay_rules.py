"""KubeRay 1.7's rules as servelab.targets._kuberay implements them.

Each test names the file of ray-project/kuberay (tag v1.7.0, under ray-operator/) it was read from.
"""

import copy

import pytest

from servelab.targets import _kuberay as kuberay

SPEC = {
    "rayVersion": "2.60.0",
    "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
        {"name": "ray-head", "image": "rayproject/ray:2.60.0-py311",
         "resources": {"limits": {"cpu": "2", "memory": "4Gi"}, "requests": {"cpu": "500m"}}}]}}},
    "workerGroupSpecs": [
        {"groupName": "cpu-workers", "replicas": 2, "minReplicas": 1, "maxReplicas": 4,
         "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.60.0-py311",
                                               "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}},
        {"groupName": "gpu-workers", "replicas": 1, "minReplicas": 0, "maxReplicas": 1,
         "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.60.0-py311-gpu",
                                               "resources": {"limits": {"cpu": "2", "memory": "4Gi",
                                                                        "nvidia.com/gpu": "1"}}}]}}},
    ],
}


def changed(change):
    spec = copy.deepcopy(SPEC)
    change(spec)
    return spec


# -- names and labels: controllers/ray/utils/util.go (PodName, GenerateRayClusterName,
#    GenerateHeadServiceName, GenerateServeServiceName), controllers/ray/common/pod.go (labelPod),
#    controllers/ray/utils/constant.go (label keys, "headgroup")

def test_pod_names_follow_podname_and_generate_name():
    head = kuberay.pod_name("rag-x7k2p", None, "node-a")
    worker = kuberay.pod_name("rag-x7k2p", "gpu-workers", "node-b")
    assert head.startswith("rag-x7k2p-head-") and len(head) == len("rag-x7k2p-head-") + 5
    assert worker.startswith("rag-x7k2p-gpu-workers-worker-")
    suffix = worker.rsplit("-", 1)[1]
    assert set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")  # k8s.io/apimachinery rand.String
    assert kuberay.pod_name("rag-x7k2p", None, "node-a") == head  # the same node keeps its pod name
    assert kuberay.pod_name("rag-x7k2p", None, "node-c") != head


def test_pod_name_prefix_is_cut_to_50_characters_and_lowercased():
    prefix = kuberay.pod_name_prefix("A" * 60, None)
    assert prefix == "a" * 50 + "-head-"
    assert kuberay.pod_name_prefix("c", "g" * 60) == ("c-" + "g" * 48) + "-worker-"


def test_ray_cluster_and_service_names():
    name = kuberay.ray_cluster_name("support-assistant", "seed")
    assert name.startswith("support-assistant-") and len(name) == len("support-assistant-") + 5
    assert kuberay.head_service_name("support-assistant") == "support-assistant-head-svc"
    assert kuberay.serve_service_name("support-assistant") == "support-assistant-serve-svc"


def test_pod_labels_are_kuberays_and_win_over_the_template():
    labels = kuberay.pod_labels("c1", "gpu-workers", {"team": "ml", "ray.io/group": "mine"}, serve=True)
    assert labels == {"team": "ml", "ray.io/cluster": "c1", "ray.io/node-type": "worker",
                      "ray.io/group": "gpu-workers", "ray.io/identifier": "c1-worker", "ray.io/is-ray-node": "yes",
                      "app.kubernetes.io/name": "kuberay", "app.kubernetes.io/created-by": "kuberay-operator",
                      "ray.io/serve": "true"}
    head = kuberay.pod_labels("c1", None, None, serve=False)
    assert head["ray.io/group"] == "headgroup" and head["ray.io/node-type"] == "head"
    assert head["ray.io/serve"] == "false" and head["ray.io/identifier"] == "c1-head"
    assert "ray.io/serve" not in kuberay.pod_labels("c1", None)  # a RayCluster's pods: no serve label


# -- updates: utils/util.go (GenerateHashWithoutReplicasAndWorkersToDelete),
#    controllers/ray/rayservice_controller.go (isClusterSpecHashEqual, shouldPrepareNewCluster,
#    rayClusterSpecForHashing, isZeroDowntimeUpgradeEnabled)

@pytest.mark.parametrize("change", [
    lambda s: s["workerGroupSpecs"][0].update(replicas=3),
    lambda s: s["workerGroupSpecs"][0].update(minReplicas=0, maxReplicas=8),
    lambda s: s["workerGroupSpecs"][0].update(scaleStrategy={"workersToDelete": ["pod-a"]}),
    lambda s: s["workerGroupSpecs"][1]["template"]["spec"].update(tolerations=[{"key": "gpu"}]),
    lambda s: s["headGroupSpec"]["template"]["spec"].update(schedulingGates=[{"name": "kueue"}]),
    lambda s: s.update(suspend=True),
], ids=["replicas", "min-max", "workersToDelete", "tolerations", "schedulingGates", "suspend"])
def test_what_the_hash_ignores_changes_nothing(change):
    assert kuberay.classify_update(SPEC, changed(change)) == "unchanged"


def test_worker_groups_appended_at_the_end_update_in_place():
    extra = copy.deepcopy(SPEC["workerGroupSpecs"][0]) | {"groupName": "more-cpus"}
    appended = changed(lambda s: s["workerGroupSpecs"].append(extra))
    assert kuberay.classify_update(SPEC, appended) == "appended"
    inserted = changed(lambda s: s["workerGroupSpecs"].insert(0, extra))
    assert kuberay.classify_update(SPEC, inserted) == "new-cluster"
    removed = changed(lambda s: s["workerGroupSpecs"].pop())
    assert kuberay.classify_update(SPEC, removed) == "new-cluster"


@pytest.mark.parametrize("change", [
    lambda s: s["workerGroupSpecs"][1]["template"]["spec"]["containers"][0].update(image="rayproject/ray:2.61.0"),
    lambda s: s["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"].update(cpu="3"),
    lambda s: s["headGroupSpec"]["rayStartParams"].update({"num-cpus": "0"}),
    lambda s: s.update(enableInTreeAutoscaling=True),
], ids=["image", "resources", "rayStartParams", "autoscaling"])
def test_any_other_change_needs_a_new_cluster(change):
    assert kuberay.classify_update(SPEC, changed(change)) == "new-cluster"


def test_upgrade_strategy_and_deletion_delay_defaults():
    assert kuberay.upgrade_type({}) == "NewCluster"
    assert kuberay.upgrade_type({"upgradeStrategy": {"type": "None"}}) == "None"
    assert kuberay.deletion_delay_s({}) == 60
    assert kuberay.deletion_delay_s({"rayClusterDeletionDelaySeconds": 5}) == 5


# -- conditions: controllers/ray/rayservice_controller.go (calculateConditions, setCondition),
#    apis/ray/v1/rayservice_types.go (condition types, reasons)

def by_type(conditions):
    return {c["type"]: c for c in conditions}


def test_a_new_rayservice_is_initializing_until_it_has_serve_endpoints():
    conds = by_type(kuberay.calculate_conditions([], num_serve_endpoints=0, active_cluster="",
                                                 pending_cluster="svc-abcde", generation=1))
    assert (conds["Ready"]["status"], conds["Ready"]["reason"], conds["Ready"]["message"]) == \
        ("False", "Initializing", "RayService is initializing")
    # no active cluster yet, but initializing: UpgradeInProgress keeps its Initializing reason
    assert (conds["UpgradeInProgress"]["status"], conds["UpgradeInProgress"]["reason"]) == ("False", "Initializing")


def test_ready_follows_the_number_of_serve_endpoints():
    first = kuberay.calculate_conditions([], num_serve_endpoints=0, active_cluster="", pending_cluster="c",
                                         generation=1, when=1000)
    ready = kuberay.calculate_conditions(first, num_serve_endpoints=1, active_cluster="c", pending_cluster="",
                                         generation=1, when=2000)
    conds = by_type(ready)
    assert (conds["Ready"]["status"], conds["Ready"]["reason"], conds["Ready"]["message"]) == \
        ("True", "NonZeroServeEndpoints", "Number of serve endpoints is greater than 0")
    assert (conds["UpgradeInProgress"]["reason"], conds["UpgradeInProgress"]["message"]) == \
        ("NoPendingCluster", "Active Ray cluster exists and no pending Ray cluster")
    dropped = by_type(kuberay.calculate_conditions(ready, num_serve_endpoints=0, active_cluster="c",
                                                   pending_cluster="", generation=2, when=3000))
    assert (dropped["Ready"]["status"], dropped["Ready"]["reason"], dropped["Ready"]["message"]) == \
        ("False", "ZeroServeEndpoints", "Number of serve endpoints dropped to 0")
    assert dropped["Ready"]["observedGeneration"] == 2


def test_the_transition_time_moves_only_when_the_status_does():
    one = kuberay.calculate_conditions([], num_serve_endpoints=1, active_cluster="c", pending_cluster="",
                                       generation=1, when=1000)
    two = kuberay.calculate_conditions(one, num_serve_endpoints=2, active_cluster="c", pending_cluster="",
                                       generation=1, when=5000)
    assert by_type(one)["Ready"]["lastTransitionTime"] == by_type(two)["Ready"]["lastTransitionTime"]
    three = kuberay.calculate_conditions(two, num_serve_endpoints=0, active_cluster="c", pending_cluster="",
                                         generation=1, when=9000)
    assert by_type(three)["Ready"]["lastTransitionTime"] == kuberay.now_rfc3339(9000) != \
        by_type(two)["Ready"]["lastTransitionTime"]


def test_upgrade_in_progress_while_both_clusters_exist():
    ready = kuberay.calculate_conditions([], num_serve_endpoints=1, active_cluster="c1", pending_cluster="",
                                         generation=1)
    upgrading = by_type(kuberay.calculate_conditions(ready, num_serve_endpoints=1, active_cluster="c1",
                                                     pending_cluster="c2", generation=2))
    assert (upgrading["UpgradeInProgress"]["status"], upgrading["UpgradeInProgress"]["reason"],
            upgrading["UpgradeInProgress"]["message"]) == \
        ("True", "BothActivePendingClustersExist", "Both active and pending Ray clusters exist")
    assert upgrading["Ready"]["status"] == "True"  # the active cluster keeps serving


def test_applications_ready_means_every_application_running():
    # controllers/ray/rayservice_controller.go (getAndCheckServeStatus)
    assert not kuberay.applications_ready({})
    assert kuberay.applications_ready({"a": {"status": "RUNNING"}, "b": {"status": "RUNNING"}})
    assert not kuberay.applications_ready({"a": {"status": "RUNNING"}, "b": {"status": "DEPLOY_FAILED"}})


# -- RayCluster status: controllers/ray/raycluster_controller.go (calculateStatus, sumGPUs),
#    controllers/ray/utils/util.go (CalculateDesiredResources, CalculatePodResource,
#    GetWorkerGroupDesiredReplicas, CheckAllPodsRunning), apis/ray/v1/raycluster_types.go

def pod(name, node_type, group, phase="Running", ready=True):
    return {"metadata": {"name": name, "labels": kuberay.pod_labels("c1", None if node_type == "head" else group)},
            "status": {"phase": phase, "podIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_desired_replicas_are_clamped_and_resources_prefer_requests():
    assert kuberay.group_desired_replicas({"replicas": 9, "minReplicas": 1, "maxReplicas": 4}) == 4
    assert kuberay.group_desired_replicas({"replicas": 0, "minReplicas": 2, "maxReplicas": 4}) == 2
    assert kuberay.group_desired_replicas({"minReplicas": 1}) == 1
    assert kuberay.group_desired_replicas({"replicas": 2, "suspend": True}) == 0
    assert kuberay.group_desired_replicas({"replicas": 2, "numOfHosts": 2}) == 4
    hosts = {"workerGroupSpecs": [{"replicas": 1, "minReplicas": 1, "maxReplicas": 3, "numOfHosts": 2},
                                  {"replicas": 1, "minReplicas": 0}]}
    status = kuberay.raycluster_status("c", hosts, [], None, 1)
    assert (status["minWorkerReplicas"], status["maxWorkerReplicas"]) == (2, 2**31 - 1)  # saturates
    # head: request 500m wins over the 2-CPU limit; workers: 2 x 1 CPU + 1 x 2 CPU
    assert kuberay.desired_resources(SPEC) == {"desiredCPU": "4500m", "desiredMemory": "12Gi",
                                               "desiredGPU": "1", "desiredTPU": "0"}


def test_state_turns_ready_once_every_desired_pod_runs_and_stays():
    pods = [pod("h", "head", None), pod("w1", "worker", "cpu-workers"), pod("w2", "worker", "cpu-workers")]
    status = kuberay.raycluster_status("c1", SPEC, pods, None, 1)
    assert status["desiredWorkerReplicas"] == 3 and status["minWorkerReplicas"] == 1
    assert status["maxWorkerReplicas"] == 5
    assert "state" not in status and "stateTransitionTimes" not in status  # 3 pods where 4 are desired
    assert [c["type"] for c in status["conditions"]] == ["HeadPodReady", "RayClusterProvisioned",
                                                         "RayClusterSuspended", "RayClusterSuspending"]
    assert {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}["RayClusterSuspended"] == \
        ("False", "RayClusterSuspended")
    conds = by_type(status["conditions"])
    assert conds["HeadPodReady"]["reason"] == "HeadPodRunningAndReady"
    assert conds["RayClusterProvisioned"]["reason"] == "AllPodRunningAndReadyFirstTime"
    assert "observedGeneration" not in conds["HeadPodReady"]
    pods.append(pod("g1", "worker", "gpu-workers"))
    status = kuberay.raycluster_status("c1", SPEC, pods, status, 1, when=1000)
    assert status["state"] == "ready" and status["readyWorkerReplicas"] == 3
    assert status["stateTransitionTimes"] == {"ready": kuberay.now_rfc3339(1000)}
    assert status["head"] == {"podIP": "127.0.0.1", "podName": "h", "serviceIP": "127.0.0.1",
                              "serviceName": "c1-head-svc"}
    # a worker that stops being ready: the state stays "ready" (only a suspend replaces it)
    pods[1]["status"]["conditions"][0]["status"] = "False"
    later = kuberay.raycluster_status("c1", SPEC, pods, status, 1, when=2000)
    assert later["state"] == "ready" and later["readyWorkerReplicas"] == 2 and later["availableWorkerReplicas"] == 3
    assert later["stateTransitionTimes"] == {"ready": kuberay.now_rfc3339(1000)}  # no transition since
    assert later["lastUpdateTime"] == kuberay.now_rfc3339(2000)
    assert by_type(later["conditions"])["RayClusterProvisioned"]["status"] == "True"


def test_pods_still_provisioning_and_a_missing_head():
    status = kuberay.raycluster_status("c1", SPEC, [pod("w1", "worker", "cpu-workers", phase="Pending", ready=False)],
                                       None, 1)
    conds = by_type(status["conditions"])
    assert (conds["HeadPodReady"]["reason"], conds["HeadPodReady"]["message"]) == ("HeadPodNotFound",
                                                                                   "Head Pod not found")
    assert (conds["RayClusterProvisioned"]["status"], conds["RayClusterProvisioned"]["reason"]) == \
        ("False", "RayClusterPodsProvisioning")
    assert status["availableWorkerReplicas"] == 0


def test_quantities_print_as_kubernetes_prints_them():
    assert kuberay.format_quantity(2.5) == "2500m"
    assert kuberay.format_quantity(4.0) == "4"
    assert kuberay.format_quantity(6 * 2**30, binary=True) == "6Gi"
    assert kuberay.format_quantity(1536 * 2**20, binary=True) == "1536Mi"
