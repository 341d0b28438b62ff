"""A small stand-in for the Kubernetes API server, on 127.0.0.1, for the API-boundary tests.

No Kubernetes runs on this machine. This serves the few paths the Kubernetes
target uses (CRDs, the operator Deployment, ray.io custom objects) with the
status codes and error bodies a real API server returns, and records every
request, so the tests check what the real `kubernetes` client sends.
"""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs

import yaml
from loopback_http import serving

CUSTOM = re.compile(r"^/apis/ray\.io/v1/namespaces/([^/]+)/([a-z]+)(?:/([^/?]+))?$")
CRD = re.compile(r"^/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions/([^/?]+)$")
DEPLOYMENT = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/?]+)$")
SHIM = Path(__file__).with_name("kubectl_shim.py")  # `kubectl port-forward` that relays to a Service's localPort
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/?]+))?$")
SECRET = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/?]+)$")
NO_TYPE = "the server could not find the requested resource"


def status_body(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeAPIServer:
    def __init__(self, crds_installed: bool = True, operator_ready: bool = True):
        self.crds_installed = crds_installed
        self.operator_ready = operator_ready
        self.objects: dict[tuple[str, str, str], dict] = {}  # (namespace, plural, name) -> object
        self.pods: dict[tuple[str, str], dict] = {}  # (namespace, name) -> pod
        self.secrets: dict[tuple[str, str], dict] = {}  # (namespace, name) -> {key: base64 value}
        self.requests: list[tuple[str, str, dict | None]] = []  # method, path with query, body
        self._version = 1000
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, body) -> None:
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append((method, self.path, body))
                path, _, query = self.path.partition("?")
                if method == "GET" and PODS.match(path):
                    code, reply = server.list_pods(PODS.match(path).group(1), parse_qs(query))
                else:
                    code, reply = server.route(method, path, body)
                self._reply(code, reply)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

            def do_PATCH(self):
                self._handle("PATCH")

        self._serving = serving(Handler)
        self.url = ""

    def __enter__(self) -> "FakeAPIServer":
        self.url = self._serving.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._serving.__exit__(*exc)

    def client(self):
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        return client.ApiClient(config)

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose current context is this server (namespace `default`)."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "bridge",
            "clusters": [{"name": "bridge", "cluster": {"server": self.url}}],
            "users": [{"name": "learner", "user": {"token": "bridge"}}],
            "contexts": [{"name": "bridge", "context": {"cluster": "bridge", "user": "learner",
                                                        "namespace": "default"}}]}))
        return path

    def kubectl_bin(self, folder: Path) -> Path:
        """A folder holding `kubectl` (the shim) to put first on PATH."""
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "kubectl"
        script.write_text(f"#!/bin/sh\nexec {sys.executable} {SHIM} \"$@\"\n")
        script.chmod(0o755)
        return folder

    def calls(self, method: str | None = None) -> list[tuple[str, str, dict | None]]:
        return [r for r in self.requests if method is None or r[0] == method]

    def set_status(self, namespace: str, plural: str, name: str, status: dict) -> None:
        self.objects[(namespace, plural, name)]["status"] = status

    # -- routing ---------------------------------------------------------------------
    def list_pods(self, namespace: str, query: dict):
        wanted = dict(kv.split("=", 1) for kv in (query.get("labelSelector") or [""])[0].split(",") if kv)
        items = [p for (ns, _), p in sorted(self.pods.items()) if ns == namespace
                 and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())]
        return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    def route(self, method: str, path: str, body: dict | None):
        if (m := SECRET.match(path)) and method == "GET":
            if m.groups() not in self.secrets:
                return 404, status_body(404, "NotFound", f'secrets "{m.group(2)}" not found')
            return 200, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                         "metadata": {"name": m.group(2), "namespace": m.group(1)}, "data": self.secrets[m.groups()]}
        if m := PODS.match(path):
            key = (m.group(1), m.group(2))
            if method != "DELETE" or key not in self.pods:
                return 404, status_body(404, "NotFound", f'pods "{m.group(2)}" not found')
            return 200, self.pods.pop(key)
        if m := CRD.match(path):
            if not self.crds_installed:
                return 404, status_body(404, "NotFound", f'customresourcedefinitions.apiextensions.k8s.io '
                                                         f'"{m.group(1)}" not found')
            return 200, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                         "metadata": {"name": m.group(1)},
                         "status": {"conditions": [{"type": "NamesAccepted", "status": "True"},
                                                   {"type": "Established", "status": "True"}]}}
        if m := DEPLOYMENT.match(path):
            ready = 1 if self.operator_ready else 0
            return 200, {"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": m.group(2), "namespace": m.group(1)},
                         "status": {"replicas": 1, "readyReplicas": ready, "availableReplicas": ready}}
        m = CUSTOM.match(path)
        if not m or not self.crds_installed:
            return 404, status_body(404, "NotFound", NO_TYPE)
        namespace, plural, name = m.groups()
        key = (namespace, plural, name)
        if method == "GET" and name is None:  # a list
            items = [obj for (ns, pl, _), obj in sorted(self.objects.items()) if (ns, pl) == (namespace, plural)]
            return 200, {"apiVersion": "ray.io/v1", "kind": "List", "metadata": {}, "items": items}
        if method == "POST":
            name = body["metadata"]["name"]
            key = (namespace, plural, name)
            if key in self.objects:
                return 409, status_body(409, "AlreadyExists", f'{plural}.ray.io "{name}" already exists')
            if "spec" not in body:
                return 422, status_body(422, "Invalid", f'{body.get("kind")}.ray.io "{name}" is invalid: '
                                                        'spec: Required value')
            self.objects[key] = self._stamp(body)
            self.objects[key]["metadata"]["generation"] = 1
            return 201, self.objects[key]
        if key not in self.objects:
            return 404, status_body(404, "NotFound", f'{plural}.ray.io "{name}" not found')
        if method == "GET":
            return 200, self.objects[key]
        if method == "PUT":
            have = self.objects[key]["metadata"]["resourceVersion"]
            if body["metadata"].get("resourceVersion") != have:
                return 409, status_body(409, "Conflict", "the object has been modified; please apply "
                                                         "your changes to the latest version and try again")
            body["status"] = self.objects[key].get("status")
            body["metadata"]["generation"] = self._generation(self.objects[key], body)
            self.objects[key] = self._stamp(body)
            return 200, self.objects[key]
        if method == "DELETE":
            return 200, self.objects.pop(key)
        if method == "PATCH":  # a JSON merge patch of the spec
            merged = json.loads(json.dumps(self.objects[key]))
            merged["spec"].update((body or {}).get("spec") or {})
            merged["metadata"]["generation"] = self._generation(self.objects[key], merged)
            self.objects[key] = self._stamp(merged)
            return 200, self.objects[key]
        return 405, status_body(405, "MethodNotAllowed", method)

    @staticmethod
    def _generation(old: dict, new: dict) -> int:
        """metadata.generation: the API server counts changes of the spec (status changes do not)."""
        have = (old.get("metadata") or {}).get("generation") or 1
        return have + 1 if old.get("spec") != new.get("spec") else have

    def _stamp(self, obj: dict) -> dict:
        self._version += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self._version)
        obj["metadata"].setdefault("uid", f"uid-{self._version}")
        return obj
