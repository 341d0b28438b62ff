"""Fault injection without a live cluster: arguments, records, and the Kubernetes
target up to its boundary (a stand-in API server and a stand-in Ray dashboard on
127.0.0.1; `kubectl exec` itself needs a real API server, so its commands are
recorded instead of run)."""

import json
import os
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from k8s_api import FakeAPIServer
from loopback_http import serving

from servelab.cli import main as servelab_main
from servelab.faults import _flags as fault_flags
from servelab.faults import _verbs as faults
from servelab.targets._kubernetes import KubernetesTarget

REPO = Path(__file__).parents[2]
RAG = REPO / "manifests" / "rayservice-rag.yaml"
BAD_IMPORT = REPO / "manifests" / "faults" / "rag-bad-import.yaml"

HEAD_IP, CPU_IP, GPU_IP = "10.0.0.1", "10.0.0.2", "10.0.0.3"


# -- reading rollout files -----------------------------------------------------------
def test_serve_config_comes_from_a_rayservice_or_a_plain_config():
    from_manifest = faults.read_serve_config(RAG)
    assert [a["name"] for a in from_manifest["applications"]] == ["rag"]
    assert faults.read_serve_config(BAD_IMPORT)["applications"][0]["import_path"] == "servelab.apps.rag:ap"


@pytest.mark.parametrize("text", ["just a string\n", "kind: RayCluster\nspec: {}\n", "applications: none\n"])
def test_a_file_without_applications_is_refused_with_what_is_expected(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(faults.FaultError, match="applications|mapping"):
        faults.read_serve_config(path)


# -- the CLI's arguments ---------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["fault", "kill-replica", "rag"], "usage: servelab fault kill-replica APP DEPLOYMENT"),
    (["fault", "kill-controller", "extra"], "usage: servelab fault kill-controller"),
    (["fault", "kill-node", "gpu-workers", "--name", "no-such-cluster"], "no local cluster named 'no-such-cluster'"),
    (["fault", "kill-head", "--target", "kubernetes"], "name the RayService"),
])
def test_cli_errors_say_what_to_type(argv, message, capsys):
    assert servelab_main(argv) == 1
    assert message in capsys.readouterr().err


def test_an_unknown_verb_is_refused_with_the_list(capsys):
    with pytest.raises(SystemExit):
        servelab_main(["fault", "explode"])
    assert "kill-replica" in capsys.readouterr().err


def test_flags_are_per_process_and_per_kind(tmp_path, monkeypatch):
    monkeypatch.setenv(fault_flags.ENV, str(tmp_path))
    assert not fault_flags.raised()
    (tmp_path / fault_flags.flag_name(fault_flags.UNHEALTHY, 4242)).touch()
    assert fault_flags.raised(pid=4242)
    assert not fault_flags.raised()            # this process is not pid 4242
    assert not fault_flags.raised("other", pid=4242)


# -- the Kubernetes target, up to the boundary ---------------------------------------------
def pod(name, ip, node_type, group):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ray-serving",
                         "labels": {"ray.io/cluster": "rag-abcde", "ray.io/node-type": node_type,
                                    "ray.io/group": group}},
            "spec": {"containers": [{"name": "ray-worker" if node_type == "worker" else "ray-head",
                                     "image": "rayproject/ray:2.60.0-py311"}]},
            "status": {"podIP": ip, "phase": "Running"}}


class FakeDashboard:
    """Ray's State API and Serve's REST API, as a head pod's dashboard answers them."""

    def __init__(self):
        self.nodes = [
            {"node_id": "h" * 56, "node_ip": HEAD_IP, "state": "ALIVE", "is_head_node": True, "labels": {}},
            {"node_id": "c" * 56, "node_ip": CPU_IP, "state": "ALIVE", "is_head_node": False,
             "labels": {"ray.io/node-group": "cpu-workers"}},
            {"node_id": "g" * 56, "node_ip": GPU_IP, "state": "ALIVE", "is_head_node": False, "labels": {}},
        ]
        self.actors = [{"class_name": "ServeController", "state": "ALIVE", "pid": 77, "node_id": "h" * 56,
                        "actor_id": "a1"}]
        replica = {"replica_id": "r1", "state": "RUNNING", "pid": 321, "node_id": "g" * 56, "node_ip": GPU_IP}
        self.serve = {"applications": {"rag": {"status": "RUNNING", "deployments": {
            "Generator": {"status": "HEALTHY", "target_num_replicas": 1, "replicas": [replica]}}}}}
        dash = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/api/v0/nodes"):
                    body = {"data": {"result": {"result": dash.nodes}}}
                elif self.path.startswith("/api/v0/actors"):
                    body = {"data": {"result": {"result": dash.actors}}}
                elif self.path.startswith("/api/serve/applications/"):
                    body = dash.serve
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serving = serving(Handler)

    def __enter__(self):
        self.url = self._serving.__enter__()
        return self

    def __exit__(self, *exc):
        self._serving.__exit__(*exc)


# What `kubectl exec` runs to raise a flag: the folder the replica reads (faults/_flags.py).
FLAG, FOLDER = ["sh", "-c"], f'"${{{fault_flags.ENV}:-{fault_flags.POD_DIR}}}"'


def test_a_flag_raised_in_the_pod_is_where_the_replica_looks(tmp_path, monkeypatch):
    # Run the pod's command with the replica's environment: with SERVELAB_FAULT_DIR (a local
    # node) the flag lands in that folder; without it (a KubeRay pod) in /tmp/servelab-faults.
    command = faults.exec_command("flag", flag=fault_flags.flag_name(fault_flags.LOSE_STATE, 4242))
    monkeypatch.setenv(fault_flags.ENV, str(tmp_path / "node"))
    subprocess.run(command, check=True)
    assert fault_flags.raised(fault_flags.LOSE_STATE, pid=4242)
    folder = command[2].split()[2]  # mkdir -p FOLDER && ...: where it goes without the variable
    monkeypatch.delenv(fault_flags.ENV)
    assert subprocess.run(["sh", "-c", f"echo {folder}"], capture_output=True, text=True).stdout.strip() == \
        fault_flags.POD_DIR == fault_flags.fault_dir()

@pytest.fixture
def k8s(tmp_path):
    with FakeAPIServer() as api, FakeDashboard() as dash:
        api.pods.update({("ray-serving", p["metadata"]["name"]): p for p in [
            pod("rag-abcde-head-x1", HEAD_IP, "head", "headgroup"),
            pod("rag-abcde-cpu-workers-y2", CPU_IP, "worker", "cpu-workers"),
            pod("rag-abcde-gpu-workers-z3", GPU_IP, "worker", "gpu-workers")]})
        doc = yaml.safe_load(RAG.read_text())
        doc["metadata"]["resourceVersion"] = "1"
        doc["status"] = {"activeServiceStatus": {"rayClusterName": "rag-abcde"}}
        api.objects[("ray-serving", "rayservices", "rag")] = doc
        target = KubernetesTarget(namespace="ray-serving", api_client=api.client())
        injector = faults.KubernetesFaults(target, "rag", dash.url, namespace="ray-serving")
        execs = []
        injector._exec = lambda p, command: execs.append((p.metadata.name, command)) or ""
        yield api, dash, injector, execs


def test_kill_node_deletes_a_pod_of_that_group_without_grace(k8s):
    api, _, injector, _ = k8s
    fault = injector.kill_node("gpu-workers", show=False)
    deletes = [(path, q) for m, path, q in api.calls("DELETE")]
    assert len(deletes) == 1 and deletes[0][0].startswith(
        "/api/v1/namespaces/ray-serving/pods/rag-abcde-gpu-workers-z3")
    assert "gracePeriodSeconds=0" in deletes[0][0] or (deletes[0][1] or {}).get("gracePeriodSeconds") == 0
    assert fault.before["lost_replicas"] == [{"app": "rag", "deployment": "Generator", "replica_id": "r1"}]
    assert fault.target == "kubernetes:ray-serving/rag"


def test_kill_node_refuses_the_head_and_unknown_groups(k8s):
    _, _, injector, _ = k8s
    with pytest.raises(faults.FaultError, match="kill-head"):
        injector.kill_node("head", show=False)
    with pytest.raises(faults.FaultError, match="cpu-workers, gpu-workers"):
        injector.kill_node("tpu-workers", show=False)


def test_kill_head_deletes_the_head_pod(k8s):
    api, _, injector, _ = k8s
    fault = injector.kill_head(show=False)
    assert [p for _, p, _ in api.calls("DELETE")][0].startswith("/api/v1/namespaces/ray-serving/pods/rag-abcde-head-x1")
    assert fault.hit[0]["pod"] == "rag-abcde-head-x1"


def test_replica_faults_exec_in_the_pod_that_runs_the_replica(k8s):
    _, _, injector, execs = k8s
    injector.kill_replica("rag", "Generator", show=False)
    injector.hang_replica("rag", "Generator", show=False)
    injector.fail_health("rag", "Generator", show=False)
    assert execs == [
        ("rag-abcde-gpu-workers-z3", ["kill", "-s", "KILL", "321"]),
        ("rag-abcde-gpu-workers-z3", ["kill", "-s", "STOP", "321"]),
        ("rag-abcde-gpu-workers-z3", FLAG + ["mkdir -p " + FOLDER + " && touch " + FOLDER + "/unhealthy-321"]),
    ]


def test_kill_controller_execs_on_the_head(k8s):
    _, _, injector, execs = k8s
    fault = injector.kill_controller(show=False)
    assert execs == [("rag-abcde-head-x1", ["kill", "-s", "KILL", "77"])]
    assert fault.hit[0]["pid"] == 77


def test_asking_for_more_replicas_than_run_is_an_error(k8s):
    _, _, injector, execs = k8s
    with pytest.raises(faults.FaultError, match="1 RUNNING replica"):
        injector.kill_replica("rag", "Generator", count=2, show=False)
    assert execs == []


def test_bad_rollout_patches_serve_config_and_rollback_restores_it(k8s):
    api, _, injector, _ = k8s
    before = api.objects[("ray-serving", "rayservices", "rag")]["spec"]["serveConfigV2"]
    fault = injector.bad_rollout(BAD_IMPORT, show=False)
    live = api.objects[("ray-serving", "rayservices", "rag")]["spec"]["serveConfigV2"]
    assert yaml.safe_load(live)["applications"][0]["import_path"] == "servelab.apps.rag:ap"
    injector.rollback(fault, show=False)
    restored = api.objects[("ray-serving", "rayservices", "rag")]["spec"]["serveConfigV2"]
    assert yaml.safe_load(restored) == yaml.safe_load(before)


def test_recovery_rules_read_serve_status(k8s):
    _, dash, injector, _ = k8s
    fault = injector.kill_replica("rag", "Generator", show=False)
    ok, why = injector.recovered(fault)
    assert not ok and "still RUNNING" in why        # the killed replica is still listed
    dep = dash.serve["applications"]["rag"]["deployments"]["Generator"]
    dep["replicas"] = []
    assert injector.recovered(fault) == (False, "Generator: 0/1 replicas RUNNING")
    dep["replicas"] = [{"replica_id": "r2", "state": "RUNNING", "pid": 999, "node_id": "g" * 56}]
    dep["status"] = "UPDATING"
    assert injector.recovered(fault) == (False, "Generator: UPDATING")
    dep["status"] = "HEALTHY"
    assert injector.recovered(fault)[0]


def test_a_replica_can_be_picked_by_id(k8s):
    _, _, injector, execs = k8s
    with pytest.raises(faults.FaultError, match="no RUNNING replica 'nope'"):
        injector.kill_replica("rag", "Generator", replica_id="nope", show=False)
    fault = injector.kill_replica("rag", "Generator", replica_id="r1", show=False)
    assert fault.hit[0]["replica_id"] == "r1" and execs[-1][1] == ["kill", "-s", "KILL", "321"]


def test_lose_state_flags_only_that_replica(k8s):
    _, _, injector, execs = k8s
    fault = injector.lose_state("rag", "Generator", show=False)
    assert execs == [("rag-abcde-gpu-workers-z3", FLAG + ["mkdir -p " + FOLDER + " && touch " + FOLDER + "/lose-state-321"])]
    assert fault.verb == "lose-state" and fault.before == {"replicas": 1}


def test_sentiment_model_forgets_only_when_its_own_pid_is_flagged(tmp_path, monkeypatch):
    import os

    from servelab.apps.sentiment import LexiconModel

    monkeypatch.setenv(fault_flags.ENV, str(tmp_path))
    model = LexiconModel()
    (tmp_path / fault_flags.flag_name(fault_flags.LOSE_STATE, os.getpid() + 1)).touch()
    assert model.loaded() and model.predict("slow and broken")["label"] == "negative"
    (tmp_path / fault_flags.flag_name(fault_flags.LOSE_STATE, os.getpid())).touch()
    assert model.predict("slow and broken") == {"label": "neutral", "score": 0.0}  # still answers
    assert not model.loaded()


def test_kill_head_by_its_cli_name_on_the_local_target_explains_why_not():
    local = faults.LocalFaults.__new__(faults.LocalFaults)  # no cluster needed to refuse
    local.target = "local:x"
    with pytest.raises(faults.FaultError, match="Kubernetes target"):
        local.inject("kill-head")


def test_kubectl_exec_runs_in_the_ray_container_and_a_failure_says_why(k8s, tmp_path, monkeypatch):
    # What KubernetesFaults runs is the command a learner would type: kubectl exec in the pod's
    # first container (KubeRay's Ray container), kubectl's exit status and stderr kept.
    _, _, injector, _ = k8s
    del injector._exec  # the real one, with a kubectl on PATH that records what it was asked
    calls = tmp_path / "calls"
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                       'case "$*" in *STOP*) echo "kill: (321): No such process" >&2; exit 1;; esac\n')
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}")
    injector.kill_replica("rag", "Generator", show=False)
    assert calls.read_text() == "exec -n ray-serving rag-abcde-gpu-workers-z3 -c ray-worker -- kill -s KILL 321\n"
    with pytest.raises(faults.FaultError, match=r"exited 1: kill: \(321\): No such process"):
        injector.hang_replica("rag", "Generator", show=False)
