"""One `Target` interface for both targets, `get_target`, and the CLI calling it.

No Ray cluster starts here: the local target is exercised where it finds nothing
running (or through recorded module functions), the Kubernetes target against the
stand-in API server (tests/support/k8s_api.py), the CLI against a recording Target.
"""

import inspect
from pathlib import Path

import pytest
import yaml
from k8s_api import FakeAPIServer

from servelab import cli, targets
from servelab.errors import Failed, ServelabError
from servelab.targets import KubernetesTarget, LocalTarget, Target, _local, get_target
from servelab.targets._vocabulary import condition, is_ready, ready_condition

REPO = Path(__file__).parents[2]
SUPPORT = REPO / "manifests" / "rayservice-support-assistant.yaml"
STATUS_DOCS = Path(__file__).parents[1] / "support" / "k8s"
OPERATIONS = {"up", "status", "wait_ready", "down", "endpoints", "names"}


@pytest.fixture
def api():
    with FakeAPIServer() as server:
        yield server


@pytest.fixture
def nothing_local_runs(monkeypatch):
    """The local target sees no cluster (clusters others run on this machine stay out of it)."""
    monkeypatch.setattr(_local.LocalRay, "find", classmethod(lambda cls, root=None: []))


# -- both classes implement the interface -------------------------------------------------
def test_the_interface_is_the_operations_both_targets_share():
    assert Target.__abstractmethods__ == OPERATIONS
    with pytest.raises(TypeError):
        Target()


@pytest.mark.parametrize("cls", [LocalTarget, KubernetesTarget])
def test_each_target_implements_every_operation(cls, api):
    target = cls(api_client=api.client()) if cls is KubernetesTarget else cls()
    assert isinstance(target, Target) and not cls.__abstractmethods__
    for name in OPERATIONS:
        assert getattr(cls, name) is not getattr(Target, name), f"{cls.__name__}.{name} is the abstract one"
    # callable the way the interface says, keyword for keyword
    inspect.signature(target.up).bind("m.yaml", wait=True, timeout=1, show=False)
    inspect.signature(target.wait_ready).bind("x", timeout=1, show=False)
    for name in ("status", "down", "endpoints"):
        inspect.signature(getattr(target, name)).bind("x")
    inspect.signature(target.names).bind()


def test_name_of_reads_names_and_both_kinds_of_handle():
    target = LocalTarget()

    class Cluster:
        name = "rag"

    assert target.name_of("rag") == "rag"
    assert target.name_of(Cluster()) == "rag"
    assert target.name_of({"kind": "RayService", "name": "rag", "namespace": "ns", "action": "created"}) == "rag"


# -- the Kubernetes target through the interface ------------------------------------------
def test_kubernetes_target_through_the_interface(api):
    target: Target = KubernetesTarget(api_client=api.client())
    handle = target.up(SUPPORT, show=False)
    assert handle == {"kind": "RayService", "name": "support-assistant", "namespace": "ray-serving",
                      "action": "created"}
    # the handle carries the manifest's namespace; the target's own is "default"
    assert target.names() == []
    assert KubernetesTarget(namespace="ray-serving", api_client=api.client()).names() == ["support-assistant"]

    report = target.status(handle)
    assert report["kind"] == "RayService" and report["layer"] == "KubeRay"  # the operator has not reported
    ready = yaml.safe_load((STATUS_DOCS / "rayservice-ready.yaml").read_text())["status"]
    api.set_status("ray-serving", "rayservices", "support-assistant", ready)
    assert is_ready(target.wait_ready(handle, timeout=5, show=False))

    urls = target.endpoints(handle)
    assert urls["serve"] is None and urls["dashboard"] is None
    forward = "servelab k8s port-forward --kind RayService --namespace ray-serving --name support-assistant"
    assert forward in urls["hint"]

    assert target.down(handle) is True
    assert target.down(handle) is False
    assert ready_condition(target.status(handle))["reason"] == "NotFound"


def test_kubernetes_up_with_wait_waits_for_ready(api):
    target = KubernetesTarget(api_client=api.client())
    target.up(SUPPORT, show=False)
    ready = yaml.safe_load((STATUS_DOCS / "rayservice-ready.yaml").read_text())["status"]
    api.set_status("ray-serving", "rayservices", "support-assistant", ready)
    assert target.up(SUPPORT, wait=True, timeout=5, show=False)["action"] == "unchanged"


def test_kubernetes_target_kind_is_what_a_bare_name_means(api):
    target = KubernetesTarget(namespace="ray-lab", api_client=api.client(), kind="RayCluster")
    assert target.status("ray-lab-cluster")["kind"] == "RayCluster"
    assert target.names() == []
    (_, path, _), *_ = api.calls("GET")
    assert path.startswith("/apis/ray.io/v1/namespaces/ray-lab/rayclusters")


def test_kubernetes_endpoints_are_an_open_port_forwards(api, monkeypatch):
    target = KubernetesTarget(namespace="ray-serving", api_client=api.client())
    forward = target.port_forward("support-assistant")
    forward.local_ports = {"serve": 18000, "dashboard": 18265}

    class Running:
        def poll(self):
            return None

    monkeypatch.setattr(forward, "_procs", [Running(), Running()])
    assert target.endpoints("support-assistant") == {
        "serve": "http://127.0.0.1:18000", "dashboard": "http://127.0.0.1:18265", "hint": ""}
    forward._procs = []  # stopped
    assert target.endpoints("support-assistant")["serve"] is None


# -- the local target through the interface, with nothing running -------------------------
def test_local_target_with_no_cluster_running(nothing_local_runs):
    target: Target = LocalTarget()
    assert target.names() == []
    report = target.status("rag")
    assert not is_ready(report) and report["layer"] == "Ray runtime"
    assert ready_condition(report)["reason"] == "NotFound"
    assert target.endpoints("rag") == {"serve": None, "dashboard": None,
                                       "hint": "no local cluster named 'rag' is running (servelab status lists them)"}
    assert target.down("rag") is False
    with pytest.raises(Failed) as info:
        target.wait_ready("rag", timeout=1, show=False)
    assert info.value.layer == "Ray runtime"


def test_local_target_wraps_the_module_functions(monkeypatch):
    calls = []

    class Cluster:
        name = "rag"

    cluster = Cluster()
    monkeypatch.setattr(_local, "up", lambda path, **kw: calls.append(("up", path, kw)) or cluster)
    monkeypatch.setattr(_local, "wait_ready", lambda c, **kw: calls.append(("wait_ready", c, kw)) or {})
    monkeypatch.setattr(_local, "find", lambda name: cluster if name == "rag" else None)
    monkeypatch.setattr(_local, "status", lambda c: calls.append(("status", c)) or {"name": c.name})

    target = LocalTarget(die_with_owner=False)
    assert target.up("m.yaml", wait=True, timeout=7, show=False) is cluster
    assert target.status("rag") == {"name": "rag"}
    assert calls == [("up", "m.yaml", {"show": False, "timeout": 7, "die_with_owner": False, "upgrade": None}),
                     ("wait_ready", cluster, {"timeout": 7, "show": False}),
                     ("status", cluster)]
    assert LocalTarget().die_with_owner is True  # as local.up's clusters: they end with this process


# -- get_target -------------------------------------------------------------------------------
def test_get_target_picks_by_name(monkeypatch):
    monkeypatch.setenv("SERVELAB_TARGET", "kubernetes")
    assert type(get_target("local")) is LocalTarget
    assert type(get_target("kubernetes")) is KubernetesTarget


@pytest.mark.parametrize("env, expected", [
    ("kubernetes", KubernetesTarget), (" Kubernetes ", KubernetesTarget), ("local", LocalTarget),
    ("", LocalTarget), (None, LocalTarget),
])
def test_get_target_without_a_name_reads_servelab_target(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("SERVELAB_TARGET", raising=False)
    else:
        monkeypatch.setenv("SERVELAB_TARGET", env)
    assert type(get_target()) is expected


def test_get_target_refuses_unknown_names(monkeypatch):
    with pytest.raises(ServelabError, match="unknown target 'minikube'"):
        get_target("minikube")
    monkeypatch.setenv("SERVELAB_TARGET", "gke")
    with pytest.raises(ServelabError, match="SERVELAB_TARGET='gke'"):
        get_target()


def test_get_target_gives_each_target_its_options():
    k8s = get_target("kubernetes", namespace="course", kind="RayCluster", die_with_owner=False)
    assert (k8s.namespace, k8s.kind) == ("course", "RayCluster")
    local = get_target("local", namespace="course", kind="RayCluster", die_with_owner=False)
    assert local.die_with_owner is False
    with pytest.raises(TypeError, match="nmespace"):
        get_target("local", nmespace="course")


def test_the_package_exports_the_interface():
    import servelab

    assert {"Target", "LocalTarget", "KubernetesTarget", "get_target"} <= set(targets.__all__)
    assert servelab.get_target is get_target and servelab.Target is Target


# -- the CLI goes through get_target ---------------------------------------------------------------
class Recording(Target):
    """A target that records what it is asked and reports what it is told."""

    def __init__(self, ready: bool = True):
        self.calls = []
        self.ready = ready

    def up(self, path, *, wait=False, timeout=300, show=True):
        self.calls.append(("up", path, {"wait": wait, "timeout": timeout}))
        return {"kind": "RayService", "name": "svc", "namespace": "ns", "action": "created"}

    def status(self, name):
        self.calls.append(("status", name))
        return {"name": self.name_of(name), "kind": "RayService", "layer": None if self.ready else "Serve",
                "conditions": [condition(self.ready, "Fine" if self.ready else "Deploying", "")]}

    def wait_ready(self, name, *, timeout=300, show=True):
        self.calls.append(("wait_ready", name, {"timeout": timeout}))
        return self.status(name)

    def down(self, name):
        self.calls.append(("down", name))
        return True

    def endpoints(self, name):
        self.calls.append(("endpoints", name))
        return {"serve": None, "dashboard": None, "hint": "port-forward first"}

    def names(self):
        self.calls.append(("names",))
        return ["svc"]


@pytest.fixture
def recording(monkeypatch):
    target = Recording()
    asked = []

    def fake_get_target(name=None, **options):
        asked.append((name, options))
        return target

    monkeypatch.setattr(targets, "get_target", fake_get_target)
    target.asked = asked
    return target


def test_cli_status_asks_the_target(recording, capsys):
    assert cli.main(["status", "--target", "kubernetes", "--name", "svc", "--namespace", "ns"]) == 0
    assert recording.asked == [("kubernetes", {"namespace": "ns", "kind": "RayService", "die_with_owner": False})]
    assert recording.calls == [("status", "svc")]
    assert capsys.readouterr().out == "RayService svc:\n  Ready=True (Fine)\n"

    recording.ready = False
    assert cli.main(["status", "--target", "kubernetes", "--name", "svc"]) == 1
    assert "look at the Serve layer first" in capsys.readouterr().out


def test_cli_status_and_down_need_a_name_on_a_target_of_named_objects(recording, capsys):
    assert cli.main(["status", "--target", "kubernetes"]) == 1
    err = capsys.readouterr().err
    assert "name the RayService or RayCluster: servelab status --target kubernetes --name NAME" in err
    assert cli.main(["down", "--target", "kubernetes"]) == 1
    assert "servelab down --target kubernetes --name NAME" in capsys.readouterr().err
    assert recording.calls == []


def test_cli_down_asks_the_target(recording, capsys):
    assert cli.main(["down", "--target", "kubernetes", "--kind", "RayCluster", "--name", "svc"]) == 0
    assert recording.asked[0][1]["kind"] == "RayCluster"
    assert recording.calls == [("down", "svc")]
    assert capsys.readouterr().out == "RayCluster svc: deleted\n"


def test_cli_up_asks_the_target_and_waits_with_wait(recording, capsys):
    assert cli.main(["up", "svc.yaml", "--target", "kubernetes", "--wait", "--timeout", "9"]) == 0
    handle = {"kind": "RayService", "name": "svc", "namespace": "ns", "action": "created"}
    assert recording.calls == [("up", "svc.yaml", {"wait": False, "timeout": 9.0}),
                               ("wait_ready", handle, {"timeout": 9.0}), ("status", handle),
                               ("endpoints", handle)]
    assert capsys.readouterr().out == "  Ready=True (Fine)\n"  # no URLs here: nothing about them


def test_cli_up_without_a_manifest_is_for_the_local_target_only(recording, capsys):
    assert cli.main(["up", "--target", "kubernetes"]) == 1
    assert "the kubernetes target needs a manifest: servelab up FILE --target kubernetes" in capsys.readouterr().err
    assert recording.calls == []


def test_cli_on_the_local_target_with_nothing_running(nothing_local_runs, capsys):
    assert cli.main(["status", "--target", "local"]) == 0
    assert capsys.readouterr().out == "No servelab cluster is running.\n"
    assert cli.main(["status", "--target", "local", "--name", "rag"]) == 1
    assert cli.main(["down", "--target", "local"]) == 0
    assert capsys.readouterr().out.endswith("Nothing to stop.\n")
    assert cli.main(["down", "--target", "local", "--all"]) == 0
    assert capsys.readouterr().out == "Nothing to stop.\n"
