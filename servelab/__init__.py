"""servelab: a Jupyter course that teaches Ray Serve on KubeRay.

The public API is small on purpose:

- ``start_local()`` starts a private Ray cluster for this notebook or script,
  connects to it and returns it; ``cluster.stop()`` ends it.
- ``LocalRay`` is the cluster itself, for scripts and tests.
- ``ServeAPI`` reads and deploys through Serve's REST API.
- ``Stuck`` is raised when a wait runs out of time; it names the layer to look at.
"""

from .localray import LocalRay
from .serve_api import ServeAPI, ServeAPIError
from .waiting import Stuck

__version__ = "0.1.0"
RAY_VERSION = "2.60.0"

__all__ = ["LocalRay", "ServeAPI", "ServeAPIError", "Stuck", "start_local", "RAY_VERSION"]


def start_local(name: str | None = None, *, num_cpus: int | None = None,
                num_gpus: int = 0, connect: bool = True) -> LocalRay:
    """Start a private local Ray cluster (with Serve's HTTP proxy) and connect to it.

    The cluster belongs to this process: it dies with it, and ``cluster.stop()``
    ends it earlier. Ports come from SERVELAB_SERVE_PORT / SERVELAB_DASHBOARD_PORT /
    SERVELAB_METRICS_PORT, else 8000 / 8265 / 8080 when free, else any free port.
    """
    import os

    cluster = LocalRay(name or f"kernel-{os.getpid()}", num_cpus=num_cpus, num_gpus=num_gpus)
    cluster.start()
    if connect:
        cluster.connect()
    print(f"Serve endpoint: {cluster.serve_url}   dashboard: {cluster.dashboard_url}")
    return cluster
