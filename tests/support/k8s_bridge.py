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

import queue
import re
import threading
from pathlib import Path

import yaml
from k8s_api import CUSTOM, FakeAPIServer, status_body
from kubectl_shim import TOKEN_ANNOTATION

from servelab.targets import _local_objects as local_objects
from servelab.targets import local

# The labs whose graded cells run on both targets (tests/live/test_labs_on_kubernetes.py runs
# them through this bridge; tests/unit/test_labs_read_both_targets.py checks what they read).
BOTH_TARGET_LABS = ["lab3-kuberay-cluster", "lab4-rayservice-gpu", "lab5-autoscaling-batching", "lab7-debug-by-layer"]
# The node pool a lab's scenario assumes (pods the scheduler has room for, head included): on a
# real cluster its nodes decide; behind the bridge, SERVELAB_MAX_NODES in the "operator" plays it.
NODE_POOL = {"lab7-debug-by-layer": 3}
SERVICE = re.compile(r"^/api/v1/namespaces/([^/]+)/services/([^/?]+)$")


class LocalBridge(FakeAPIServer):
    """FakeAPIServer whose ray.io objects run as local clusters (started from one thread that
    lives as long as the bridge: a cluster's processes end with the thread that started them)."""

    def __init__(self, workdir: Path):
        super().__init__()
        self.workdir = workdir
        self.names: set[str] = set()
        self.errors: dict[str, str] = {}  # name -> why its last `up` failed
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

    def route(self, method: str, path: str, body: dict | None):
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
            local.down(m.group(3))
            self.names.discard(m.group(3))
        if m and code in (200, 201) and method in ("POST", "PUT"):
            self._apply(reply)
        if m and code == 200 and method == "GET":
            reply = self._live(reply) if m.group(3) else {**reply, "items": [self._live(o) for o in reply["items"]]}
        return code, reply
