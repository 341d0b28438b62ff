"""The local Ray engine: a private multi-node Ray cluster on 127.0.0.1.

Public: `LocalRay` (start, connect, add nodes, stop by its own pids), port choice
(`choose_ports`, `free_port`, `PortError`), the cluster `PROFILES`, and the
environment report (`print_report`). The pytest plugin is `servelab.cluster.testing`.
Everything in a module with a leading underscore is internal; `_ray` is the one
module that touches Ray's private API.
"""

from servelab.cluster._envcheck import print_report, report
from servelab.cluster._localray import LocalRay
from servelab.cluster._ports import LOOPBACK, PortError, choose_ports, free_port, is_free
from servelab.cluster._profiles import PROFILES

__all__ = ["LocalRay", "LOOPBACK", "PortError", "choose_ports", "free_port", "is_free", "PROFILES",
           "print_report", "report"]
