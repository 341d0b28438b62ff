"""The Kubernetes target, tested up to the API boundary.

The real `kubernetes` client talks HTTP to a stand-in API server on
127.0.0.1 (tests/support/k8s_api.py): request paths and bodies are checked there.
Status parsing runs on status documents shaped like KubeRay 1.7's.
"""

import os
import stat
from pathlib import Path

import pytest
import yaml
from k8s_api import FakeAPIServer

from servelab.observe._waiting import Failed, Stuck
from servelab.targets import ManifestError
from servelab.targets import kubernetes as k8s
from servelab.targets._vocabulary import is_ready, ready_condition

REPO = Path(__file__).parents[2]
SUPPORT = REPO / "manifests" / "rayservice-support-assistant.yaml"
CPU_CLUSTER = REPO / "manifests" / "raycluster-cpu.yaml"
STATUS_DOCS = Path(__file__).parents[1] / "support" / "k8s"


def load(name):
    return yaml.safe_load((STATUS_DOCS / name).read_text())


@pytest.fixture
def api():
    with FakeAPIServer() as server:
        yield server


@pytest.fixture
def target(api):
    return k8s.KubernetesTarget(api_client=api.client())


def edited(tmp_path, change):
    doc = yaml.safe_load(SUPPORT.read_text())
    change(doc)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# -- create, replace, get, delete ------------------------------------------------------
def test_up_creates_the_rayservice_with_the_manifest_as_body(target, api):
    result = target.up(SUPPORT, show=False)
    assert result == {"kind": "RayService", "name": "support-assistant", "namespace": "ray-serving",
                      "action": "created"}
    (method, path, body), = api.calls("POST")
    assert path == "/apis/ray.io/v1/namespaces/ray-serving/rayservices"
    manifest = yaml.safe_load(SUPPORT.read_text())
    assert body["spec"] == manifest["spec"]
    assert body["apiVersion"] == "ray.io/v1" and body["kind"] == "RayService"


def test_up_again_unchanged_sends_no_write(target, api):
    target.up(SUPPORT, show=False)
    assert target.up(SUPPORT, show=False)["action"] == "unchanged"
    assert len(api.calls("POST")) == 1 and api.calls("PUT") == []


def test_serve_config_change_replaces_with_the_current_resource_version(target, api, tmp_path, capsys):
    target.up(SUPPORT, show=False)
    version = api.objects[("ray-serving", "rayservices", "support-assistant")]["metadata"]["resourceVersion"]

    def fewer_normalizers(doc):
        doc["spec"]["serveConfigV2"] = doc["spec"]["serveConfigV2"].replace("num_replicas: 2", "num_replicas: 1", 1)

    target.up(edited(tmp_path, fewer_normalizers))
    (method, path, body), = api.calls("PUT")
    assert path == "/apis/ray.io/v1/namespaces/ray-serving/rayservices/support-assistant"
    assert body["metadata"]["resourceVersion"] == version
    assert "in place" in capsys.readouterr().out


def test_cluster_config_change_says_kuberay_builds_a_new_cluster(target, tmp_path):
    target.up(SUPPORT, show=False)

    def bigger_cpu_group(doc):
        doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = 3

    assert "new cluster" in target.up(edited(tmp_path, bigger_cpu_group), show=False)["action"]


def test_namespace_defaults_to_the_target_one_for_manifests_without_it(api, tmp_path):
    doc = yaml.safe_load(CPU_CLUSTER.read_text())
    del doc["metadata"]["namespace"]
    path = tmp_path / "no-namespace.yaml"
    path.write_text(yaml.safe_dump(doc))
    target = k8s.KubernetesTarget(namespace="course", api_client=api.client())
    target.up(path, show=False)
    name = doc["metadata"]["name"]
    assert api.calls("POST")[0][1] == "/apis/ray.io/v1/namespaces/course/rayclusters"
    assert target.get(name, "RayCluster")["metadata"]["name"] == name


def test_a_manifest_with_errors_never_reaches_the_api(target, api, tmp_path):
    def removed_field(doc):
        doc["spec"]["serveConfigV2"] = doc["spec"]["serveConfigV2"].replace(
            "target_ongoing_requests:", "target_num_ongoing_requests_per_replica:")

    with pytest.raises(ManifestError, match="target_num_ongoing_requests_per_replica"):
        target.up(edited(tmp_path, removed_field), show=False)
    assert api.requests == []


def test_missing_crds_name_kuberay_and_the_install_command():
    with FakeAPIServer(crds_installed=False) as api:
        target = k8s.KubernetesTarget(api_client=api.client())
        with pytest.raises(Failed) as info:
            target.up(SUPPORT, show=False)
    assert info.value.layer == "KubeRay"
    assert "servelab k8s install" in str(info.value)


def test_down_deletes_in_the_foreground_and_is_idempotent(target, api):
    target.up(SUPPORT, show=False)
    assert target.down("support-assistant", namespace="ray-serving")
    method, path, _ = api.calls("DELETE")[0]
    assert path.startswith("/apis/ray.io/v1/namespaces/ray-serving/rayservices/support-assistant")
    assert "propagationPolicy=Foreground" in path
    assert not target.down("support-assistant", namespace="ray-serving")


# -- status ----------------------------------------------------------------------------
@pytest.mark.parametrize("doc, ready, layer, reason", [
    ("rayservice-ready.yaml", True, None, "NonZeroServeEndpoints"),
    ("rayservice-upgrading.yaml", True, None, "NonZeroServeEndpoints"),
    ("rayservice-initializing.yaml", False, "Kubernetes", "Initializing"),
    ("rayservice-deploy-failed.yaml", False, "application code", "Initializing"),
    ("rayservice-replicas-pending.yaml", False, "Ray runtime", "Initializing"),
    ("rayservice-zero-endpoints.yaml", False, "Kubernetes", "ZeroServeEndpoints"),
    ("rayservice-update-failed.yaml", True, "application code", "NonZeroServeEndpoints"),
    ("raycluster-ready.yaml", True, None, "ready"),
    ("raycluster-pending.yaml", False, "Kubernetes", "NotReady"),
])
def test_status_documents_in_both_targets_vocabulary(doc, ready, layer, reason):
    report = k8s.parse_status(load(doc))
    assert is_ready(report) is ready
    assert report["layer"] == layer
    assert ready_condition(report)["reason"] == reason


def test_status_details_survive_the_translation():
    ready = k8s.parse_status(load("rayservice-ready.yaml"))
    deps = ready["activeServiceStatus"]["applicationStatuses"]["support"]["serveDeploymentStatuses"]
    assert deps["AnswerGenerator"]["status"] == "HEALTHY"
    assert ready["numServeEndpoints"] == 2 and not ready["upgradeInProgress"]
    assert k8s.parse_status(load("rayservice-upgrading.yaml"))["upgradeInProgress"]
    failed = k8s.parse_status(load("raycluster-pending.yaml"))
    assert "exceeded quota" in ready_condition(failed)["message"]


def test_every_status_field_kuberay_writes_is_kept():
    # apis/ray/v1/rayservice_types.go: RayServiceStatuses and RayServiceStatus
    report = k8s.parse_status(load("rayservice-update-failed.yaml"))
    assert report["serviceStatus"] == "Running" and report["observedGeneration"] == 2
    assert report["activeServiceStatus"]["rayClusterStatus"]["desiredCPU"] == "7"
    assert report["activeServiceStatus"]["applicationStatuses"]["support"]["status"] == "DEPLOY_FAILED"
    cluster = k8s.parse_status(load("raycluster-ready.yaml"))
    assert cluster["state"] == "ready" and "Ready" not in {c["type"] for c in cluster["conditions"]}


def test_an_object_without_status_points_at_the_operator():
    report = k8s.parse_status({"kind": "RayService", "metadata": {"name": "x"}})
    assert report["layer"] == "KubeRay" and not is_ready(report)


def test_wait_ready_returns_once_the_condition_is_true(target, api):
    target.up(SUPPORT, show=False)
    api.set_status("ray-serving", "rayservices", "support-assistant", load("rayservice-ready.yaml")["status"])
    report = target.wait_ready("support-assistant", namespace="ray-serving", timeout=5, show=False)
    assert report["numServeEndpoints"] == 2


def test_wait_ready_deadline_names_the_layer_the_status_points_at(target, api):
    target.up(SUPPORT, show=False)
    api.set_status("ray-serving", "rayservices", "support-assistant",
                   load("rayservice-deploy-failed.yaml")["status"])
    with pytest.raises(Stuck) as info:
        target.wait_ready("support-assistant", namespace="ray-serving", timeout=1, show=False, interval=0.2)
    assert info.value.layer == "application code"
    assert "traceback" in str(info.value)


def test_after_a_scale_wait_ready_waits_for_kuberay_to_catch_up(target, api, tmp_path):
    # raycluster_controller.go calculateStatus: `state` stays "ready" once set, and
    # observedGeneration is the generation of the spec the operator last reconciled.
    handle = target.up(CPU_CLUSTER, show=False)
    ready = {**load("raycluster-ready.yaml")["status"], "observedGeneration": 1}
    api.set_status("ray-lab", "rayclusters", "ray-lab-cluster", ready)
    assert target.wait_ready(handle, timeout=5, show=False)["generation"] == 1
    doc = yaml.safe_load(CPU_CLUSTER.read_text())
    doc["spec"]["workerGroupSpecs"][0]["replicas"] = 3
    scaled = tmp_path / "scaled.yaml"
    scaled.write_text(yaml.safe_dump(doc))
    target.up(scaled, show=False)  # the API server counts the change: generation 2
    with pytest.raises(Stuck, match="NotUpToDate observedGeneration 1 of generation 2"):
        target.wait_ready(handle, timeout=1, show=False, interval=0.2)
    api.set_status("ray-lab", "rayclusters", "ray-lab-cluster",
                   {**ready, "observedGeneration": 2, "desiredWorkerReplicas": 3})  # the new pod not ready yet
    with pytest.raises(Stuck, match="2 of 3 workers ready") as info:
        target.wait_ready(handle, timeout=1, show=False, interval=0.2)
    assert info.value.layer == "Kubernetes"
    api.set_status("ray-lab", "rayclusters", "ray-lab-cluster",
                   {**ready, "observedGeneration": 2, "desiredWorkerReplicas": 3, "readyWorkerReplicas": 3})
    assert target.wait_ready(handle, timeout=5, show=False)["readyWorkerReplicas"] == 3


# -- operator install ------------------------------------------------------------------
def fake_tool(directory: Path, name: str, exit_code: int = 0) -> Path:
    """An executable that records its arguments (helm and kubectl are not installed here)."""
    log = directory / f"{name}.log"
    tool = directory / name
    tool.write_text(f'#!/bin/sh\necho "$@" >> {log}\necho "{name} says no" >&2\nexit {exit_code}\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return log


def test_install_runs_helm_then_checks_crds_and_operator(api, tmp_path, monkeypatch):
    log = fake_tool(tmp_path, "helm")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    k8s.install_operator(api_client=api.client(), timeout=5, show=False)
    assert log.read_text().splitlines() == [" ".join(cmd[1:]) for cmd in k8s.helm_commands()]
    assert "--version 1.7.0" in log.read_text()
    checked = [path for _, path, _ in api.calls("GET")]
    assert "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rayservices.ray.io" in checked
    assert "/apis/apps/v1/namespaces/kuberay-system/deployments/kuberay-operator" in checked


def test_a_failing_helm_command_is_quoted_with_its_error(api, tmp_path, monkeypatch):
    fake_tool(tmp_path, "helm", exit_code=1)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(Failed, match="(?s)helm repo add.*helm says no"):
        k8s.install_operator(api_client=api.client(), timeout=5, show=False)


def test_an_operator_that_never_becomes_available_is_a_kuberay_problem(tmp_path, monkeypatch):
    fake_tool(tmp_path, "helm")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with FakeAPIServer(operator_ready=False) as api:
        with pytest.raises(Stuck) as info:
            k8s.install_operator(api_client=api.client(), timeout=1, show=False)
    assert info.value.layer == "KubeRay" and "kuberay-operator" in str(info.value)


def test_without_helm_the_error_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Failed, match="helm is not installed"):
        k8s.install_operator(show=False)


# -- port-forward ----------------------------------------------------------------------
def test_port_forward_targets_the_services_kuberay_creates():
    assert k8s.service_names("support-assistant", "RayService") == {
        "serve": ("support-assistant-serve-svc", 8000), "dashboard": ("support-assistant-head-svc", 8265)}
    assert k8s.port_forward_command("support-assistant-serve-svc", "ray-serving", 18000, 8000) == [
        "kubectl", "port-forward", "--address", "127.0.0.1", "-n", "ray-serving",
        "svc/support-assistant-serve-svc", "18000:8000"]


def test_a_port_forward_that_exits_reports_kubectl_error(tmp_path, monkeypatch):
    log = fake_tool(tmp_path, "kubectl", exit_code=1)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    forward = k8s.KubernetesTarget(namespace="ray-serving").port_forward("support-assistant")
    with pytest.raises(Failed) as info:
        forward.start(timeout=5, show=False)
    assert info.value.layer == "Kubernetes" and "kubectl says no" in str(info.value)
    assert "svc/support-assistant-serve-svc" in log.read_text()
    assert forward._procs == []  # stopped what it started


def test_prometheus_on_kubernetes_is_kube_prometheus_stacks_through_a_port_forward(tmp_path, monkeypatch):
    """`target.prometheus()` forwards to the Service the chart creates for release `prometheus`
    (docs/kubernetes-on-kind.md section 10). A real Prometheus plays that Service's pod here; the
    stand-in API server lists the Service, and the kubectl shim relays to it."""
    import shutil
    import subprocess
    import time

    from servelab.cluster._ports import free_port

    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus: `make system` installs it")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
    server = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                               "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service = "/api/v1/namespaces/prometheus-system/services/prometheus-kube-prometheus-prometheus"

    class WithPrometheus(FakeAPIServer):
        def route(self, method, path, body):
            if method == "GET" and path == service:
                return 200, {"metadata": {"name": path.rsplit("/", 1)[1], "namespace": "prometheus-system"},
                             "spec": {"ports": [{"name": "http-web", "port": 9090, "localPort": port}]}}
            return super().route(method, path, body)

    try:
        with WithPrometheus() as api:
            monkeypatch.setenv("PATH", f"{api.kubectl_bin(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
            monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig")))
            with k8s.KubernetesTarget(namespace="ray-serving").prometheus(show=False) as prom:
                assert prom.url != f"http://127.0.0.1:{port}"  # the forward's own port
                deadline = time.monotonic() + 30
                while prom.value('up{job="prometheus"}') != 1:
                    assert time.monotonic() < deadline, "Prometheus never scraped itself through the forward"
                    time.sleep(0.5)
            assert ("GET", service) in [(m, p) for m, p, _ in api.calls("GET")]
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- the CLI, through a kubeconfig that points at the stand-in API server ---------------------
def test_cli_up_status_down_on_the_kubernetes_target(api, tmp_path, monkeypatch, capsys):
    from servelab.cli import _main as cli

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "learner"}}],
        "users": [{"name": "learner", "user": {"token": "not-a-real-token"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert cli.main(["up", str(SUPPORT), "--target", "kubernetes"]) == 0
    assert "RayService ray-serving/support-assistant: created" in capsys.readouterr().out

    api.set_status("ray-serving", "rayservices", "support-assistant", load("rayservice-deploy-failed.yaml")["status"])
    args = ["--target", "kubernetes", "--namespace", "ray-serving", "--name", "support-assistant"]
    assert cli.main(["status", *args]) == 1  # not Ready
    out = capsys.readouterr().out
    assert "Ready=False" in out and "application code" in out

    assert cli.main(["down", *args]) == 0
    assert "deleted" in capsys.readouterr().out
    assert api.calls("DELETE")


def test_every_servelab_command_in_the_kind_guide_parses():
    import re
    import shlex

    from servelab.cli import build_parser

    guide = (REPO / "docs" / "kubernetes-on-kind.md").read_text()
    commands = re.findall(r"^\.venv/bin/servelab (.+?)(?:\s+#.*)?$", guide, flags=re.M)
    assert len(commands) >= 8
    for line in commands:
        build_parser().parse_args(shlex.split(line))  # argparse exits on an unknown option


def test_rules_go_to_prometheus_as_a_prometheus_rule_owned_by_the_cluster_and_a_rerun_replaces_them():
    """A PrometheusRule per rules file, labelled for the chart's rule selector and owned by the
    RayCluster; loaded once Prometheus lists the file prometheus-operator writes for that very
    object, <namespace>-<name>-<uid>.yaml (pkg/prometheus/resource_selector.go). Loading again
    re-creates it, so the wait cannot take the old version's groups for the new ones."""
    import re

    rules_path = re.compile(r"^/apis/monitoring\.coreos\.com/v1/namespaces/([^/]+)/prometheusrules(?:/([^/?]+))?$")

    class WithOperator(FakeAPIServer):
        rules: dict = {}

        def route(self, method, path, body):
            m = rules_path.match(path)
            if not m:
                return super().route(method, path, body)
            name = m.group(2) or body["metadata"]["name"]
            if method == "DELETE":
                return 200, self.rules.pop(name)
            if name in self.rules:
                return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists", "message": "exists"}
            self._version += 1
            self.rules[name] = {**body, "metadata": {**body["metadata"], "uid": f"u{self._version}"}}
            return 201, self.rules[name]

    class Operated:  # the Prometheus the operator reloads: one file per PrometheusRule, as it stands
        def rules(self):
            return [{**group, "file": f"/etc/prometheus/rules/ray-serving-{name}-{rule['metadata']['uid']}.yaml",
                     "rules": []} for name, rule in api.rules.items() for group in rule["spec"]["groups"]]

    text = "groups:\n  - name: lab6\n    rules:\n      - alert: Down\n        expr: up == 0\n"
    owner = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "lab6-faults", "uid": "c1"}}
    with WithOperator() as api:
        target = k8s.KubernetesTarget(namespace="ray-serving", api_client=api.client())
        first = target.add_prometheus_rules("lab6-faults-lab6", text, Operated(), owner=owner, show=False)
        made = api.rules["lab6-faults-lab6"]
        assert made["metadata"]["labels"] == {"release": "prometheus"}
        assert made["metadata"]["ownerReferences"] == [
            {"apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "lab6-faults", "uid": "c1"}]
        assert made["spec"]["groups"][0]["interval"] == "5s"  # as the local target evaluates
        again = target.add_prometheus_rules("lab6-faults-lab6", text.replace("lab6", "lab6-v2"), Operated(),
                                            owner=owner, show=False)
        assert [g["name"] for g in first] == ["lab6"] and [g["name"] for g in again] == ["lab6-v2"]
        assert [m for m, p, _ in api.calls() if "prometheusrules" in p] == ["POST", "POST", "DELETE", "POST"]
