"""Watching a cluster: waits with progress, replica watchers, the live dashboard, plots.

Public: `wait_for`, `progress`, `Stuck`, `Failed` and `LAYERS`; `ReplicaWatcher`; `Dashboard`
(ipywidgets) and the plots (`plot_load`, `plot_replicas`, `plot_recovery`). The
others are imported when first used: the widgets and plots load ipywidgets and
matplotlib, which a Serve replica that imports servelab should not pay for, and the
watcher reads Serve's REST API, whose client itself waits with `wait_for`.
"""

from servelab import _lazy
from servelab.observe._waiting import LAYERS, Failed, Stuck, progress, wait_for

_LAZY = {"ReplicaWatcher": "_watch", "Dashboard": "_widgets", "plot_timeline": "_widgets",
         "plot_load": "_plots", "plot_replicas": "_plots", "plot_recovery": "_plots"}

__all__ = ["LAYERS", "Failed", "Stuck", "progress", "wait_for", *_LAZY]
__getattr__ = _lazy(__name__, {name: f"servelab.observe.{module}:{name}" for name, module in _LAZY.items()})
