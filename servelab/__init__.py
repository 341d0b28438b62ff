"""servelab: a Jupyter course that teaches Ray Serve on KubeRay.

The public API is small on purpose:

- ``start_local()`` starts a private Ray cluster for this notebook or script,
  connects to it and returns it; ``cluster.stop()`` ends it.
- ``LocalRay`` is the cluster itself, for scripts and tests.
- ``ServeAPI`` reads and deploys through Serve's REST API.
- ``ServelabError`` is what servelab raises on purpose: ``.layer`` says which of
  ``LAYERS`` to look at, ``.hint`` what to try; ``Stuck`` is a wait that ran out.

One entry module per concern, each importable on its own:

==========================  ====================================================
``servelab.cluster``        the local Ray engine (nodes, ports, profiles)
``servelab.targets``        where a manifest runs: ``local`` or Kubernetes
``servelab.clients``        Serve's REST API, the State API, metrics
``servelab.manifests``      the KubeRay manifest validator
``servelab.observe``        waits with progress, watchers, dashboard, plots
``servelab.faults``         fault verbs, bounded load, recovery
``servelab.grading``        check helpers, self-check, autograde
``servelab.course``         quiz, production plan
``servelab.apps``           the reference Serve applications
``servelab.cli``            the ``servelab`` command
==========================  ====================================================

Modules whose names start with an underscore are internal.
"""

from servelab.clients._serve import ServeAPI, ServeAPIError
from servelab.cluster._localray import LocalRay
from servelab.errors import LAYERS, ServelabError, Stuck

__version__ = "0.1.0"
RAY_VERSION = "2.60.0"

__all__ = ["LocalRay", "ServeAPI", "ServeAPIError", "ServelabError", "Stuck", "LAYERS",
           "start_local", "RAY_VERSION"]


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
