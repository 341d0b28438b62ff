"""Ray's State API on the dashboard port: the ALIVE nodes and actors, and each node's group.

Both targets read nodes this way (locally, and on KubeRay through a port-forward), with the
cluster's token when Ray's token authentication is on.
"""

from __future__ import annotations

import requests

GROUP_LABEL = "servelab.io/group"  # the Ray node label the local engine gives each node: its group
KUBERAY_GROUP_LABEL = "ray.io/node-group"  # the same, on the Ray nodes of KubeRay's pods
HEAD_GROUP = "head"


def node_group(node: dict) -> str:
    """A State API node's worker group: 'head' for the head node, else its group label
    ('worker' for a node started without one, e.g. by hand)."""
    if node.get("is_head_node"):
        return HEAD_GROUP
    labels = node.get("labels") or {}
    return labels.get(GROUP_LABEL) or labels.get(KUBERAY_GROUP_LABEL) or "worker"


class StateAPI:
    """GETs from `/api/v0/...` with the token; results as the State API lists them."""

    def __init__(self, dashboard_url: str, token: str | None = None, timeout: float = 10):
        self.dashboard_url = dashboard_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout

    def get(self, path: str, timeout: float | None = None) -> requests.Response:
        """The raw answer (callers that only ask whether the dashboard is up read its status)."""
        return requests.get(self.dashboard_url + path, headers=self.headers, timeout=timeout or self.timeout)

    def _rows(self, path: str) -> list[dict]:
        r = self.get(path)
        r.raise_for_status()
        return r.json()["data"]["result"]["result"]

    def nodes(self) -> list[dict]:
        """The ALIVE Ray nodes: node_id, node_ip, labels, resources_total, is_head_node..."""
        return [n for n in self._rows("/api/v0/nodes?limit=1000&detail=true") if n.get("state") == "ALIVE"]

    def actors(self, class_name: str) -> list[dict]:
        """The ALIVE actors of one class that have a process."""
        rows = self._rows(f"/api/v0/actors?limit=1000&detail=true&filter_keys=class_name"
                          f"&filter_predicates=%3D&filter_values={class_name}")
        return [a for a in rows if a.get("state") == "ALIVE" and a.get("pid")]
