"""Clients of Ray's HTTP APIs: Serve's REST API, the State API and the Prometheus metrics.

Public: `ServeAPI` (what KubeRay and the graded checks read and deploy through),
`ServeAPIError`, `Replica`, and the `metrics` module (`metrics.scrape(url)`).
"""

from servelab.clients import metrics
from servelab.clients._serve import Replica, ServeAPI, ServeAPIError

__all__ = ["ServeAPI", "ServeAPIError", "Replica", "metrics"]
