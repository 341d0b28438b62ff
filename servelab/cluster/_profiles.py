"""How much a local cluster's Ray processes may weigh: the `default` and `small` profiles.

mybinder.org gives a learner 2 GB for everything (JupyterLab, the kernel, every Ray
process). The small profile keeps every lesson and lab working and drops what none of
them uses:
- the runtime-env agents, and the worker nodes' dashboard agents, are stand-ins of a few
  MiB (servelab/cluster/_standin_agents.py) instead of Ray's (65-85 MiB each): the course's code
  ships in the image, its one runtime_env sets env_vars (which the stand-in builds), and
  the metrics it reads come from the Serve proxy on the head, whose agent stays;
- the dashboard's head loads (and, through servelab.cluster._slim_agent, imports) only the modules
  the course talks to (Serve's REST API, the State API and nodes), not the Jobs, Data,
  Train, metrics-config and event modules (no lesson submits Ray jobs);
- glibc keeps at most two malloc arenas per process (Ray's processes are threaded, and
  each thread's arena otherwise keeps freed memory);
- Ray does not start idle worker processes ahead of time when the first driver connects;
- no monitor process unless the cluster autoscales (`ray status` then has nothing to say);
- no log monitor: it streams workers' output to drivers that ask for it, and servelab's
  drivers do not (replicas' logs stay in their files, and the head's on the dashboard);
- the head's dashboard agent imports only its metrics, health and log modules instead of
  every dashboard package (servelab.cluster._slim_agent).

Which profile: SERVELAB_PROFILE=default|small, else `small` when this machine (or its
container's cgroup) has at most 3 GiB, else `default`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from servelab.errors import ServelabError

ENV = "SERVELAB_PROFILE"
SMALL_AT_OR_BELOW = 3 * 1024**3


class ProfileError(ServelabError, ValueError):
    """SERVELAB_PROFILE (or the profile asked for) names no profile."""

    layer = "Ray runtime"


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    dashboard_modules: tuple[str, ...] | None = None  # None: every module Ray has
    status_monitor: bool = True  # Ray's monitor process, which `ray status` reads, even without autoscaling
    log_monitor: bool = True  # Ray's log monitor, which streams worker output to drivers (log_to_driver)
    agent_modules: tuple[str, ...] | None = None  # dashboard agent module classes (slim_agent); None: all
    prometheus: bool = True  # a Prometheus beside the cluster (cluster/_prometheus.py)
    standin_agents: bool = False  # servelab/cluster/_standin_agents.py for runtime-env agents, and workers' dashboard agents
    env: dict[str, str] = field(default_factory=dict)  # for every process of the cluster


PROFILES: dict[str, Profile] = {
    "default": Profile("default", "every dashboard module, Ray's own defaults"),
    "small": Profile(
        "small", "for about 2 GB (Binder): stand-in agents, fewer dashboard modules, fewer malloc arenas, "
                 "no prestarted workers, no monitor unless autoscaling, no log monitor, no Prometheus",
        dashboard_modules=("NodeHead", "ServeHead", "StateHead"), status_monitor=False, log_monitor=False,
        agent_modules=("ReporterAgent", "HealthzAgent", "LogAgent", "LogAgentV1Grpc"), standin_agents=True,
        prometheus=False,
        env={"MALLOC_ARENA_MAX": "2", "RAY_prestart_worker_first_driver": "0"}),
}


def memory_limit() -> int:
    """Bytes this process tree may use: the cgroup's limit if it has one, else physical memory."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits)


def choose(name: str | None = None) -> Profile:
    """The named profile, else SERVELAB_PROFILE, else by memory_limit()."""
    name = name or os.environ.get(ENV) or ("small" if memory_limit() <= SMALL_AT_OR_BELOW else "default")
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ProfileError(f"unknown profile {name!r} ({ENV}); choose one of: {', '.join(PROFILES)}") from None
