"""Choosing the ports of a local cluster.

Every port a local cluster uses is chosen here, on 127.0.0.1. The ports a
learner types or clicks (Serve HTTP, dashboard, metrics, Prometheus) honour environment
variables and otherwise prefer the well-known defaults when they are free, so
lesson text like "open http://127.0.0.1:8265" stays true on a laptop. Set
SERVELAB_PORTS=free to skip the defaults (tests and parallel graders do).
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import asdict, dataclass

from servelab.errors import ServelabError

LOOPBACK = "127.0.0.1"

# (environment variable, well-known default) for the ports people see.
VISIBLE_PORTS = {
    "serve": ("SERVELAB_SERVE_PORT", 8000),
    "dashboard": ("SERVELAB_DASHBOARD_PORT", 8265),
    "metrics": ("SERVELAB_METRICS_PORT", 8080),
    "prometheus": ("SERVELAB_PROMETHEUS_PORT", 9090),  # the Prometheus beside it (cluster/_prometheus.py)
}
HEAD_VISIBLE = ("serve", "dashboard", "metrics")  # the head node's own; Prometheus is chosen when it runs
WORKER_PORT_RANGE = 200  # ports reserved for Ray worker processes per node

# Visible ports that clusters started by this process hold now. A port pinned by SERVELAB_*_PORT
# goes to the first cluster a process starts (a graded kernel's, where the grader looks for it);
# a later cluster of the same process (lab 5's autoscaled RayCluster, lab 7's RayService, a
# RayService's pending cluster) takes a free port instead of failing. A pinned port that anything
# else holds is still an error: the grader must never reach someone else's server on it.
_HELD_HERE: set[int] = set()


def hold(*ports: int) -> None:
    """Record visible ports a cluster of this process now holds."""
    _HELD_HERE.update(p for p in ports if p)


def release(*ports: int) -> None:
    """Forget them again (the cluster stopped)."""
    _HELD_HERE.difference_update(ports)


class PortError(ServelabError, RuntimeError):
    """A requested port is not usable."""

    layer = "Ray runtime"


def is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Servers set SO_REUSEADDR, so a port held only by TIME_WAIT is usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(exclude: set[int] | None = None) -> int:
    """A port the kernel just handed out on 127.0.0.1 (and is free again now)."""
    exclude = exclude or set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port not in exclude:
            return port
    raise PortError("could not find a free port on 127.0.0.1")


def held_port(exclude: set[int] | None = None) -> int:
    """A free port in 10000-19999, for a port bound long after it is chosen (a RayService's serve
    Service binds its port once the first cluster runs, 20 s or more later). Outgoing connections
    take their local ports from the kernel's ephemeral range (32768 and up), and Ray's workers
    from their node's range in 20000-39999 (free_range), so nothing else takes it meanwhile."""
    exclude = exclude or set()
    for _ in range(200):
        port = random.randrange(10000, 20000)
        if port not in exclude and is_free(port):
            return port
    return free_port(exclude)


def free_range(size: int, exclude: set[int]) -> int:
    """First port of `size` consecutive free ports in 20000-39999."""
    for _ in range(200):
        start = random.randrange(20000, 40000 - size)
        span = range(start, start + size)
        if not exclude.intersection(span) and all(is_free(p) for p in span[::20]):
            return start
    raise PortError(f"no range of {size} free ports found in 20000-39999")


@dataclass(frozen=True)
class Ports:
    gcs: int
    node_manager: int
    object_manager: int
    client_server: int
    dashboard: int
    dashboard_agent_http: int
    dashboard_agent_grpc: int
    runtime_env_agent: int
    metrics: int
    serve: int
    min_worker: int
    max_worker: int

    def as_dict(self) -> dict:
        return asdict(self)


def visible_port(kind: str, taken: set[int] | None = None, env: dict | None = None) -> int:
    """The port people see for `kind` ("serve", "dashboard", "metrics", "prometheus"), as `choose_ports` picks it."""
    return _visible_port(kind, set(taken or ()), dict(os.environ if env is None else env))


def _visible_port(kind: str, taken: set[int], env: dict) -> int:
    var, default = VISIBLE_PORTS[kind]
    if env.get(var):
        try:
            port = int(env[var])
        except ValueError:
            raise PortError(f"{var}={env[var]!r} is not a port number") from None
        if port not in taken and port in _HELD_HERE and not is_free(port):
            return held_port(taken)  # this process's own first cluster has it
        if port in taken or not is_free(port):
            raise PortError(
                f"{var}={port} is already in use on {LOOPBACK}; "
                f"pick another port or unset {var}"
            )
        return port
    if env.get("SERVELAB_PORTS", "").lower() != "free" and default not in taken and is_free(default):
        return default
    return held_port(taken)


def _node_ports(kinds: tuple[str, ...], taken: set[int]) -> dict[str, int]:
    """A free port per kind, plus a worker-port range, none of them in `taken`."""
    chosen: dict[str, int] = {}
    for kind in kinds:
        chosen[kind] = free_port(taken)
        taken.add(chosen[kind])
    first = free_range(WORKER_PORT_RANGE, taken)
    return {**chosen, "min_worker": first, "max_worker": first + WORKER_PORT_RANGE - 1}


NODE_PORT_KINDS = ("node_manager", "object_manager", "dashboard_agent_http",
                   "dashboard_agent_grpc", "runtime_env_agent")


def choose_ports(env: dict | None = None, *, serve_free: bool = False, exclude: set[int] | None = None) -> Ports:
    """Pick a full, non-overlapping set of ports for one Ray head node, none in `exclude`.
    serve_free: the Serve proxy's port is any free one (a RayService's serve Service holds
    the visible one, servelab.cluster._service)."""
    env = dict(os.environ if env is None else env)
    taken: set[int] = set(exclude or ())
    visible: dict[str, int] = {}
    for kind in HEAD_VISIBLE:
        visible[kind] = free_port(taken) if kind == "serve" and serve_free else _visible_port(kind, taken, env)
        taken.add(visible[kind])
    return Ports(**visible, **_node_ports(("gcs", "client_server") + NODE_PORT_KINDS, taken))


def worker_ports() -> dict:
    """Free ports for one more Ray node on 127.0.0.1 (every node needs its own)."""
    return _node_ports(NODE_PORT_KINDS + ("metrics",), set())
