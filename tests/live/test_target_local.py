"""`up` of a RayService manifest on the local target, in RayService vocabulary."""

import time
from pathlib import Path

import pytest
import requests
import yaml

from servelab.cluster import _processes as processes
from servelab.cluster.testing import owned_by_fixture
from servelab.targets import local

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


def test_ready_with_gpu_replicas_on_gpu_nodes(service):
    report = local.wait_ready(service, timeout=120, show=False)
    assert report["activeServiceStatus"]["applicationStatuses"]["hello"]["status"] == "RUNNING"
    assert report["placement"]["hello/Hello"] == {"gpu-workers": 2}
    assert len(service.workers) == 2
    assert requests.get(f"{service.serve_url}/hello?name=k8s", timeout=10).json() == {"message": "hello, k8s"}


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


def test_cluster_change_replaces_the_cluster_within_the_node_cap(service, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERVELAB_MAX_NODES", "2")  # head + one worker

    def two_cpu_workers(doc):
        group = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
        group.update(replicas=2, maxReplicas=2)

    old_dir = str(service.dir)
    new = local.up(edited(tmp_path, two_cpu_workers), show=False)
    try:
        assert new.owner_pid != service.owner_pid
        assert processes.processes_under(old_dir) == []
        assert "cap is 1" in capsys.readouterr().out
        assert len(new.workers) == 1
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
