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
from servelab.faults import load
from servelab.targets import _local_objects as objects
from servelab.targets import local

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
        assert conditions() == {"Ready": "NonZeroServeEndpoints", "UpgradeInProgress": "NoPendingCluster"}
        assert not [s for s in seen if s[0] and s[0][0] == "True"], "no pending cluster for in-place updates"
        # 3. the pod template: a pending cluster, then the switch
        new = local.up(manifest(tmp_path, "v2.yaml", image="rayproject/ray:2.60.0-py312", hello_replicas=1,
                                cpu_workers=2), show=False, timeout=240)
        new_name = objects.ray_cluster_name(new)
        assert new_name != old_name and new.serve_url == first.serve_url  # the serve Service stays put
        after = local.status(new)
        assert after["activeServiceStatus"]["rayClusterName"] == new_name
        assert {c["type"]: c["reason"] for c in after["conditions"]} == {
            "Ready": "NonZeroServeEndpoints", "UpgradeInProgress": "NoPendingCluster"}
        assert processes.processes_under(old_dir), "the old cluster is deleted only after the delay"
        deadline = time.monotonic() + DELAY_S + 30
        while processes.processes_under(old_dir):
            assert time.monotonic() < deadline, "the old cluster outlived rayClusterDeletionDelaySeconds"
            time.sleep(0.5)
        time.sleep(2)  # requests keep going to the new cluster after the old one is gone
    finally:
        stop.set()
        loader.join(), watcher.join()
    sent = results["report"]
    assert sent.failed == 0, sent.summary()
    assert sent.ok > 50
    during = [s for s in seen if s[0] and s[0][0] == "True"]
    assert during, seen
    assert during[0][0] == ("True", "BothActivePendingClustersExist")
    assert during[0][1] == ("True", "NonZeroServeEndpoints")  # the active cluster served throughout
    assert (during[0][2], during[0][3]) == (new_name, old_name)
    assert local.find("hello-upgrade").dir == new.dir
