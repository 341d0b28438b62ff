"""Clients of Ray's HTTP APIs: Serve's REST API, the State API and the Prometheus metrics.

Public: `ServeAPI` (what KubeRay and the graded checks read and deploy through),
`ServeAPIError`, `Replica`, `StateAPI` (nodes and actors, each node's group with
`node_group`), `DashboardClients` (both, for a class with a dashboard URL and token),
`Prometheus` (PromQL against a real Prometheus) and `PrometheusError`, and the `metrics`
module (`metrics.scrape(url)`: Ray's endpoints read raw, where no Prometheus runs), the last
three imported on first use.
"""

from servelab import _lazy
from servelab.clients._dashboard import DashboardClients
from servelab.clients._serve import Replica, ServeAPI, ServeAPIError
from servelab.clients._state import StateAPI, node_group

__all__ = ["ServeAPI", "ServeAPIError", "Replica", "StateAPI", "node_group", "DashboardClients", "metrics",
           "Prometheus", "PrometheusError"]
__getattr__ = _lazy(__name__, {"metrics": "servelab.clients.metrics",
                               "Prometheus": "servelab.clients.prometheus:Prometheus",
                               "PrometheusError": "servelab.clients.prometheus:PrometheusError"})
