"""End to end: the course's GPU RayService on the local target, with Ray's autoscaler.

manifests/rayservice-support-assistant.yaml asks for one CPU and one GPU worker
at first (`replicas: 1`), but its Reranker (a quarter GPU) and AnswerGenerator
(a whole GPU) need two GPU devices: the autoscaler must add a GPU node before
the service can become Ready, and another when AnswerGenerator is raised to two.
"""

import time
from pathlib import Path

import pytest
import requests
import yaml

from servelab.cluster import _processes as processes
from servelab.cluster.testing import owned_by_fixture
from servelab.targets import local

pytestmark = pytest.mark.live
MANIFEST = Path(__file__).parents[2] / "manifests" / "rayservice-support-assistant.yaml"
GPU_DEPLOYMENTS = ("Reranker", "AnswerGenerator")


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


def ready(cluster):
    report = local.status(cluster)
    return report if report["conditions"][0]["status"] == "True" else None


def groups_by_node(cluster):
    return {n["node_id"]: (n.get("labels") or {}).get(local.GROUP_LABEL, "head") for n in cluster.nodes()}


def running_replicas(cluster, deployment):
    dep = cluster.serve_api.applications()["support"]["deployments"][deployment]
    return [r for r in dep["replicas"] if r["state"] == "RUNNING"]


@pytest.fixture(scope="module")
def service(request):
    request.addfinalizer(lambda: local.down("support-assistant"))
    return owned_by_fixture(local.up(MANIFEST, show=False, timeout=300))


def test_ready_only_after_the_autoscaler_added_a_gpu_node(service):
    report = wait_for(lambda: ready(service), 300, "Ready")
    assert report["nodes"].get("gpu-workers", 0) >= 2  # started with 1: the autoscaler added one
    groups = groups_by_node(service)
    for name in GPU_DEPLOYMENTS:  # checked through Serve's own node ids, not our status report
        replicas = running_replicas(service, name)
        assert replicas, name
        assert {groups[r["node_id"]] for r in replicas} == {"gpu-workers"}, name
    for name in ("TicketNormalizer", "RunbookRetriever"):
        assert "head" not in {groups[r["node_id"]] for r in running_replicas(service, name)}  # num-cpus: "0"


def test_the_endpoint_answers_and_reports_logical_gpus(service):
    r = requests.post(f"{service.serve_url}/support", timeout=30,
                      json={"ticket": "Pods stuck in PENDING:\n insufficient nvidia.com/gpu", "top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ticket"] == "pods stuck in pending: insufficient nvidia.com/gpu"
    assert body["runbooks"][0]["id"] == "RB-101" and len(body["runbooks"]) == 2
    assert "RB-101" in body["answer"]
    assert body["placement"]["AnswerGenerator"]["gpu_ids"]  # Ray assigned it a (logical) device


@pytest.mark.parametrize("payload, status, reason", [
    ("not json", 400, "not JSON"),
    ({"ticket": ""}, 400, "non-empty"),
    ({"ticket": "x", "top_k": 0}, 400, "top_k"),
    ({"ticket": "x" * 5000}, 413, "longer"),
])
def test_bad_requests_get_a_4xx_with_a_reason(service, payload, status, reason):
    kwargs = {"data": payload} if isinstance(payload, str) else {"json": payload}
    r = requests.post(f"{service.serve_url}/support", timeout=30, **kwargs)
    assert r.status_code == status
    assert reason in r.json()["error"]


def test_more_answer_generators_make_the_autoscaler_add_a_gpu_node(service, tmp_path):
    before = local.status(service)["nodes"].get("gpu-workers", 0)
    doc = yaml.safe_load(MANIFEST.read_text())
    config = yaml.safe_load(doc["spec"]["serveConfigV2"])
    generator = next(d for d in config["applications"][0]["deployments"] if d["name"] == "AnswerGenerator")
    generator["autoscaling_config"].update(min_replicas=2, initial_replicas=2)
    doc["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    path = tmp_path / "two-generators.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    same = owned_by_fixture(local.up(path, show=False))
    assert same.owner_pid == service.owner_pid  # serveConfigV2 only: updated in place
    wait_for(lambda: len(running_replicas(service, "AnswerGenerator")) == 2, 240, "a second AnswerGenerator")
    assert local.status(service)["nodes"]["gpu-workers"] == before + 1
    groups = groups_by_node(service)
    assert {groups[r["node_id"]] for r in running_replicas(service, "AnswerGenerator")} == {"gpu-workers"}


def test_autoscaler_and_its_nodes_stay_on_loopback(service):
    # Serve replicas' internal gRPC binds [::] in Ray 2.60 (no setting reaches it); nothing else may.
    outside = [(ip, port, name) for ip, port, name in processes.listeners(service.processes())
               if ip not in ("127.0.0.1", "::ffff:127.0.0.1") and not name.startswith("ray::ServeReplica")]
    assert outside == []
    names = " ".join(p.name() + " " + " ".join(p.cmdline()) for p in service.processes())
    assert "monitor.py" in names and "servelab.cluster._worker_node" in names  # the autoscaler and its nodes were checked


def test_down_leaves_no_process_behind(service):
    cluster_dir = str(service.dir)
    assert len(processes.processes_under(cluster_dir)) > 10  # head, workers, replicas, autoscaler
    assert local.down("support-assistant")
    assert processes.processes_under(cluster_dir) == []
    assert local.find("support-assistant") is None
