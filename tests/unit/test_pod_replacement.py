"""A deleted worker pod comes back as KubeRay makes it.

Read from ray-project/kuberay v1.7.0, ray-operator/controllers/ray/raycluster_controller.go:
reconcilePods creates each missing worker pod with createWorkerPodWithIndex from the
RayCluster's current spec (so from a template changed since the lost pod was made), and only
for the groups in spec.workerGroupSpecs (a group taken out of the spec gets no new pods).
"""

import json
from types import SimpleNamespace

from servelab.clients._state import GROUP_LABEL
from servelab.faults._verbs import _replacement_shape
from servelab.targets._local_objects import MANIFEST_STATE


def cluster_with(tmp_path, doc=None):
    if doc is not None:
        (tmp_path / MANIFEST_STATE).write_text(json.dumps({"doc": doc}))
    return SimpleNamespace(dir=tmp_path)


def raycluster(memory: str) -> dict:
    container = {"name": "ray-worker", "image": "rayproject/ray:2.60.0-py311",
                 "resources": {"limits": {"cpu": "1", "memory": memory}}}
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c"},
            "spec": {"headGroupSpec": {"rayStartParams": {"num-cpus": "0"},
                                       "template": {"spec": {"containers": [dict(container, name="ray-head")]}}},
                     "workerGroupSpecs": [{"groupName": "cpu-workers", "replicas": 1, "minReplicas": 1,
                                           "maxReplicas": 2, "template": {"spec": {"containers": [container]}}}]}}


LOST = {"num_cpus": 2, "num_gpus": 0, "memory": 4 * 2**30, "labels": {GROUP_LABEL: "cpu-workers"}}


def test_the_new_pod_is_made_from_the_current_template(tmp_path):
    shape = _replacement_shape(cluster_with(tmp_path, raycluster("1Gi")), LOST)
    assert shape == {"num_cpus": 1, "num_gpus": 0, "memory": 2**30}


def test_a_group_taken_out_of_the_spec_gets_no_new_pod(tmp_path):
    doc = raycluster("1Gi")
    doc["spec"]["workerGroupSpecs"][0]["groupName"] = "other-workers"
    assert _replacement_shape(cluster_with(tmp_path, doc), LOST) is None


def test_a_cluster_started_without_a_manifest_gets_the_same_node_again(tmp_path):
    assert _replacement_shape(cluster_with(tmp_path), LOST) == {"num_cpus": 2, "num_gpus": 0, "memory": 4 * 2**30}
