"""End to end: every fault verb against the RAG RayService on the local target, under load.

One cluster for the module (manifests/rayservice-rag.yaml: a CPU group, a GPU group,
Ray's autoscaler). Each test injects one fault while `servelab.faults.recovery` sends
bounded load to /rag/, and asserts that the service came back to its target
replicas within the deadline, and what a client saw meanwhile.
"""

from pathlib import Path

import pytest
import requests

from servelab.cluster.testing import owned_by_fixture
from servelab.faults import recovery
from servelab.faults._verbs import FaultError, LocalFaults
from servelab.targets import local

pytestmark = pytest.mark.live
REPO = Path(__file__).parents[2]
MANIFEST = REPO / "manifests" / "rayservice-rag.yaml"
BAD_IMPORT = REPO / "manifests" / "faults" / "rag-bad-import.yaml"
QUESTION = {"question": "Why does my Serve replica stay PENDING?"}
CLIENTS = 2


@pytest.fixture(scope="module")
def rag(request):
    request.addfinalizer(lambda: local.down("rag"))
    cluster = owned_by_fixture(local.up(MANIFEST, show=False, timeout=300))
    local.wait_ready(cluster, timeout=300, show=False)
    return cluster


@pytest.fixture(scope="module")
def faults(rag):
    return LocalFaults(rag)


def measure(rag, faults, inject, **options):
    result = recovery.measure(faults, inject, f"{rag.serve_url}/rag/", QUESTION, concurrency=CLIENTS,
                              warmup_s=2, tail_s=1, timeout_s=5, show=False, **options)
    print(result.summary())
    assert result.report.ok > 0, result.summary()
    return result


def answers(rag) -> bool:
    return requests.post(f"{rag.serve_url}/rag/", json=QUESTION, timeout=30).status_code == 200


def test_a_killed_replica_of_two_is_replaced_and_loses_at_most_what_was_in_flight(rag, faults):
    result = measure(rag, faults, lambda f: f.kill_replica("rag", "Retriever"), max_s=60)
    assert result.recovered, result.detail
    assert result.report.failed <= CLIENTS  # only requests inside the dying replica can fail
    assert len(faults.serve_api.replicas("rag", "Retriever")) == 2


def test_a_hung_replica_is_taken_out_by_its_health_check(rag, faults):
    result = measure(rag, faults, lambda f: f.hang_replica("rag", "Retriever"), max_s=90)
    assert result.recovered, result.detail
    hung = result.fault.hit[0]["replica_id"]
    assert hung not in {r.replica_id for r in faults.serve_api.replicas("rag", "Retriever", state=None)}


def test_a_failing_health_check_replaces_only_that_replica(rag, faults):
    before = {r.replica_id for r in faults.serve_api.replicas("rag", "Retriever")}
    result = measure(rag, faults, lambda f: f.fail_health("rag", "Retriever"), max_s=60)
    assert result.recovered, result.detail
    after = {r.replica_id for r in faults.serve_api.replicas("rag", "Retriever")}
    assert before - after == {result.fault.hit[0]["replica_id"]}  # the other one kept running
    assert result.report.failed <= CLIENTS


def test_losing_a_gpu_node_brings_its_replicas_back_gpu_stages_on_gpu_nodes(rag, faults):
    result = measure(rag, faults, lambda f: f.kill_node("gpu-workers"), max_s=150)
    assert result.recovered, result.detail
    lost = {r["deployment"] for r in result.fault.before["lost_replicas"]}
    gpu_stages = lost & {"Reranker", "Generator"}
    assert gpu_stages, f"the GPU node that was killed ran no GPU stage (it ran {lost})"
    groups = {n["node_id"]: n["group"] for n in faults._nodes().values()}
    for name in gpu_stages:  # CPU stages may come back on any node with room
        assert {groups[r.node_id] for r in faults.serve_api.replicas("rag", name)} == {"gpu-workers"}
    assert answers(rag)


def test_a_bad_rollout_fails_to_deploy_while_the_old_version_keeps_serving(rag, faults):
    # Serve builds the new application in a task; on 2 busy cores that takes tens of seconds.
    result = measure(rag, faults, lambda f: f.bad_rollout(BAD_IMPORT), max_s=150, rollback_after_s=120)
    assert "DEPLOY_FAILED" in result.during, result.during  # Serve gave up on the new config...
    assert result.recovered, result.detail
    assert result.report.failed == 0                         # ...and the old version kept serving
    assert faults.serve_api.application("rag")["deployed_app_config"]["import_path"] == "servelab.apps.rag:app"


def test_the_controller_restarts_and_requests_never_needed_it(rag, faults):
    result = measure(rag, faults, lambda f: f.kill_controller(), max_s=60)
    assert result.recovered, result.detail
    assert result.report.failed == 0


def test_the_proxy_restarts_and_the_endpoint_comes_back(rag, faults):
    result = measure(rag, faults, lambda f: f.kill_proxy(), max_s=90)
    assert result.recovered, result.detail
    assert answers(rag)


def test_faults_refuse_what_is_not_this_clusters(rag, faults):
    with pytest.raises(FaultError, match="not a process of cluster"):
        faults._signal({}, 1, 0)  # pid 1 runs on this machine, but not in this cluster
    with pytest.raises(FaultError, match="Kubernetes"):
        faults.kill_head()
    with pytest.raises(FaultError, match="2 RUNNING"):
        faults.kill_replica("rag", "Retriever", count=3, show=False)
