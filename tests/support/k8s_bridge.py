"""The stand-in API server with real clusters behind it: the Kubernetes target, end to end here.

A lab's hidden tests run with SERVELAB_TARGET=kubernetes against this server. What they
create (a RayCluster, a RayService) comes up on the local target, and what they read comes
back as the API server would give it: the object with the status KubeRay writes, its pods
and Services (servelab.targets._local_objects shapes them as KubeRay 1.7 does). The
`kubectl` on PATH is `kubectl_shim.py`, whose `port-forward` relays to the port a Service
reaches on this machine. The kernel under test gets its own empty SERVELAB_TMPDIR, so a
check that reaches a local cluster directly, instead of through the API, finds nothing.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from pathlib import Path

import yaml
from k8s_api import CUSTOM, NO_TYPE, FakeAPIServer, status_body
from kubectl_shim import TOKEN_ANNOTATION

from servelab.cluster._prometheus import FOLDER as PROMETHEUS_FOLDER
from servelab.targets import _local_objects as local_objects
from servelab.targets import local

# The labs whose graded cells run on both targets (tests/live/test_labs_on_kubernetes.py runs
# them through this bridge; tests/unit/test_labs_read_both_targets.py checks what they read).
BOTH_TARGET_LABS = ["lab3-kuberay-cluster", "lab4-rayservice-gpu", "lab5-autoscaling-batching",
                    "lab6-fault-injection", "lab7-debug-by-layer"]
# The node pool a lab's scenario assumes (pods the scheduler has room for, head included): on a
# real cluster its nodes decide; behind the bridge, SERVELAB_MAX_NODES in the "operator" plays it.
NODE_POOL = {"lab7-debug-by-layer": 3}
SERVICE = re.compile(r"^/api/v1/namespaces/([^/]+)/services/([^/?]+)$")
# `kubectl exec` (kubectl_shim.py asks here; a real kubectl upgrades the connection to a stream).
EXEC = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/?]+)/exec$")
# The Prometheus operator's PrometheusRule, and kube-prometheus-stack's Prometheus Service as
# installed by docs/kubernetes-on-kind.md (release `prometheus` in prometheus-system).
RULES = re.compile(r"^/apis/monitoring\.coreos\.com/v1/namespaces/([^/]+)/prometheusrules(?:/([^/?]+))?$")
PROMETHEUS_SERVICE = ("prometheus-system", "prometheus-kube-prometheus-prometheus")


class LocalBridge(FakeAPIServer):
    """FakeAPIServer whose ray.io objects run as local clusters (started from one thread that
    lives as long as the bridge: a cluster's processes end with the thread that started them)."""

    def __init__(self, workdir: Path):
        super().__init__()
        self.workdir = workdir
        self.names: set[str] = set()
        self.errors: dict[str, str] = {}  # name -> why its last `up` failed
        self.rules: dict[tuple[str, str], dict] = {}  # (namespace, name) -> PrometheusRule
        self._jobs: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run_jobs, name="k8s-bridge-operator", daemon=True)

    def __enter__(self) -> "LocalBridge":
        self._worker.start()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._jobs.put(None)  # an `up` under way finishes first: nothing starts after the downs
            self._worker.join(timeout=600)
            for name in sorted(self.names):
                local.down(name)

    # -- the "operator": one thread that brings objects up -----------------------------
    def _run_jobs(self) -> None:
        while (job := self._jobs.get()) is not None:
            name, path = job
            try:
                local.up(path, show=False)
                self.errors.pop(name, None)
            except Exception as exc:  # the object's status tells the client, as KubeRay's would
                self.errors[name] = f"{type(exc).__name__}: {exc}"

    def _apply(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        path = self.workdir / f"{name}.yaml"
        doc = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        doc["metadata"] = {"name": name}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.names.add(name)
        self._jobs.put((name, path))

    # -- what the API server answers ----------------------------------------------------
    def _clusters(self) -> list:
        return [c for c in (local.find(n) for n in sorted(self.names)) if c is not None]

    def _cluster_behind(self, svc: dict):
        """The local cluster a Service selects (by its ray.io/cluster label)."""
        wanted = svc["spec"]["selector"].get("ray.io/cluster")
        for cluster in self._clusters():
            if local_objects.ray_cluster_name(cluster) == wanted:
                return cluster
        return None

    def _live(self, obj: dict) -> dict:
        """The stored object with the status the local target reports for it."""
        name, kind = obj["metadata"]["name"], obj.get("kind")
        cluster = local.find(name)
        if cluster is None:
            if name in self.errors:
                obj = {**obj, "status": {"conditions": [
                    {"type": "Ready", "status": "False", "reason": "ValidationFailed",
                     "message": self.errors[name]}]}}
            return obj
        listed = local_objects.list_objects([cluster], kind.lower())
        mine = [o for o in listed if o["metadata"]["name"] == name]
        return {**obj, "status": mine[0]["status"]} if mine else obj

    def list_pods(self, namespace: str, query: dict):
        self.pods = {(namespace, p["metadata"]["name"]): p
                     for p in local_objects.list_objects(self._clusters(), "pod")}
        return super().list_pods(namespace, query)

    # -- what runs beside KubeRay: Prometheus and its operator, a pod's shell ---------------
    def _prometheus_cluster(self):
        """The cluster whose Prometheus plays kube-prometheus-stack's (a lab's one cluster)."""
        return next((c for c in self._clusters() if c.prometheus_url), None)

    def _prometheus_rule(self, method: str, namespace: str, name: str | None, body: dict | None):
        """PrometheusRules, stored (each with a UID), and handed to that Prometheus as the operator
        hands them: one rules file per object, <namespace>-<name>-<uid>.yaml."""
        key = (namespace, name or (body or {}).get("metadata", {}).get("name"))
        missing = 404, status_body(404, "NotFound", f'prometheusrules.monitoring.coreos.com "{key[1]}" not found')
        if method == "GET":
            return (200, self.rules[key]) if key in self.rules else missing
        if method == "DELETE":
            if key not in self.rules:
                return missing
            self._unload_rules(key)
            return 200, self.rules.pop(key)
        if method == "POST" and key in self.rules:
            return 409, status_body(409, "AlreadyExists", f'prometheusrules.monitoring.coreos.com "{key[1]}" '
                                                          'already exists')
        if method == "POST":
            cluster = self._prometheus_cluster()
            if cluster is None:
                return 404, status_body(404, "NotFound", NO_TYPE)  # no kube-prometheus-stack: no such CRD
            self._version += 1
            self.rules[key] = {**body, "metadata": {**body["metadata"], "uid": f"uid-{self._version}",
                                                    "resourceVersion": str(self._version)}}
            cluster.add_prometheus_rules(self._rules_file(key), yaml.safe_dump({"groups": body["spec"]["groups"]}))
            return 201, self.rules[key]
        return 405, status_body(405, "MethodNotAllowed", method)

    def _rules_file(self, key: tuple[str, str]) -> str:
        return f"{key[0]}-{key[1]}-{self.rules[key]['metadata']['uid']}"

    def _unload_rules(self, key: tuple[str, str]) -> None:
        cluster = self._prometheus_cluster()
        if cluster is not None:
            (cluster.dir / PROMETHEUS_FOLDER / "rules" / f"{self._rules_file(key)}.yaml").unlink(missing_ok=True)
            cluster.prometheus.reload()

    def _collect_garbage(self, owner_uid: str) -> None:
        """What Kubernetes' garbage collector does when an owner goes: its PrometheusRules go too."""
        for key, rule in list(self.rules.items()):
            if any(ref.get("uid") == owner_uid for ref in rule["metadata"].get("ownerReferences") or []):
                self._unload_rules(key)
                del self.rules[key]

    def _prometheus_service(self) -> dict | None:
        cluster = self._prometheus_cluster()
        if cluster is None:
            return None
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": PROMETHEUS_SERVICE[1], "namespace": PROMETHEUS_SERVICE[0]},
                "spec": {"ports": [{"name": "http-web", "port": 9090, "localPort": cluster.prometheus_port}]}}

    def _exec(self, namespace: str, pod_name: str, body: dict):
        """Run the command as the pod's container would: with its node's environment (a local
        node's SERVELAB_FAULT_DIR included)."""
        pod = next((p for p in local_objects.list_objects(self._clusters(), "pod")
                    if p["metadata"]["name"] == pod_name), None)
        if pod is None:
            return 404, status_body(404, "NotFound", f'pods "{pod_name}" not found')
        wanted = pod["metadata"]["labels"].get("ray.io/cluster")
        cluster = next(c for c in self._clusters() if local_objects.ray_cluster_name(c) == wanted)
        done = subprocess.run(body["command"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **cluster.ray_env()})
        return 200, {"stdout": done.stdout, "stderr": done.stderr, "exitCode": done.returncode}

    def route(self, method: str, path: str, body: dict | None):
        if (m := EXEC.match(path)) and method == "POST":
            return self._exec(m.group(1), m.group(2), body)
        if m := RULES.match(path):
            return self._prometheus_rule(method, m.group(1), m.group(2), body)
        if (m := SERVICE.match(path)) and m.groups() == PROMETHEUS_SERVICE:
            svc = self._prometheus_service()
            return (200, svc) if svc else (404, status_body(404, "NotFound", f'services "{m.group(2)}" not found'))
        if m := SERVICE.match(path):
            services = local_objects.list_objects(self._clusters(), "service")
            for svc in services:
                if svc["metadata"]["name"] == m.group(2):
                    cluster = self._cluster_behind(svc)
                    if cluster is not None:
                        svc["metadata"].setdefault("annotations", {})[TOKEN_ANNOTATION] = cluster.token
                    return 200, svc
            return 404, status_body(404, "NotFound", f'services "{m.group(2)}" not found')
        m = CUSTOM.match(path)
        code, reply = super().route(method, path, body)
        if m and method == "DELETE" and m.group(3) and code == 200:  # only what was there, of that kind
            self._collect_garbage(reply["metadata"]["uid"])
            local.down(m.group(3))
            self.names.discard(m.group(3))
        if m and code in (200, 201) and method in ("POST", "PUT"):
            self._apply(reply)
        if m and code == 200 and method == "GET":
            reply = self._live(reply) if m.group(3) else {**reply, "items": [self._live(o) for o in reply["items"]]}
        return code, reply
