"""`servelab get|describe|delete` in kubectl's vocabulary, and on the Kubernetes target up to the
API boundary (the stand-in API server of tests/support/k8s_api.py)."""

import json

import pytest
from k8s_api import FakeAPIServer

from servelab.cli import _kubectl as kubectl
from servelab.cli import _main as cli
from servelab.targets import _kuberay as kuberay
from servelab.targets import kubernetes as k8s


def pod(name, group=None, phase="Running", ready=True, namespace="default"):
    labels = kuberay.pod_labels("rag-x7k2p", group, None, serve=True)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "creationTimestamp": "2026-11-20T10:00:00Z"},
            "spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.60.0-py311"}],
                     "nodeName": "kind-worker"},
            "status": {"phase": phase, "podIP": "10.244.0.7",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "ray-worker", "ready": ready, "restartCount": 1,
                                               "image": "rayproject/ray:2.60.0-py311",
                                               "imageID": "docker.io/rayproject/ray@sha256:0f3c"}]}}


def test_label_selectors_as_kubectl_reads_them():
    labels = {"ray.io/node-type": "worker", "ray.io/group": "gpu-workers"}
    assert kubectl._matches(labels, "ray.io/node-type=worker,ray.io/group==gpu-workers")
    assert not kubectl._matches(labels, "ray.io/group!=gpu-workers")
    assert kubectl._matches(labels, "ray.io/group") and not kubectl._matches(labels, "ray.io/serve")
    assert kubectl._matches(labels, None)


def test_pods_print_in_kubectls_columns():
    text = kubectl.output("pod", [pod("rag-x7k2p-head-b8v5t"), pod("rag-x7k2p-gpu-workers-worker-q9zd4", "gpu-workers",
                                                                    phase="Pending", ready=False)], None)
    header, head, worker = text.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert head.split()[:4] == ["rag-x7k2p-head-b8v5t", "1/1", "Running", "1"]
    assert worker.split()[:3] == ["rag-x7k2p-gpu-workers-worker-q9zd4", "0/1", "Pending"]
    wide = kubectl.output("pod", [pod("p")], "wide").splitlines()
    assert wide[0].split()[-2:] == ["IP", "NODE"] and wide[1].split()[-2:] == ["10.244.0.7", "kind-worker"]
    assert kubectl.output("pod", [], None) == "No resources found in default namespace."
    assert kubectl.output("raycluster", [{"metadata": {"name": "c"}}], "name") == "raycluster.ray.io/c"


def test_the_crd_printer_columns():
    # apis/ray/v1/rayservice_types.go and raycluster_types.go (+kubebuilder:printcolumn)
    service = {"metadata": {"name": "rag"}, "status": {"serviceStatus": "Running", "numServeEndpoints": 2}}
    assert kubectl.output("rayservice", [service], None).splitlines() == [
        "NAME   SERVICE STATUS   NUM SERVE ENDPOINTS", "rag    Running          2"]
    cluster = {"metadata": {"name": "rag-x7k2p"},
               "status": {"desiredWorkerReplicas": 3, "availableWorkerReplicas": 2, "desiredCPU": "5",
                          "desiredMemory": "10Gi", "desiredGPU": "1", "state": "ready"}}
    header, row = kubectl.output("raycluster", [cluster], None).splitlines()
    assert [h.strip() for h in header.split("   ") if h.strip()] == [
        "NAME", "DESIRED WORKERS", "AVAILABLE WORKERS", "CPUS", "MEMORY", "GPUS", "STATUS", "AGE"]
    assert row.split()[:7] == ["rag-x7k2p", "3", "2", "5", "10Gi", "1", "ready"]


def test_describe_shows_labels_conditions_and_events():
    text = kubectl.describe("pod", pod("p", "cpu-workers", phase="Pending", ready=False),
                            [{"type": "Warning", "reason": "FailedScheduling", "from": "default-scheduler",
                              "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}])
    assert "ray.io/group=cpu-workers" in text and "Status:       Pending" in text
    assert "FailedScheduling" in text and "Insufficient nvidia.com/gpu" in text


@pytest.fixture
def api(monkeypatch):
    with FakeAPIServer() as server:
        target = k8s.KubernetesTarget(api_client=server.client(), namespace="ray-serving")
        monkeypatch.setattr(cli, "_target", lambda args: target)
        yield server


def test_get_pods_reads_the_real_pods_on_kubernetes(api, capsys):
    api.pods[("ray-serving", "rag-x7k2p-head-b8v5t")] = pod("rag-x7k2p-head-b8v5t", namespace="ray-serving")
    api.pods[("ray-serving", "rag-x7k2p-cpu-workers-worker-q9zd4")] = pod(
        "rag-x7k2p-cpu-workers-worker-q9zd4", "cpu-workers", namespace="ray-serving")
    assert cli.main(["get", "pods", "--target", "kubernetes", "-l", "ray.io/node-type=worker", "-o", "json"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert [p["metadata"]["name"] for p in items] == ["rag-x7k2p-cpu-workers-worker-q9zd4"]
    (_, path, _), = api.calls("GET")
    assert path.startswith("/api/v1/namespaces/ray-serving/pods") and "labelSelector=ray.io/is-ray-node%3Dyes" in path


def test_delete_pod_deletes_it_on_kubernetes(api, capsys):
    api.pods[("ray-serving", "w1")] = pod("w1", "cpu-workers", namespace="ray-serving")
    assert cli.main(["delete", "pod/w1", "--target", "kubernetes"]) == 0
    assert capsys.readouterr().out.strip() == 'pod "w1" deleted'
    assert ("ray-serving", "w1") not in api.pods
    assert cli.main(["delete", "pod", "w1", "--target", "kubernetes"]) == 1  # NotFound, said as kubectl says it
    assert 'pods "w1" not found' in capsys.readouterr().err
