"""What the local target reports for objects whose processes are gone, and the generation of a
RayService's RayCluster, as KubeRay 1.7 would (ray-project/kuberay v1.7.0, ray-operator/).

- controllers/ray/raycluster_controller.go (calculateStatus): a RayCluster without a head pod
  has HeadPodReady=False, reason HeadPodNotFound; its ready and available counts are 0.
- controllers/ray/rayservice_controller.go (constructRayClusterForRayService, reconcileRayCluster):
  the RayCluster of a RayService is an object of its own, created with generation 1 and
  updated in place (generation + 1) only when its spec changes.
"""

import json

from servelab.targets import _kuberay as kuberay
from servelab.targets import _local_objects as objects
from servelab.targets import _local_status as local_status

CLUSTER_SPEC = {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "ray-head"}]}}},
                "workerGroupSpecs": [{"groupName": "cpu", "replicas": 2, "minReplicas": 1, "maxReplicas": 3,
                                      "template": {"spec": {"containers": [{"name": "ray-worker"}]}}}]}
DOC = {"kind": "RayService", "metadata": {"name": "rag"}, "spec": {"rayClusterConfig": CLUSTER_SPEC}}


def test_a_gone_active_cluster_is_still_named_with_no_head_pod(tmp_path):
    folder = tmp_path / "cabc"
    folder.mkdir()
    (folder / objects.MANIFEST_STATE).write_text(json.dumps(
        {"doc": DOC, "generation": 3, "rayClusterGeneration": 2, "rayClusterName": "rag-x7k2p"}))
    view = local_status._gone_view(str(folder), {"name": "rag", "doc": DOC})
    status = view["status"]
    assert view["name"] == "rag-x7k2p" and view["gone"]
    assert "re-create its pods" in view["note"] and "rag-x7k2p" in view["note"]
    head = next(c for c in status["conditions"] if c["type"] == "HeadPodReady")
    assert (head["status"], head["reason"]) == ("False", "HeadPodNotFound")
    assert status["readyWorkerReplicas"] == status["availableWorkerReplicas"] == 0
    assert status["desiredWorkerReplicas"] == 2 and status["observedGeneration"] == 2
    assert "head" not in status


def test_a_gone_cluster_whose_folder_went_too_keeps_its_generated_name(tmp_path):
    gone = str(tmp_path / "cgone")
    view = local_status._gone_view(gone, {"name": "rag", "doc": DOC})
    assert view["name"] == kuberay.ray_cluster_name("rag", gone)  # GenerateRayClusterName, same seed
    assert view["status"]["desiredWorkerReplicas"] == 2


def test_a_rayservices_raycluster_counts_its_own_generation():
    assert objects.raycluster_generation({"generation": 5, "rayClusterGeneration": 1}) == 1
    assert objects.raycluster_generation({"generation": 4}) == 4  # a RayCluster from its own manifest
