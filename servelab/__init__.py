"""servelab: a Jupyter course that teaches Ray Serve on KubeRay.

The public API is small on purpose:

- ``start_local()`` starts a private Ray cluster for this notebook or script,
  connects to it and returns it; ``cluster.stop()`` ends it.
- ``LocalRay`` is the cluster itself, for scripts and tests.
- ``ServeAPI`` reads and deploys through Serve's REST API.
- ``get_target()`` is where manifests run (``--target`` / ``SERVELAB_TARGET``, else
  local), a ``Target``: ``up``, ``status``, ``wait_ready``, ``down``, ``endpoints``, ``names``.
- ``ServelabError`` is what servelab raises on purpose: ``.layer`` says which of
  ``LAYERS`` to look at, ``.hint`` what to try; ``Stuck`` is a wait that ran out,
  ``Failed`` something that failed outright.

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

import importlib
import importlib.abc
import importlib.util
import sys


def _lazy(package: str, names: dict[str, str]):
    """A package's `__getattr__` (PEP 562) that imports each of `names` on first use.

    `names` maps an exported name to "module:attribute", or to "module" for a module.
    Entry modules use it for what is heavy (ipywidgets, nbgrader, prometheus_client): every
    Serve replica and node launcher imports servelab, and must not pay for those. Defined
    before the imports below, which import the subpackages that use it."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = names[name].partition(":")
        value = importlib.import_module(module)
        return getattr(value, attribute) if attribute else value

    return __getattr__


from servelab.clients._serve import ServeAPI, ServeAPIError  # noqa: E402  (after _lazy)
from servelab.cluster._localray import LocalRay  # noqa: E402
from servelab.errors import LAYERS, Failed, ServelabError, Stuck  # noqa: E402

__version__ = "0.1.0"
RAY_VERSION = "2.60.0"

__all__ = ["LocalRay", "ServeAPI", "ServeAPIError", "ServelabError", "Stuck", "Failed", "LAYERS",
           "Target", "get_target", "start_local", "RAY_VERSION"]


def start_local(name: str | None = None, *, num_cpus: int | None = None,
                num_gpus: int = 0, connect: bool = True, prometheus: bool | None = None) -> LocalRay:
    """Start a private local Ray cluster (with Serve's HTTP proxy) and connect to it.

    The cluster belongs to this process: it dies with it, and ``cluster.stop()``
    ends it earlier. Ports come from SERVELAB_SERVE_PORT / SERVELAB_DASHBOARD_PORT /
    SERVELAB_METRICS_PORT, else 8000 / 8265 / 8080 when free, else any free port.
    prometheus: a Prometheus beside it (``cluster.prometheus``); None lets
    SERVELAB_PROMETHEUS or the profile decide (on, except on the small profile).
    """
    import os

    cluster = LocalRay(name or f"kernel-{os.getpid()}", num_cpus=num_cpus, num_gpus=num_gpus,
                       prometheus=prometheus)
    cluster.start()
    if connect:
        cluster.connect()
    print(f"Serve endpoint: {cluster.serve_url}   dashboard: {cluster.dashboard_url}")
    return cluster


# Old homes of modules that student notebooks released before the restructure import
# (`from servelab import selfcheck`, `import servelab.waiting`): a learner's copy keeps working.
_MOVED = {"selfcheck": "servelab.grading.selfcheck", "checks": "servelab.grading.checks",
          "waiting": "servelab.observe._waiting", "widgets": "servelab.observe._widgets",
          "quiz": "servelab.course.quiz", "production_plan": "servelab.course.production_plan",
          "placement": "servelab.manifests.placement", "serve_lint": "servelab.manifests.serve_lint",
          "load": "servelab.faults.load", "recovery": "servelab.faults.recovery",
          "envcheck": "servelab.cluster._envcheck", "metrics": "servelab.clients.metrics",
          "plots": "servelab.observe._plots", "ports": "servelab.cluster._ports"}


__getattr__ = _lazy(__name__, {"Target": "servelab.targets:Target", "get_target": "servelab.targets:get_target",
                                **_MOVED})


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import servelab.<old name>` gives the module at its new home (one object, two names)."""

    def __init__(self):
        self._homes: dict = {}

    def find_spec(self, fullname, path=None, target=None):
        old = fullname.partition("servelab.")[2] if fullname.startswith("servelab.") else ""
        return importlib.util.spec_from_loader(fullname, self) if old in _MOVED else None

    def create_module(self, spec):
        module = importlib.import_module(_MOVED[spec.name.partition(".")[2]])
        self._homes[spec.name] = module.__spec__  # the import machinery stamps the alias on it
        return module

    def exec_module(self, module):
        module.__spec__ = self._homes.pop(module.__spec__.name, module.__spec__)  # already executed


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
