"""The course on JupyterHub: manifests/jupyterhub/values.yaml and rbac.yaml, up to the cluster.

No Kubernetes or helm here. The values are validated as helm validates them: merged over the
chart's own defaults, against the chart's schema (tests/support/jupyterhub/: values.yaml and
values.schema.yaml of jupyterhub/zero-to-jupyterhub-k8s at 48ea50e3, 2026-07-24, a little after
chart 4.4.0, whose hub and singleuser sections are the same; the schema without its descriptions,
as the chart packages it; BSD-3-Clause). The hub's hook runs as
JupyterHub runs extraConfig (with `c`), and what a learner's and the hub's ServiceAccounts may
do is answered by Kubernetes' RBAC rules (tests/support/rbac.py).
"""

import inspect
import json

import jsonschema
import kubernetes.client
import pytest
import yaml
from rbac import Request, can_i
from traitlets.config import Config

from servelab.course.layout import layout

REPO = layout().root
HUB = REPO / "manifests" / "jupyterhub"
CHART = REPO / "tests" / "support" / "jupyterhub"
HUB_NS, ALICE, BOB = "servelab-hub", "servelab-hub-alice", "servelab-hub-bob"


def merged(base: dict, over: dict) -> dict:
    """helm's coalescing of user values over a chart's: maps merge, anything else replaces, null deletes."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def schema_errors(values: dict) -> list[str]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    chart = yaml.safe_load((CHART / "chart-values.yaml").read_text())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(merged(chart, values))]


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((HUB / "values.yaml").read_text())


@pytest.fixture(scope="module")
def hook(values):
    """The hub's extraConfig run as JupyterHub runs it: Python with the config object `c` in scope."""
    scope = {"c": Config()}
    for snippet in values["hub"]["extraConfig"].values():
        exec(compile(snippet, "values.yaml:hub.extraConfig", "exec"), scope)
    return scope


def rbac_objects(hook, *learners: str) -> list[dict]:
    """rbac.yaml, plus what the hook creates in each learner's namespace."""
    objects = list(yaml.safe_load_all((HUB / "rbac.yaml").read_text()))
    for namespace in learners:
        objects += [body for _, _, body in hook["servelab_learner_objects"](namespace, namespace.rsplit("-", 1)[1])]
    return objects


def test_values_validate_against_the_chart_schema(values):
    assert schema_errors(values) == []
    # ...and the schema is really applied: a misspelt key is refused, with its path
    broken = merged(values, {"singleuser": {"memroy": {"limit": "4G"}}})
    assert any(e.startswith("singleuser:") and "'memroy' was unexpected" in e for e in schema_errors(broken))


def test_values_point_at_what_the_course_image_holds(values):
    user = values["singleuser"]
    image_root = "/home/learner/servelab/"  # docker/course.Dockerfile's WORKDIR
    assert (REPO / user["defaultUrl"].removeprefix("/lab/tree/")).is_file()
    assert (REPO / user["extraEnv"]["JUPYTER_CONFIG_PATH"].removeprefix(image_root)).is_dir()
    assert user["storage"]["homeMountPath"] == image_root + "labs"
    dockerfile = (REPO / "docker" / "course.Dockerfile").read_text()
    assert "/home/learner/labs-release" in dockerfile and "/home/learner/labs-release" in str(user["lifecycleHooks"])
    assert "jupyterhub==" in dockerfile, "z2jh starts jupyterhub-singleuser: the image needs jupyterhub"
    small = next(p for p in user["profileList"] if "kubespawner_override" in p)["kubespawner_override"]
    assert small["environment"]["SERVELAB_PROFILE"] == "small"
    # an override's environment is merged into extraEnv's, so the learner tools stay on either way
    assert small["environment"].get("JUPYTER_CONFIG_PATH", user["extraEnv"]["JUPYTER_CONFIG_PATH"]) == \
        user["extraEnv"]["JUPYTER_CONFIG_PATH"]


def test_learners_servers_and_the_hub_reach_each_other_across_namespaces(values):
    # the chart's http://hub:8081 resolves only in the hub's namespace
    assert values["hub"]["config"]["JupyterHub"]["hub_connect_url"] == f"http://hub.{HUB_NS}.svc.cluster.local:8081"
    learners = {"namespaceSelector": {"matchExpressions": [{"key": "servelab.io/learner", "operator": "Exists"}]}}
    assert {"from": [learners], "ports": [{"port": 8081}]} in values["hub"]["networkPolicy"]["ingress"]
    for policy in (values["hub"]["networkPolicy"], values["proxy"]["chp"]["networkPolicy"]):
        assert {"to": [learners], "ports": [{"port": 8888}]} in policy["egress"]


def test_the_hook_is_a_pre_spawn_hook_and_names_real_client_calls(hook):
    assert inspect.iscoroutinefunction(hook["c"].KubeSpawner.pre_spawn_hook)
    apis = (kubernetes.client.CoreV1Api, kubernetes.client.RbacAuthorizationV1Api, kubernetes.client.NetworkingV1Api)
    for method, namespace, body in hook["servelab_learner_objects"](ALICE, "alice"):
        api = next((a for a in apis if hasattr(a, method)), None)
        assert api is not None, f"no kubernetes client API has {method}"  # kubernetes_asyncio has the same names
        params = list(inspect.signature(getattr(api, method)).parameters)[1:]
        wanted = ["namespace", "body"] if namespace else ["body"]  # how the hook calls it
        assert params[:len(wanted)] == wanted, (method, params)
        assert body["metadata"].get("namespace", ALICE) == ALICE


def test_a_learner_namespace_is_baseline_and_closed_to_other_namespaces(hook):
    objects = {o["kind"]: o for _, _, o in hook["servelab_learner_objects"](ALICE, "alice")}
    assert objects["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    policy = objects["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {} and set(policy["policyTypes"]) == {"Ingress", "Egress"}
    sources = policy["ingress"][0]["from"]
    assert {"podSelector": {}} in sources  # its own pods: JupyterLab to its Ray clusters
    admitted = {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in sources
                if "namespaceSelector" in s}
    assert admitted == {HUB_NS, "kuberay-system", "prometheus-system"}
    blocks = [t["ipBlock"] for t in policy["egress"][0]["to"] if "ipBlock" in t]
    assert blocks == [{"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}]


LEARNER_MAY = [
    Request("create", "rayservices", ALICE, "ray.io"),
    Request("patch", "rayservices", ALICE, "ray.io"),
    Request("delete", "rayclusters", ALICE, "ray.io"),
    Request("get", "rayjobs", ALICE, "ray.io"),
    Request("watch", "pods", ALICE),
    Request("delete", "pods", ALICE),              # servelab fault kill-head
    Request("get", "pods/log", ALICE),
    Request("create", "pods/portforward", ALICE),  # Serve and the dashboard, as the labs reach them
    Request("create", "pods/exec", ALICE),         # `ray status` in the head
    Request("list", "services", ALICE),
    Request("list", "events", ALICE),
    Request("get", "secrets", ALICE),              # Ray's auth token
]
LEARNER_MAY_NOT = [
    Request("get", "pods", BOB),                   # another learner's namespace
    Request("create", "rayservices", BOB, "ray.io"),
    Request("create", "pods/portforward", BOB),
    Request("get", "secrets", BOB),
    Request("create", "pods", ALICE),              # pods come from KubeRay, from the templates they write
    Request("create", "rolebindings", ALICE, "rbac.authorization.k8s.io"),
    Request("delete", "networkpolicies", ALICE, "networking.k8s.io"),
    Request("patch", "namespaces", None, name=ALICE),  # e.g. its Pod Security label
    Request("list", "namespaces"),
    Request("list", "nodes"),
    Request("create", "customresourcedefinitions", None, "apiextensions.k8s.io"),
    Request("delete", "deployments", "kuberay-system", "apps"),
]


@pytest.mark.parametrize("req", LEARNER_MAY, ids=str)
def test_a_learner_may(hook, req):
    assert can_i(rbac_objects(hook, ALICE, BOB), (ALICE, "learner"), req)


@pytest.mark.parametrize("req", LEARNER_MAY_NOT, ids=str)
def test_a_learner_may_not(hook, req):
    assert not can_i(rbac_objects(hook, ALICE, BOB), (ALICE, "learner"), req)


def test_the_hub_may_make_what_the_hook_makes_and_no_more(hook):
    objects = rbac_objects(hook)  # before any learner: only rbac.yaml
    hub = (HUB_NS, "hub")
    plural = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "RoleBinding": "rolebindings",
              "NetworkPolicy": "networkpolicies"}
    for _, namespace, body in hook["servelab_learner_objects"](ALICE, "alice"):
        group = body["apiVersion"].rpartition("/")[0]
        assert can_i(objects, hub, Request("create", plural[body["kind"]], namespace, group)), body["kind"]
        if body["kind"] == "RoleBinding":  # escalation check: `bind` on exactly the role it refers to
            ref = body["roleRef"]["name"]
            assert can_i(objects, hub, Request("bind", "clusterroles", None, "rbac.authorization.k8s.io", ref))
            assert not can_i(objects, hub, Request("bind", "clusterroles", None, "rbac.authorization.k8s.io",
                                                   "cluster-admin"))
    for kubespawner_needs in ("pods", "persistentvolumeclaims"):
        assert can_i(objects, hub, Request("create", kubespawner_needs, ALICE))
    assert not can_i(objects, hub, Request("get", "secrets", ALICE))  # KubeSpawner makes none here
    assert not can_i(objects, hub, Request("create", "clusterrolebindings", None, "rbac.authorization.k8s.io"))
    assert not can_i(objects, hub, Request("delete", "namespaces"))
    assert not can_i(objects, hub, Request("create", "rayservices", ALICE, "ray.io"))


def test_the_evaluator_reads_rbac_as_kubernetes_does():
    rules = [{"apiGroups": [""], "resources": ["*/scale", "pods"], "verbs": ["get"]}]
    objects = [{"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": rules},
               {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "a"},
                "roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "ServiceAccount",
                                                                              "name": "x", "namespace": "a"}]}]
    x = ("a", "x")
    assert can_i(objects, x, Request("get", "pods", "a"))
    assert can_i(objects, x, Request("get", "deployments/scale", "a"))  # "*/scale": any resource's
    assert not can_i(objects, x, Request("get", "pods/log", "a"))      # a subresource is named on its own
    assert not can_i(objects, x, Request("get", "pods", "b"))          # a RoleBinding stays in its namespace
    assert not can_i(objects, ("b", "x"), Request("get", "pods", "a"))  # and names one ServiceAccount
    # the namespace object is filed under its own name: a RoleBinding there can grant it
    objects[0]["rules"].append({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]})
    assert can_i(objects, x, Request("get", "namespaces", None, name="a"))
    assert not can_i(objects, x, Request("get", "namespaces", None, name="b"))
    assert not can_i(objects, x, Request("list", "namespaces"))


def test_the_guide_matches_the_files_and_its_shell_parses():
    import re
    import shlex
    import subprocess

    from servelab.cli import build_parser

    guide = (REPO / "docs" / "jupyterhub.md").read_text()
    header = (HUB / "values.yaml").read_text().split("\n\n", 1)[0]
    assert "--version 4.4.0" in guide and "--version 4.4.0" in header  # one chart version, said twice
    # the KubeRay that `servelab k8s install` installs, from the same chart, into the same namespace
    from servelab.targets._kubernetes import HELM_REPO_URL, helm_commands

    install = " ".join(helm_commands()[-1][:9])  # helm upgrade --install NAME CHART --version V --namespace NS
    assert install in " ".join(guide.replace("\\\n", " ").split())
    assert HELM_REPO_URL in guide
    blocks = re.findall(r"```sh\n(.*?)```", guide, flags=re.S)
    for block in blocks:
        done = subprocess.run(["bash", "-n"], input=block, text=True, capture_output=True)
        assert done.returncode == 0, done.stderr
    (grade,) = re.findall(r"^servelab (grade .+?)(?:\s+#.*)?$", guide, flags=re.M)
    build_parser().parse_args(shlex.split(grade.replace('"$LAB"', "lab2-rag-pipeline").replace('"$COURSE"', "/c")))
