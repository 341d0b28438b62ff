"""`up` of a RayService manifest on the local target, reported and updated as KubeRay 1.7 would.

The KubeRay behaviours asserted here were read from ray-project/kuberay v1.7.0 (ray-operator/):
controllers/ray/rayservice_controller.go (calculateConditions, calculateStatus, reconcileServe,
updateHeadPodServeLabel, shouldPrepareNewCluster), controllers/ray/raycluster_controller.go
(reconcilePods, shouldRecreatePodsForUpgrade, createWorkerPodWithIndex), controllers/ray/utils/util.go (PodName,
GenerateHashWithoutReplicasAndWorkersToDelete), controllers/ray/common/pod.go (labelPod),
apis/ray/v1/rayservice_types.go and raycluster_types.go (status fields).
"""

import json
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from servelab.cli import _main as cli
from servelab.clients._state import node_group
from servelab.cluster import _processes as processes
from servelab.cluster.testing import owned_by_fixture
from servelab.targets import LocalTarget, local

pytestmark = pytest.mark.live
MANIFEST = Path(__file__).parents[1] / "support" / "manifests" / "local" / "hello-gpu-service.yaml"


def edited(tmp_path, change) -> Path:
    doc = yaml.safe_load(MANIFEST.read_text())
    change(doc)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def service(request):
    request.addfinalizer(lambda: local.down("hello-gpu"))  # also after a failed or replaced up
    return owned_by_fixture(local.up(MANIFEST, show=False))


def conditions(report):
    return {c["type"]: (c["status"], c["reason"]) for c in report["conditions"]}


def get(capsys, *argv):
    capsys.readouterr()
    assert cli.main(["get", *argv, "-o", "json"]) == 0
    return json.loads(capsys.readouterr().out)["items"]


def test_ready_with_gpu_replicas_on_gpu_nodes(service):
    report = local.wait_ready(service, timeout=120, show=False)
    assert report["activeServiceStatus"]["applicationStatuses"]["hello"]["status"] == "RUNNING"
    assert report["placement"]["hello/Hello"] == {"gpu-workers": 2}
    assert len(service.workers) == 2
    assert requests.get(f"{service.serve_url}/hello?name=k8s", timeout=10).json() == {"message": "hello, k8s"}


def test_status_is_kuberays(service):
    report = local.wait_ready(service, timeout=120, show=False)
    assert report["conditions"][0]["type"] == "Ready"
    assert conditions(report) == {"Ready": ("True", "NonZeroServeEndpoints"),
                                  "UpgradeInProgress": ("False", "NoPendingCluster")}
    assert report["numServeEndpoints"] == 1 and report["serviceStatus"] == "Running"
    assert report["observedGeneration"] == 1
    assert report["pendingServiceStatus"] == {"rayClusterStatus": {"desiredCPU": "0", "desiredGPU": "0",
                                                                   "desiredMemory": "0", "desiredTPU": "0", "head": {}}}
    active = report["activeServiceStatus"]
    assert active["rayClusterName"].startswith("hello-gpu-") and len(active["rayClusterName"]) == len("hello-gpu-") + 5
    cluster = active["rayClusterStatus"]
    assert (cluster["state"], cluster["desiredWorkerReplicas"], cluster["readyWorkerReplicas"]) == ("ready", 2, 2)
    assert (cluster["desiredCPU"], cluster["desiredMemory"], cluster["desiredGPU"]) == ("4", "8Gi", "1")
    assert {c["type"] for c in cluster["conditions"]} == {"HeadPodReady", "RayClusterProvisioned",
                                                          "RayClusterSuspended", "RayClusterSuspending"}


def test_pods_and_services_in_kubectls_vocabulary(service, capsys):
    pods = get(capsys, "pods")
    cluster = local.status(service)["activeServiceStatus"]["rayClusterName"]
    assert len(pods) == 1 + len(service.workers) == len(service.nodes())
    by_group = {p["metadata"]["labels"]["ray.io/group"]: p for p in pods}
    assert set(by_group) == {"headgroup", "cpu-workers", "gpu-workers"}
    head, gpu = by_group["headgroup"], by_group["gpu-workers"]
    assert head["metadata"]["name"].startswith(f"{cluster}-head-")
    assert gpu["metadata"]["name"].startswith(f"{cluster}-gpu-workers-worker-")
    assert head["metadata"]["labels"]["ray.io/serve"] == "true"  # its proxy answers /-/healthz
    assert gpu["metadata"]["labels"]["ray.io/node-type"] == "worker"
    assert gpu["metadata"]["labels"]["ray.io/cluster"] == cluster
    assert gpu["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert get(capsys, "pods", "-l", "ray.io/node-type=worker,ray.io/group=gpu-workers") == [gpu]
    services = {s["metadata"]["name"]: s for s in get(capsys, "services")}
    assert set(services) == {f"{cluster}-head-svc", "hello-gpu-head-svc", "hello-gpu-serve-svc"}
    serve_port = services["hello-gpu-serve-svc"]["spec"]["ports"][0]
    assert (serve_port["port"], serve_port["localPort"]) == (8000, service.service_port)  # the stable URL
    assert service.serve_url == f"http://127.0.0.1:{service.service_port}" != service.proxy_url
    [rayservice] = get(capsys, "rayservices")
    assert rayservice["status"]["numServeEndpoints"] == 1


def test_serve_config_change_updates_in_place(service, tmp_path):
    def one_replica(doc):
        config = yaml.safe_load(doc["spec"]["serveConfigV2"])
        config["applications"][0]["deployments"][0]["num_replicas"] = 1
        doc["spec"]["serveConfigV2"] = yaml.safe_dump(config)

    same = owned_by_fixture(local.up(edited(tmp_path, one_replica), show=False))
    assert same.owner_pid == service.owner_pid  # the cluster was kept
    deadline = time.monotonic() + 60
    while local.status(same)["placement"]["hello/Hello"] != {"gpu-workers": 1}:
        assert time.monotonic() < deadline
        time.sleep(1)
    report = local.status(same)
    assert report["observedGeneration"] == 2  # metadata.generation: one spec change
    assert report["activeServiceStatus"]["rayClusterStatus"]["observedGeneration"] == 1  # its RayCluster's did not


def test_a_bad_update_keeps_ready_while_the_old_version_serves(service, tmp_path):
    # KubeRay: Ready comes from serve endpoints; the failure shows under activeServiceStatus
    def missing_module(doc):
        config = yaml.safe_load(doc["spec"]["serveConfigV2"])
        config["applications"][0]["import_path"] = "no_such_module.app:app"
        doc["spec"]["serveConfigV2"] = yaml.safe_dump(config)

    local.up(edited(tmp_path, missing_module), show=False)
    deadline = time.monotonic() + 90
    while (report := local.status(service))["activeServiceStatus"]["applicationStatuses"]["hello"]["status"] \
            != "DEPLOY_FAILED":
        assert time.monotonic() < deadline, report
        time.sleep(1)
    assert conditions(report)["Ready"] == ("True", "NonZeroServeEndpoints")
    assert report["layer"] == "application code"
    assert "no_such_module" in report["activeServiceStatus"]["applicationStatuses"]["hello"]["message"]
    assert requests.get(f"{service.serve_url}/hello?name=old", timeout=10).json() == {"message": "hello, old"}
    local.up(MANIFEST, show=False)  # roll back, in place
    assert local.wait_running(service, timeout=120, show=False)["layer"] is None


def test_replicas_scale_in_place_and_a_capped_worker_is_pending(service, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERVELAB_MAX_NODES", "3")  # the head and the two workers already running

    def two_cpu_workers(doc):
        doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(replicas=2, maxReplicas=2)

    same = owned_by_fixture(local.up(edited(tmp_path, two_cpu_workers), show=False))
    assert same.owner_pid == service.owner_pid  # replicas are not in KubeRay's hash: no new cluster
    pending = [p for p in get(capsys, "pods") if p["status"]["phase"] == "Pending"]
    assert len(pending) == 1 and pending[0]["metadata"]["labels"]["ray.io/group"] == "cpu-workers"
    assert pending[0]["events"][0]["reason"] == "FailedScheduling"
    assert cli.main(["describe", "pod", pending[0]["metadata"]["name"]]) == 0
    assert "SERVELAB_MAX_NODES=3" in capsys.readouterr().out
    cluster = local.status(service)["activeServiceStatus"]["rayClusterStatus"]
    assert (cluster["desiredWorkerReplicas"], cluster["availableWorkerReplicas"]) == (3, 2)
    local.up(MANIFEST, show=False)
    assert [p for p in get(capsys, "pods") if p["status"]["phase"] == "Pending"] == []


def test_deleting_a_worker_pod_brings_a_new_one(service, capsys):
    [old] = get(capsys, "pods", "-l", "ray.io/group=cpu-workers")
    assert cli.main(["delete", "pod", old["metadata"]["name"]]) == 0
    deadline = time.monotonic() + 90
    while True:
        pods = get(capsys, "pods", "-l", "ray.io/group=cpu-workers")
        if len(pods) == 1 and pods[0]["metadata"]["name"] != old["metadata"]["name"] \
                and pods[0]["status"]["conditions"][0]["status"] == "True":
            break
        assert time.monotonic() < deadline, pods
        time.sleep(1)
    assert cli.main(["logs", pods[0]["metadata"]["name"], "--tail", "5"]) == 0
    assert "raylet" in capsys.readouterr().out


def test_upgrade_strategy_none_leaves_the_cluster_alone(service, tmp_path, capsys):
    def new_image(doc):
        doc["spec"]["upgradeStrategy"] = {"type": "None"}
        doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = \
            "rayproject/ray:2.60.0-py312"

    capsys.readouterr()
    same = local.up(edited(tmp_path, new_image), show=True)
    assert same.owner_pid == service.owner_pid
    assert "upgradeStrategy.type is None" in capsys.readouterr().out


@pytest.mark.extended  # 50 s; make test keeps a NewCluster upgrade live in lesson 06 under nbval
def test_a_pod_template_change_replaced_when_asked(service, tmp_path, capsys):
    # KubeRay's NewCluster upgrade (a pending cluster) is tested under load in
    # test_rayservice_upgrade.py; upgrade="replace" is the local target's choice for small machines
    def new_image(doc):
        doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = \
            "rayproject/ray:2.60.0-py312"

    old_dir = str(service.dir)
    capsys.readouterr()
    new = local.up(edited(tmp_path, new_image), show=True, upgrade="replace")
    try:
        said = capsys.readouterr().out
        assert "replacing the cluster as asked" in said and "downtime" in said
        assert new.owner_pid != service.owner_pid and new.serve_url == service.serve_url
        assert processes.processes_under(old_dir) == []
        report = local.wait_ready(new, timeout=120, show=False)
        assert "replaced the cluster" in report["localTarget"]
        assert report["observedGeneration"] > 1
    finally:
        local.down(new.name)


def test_a_manifest_with_errors_starts_nothing(tmp_path):
    def two_gpus(doc):
        config = yaml.safe_load(doc["spec"]["serveConfigV2"])
        config["applications"][0]["deployments"][0]["ray_actor_options"]["num_gpus"] = 2
        doc["spec"]["serveConfigV2"] = yaml.safe_dump(config)
        doc["metadata"]["name"] = "never-started"

    with pytest.raises(local.ManifestError, match="can never be placed"):
        local.up(edited(tmp_path, two_gpus), show=False)
    assert local.find("never-started") is None


def test_a_raycluster_is_not_ready_while_its_workers_start(tmp_path):
    # raycluster_controller.go calculateStatus: `state` turns "ready" only once every desired pod
    # (the workers and the head) runs, and desiredWorkerReplicas is the spec's from the start.
    doc = yaml.safe_load((Path(__file__).parents[2] / "manifests" / "raycluster-cpu.yaml").read_text())
    doc["metadata"] = {"name": "startup-watch"}
    path = tmp_path / "startup-watch.yaml"
    path.write_text(yaml.safe_dump(doc))
    want = doc["spec"]["workerGroupSpecs"][0]["replicas"]
    # a cluster ends with the thread that started it unless told otherwise: this one outlives `up`'s thread
    up = threading.Thread(target=lambda: LocalTarget(die_with_owner=False).up(path, show=False))
    seen = []
    up.start()
    try:
        while up.is_alive():
            cluster = local.find("startup-watch")
            if cluster is not None:
                try:
                    seen.append(local.status(cluster))
                except Exception:  # the head's dashboard not up yet
                    pass
            time.sleep(0.3)
        final = local.status(local.find("startup-watch"))
        assert final["state"] == "ready" and final["readyWorkerReplicas"] == want, final
        early = [r for r in seen if r.get("readyWorkerReplicas", 0) < want]
        assert early, "no status was read while the workers started"
        assert not [r for r in early if r.get("state") == "ready"], early
        # once the head answers, the status counts the workers still to come (before: none, and "ready")
        counted = [r for r in early if "desiredWorkerReplicas" in r]
        assert counted and all(r["desiredWorkerReplicas"] == want for r in counted), counted
    finally:
        up.join()
        local.down("startup-watch")


@pytest.mark.extended  # 80 s of pods re-created one by one
def test_a_raycluster_template_change_reaches_only_the_pods_made_after_it(tmp_path, capsys):
    # raycluster_controller.go (v1.7.0): without upgradeStrategy Recreate, shouldRecreatePodsForUpgrade
    # is false, so running pods stay; reconcilePods makes the missing ones with createWorkerPodWithIndex
    # from the RayCluster's current spec, i.e. the new template.
    doc = yaml.safe_load((Path(__file__).parents[2] / "manifests" / "raycluster-cpu.yaml").read_text())
    doc["metadata"] = {"name": "template-drift"}
    worker = doc["spec"]["workerGroupSpecs"][0]
    worker["replicas"] = 1
    path = tmp_path / "template-drift.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        cluster = local.up(path, show=False)
        [old] = [n["node_id"] for n in cluster.nodes() if node_group(n) == "cpu-workers"]
        worker["replicas"] = 2
        worker["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
        path.write_text(yaml.safe_dump(doc))
        capsys.readouterr()
        same = local.up(path, show=True)
        assert same.owner_pid == cluster.owner_pid
        assert "does not apply that to running pods" in capsys.readouterr().out
        shapes = {n["node_id"]: (n["resources_total"].get("CPU"), n["resources_total"].get("memory"))
                  for n in same.nodes() if node_group(n) == "cpu-workers"}
        assert shapes.pop(old) == (2, 4 * 2**30)             # made from the old template
        assert list(shapes.values()) == [(1, 2**30)], shapes  # made after the change
        limits = sorted(p["spec"]["containers"][0]["resources"]["limits"]["memory"]
                        for p in get(capsys, "pods", "-l", "ray.io/cluster=template-drift,ray.io/group=cpu-workers"))
        assert limits == ["1Gi", "4Gi"], limits
        [raycluster] = [r for r in get(capsys, "rayclusters") if r["metadata"]["name"] == "template-drift"]
        assert raycluster["spec"]["workerGroupSpecs"][0]["replicas"] == 2  # the object's spec did change
        # A deleted pod comes back from the template as it is now (reconcilePods again).
        [old_pod] = [p["metadata"]["name"] for p in get(capsys, "pods", "-l", "ray.io/cluster=template-drift")
                     if p["metadata"]["annotations"].get("servelab.io/ray-node-id") == old]
        assert cli.main(["delete", "pod", old_pod]) == 0
        deadline = time.monotonic() + 90
        while True:
            workers = {n["node_id"]: (n["resources_total"].get("CPU"), n["resources_total"].get("memory"))
                       for n in same.nodes() if node_group(n) == "cpu-workers"}
            if len(workers) == 2 and old not in workers:
                break
            assert time.monotonic() < deadline, workers
            time.sleep(1)
        assert list(workers.values()) == [(1, 2**30)] * 2, workers
        # Autoscaling turned on later: Ray's autoscaler would run in the head pod, which is not re-created
        # for it without Recreate (shouldRecreatePodsForUpgrade is false), so none runs and nothing moves.
        doc["spec"]["enableInTreeAutoscaling"] = True
        path.write_text(yaml.safe_dump(doc))
        capsys.readouterr()
        assert local.up(path, show=True).owner_pid == same.owner_pid
        assert "the autoscaler stays off" in capsys.readouterr().out
        assert len([n for n in same.nodes() if node_group(n) == "cpu-workers"]) == 2
        del doc["spec"]["enableInTreeAutoscaling"]
        # Recreate added now: the spec differs from the one the head pod was made from, so every pod
        # is re-created (shouldRecreatePodsForUpgrade compares with the head pod's hash annotation).
        doc["spec"]["upgradeStrategy"] = {"type": "Recreate"}
        path.write_text(yaml.safe_dump(doc))
        recreated = local.up(path, show=False)
        assert recreated.owner_pid != same.owner_pid
    finally:
        local.down("template-drift")
