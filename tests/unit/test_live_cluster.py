"""`servelab.grading.live` on the Kubernetes target, up to the API boundary (tests/support/k8s_api.py).

tests/live/test_labs_on_kubernetes.py runs labs through it end to end; this covers what
KubeRay decides and a lab can get wrong: which kind a name is, which pods belong to the
RayService's active cluster, and when Ray's auth token is needed (KubeRay 1.7:
ray-operator/controllers/ray/utils/util.go IsAuthEnabled, common/pod.go
SetContainerTokenAuthEnvVars: mode "token", key `auth_token` of the Secret
`authOptions.secretName`, else of the Secret named after the RayCluster).
"""

import base64
from urllib.parse import unquote

import pytest
import yaml
from k8s_api import FakeAPIServer

from servelab.errors import Failed
from servelab.grading import live
from servelab.targets import KubernetesTarget

SERVICE = {"apiVersion": "ray.io/v1", "kind": "RayService",
           "metadata": {"name": "lab4-rag", "namespace": "default"},
           "spec": {"serveConfigV2": "applications: []\n", "rayClusterConfig": {"rayVersion": "2.60.0"}},
           "status": {"activeServiceStatus": {"rayClusterName": "lab4-rag-x7k2p"},
                      "conditions": [{"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints"}]}}


@pytest.fixture
def api():
    with FakeAPIServer() as server:
        yield server


def connect(api, name="lab4-rag"):
    return live.connect(name, target=KubernetesTarget(api_client=api.client()))


def put(api, obj):
    obj = yaml.safe_load(yaml.safe_dump(obj))
    api.objects[("default", obj["kind"].lower() + "s", obj["metadata"]["name"])] = obj
    return obj


def pod(name, cluster, group):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {
        "ray.io/cluster": cluster, "ray.io/group": group}}, "status": {"phase": "Running"}}


def test_a_name_is_found_as_whichever_kind_it_is(api):
    put(api, SERVICE)
    assert connect(api).kind == "RayService"
    put(api, {**SERVICE, "kind": "RayCluster", "metadata": {"name": "lab3-cluster"}, "spec": {}})
    assert connect(api, "lab3-cluster").kind == "RayCluster"
    with pytest.raises(Failed, match="no RayService or RayCluster named 'nothing'"):
        connect(api, "nothing").status()


def test_status_is_what_kuberay_wrote_and_pods_are_the_active_clusters(api):
    put(api, SERVICE)
    for p in (pod("lab4-rag-x7k2p-head-abcde", "lab4-rag-x7k2p", "headgroup"),
              pod("lab4-rag-x7k2p-gpu-workers-worker-fghij", "lab4-rag-x7k2p", "gpu-workers"),
              pod("lab4-rag-q9z8w-gpu-workers-worker-klmno", "lab4-rag-q9z8w", "gpu-workers")):  # a pending cluster's
        api.pods[("default", p["metadata"]["name"])] = p
    lab = connect(api)
    assert lab.status()["conditions"][0]["reason"] == "NonZeroServeEndpoints"
    assert [p["metadata"]["name"] for p in lab.pods(**{"ray.io/group": "gpu-workers"})] == [
        "lab4-rag-x7k2p-gpu-workers-worker-fghij"]
    assert any("labelSelector=ray.io/cluster=lab4-rag-x7k2p,ray.io/group=gpu-workers" in unquote(path)
               for _, path, _ in api.calls("GET"))


def test_no_token_unless_the_manifest_turns_auth_on(api):
    put(api, SERVICE)
    assert connect(api).token is None
    spec = {**SERVICE["spec"], "rayClusterConfig": {"rayVersion": "2.60.0", "authOptions": {"mode": "token"}}}
    put(api, {**SERVICE, "spec": spec})
    api.secrets[("default", "lab4-rag-x7k2p")] = {"auth_token": base64.b64encode(b"s3cret").decode()}
    assert connect(api).token == "s3cret"  # the Secret named after the active RayCluster
    spec["rayClusterConfig"]["authOptions"]["secretName"] = "my-ray-token"
    put(api, {**SERVICE, "spec": spec})
    api.secrets[("default", "my-ray-token")] = {"auth_token": base64.b64encode(b"other").decode()}
    assert connect(api).token == "other"


def test_kuberays_secret_name_and_kubernetes_token_auth(api):
    # utils/util.go CheckName: the last 50 characters; a leading digit becomes "r"
    assert live.check_name("a" * 10 + "b" * 50) == "b" * 50
    assert live.check_name("7-cluster") == "r-cluster"
    spec = {**SERVICE["spec"], "rayClusterConfig": {"authOptions": {"mode": "token", "enableK8sTokenAuth": True}}}
    put(api, {**SERVICE, "spec": spec})
    assert connect(api).token is None  # Kubernetes' own tokens: there is no Secret to read
    spec["rayClusterConfig"]["authOptions"] = {"mode": "token"}
    put(api, {**SERVICE, "spec": spec})
    with pytest.raises(Failed, match="Secret default/lab4-rag-x7k2p could not be read"):
        _ = connect(api).token


def test_running_means_the_active_clusters_applications_with_no_upgrade_pending(api):
    # KubeRay sends traffic to a new cluster only once its applications are all RUNNING
    # (rayservice_controller.go getAndCheckServeStatus); until then it is pendingServiceStatus.
    def status(active: dict, pending: str = "") -> dict:
        return {**SERVICE["status"], "activeServiceStatus": {"rayClusterName": "lab4-rag-x7k2p",
                                                             "applicationStatuses": active},
                "pendingServiceStatus": {"rayClusterName": pending}}

    put(api, {**SERVICE, "status": status({"rag": {"status": "RUNNING"}}, pending="lab4-rag-b9q4z")})
    lab = connect(api)
    with pytest.raises(Exception, match="every application RUNNING"):
        lab.wait_running(timeout=1, show=False)
    put(api, {**SERVICE, "status": status({"rag": {"status": "DEPLOY_FAILED", "message": "ImportError: x"}})})
    with pytest.raises(Failed, match="DEPLOY_FAILED: ImportError: x"):
        lab.wait_running(timeout=5, show=False)
    # Just applied: KubeRay has not seen generation 2 yet, so "RUNNING" is the old spec's
    applied = {**SERVICE, "metadata": {**SERVICE["metadata"], "generation": 2}}
    put(api, {**applied, "status": {**status({"rag": {"status": "RUNNING"}}), "observedGeneration": 1}})
    with pytest.raises(Exception, match="every application RUNNING"):
        lab.wait_running(timeout=1, show=False)
    upgrading = status({"rag": {"status": "RUNNING"}})
    upgrading["conditions"] = upgrading["conditions"] + [{"type": "UpgradeInProgress", "status": "True"}]
    put(api, {**applied, "status": {**upgrading, "observedGeneration": 2}})
    with pytest.raises(Exception, match="every application RUNNING"):
        lab.wait_running(timeout=1, show=False)
    put(api, {**applied, "status": {**status({"rag": {"status": "RUNNING"}}), "observedGeneration": 2}})
    assert lab.wait_running(timeout=5, show=False)["activeServiceStatus"]["rayClusterName"] == "lab4-rag-x7k2p"


def test_down_deletes_the_object_as_the_kind_it_is(api):
    put(api, SERVICE)
    assert connect(api).down() is True
    assert ("DELETE", "/apis/ray.io/v1/namespaces/default/rayservices/lab4-rag") in {
        (method, unquote(path).split("?")[0]) for method, path, _ in api.calls("DELETE")}
    assert api.objects == {}
