"""The pods and Services the local target lists are documents the Kubernetes client accepts.

On a real cluster a graded cell lists pods through the kubernetes client, whose models
(V1Pod, V1ContainerStatus, V1Service) require fields the kubelet always writes, imageID
among them; the local target's documents (servelab.targets._local_objects) must parse the same.
"""

import json

import pytest
from kubernetes import client

from servelab.targets import _local_objects as local_objects


def parse(doc: dict, model: str):
    return client.ApiClient().deserialize(json.dumps(doc), model, "application/json")


@pytest.mark.parametrize("phase, started", [("Running", 1.7e9), ("Running", None), ("Pending", None)])
def test_a_local_pod_parses_as_a_v1_pod(phase, started):
    pod = local_objects._pod("lab-head-x", {"ray.io/node-type": "head"},
                             {"template": {"spec": {"containers": [{"name": "ray-head", "image": "img"}]}}},
                             phase=phase, ready=phase == "Running", started=started)
    pod.pop("events")  # servelab's own field, for `servelab describe`
    assert parse(pod, "V1Pod").status.phase == phase


def test_a_local_service_parses_as_a_v1_service():
    port = {"name": "serve", "port": 8000, "localPort": 41234}  # localPort: where this machine reaches it
    service = local_objects._service("lab-head-svc", {"ray.io/cluster": "lab"}, [port])
    assert parse(service, "V1Service").spec.ports[0].port == 8000
