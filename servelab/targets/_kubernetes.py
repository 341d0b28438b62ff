"""The Kubernetes target: the same manifests, applied to a real cluster that runs KubeRay.

    target = KubernetesTarget()                 # your kubeconfig's current context
    install_operator()                          # helm, then CRDs and operator checked
    target.up("manifests/rayservice-support-assistant.yaml")
    target.wait_ready("support-assistant")      # the RayService's own Ready condition
    with target.port_forward("support-assistant") as fwd:
        requests.post(fwd.serve_url + "/support", json={"ticket": "..."})
    target.down("support-assistant")

Objects go through the `kubernetes` client's CustomObjectsApi (there is no
KubeRay Python client for RayService). Status comes from the object's own
status, translated into the vocabulary both targets share (vocabulary.py).
KubernetesTarget implements the `Target` interface (_base.py) the local target shares;
its methods also take `kind` and `namespace` for one call.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from servelab.cluster._ports import LOOPBACK, free_port
from servelab.cluster._processes import die_with_parent, stop_child
from servelab.observe._waiting import Failed, Stuck, wait_for
from servelab.targets._base import Target
from servelab.targets._manifest import ManifestError, read_manifest
from servelab.targets._vocabulary import condition, diagnose_applications, is_ready, ready_condition

KUBERAY_VERSION = "1.7.0"
HELM_REPO_NAME = "kuberay"
HELM_REPO_URL = "https://ray-project.github.io/kuberay-helm/"
OPERATOR_RELEASE = "kuberay-operator"
OPERATOR_NAMESPACE = "kuberay-system"
GROUP, VERSION = "ray.io", "v1"
PLURALS = {"RayCluster": "rayclusters", "RayService": "rayservices", "RayJob": "rayjobs"}
RULES_GROUP, RULES_VERSION = "monitoring.coreos.com", "v1"  # the Prometheus operator's PrometheusRule
CRDS = tuple(f"{plural}.{GROUP}" for plural in PLURALS.values())
SERVE_PORT, DASHBOARD_PORT = 8000, 8265


# -- operator ------------------------------------------------------------------
def helm_commands(version: str = KUBERAY_VERSION, namespace: str = OPERATOR_NAMESPACE) -> list[list[str]]:
    """What `install_operator` runs, in order (printed too, so learners see the real thing)."""
    return [
        ["helm", "repo", "add", HELM_REPO_NAME, HELM_REPO_URL, "--force-update"],
        ["helm", "repo", "update", HELM_REPO_NAME],
        ["helm", "upgrade", "--install", OPERATOR_RELEASE, f"{HELM_REPO_NAME}/kuberay-operator",
         "--version", version, "--namespace", namespace, "--create-namespace",
         "--wait", "--timeout", "5m"],
    ]


def install_operator(version: str = KUBERAY_VERSION, namespace: str = OPERATOR_NAMESPACE, *,
                     api_client=None, timeout: float = 300, show: bool = True) -> None:
    """Install (or upgrade) the KubeRay operator with helm, then check it is really there."""
    if shutil.which("helm") is None:
        raise Failed("Kubernetes", "helm is not installed; see https://helm.sh/docs/intro/install/ "
                                   "(or run the printed commands on a machine that has it)")
    for cmd in helm_commands(version, namespace):
        if show:
            print("$ " + shlex.join(cmd), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
            raise Failed("KubeRay", f"`{shlex.join(cmd)}` failed (exit {done.returncode}):\n{tail}")
    check_operator(namespace, api_client=api_client, timeout=timeout, show=show)


def check_operator(namespace: str = OPERATOR_NAMESPACE, *, api_client=None,
                   timeout: float = 120, show: bool = True) -> None:
    """Wait until KubeRay's CRDs are established and its operator Deployment is available."""
    from kubernetes import client

    api_client = api_client or _default_client()
    extensions = client.ApiextensionsV1Api(api_client)
    apps = client.AppsV1Api(api_client)

    # Raw JSON, not the client's models: those reject objects with fields newer than the client.
    def crds_established():
        for name in CRDS:
            crd = _json(extensions.read_custom_resource_definition(name, _preload_content=False))
            conditions = {c.get("type"): c.get("status") for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") != "True":
                return False
        return True

    def operator_available():
        deployment = _json(apps.read_namespaced_deployment(OPERATOR_RELEASE, namespace, _preload_content=False))
        return ((deployment.get("status") or {}).get("availableReplicas") or 0) >= 1

    wait_for(crds_established, what=f"KubeRay CRDs ({', '.join(CRDS)})", layer="KubeRay",
             timeout=timeout, show=show, hint="Is the operator installed? `helm list -A`")
    wait_for(operator_available, what=f"operator Deployment {namespace}/{OPERATOR_RELEASE}", layer="KubeRay",
             timeout=timeout, show=show,
             hint=f"`kubectl -n {namespace} describe deployment {OPERATOR_RELEASE}` and its pod's events")


def _json(response) -> dict:
    return json.loads(response.data)


def _default_client():
    """An ApiClient for the current kubeconfig context (or the pod's service account)."""
    from kubernetes import client, config

    try:
        # KUBECONFIG is read now, not when the kubernetes package was imported.
        return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG") or None)
    except Exception as kubeconfig_error:
        try:
            config.load_incluster_config()
        except Exception:
            raise Failed("Kubernetes", f"no Kubernetes cluster configured ({kubeconfig_error}); "
                                       "create one (e.g. `kind create cluster`) or set KUBECONFIG") from None
        return client.ApiClient()


# -- status -------------------------------------------------------------------------
def parse_status(obj: dict) -> dict:
    """A RayService or RayCluster object (as the API returns it) as a status report."""
    kind = obj.get("kind", "RayService")
    name = (obj.get("metadata") or {}).get("name", "?")
    status = obj.get("status") or {}
    if not status:  # the operator has not reconciled it (yet)
        return {"name": name, "kind": kind, "layer": "KubeRay",
                "conditions": [condition(False, "NoStatus", "the KubeRay operator has not reported on it; "
                                                             "is the operator running?")]}
    report = _cluster_report(name, status) if kind == "RayCluster" else _service_report(name, status)
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is not None:  # compared with status.observedGeneration: has KubeRay seen the latest spec?
        report["generation"] = generation
    return report


def up_to_date(report: dict) -> bool:
    """KubeRay has reconciled the latest spec, and a RayCluster runs the workers it now wants.
    A RayCluster's `state` stays "ready" once it was (raycluster_controller.go, calculateStatus),
    and a RayService's Ready stays True while the old version serves: after an update, neither
    says the update is done."""
    observed, generation = report.get("observedGeneration"), report.get("generation")
    if observed is not None and generation is not None and observed < generation:
        return False
    if report.get("kind") == "RayCluster":
        return report.get("readyWorkerReplicas", 0) >= report.get("desiredWorkerReplicas", 0)
    return True


def _service_report(name: str, status: dict) -> dict:
    """The RayService's status as KubeRay wrote it, every field, plus servelab's `layer`."""
    active = status.get("activeServiceStatus") or {}
    pending = status.get("pendingServiceStatus") or {}
    report = {
        **status,
        "name": name,
        "kind": "RayService",
        "conditions": list(status.get("conditions") or []),
        "activeServiceStatus": {**active, "applicationStatuses": active.get("applicationStatuses") or {},
                                "rayClusterName": active.get("rayClusterName")},
        "pendingServiceStatus": {**pending, "applicationStatuses": pending.get("applicationStatuses") or {},
                                 "rayClusterName": pending.get("rayClusterName")},
        "numServeEndpoints": status.get("numServeEndpoints", status.get("NumServeEndpoints", 0)),
        "upgradeInProgress": any(c.get("type") == "UpgradeInProgress" and c.get("status") == "True"
                                 for c in status.get("conditions") or []),
        "layer": None,
    }
    if not report["conditions"]:  # an operator older than 1.3 only set serviceStatus
        running = status.get("serviceStatus") == "Running"
        report["conditions"] = [condition(running, status.get("serviceStatus") or "Unknown", "")]
    apps = report["activeServiceStatus"]["applicationStatuses"]
    if not is_ready(report):
        report["layer"] = _service_layer(report, ready_condition(report))
    elif apps and any(a.get("status") != "RUNNING" for a in apps.values()):
        report["layer"] = diagnose_applications(apps)[0]  # Ready, but an update failed: the old version serves
    return report


def _service_layer(report: dict, ready: dict) -> str:
    if "Validation" in (ready.get("reason") or ""):
        return "KubeRay"  # the operator rejected the spec; the message says why
    apps = report["pendingServiceStatus"]["applicationStatuses"] or report["activeServiceStatus"]["applicationStatuses"]
    if apps and any(a.get("status") != "RUNNING" for a in apps.values()):
        return diagnose_applications(apps)[0]
    if apps:
        return "Kubernetes"  # apps run but no Serve pod is an endpoint: pod readiness, the Service
    cluster = report["pendingServiceStatus"]["rayClusterName"] or report["activeServiceStatus"]["rayClusterName"]
    return "Kubernetes" if cluster else "KubeRay"  # pods not up yet (pending, image pull) vs no cluster at all


def _cluster_report(name: str, status: dict) -> dict:
    """The RayCluster's status as KubeRay wrote it, plus servelab's `layer`. It has no Ready
    condition: `state` turns "ready" once every desired pod ran (ready_condition reads it)."""
    ready = status.get("state") == "ready"
    return {
        **status,
        "name": name,
        "kind": "RayCluster",
        "desiredWorkerReplicas": status.get("desiredWorkerReplicas", 0),
        "conditions": list(status.get("conditions") or []),
        "workers": {"ready": status.get("readyWorkerReplicas", 0), "available": status.get("availableWorkerReplicas", 0),
                    "desired": status.get("desiredWorkerReplicas", 0)},
        "layer": None if ready else "Kubernetes",  # a cluster that is not ready has pods that are not
    }


# -- the target ------------------------------------------------------------------
class KubernetesTarget(Target):
    """RayCluster and RayService objects on a real cluster, through the Kubernetes API.

    Behind the `Target` interface a name means an object of `kind` (RayService unless
    told) in `namespace`; the handle `up` returns carries its own kind and namespace.
    """

    options = ("namespace", "kind", "api_client")

    def __init__(self, namespace: str | None = None, api_client=None, *, kind: str = "RayService"):
        self.namespace = namespace
        self.kind = kind
        self._api_client = api_client
        self._forwards: dict[tuple[str, str, str], PortForward] = {}

    def __repr__(self) -> str:
        return f"KubernetesTarget(namespace={self.namespace!r}, kind={self.kind!r})"

    def _ref(self, ref, kind: str | None, namespace: str | None) -> tuple[str, str, str | None]:
        """(name, kind, namespace) for a name or the handle `up` returned; None: the target's namespace."""
        if isinstance(ref, Mapping):
            kind, namespace = kind or ref.get("kind"), namespace or ref.get("namespace")
        return self.name_of(ref), kind or self.kind, namespace

    @property
    def api_client(self):
        if self._api_client is None:
            self._api_client = _default_client()
        return self._api_client

    @property
    def _custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def _namespace(self, doc: dict | None = None) -> str:
        return ((doc or {}).get("metadata") or {}).get("namespace") or self.namespace or "default"

    def get(self, name: str, kind: str | None = None, namespace: str | None = None) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        name, kind, namespace = self._ref(name, kind, namespace)
        try:
            return self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace or self._namespace(), PLURALS[kind], name)
        except ApiException as exc:
            if exc.status == 404 and not _crd_missing(exc):
                return None
            raise _api_error(exc, kind) from None

    def up(self, path: str | Path, *, wait: bool = False, timeout: float = 600, show: bool = True) -> dict:
        """Create or replace the manifest's RayCluster/RayService (validated first); with `wait`,
        also wait (up to `timeout`) for its Ready condition."""
        from kubernetes.client.exceptions import ApiException

        doc = read_manifest(path)
        kind, name, namespace = doc["kind"], doc["metadata"]["name"], self._namespace(doc)
        body = copy.deepcopy(doc)
        body["metadata"]["namespace"] = namespace
        existing = self.get(name, kind, namespace)
        try:
            if existing is None:
                self._custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body)
                action = "created"
            elif existing.get("spec") == body.get("spec"):
                action = "unchanged"
            else:
                body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                self._custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name, body)
                action = _what_changes(kind, existing.get("spec") or {}, body["spec"])
        except ApiException as exc:
            raise _api_error(exc, kind) from None
        if show:
            print(f"{kind} {namespace}/{name}: {action}")
        result = {"kind": kind, "name": name, "namespace": namespace, "action": action}
        if wait:
            self.wait_ready(result, timeout=timeout, show=show)
        return result

    def status(self, name: str, kind: str | None = None, namespace: str | None = None) -> dict:
        name, kind, namespace = self._ref(name, kind, namespace)
        obj = self.get(name, kind, namespace)
        if obj is None:
            return {"name": name, "kind": kind, "layer": "KubeRay",
                    "conditions": [condition(False, "NotFound", f"no {kind} named {name!r}")]}
        return parse_status(obj)

    def wait_ready(self, name: str, kind: str | None = None, namespace: str | None = None, *,
                   timeout: float = 600, show: bool = True, interval: float = 2) -> dict:
        """Wait for the Ready condition, and for KubeRay to have acted on the latest spec (`up_to_date`:
        after `up` of a change, Ready may still describe the old one); on timeout, the error names the
        layer the status points at."""
        name, kind, namespace = self._ref(name, kind, namespace)
        last: dict = {}

        def ready():
            last.clear()
            last.update(self.status(name, kind, namespace))
            return dict(last) if is_ready(last) and up_to_date(last) else None

        try:
            return wait_for(ready, what=f"{kind} {name} Ready", layer="KubeRay", timeout=timeout,
                            show=show, interval=interval)
        except Stuck as exc:
            cond = ready_condition(last)
            layer = last.get("layer") or exc.layer
            if is_ready(last):  # Ready, but not for the latest spec
                layer = "KubeRay" if last.get("observedGeneration", 0) < last.get("generation", 0) else "Kubernetes"
                cond = {"reason": "NotUpToDate", "message": (
                    f"observedGeneration {last.get('observedGeneration')} of generation {last.get('generation')}, "
                    f"{last.get('readyWorkerReplicas', '?')} of {last.get('desiredWorkerReplicas', '?')} workers ready")}
            raise Stuck(layer, f"{kind} {name} not Ready after {timeout:.0f}s: {cond.get('reason')} "
                               f"{cond.get('message', '')}. {_HINTS[layer].format(name=name)}") from None

    def down(self, name: str, kind: str | None = None, namespace: str | None = None) -> bool:
        """Delete it; KubeRay removes the pods and services it made (foreground deletion)."""
        from kubernetes.client.exceptions import ApiException

        name, kind, namespace = self._ref(name, kind, namespace)
        try:
            self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace or self._namespace(), PLURALS[kind], name,
                propagation_policy="Foreground")
        except ApiException as exc:
            if exc.status == 404 and not _crd_missing(exc):
                return False
            raise _api_error(exc, kind) from None
        return True

    def port_forward(self, name: str, kind: str | None = None, namespace: str | None = None,
                     what: tuple[str, ...] = ("serve", "dashboard")) -> "PortForward":
        """A port-forward to the object's Serve and dashboard Services (or only those in `what`)."""
        name, kind, namespace = self._ref(name, kind, namespace)
        forward = PortForward(name, kind, namespace or self._namespace(), what)
        if len(forward.services) == 2:
            self._forwards[(kind, forward.namespace, name)] = forward  # endpoints() reads it while it is open
        return forward

    def prometheus(self, namespace: str = "prometheus-system",
                   service: str = "prometheus-kube-prometheus-prometheus", port: int = 9090, show: bool = True):
        """PromQL against kube-prometheus-stack's Prometheus (installed as Helm release `prometheus`,
        manifests/monitoring/ applied) through a port-forward that `.close()` ends."""
        from servelab.clients.prometheus import Prometheus

        forward = PortForward(service, "Service", namespace, ("prometheus",), services={"prometheus": (service, port)})
        forward.start(show=show)
        return Prometheus(f"http://{LOOPBACK}:{forward.local_ports['prometheus']}", on_close=forward.stop)

    def add_prometheus_rules(self, name: str, text: str, prometheus, *, namespace: str | None = None,
                             owner: dict | None = None, release: str = "prometheus", timeout: float = 180,
                             show: bool = True) -> list[dict]:
        """A Prometheus rules file (YAML text) as the PrometheusRule `name`, checked by promtool
        first and labelled `release` (kube-prometheus-stack's rule selector); `owner` (an object
        of this namespace) makes Kubernetes delete it with that object. Waits until the operator
        has handed it to `prometheus` (a Prometheus client); returns the groups loaded from it."""
        import yaml
        from kubernetes.client.exceptions import ApiException

        from servelab.cluster import _prometheus as local_prometheus

        if shutil.which("promtool"):  # else the operator's admission webhook is the only check
            with tempfile.TemporaryDirectory() as scratch:
                local_prometheus.check_rules(Path(scratch), name, text)
        namespace = namespace or self._namespace()
        groups = yaml.safe_load(text)["groups"]
        for group in groups:  # evaluated as often as the local target's (the chart's default is 30 s)
            group.setdefault("interval", local_prometheus.SCRAPE_INTERVAL)
        metadata = {"name": name, "namespace": namespace, "labels": {"release": release}}
        if owner is not None:
            metadata["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]
        body = {"apiVersion": f"{RULES_GROUP}/{RULES_VERSION}", "kind": "PrometheusRule", "metadata": metadata,
                "spec": {"groups": groups}}
        rules = (RULES_GROUP, RULES_VERSION, namespace, "prometheusrules")
        try:
            try:
                created = self._custom.create_namespaced_custom_object(*rules, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # Replaced as a new object: a new UID, so a new rules file, and no wait can
                # mistake the old version's groups for the new ones.
                self._custom.delete_namespaced_custom_object(*rules, name)
                created = wait_for(lambda: _create_once(self._custom, rules, body), what=f"PrometheusRule {name} "
                                   "re-created", layer="Kubernetes", timeout=30, interval=0.5, show=False)
        except ApiException as exc:
            if exc.status == 404:
                raise Failed("Kubernetes", "the PrometheusRule CRD is not installed: install kube-prometheus-stack "
                                           "(docs/kubernetes-on-kind.md, section 10)") from None
            raise _api_error(exc, "PrometheusRule") from None
        # prometheus-operator names the file <namespace>-<name>-<uid>.yaml (resource_selector.go);
        # then its config reloader reloads Prometheus: up to a minute or two on a real cluster.
        wanted_file = f"{namespace}-{name}-{created['metadata']['uid']}.yaml"
        wanted = {g["name"] for g in groups}

        def loaded():
            found = [g for g in prometheus.rules() if Path(g.get("file", "")).name == wanted_file]
            return found if {g["name"] for g in found} == wanted else None

        return wait_for(loaded, what=f"PrometheusRule {namespace}/{name} loaded by Prometheus", layer="Kubernetes",
                        timeout=timeout, interval=2, show=show,
                        hint=f"does the Prometheus select rules labelled release={release}? "
                             "`kubectl get prometheus -A -o yaml | grep -A3 ruleSelector`")

    def endpoints(self, name: str, kind: str | None = None, namespace: str | None = None) -> dict:
        """The URLs of a port-forward this target opened (`port_forward`), else None and how to open one."""
        name, kind, namespace = self._ref(name, kind, namespace)
        namespace = namespace or self._namespace()
        forward = self._forwards.get((kind, namespace, name))
        if forward is not None and forward.open:
            return {"serve": forward.serve_url, "dashboard": forward.dashboard_url, "hint": ""}
        return {"serve": None, "dashboard": None,
                "hint": f"Serve and the dashboard are reached through a port-forward: "
                        f"`servelab k8s port-forward --kind {kind} --namespace {namespace} --name {name}`, "
                        f"or `with target.port_forward({name!r}) as fwd:` in Python"}

    def names(self, kind: str | None = None, namespace: str | None = None) -> list[str]:
        """The objects of `kind` (the target's, unless told) in the namespace."""
        from kubernetes.client.exceptions import ApiException

        kind = kind or self.kind
        try:
            listed = self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace or self._namespace(), PLURALS[kind])
        except ApiException as exc:
            raise _api_error(exc, kind) from None
        return [item["metadata"]["name"] for item in listed.get("items") or []]


_HINTS = {
    "Kubernetes": "Look at the pods: `kubectl get pods -l ray.io/cluster` and `kubectl describe pod` events "
                  "(Pending: no node has the CPUs/GPUs; ImagePullBackOff: the image tag).",
    "KubeRay": "Look at the operator: `kubectl describe rayservice {name}` events and "
               "`kubectl -n kuberay-system logs deploy/kuberay-operator`.",
    "Ray runtime": "Replicas wait for resources: `kubectl exec` into the head pod and run `ray status`.",
    "Serve": "Open the dashboard's Serve page (port-forward the head service, port 8265).",
    "application code": "The application's message in `kubectl describe rayservice {name}` "
                        "carries the traceback (import_path, constructor).",
}


def _what_changes(kind: str, old: dict, new: dict) -> str:
    if kind != "RayService":
        return "replaced (KubeRay reconciles the pods to the new spec)"
    if old.get("rayClusterConfig") == new.get("rayClusterConfig"):
        return "updated: only serveConfigV2 changed, KubeRay updates the applications in place"
    return "updated: rayClusterConfig changed, KubeRay builds a new cluster and switches traffic when it is Ready"


def _crd_missing(exc) -> bool:
    """A 404 for the resource type itself (not for one object): the CRD is not installed."""
    return exc.status == 404 and "the server could not find the requested resource" in (exc.body or "")


def _api_error(exc, kind: str) -> Exception:
    if _crd_missing(exc):
        return Failed("KubeRay", f"the {kind} CRD is not installed on this cluster; install the operator "
                                 f"(`servelab k8s install`, KubeRay {KUBERAY_VERSION})")
    if exc.status in (401, 403):
        return Failed("Kubernetes", f"the API server refused ({exc.status} {exc.reason}): "
                                    "check your kubeconfig user's RBAC for ray.io objects")
    if exc.status == 422:  # the API server's schema validation; its message names the field
        return ManifestError(f"the API server rejected the {kind}: {_message(exc)}")
    return Failed("Kubernetes", f"Kubernetes API error {exc.status} {exc.reason}: {_message(exc)}")


def _message(exc) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.body
    except (TypeError, ValueError):
        return str(exc.body)


# -- port-forward ----------------------------------------------------------------------
def service_names(name: str, kind: str) -> dict[str, tuple[str, int]]:
    """The Services KubeRay creates, by what they reach: serve and dashboard."""
    if kind == "RayService":  # the serve Service only points at pods whose proxy is healthy
        return {"serve": (f"{name}-serve-svc", SERVE_PORT), "dashboard": (f"{name}-head-svc", DASHBOARD_PORT)}
    return {"serve": (f"{name}-head-svc", SERVE_PORT), "dashboard": (f"{name}-head-svc", DASHBOARD_PORT)}


def port_forward_command(service: str, namespace: str, local_port: int, remote_port: int) -> list[str]:
    return ["kubectl", "port-forward", "--address", LOOPBACK, "-n", namespace,
            f"svc/{service}", f"{local_port}:{remote_port}"]


class PortForward:
    """`kubectl port-forward` to Serve and the dashboard (or only the one in `what`) on 127.0.0.1,
    for as long as it is open. The kubectl processes end with this process's main thread."""

    def __init__(self, name: str, kind: str, namespace: str, what: tuple[str, ...] = ("serve", "dashboard"),
                 services: dict[str, tuple[str, int]] | None = None):
        self.name, self.kind, self.namespace = name, kind, namespace
        # {what: (Service, port)}: KubeRay's Services of the object, unless named (Prometheus's)
        self.services = {k: v for k, v in (services or service_names(name, kind)).items() if k in what}
        self.local_ports: dict[str, int] = {}
        self._procs: list[subprocess.Popen] = []
        self._logs: list = []

    @property
    def serve_url(self) -> str:
        return f"http://{LOOPBACK}:{self.local_ports['serve']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.local_ports['dashboard']}"

    @property
    def open(self) -> bool:
        """Both forwards started and still running."""
        return (len(self._procs) == len(self.services)
                and all(proc.poll() is None for proc in self._procs))

    def start(self, timeout: float = 30, show: bool = True) -> "PortForward":
        if shutil.which("kubectl") is None:
            raise Failed("Kubernetes", "kubectl is not installed; see https://kubernetes.io/docs/tasks/tools/")
        # kubectl's messages go to a file, not a pipe nobody drains while the forward runs
        main = threading.current_thread() is threading.main_thread()
        try:
            for what, (service, remote) in self.services.items():
                local = free_port(set(self.local_ports.values()))
                log = tempfile.TemporaryFile(mode="w+")
                self._logs.append(log)
                proc = subprocess.Popen(port_forward_command(service, self.namespace, local, remote),
                                        stdout=subprocess.DEVNULL, stderr=log, text=True,
                                        preexec_fn=die_with_parent if main else None)
                self._procs.append(proc)
                self.local_ports[what] = local
                wait_for(lambda local=local, proc=proc, log=log: _accepts(local, proc, log),
                         what=f"port-forward {service}:{remote} -> {local}",
                         layer="Kubernetes", timeout=timeout, show=show,
                         hint=f"Does the Service exist? `kubectl -n {self.namespace} get svc {service}`")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self._procs:
            stop_child(proc, timeout=5)
        for log in self._logs:
            log.close()
        self._procs, self._logs = [], []

    def __enter__(self) -> "PortForward":
        return self.start() if not self._procs else self

    def __exit__(self, *exc) -> None:
        self.stop()


def _accepts(port: int, proc: subprocess.Popen, log) -> bool:
    if proc.poll() is not None:
        log.seek(0)
        raise Failed("Kubernetes", f"kubectl port-forward exited: {log.read().strip()}")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def _create_once(custom, rules: tuple, body: dict) -> dict | None:
    """Create the object, or None while the deleted one of that name is still being removed."""
    from kubernetes.client.exceptions import ApiException

    try:
        return custom.create_namespaced_custom_object(*rules, body)
    except ApiException as exc:
        if exc.status == 409:
            return None
        raise

