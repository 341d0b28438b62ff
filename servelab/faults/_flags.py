"""Flags that fault injection raises inside one replica's process.

`servelab fault fail-health` must make one replica unhealthy, not all of them
(a `user_config` change reaches every replica, and their replacements too).
So it drops a file named after the replica's pid into a folder on that
replica's node; the replica's `check_health` looks for it. On the local
target the folder is inside the cluster's own directory (SERVELAB_FAULT_DIR,
set for every process of the cluster); in a Kubernetes pod it is
/tmp/servelab-faults, reached with `kubectl exec`.

Kept free of heavy imports: every replica of the reference apps imports it.
"""

from __future__ import annotations

import os

ENV = "SERVELAB_FAULT_DIR"
POD_DIR = "/tmp/servelab-faults"
UNHEALTHY = "unhealthy"     # check_health raises (the reference apps' Switches)
LOSE_STATE = "lose-state"   # the model forgets its weights (servelab.apps.sentiment), silently


def fault_dir() -> str:
    return os.environ.get(ENV) or POD_DIR


def flag_name(kind: str, pid: int) -> str:
    return f"{kind}-{pid}"


def raised(kind: str = UNHEALTHY, pid: int | None = None) -> bool:
    """Has fault injection raised this flag for this process?"""
    return os.path.exists(os.path.join(fault_dir(), flag_name(kind, pid or os.getpid())))
