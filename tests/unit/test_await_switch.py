"""A NewCluster upgrade's wait (servelab.targets._local._await_switch) ends as KubeRay's would.

KubeRay (controllers/ray/rayservice_controller.go, v1.7.0: getAndCheckServeStatus marks a cluster
ready only when every application is RUNNING, and the switchover waits for that) moves traffic only
once the pending cluster's applications are RUNNING; one that is DEPLOY_FAILED stays pending and
the active cluster keeps serving. The local `up` must end with that reason instead of waiting out its
timeout. The serve Service's state file is real; the pending cluster is a stand-in that answers
Serve's REST API as a failed deploy does.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

from servelab.cluster import _service as service
from servelab.errors import ServelabError
from servelab.targets._local import _await_switch


def pending_cluster(tmp_path: Path, apps: dict) -> SimpleNamespace:
    folder = tmp_path / "pending"
    folder.mkdir()
    return SimpleNamespace(dir=folder, name="rag", serve_api=SimpleNamespace(applications=lambda: apps))


def test_a_failed_deploy_on_the_pending_cluster_ends_the_wait_with_its_reason(tmp_path):
    pending = pending_cluster(tmp_path, {"rag": {"status": "DEPLOY_FAILED",
                                                 "message": "ModuleNotFoundError: No module named 'ragx'"}})
    service.write(tmp_path, {"active": str(tmp_path / "old"), "pending": str(pending.dir)})
    with pytest.raises(ServelabError) as raised:
        _await_switch(pending, tmp_path, "rag-abcde", show=False, timeout=30)
    assert raised.value.layer == "application code"
    assert "ragx" in str(raised.value) and "rag-abcde still serves" in str(raised.value.hint)


def test_the_wait_ends_when_the_service_points_at_the_pending_cluster(tmp_path):
    pending = pending_cluster(tmp_path, {"rag": {"status": "DEPLOYING"}})
    service.write(tmp_path, {"active": str(pending.dir)})
    _await_switch(pending, tmp_path, "rag-abcde", show=False, timeout=5)


def test_a_deploying_application_keeps_the_wait_going(tmp_path):
    pending = pending_cluster(tmp_path, {"rag": {"status": "DEPLOYING"}})
    service.write(tmp_path, {"active": str(tmp_path / "old"), "pending": str(pending.dir)})
    with pytest.raises(ServelabError, match="serve Service switches"):
        _await_switch(pending, tmp_path, "rag-abcde", show=False, timeout=1)


def test_a_pending_cluster_replaced_by_a_newer_manifest_ends_the_wait_saying_so(tmp_path):
    # KubeRay compares a new spec with the *pending* cluster's (rayservice_controller.go,
    # shouldPrepareNewCluster) and prepares another: the first pending cluster never takes traffic.
    pending = pending_cluster(tmp_path, {"rag": {"status": "DEPLOYING"}})
    service.write(tmp_path, {"active": str(tmp_path / "old"), "pending": str(tmp_path / "newer")})
    with pytest.raises(ServelabError, match="replaced by a newer manifest") as raised:
        _await_switch(pending, tmp_path, "rag-abcde", show=False, timeout=30)
    assert raised.value.layer == "KubeRay"
