"""A RayService upgraded as KubeRay 1.7 upgrades it, under load, on the local target.

Read from ray-project/kuberay v1.7.0, ray-operator/controllers/ray/rayservice_controller.go:
shouldPrepareNewCluster (a changed pod template prepares a pending cluster), reconcileServe and
getAndCheckServeStatus (the pending cluster takes traffic once every application is RUNNING),
calculateConditions (UpgradeInProgress / BothActivePendingClustersExist while both exist),
cleanUpRayClusterInstance (the old cluster goes after rayClusterDeletionDelaySeconds).
"""

import threading
import time
from pathlib import Path

import pytest
import yaml

from servelab.cluster import _processes as processes
from servelab.cluster import _service as service
from servelab.faults import load
from servelab.observe._waiting import Failed
from servelab.targets import _local_objects as objects
from servelab.targets import local
from servelab.targets._local_status import cluster_at

pytestmark = pytest.mark.live
SOURCE = Path(__file__).parents[1] / "support" / "manifests" / "local" / "hello-gpu-service.yaml"
DELAY_S = 6


def manifest(tmp_path, name, image="rayproject/ray:2.60.0-py311", hello_replicas=2, cpu_workers=1):
    doc = yaml.safe_load(SOURCE.read_text())
    doc["metadata"]["name"] = "hello-upgrade"
    doc["spec"]["rayClusterDeletionDelaySeconds"] = DELAY_S
    group = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    group["template"]["spec"]["containers"][0]["image"] = image
    group.update(replicas=cpu_workers, maxReplicas=2)
    config = yaml.safe_load(doc["spec"]["serveConfigV2"])
    config["applications"][0]["deployments"][0]["num_replicas"] = hello_replicas
    doc["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return value


def hello_replicas(cluster) -> int:
    app = next(iter(cluster.serve_api.applications().values()))
    return next(iter(app["deployed_app_config"]["deployments"]))["num_replicas"]


def serve_change_during_upgrade(tmp_path, folder, stale_dir):
    """Once the replacing pending cluster runs its applications, change serveConfigV2 only:
    KubeRay sends it to the pending cluster (reconcileServe), never to the active one."""
    def pending_serves():
        pending = service.read(folder).get("pending")
        if pending in (None, stale_dir):
            return None
        cluster = cluster_at(pending)
        return cluster if cluster is not None and cluster.serve_api.applications() else None

    wait_until(pending_serves, 240)
    local.up(manifest(tmp_path, "v3-serve.yaml", image="rayproject/ray:2.60.0-py310", hello_replicas=2,
                      cpu_workers=2), show=False, timeout=240)


@pytest.mark.extended  # about 3 minutes under load; lesson 06 runs a NewCluster upgrade in make test
def test_three_kinds_of_update_under_load_fail_no_request(tmp_path):
    try:
        _upgrade_under_load(tmp_path)
    finally:
        local.down("hello-upgrade")


def _upgrade_under_load(tmp_path):
    first = local.up(manifest(tmp_path, "v1.yaml"), show=False)
    report = local.wait_ready(first, timeout=180, show=False)
    old_name = report["activeServiceStatus"]["rayClusterName"]
    old_dir = str(first.dir)

    seen, stop = [], threading.Event()

    def watch():  # what `servelab get rayservice -w` would show, twice a second
        while not stop.is_set():
            r = local.status(first)
            conds = {c["type"]: (c["status"], c["reason"]) for c in r.get("conditions", [])}
            seen.append((conds.get("UpgradeInProgress"), conds.get("Ready"),
                         (r.get("pendingServiceStatus") or {}).get("rayClusterName"),
                         (r.get("activeServiceStatus") or {}).get("rayClusterName")))
            time.sleep(0.5)
        seen.append("done")  # the watcher never failed (a status call that raises ends it early)

    results = {}
    loader = threading.Thread(target=lambda: results.update(report=load.run(
        f"{first.serve_url}/hello?name=upgrade", None, method="GET", concurrency=2, count=20000,
        duration_s=240, timeout_s=10, stop=stop)))
    watcher = threading.Thread(target=watch)
    loader.start(), watcher.start()
    def conditions():
        return {c["type"]: c["reason"] for c in local.status(first)["conditions"]}

    try:
        time.sleep(2)
        # 1. serveConfigV2 only: in place, on the same cluster
        same = local.up(manifest(tmp_path, "v1-serve.yaml", hello_replicas=1), show=False)
        assert same.dir == first.dir
        local.wait_running(same, timeout=120, show=False)
        assert conditions() == {"Ready": "NonZeroServeEndpoints", "UpgradeInProgress": "NoPendingCluster"}
        # 2. worker replicas: not in KubeRay's hash, so the same cluster scales
        same = local.up(manifest(tmp_path, "v1-scale.yaml", hello_replicas=1, cpu_workers=2), show=False)
        assert same.dir == first.dir and len(same.nodes()) == 4
        # KubeRay updated the RayCluster object in place: its own generation moved, from 1
        assert local.status(same)["activeServiceStatus"]["rayClusterStatus"]["observedGeneration"] == 2
        assert conditions() == {"Ready": "NonZeroServeEndpoints", "UpgradeInProgress": "NoPendingCluster"}
        assert not [s for s in seen if s[0] and s[0][0] == "True"], "no pending cluster for in-place updates"
        # 3. the pod template: a pending cluster (in a thread: its `up` waits for the switch) ...
        folder = Path(objects.manifest_state(first)["service"])
        superseded = {}

        def first_upgrade():
            try:
                local.up(manifest(tmp_path, "v2.yaml", image="rayproject/ray:2.60.0-py312", hello_replicas=1,
                                  cpu_workers=2), show=False, timeout=240, die_with_owner=False)
            except Failed as exc:
                superseded["error"] = exc

        upgrading = threading.Thread(target=first_upgrade)
        upgrading.start()
        wait_until(lambda: service.read(folder).get("pending"), 120)
        stale_dir = service.read(folder)["pending"]
        # ... replaced before it took traffic: KubeRay compares the manifest with the *pending*
        # cluster (shouldPrepareNewCluster), prepares another, and deletes the stale one after the delay
        v3 = manifest(tmp_path, "v3.yaml", image="rayproject/ray:2.60.0-py310", hello_replicas=1, cpu_workers=2)
        resend = threading.Thread(target=serve_change_during_upgrade, args=(tmp_path, folder, stale_dir))
        resend.start()
        new = local.up(v3, show=False, timeout=300)
        resend.join(), upgrading.join()
        assert "replaced by a newer manifest" in str(superseded.get("error")), superseded
        new_name = objects.ray_cluster_name(new)
        assert new_name != old_name and new.serve_url == first.serve_url  # the serve Service stays put
        assert str(new.dir) != stale_dir
        # the serveConfigV2 change sent during the upgrade went to the pending cluster only
        assert hello_replicas(new) == 2 and hello_replicas(first) == 1
        after = local.status(new)
        assert after["activeServiceStatus"]["rayClusterName"] == new_name
        assert after["activeServiceStatus"]["rayClusterStatus"]["observedGeneration"] == 1  # a new object
        assert {c["type"]: c["reason"] for c in after["conditions"]} == {
            "Ready": "NonZeroServeEndpoints", "UpgradeInProgress": "NoPendingCluster"}
        state = service.read(folder)
        due = {d["dir"]: d["deleteAt"] for d in state["deleting"]}
        assert due[old_dir] == pytest.approx(state["switchedAt"] + DELAY_S, abs=0.5)
        if time.time() < due[old_dir] - 1:  # (a slow machine may get here after the delay: nothing to see)
            assert processes.processes_under(old_dir), "the old cluster is deleted only after the delay"
        assert stale_dir not in due or due[stale_dir] < due[old_dir]  # replaced first, so deleted first
        deadline = time.monotonic() + DELAY_S + 30
        while processes.processes_under(old_dir) or processes.processes_under(stale_dir):
            assert time.monotonic() < deadline, "an old cluster outlived rayClusterDeletionDelaySeconds"
            time.sleep(0.5)
        time.sleep(2)  # requests keep going to the new cluster after the old one is gone
    finally:
        stop.set()
        loader.join(), watcher.join()
    sent = results["report"]
    assert sent.failed == 0, sent.summary()
    assert sent.ok > 50
    assert seen.pop() == "done", "local.status failed while clusters came and went"
    during = [s for s in seen if s[0] and s[0][0] == "True"]
    assert during, seen
    assert {s[0] for s in during} == {("True", "BothActivePendingClustersExist")}
    assert {s[1] for s in during} == {("True", "NonZeroServeEndpoints")}  # the active cluster served throughout
    assert {s[3] for s in during} == {old_name}
    assert during[-1][2] == new_name and len({s[2] for s in during}) == 2  # the stale pending, then the new one
    assert local.find("hello-upgrade").dir == new.dir
