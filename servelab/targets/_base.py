"""The one interface both targets implement, and `get_target`, which picks one.

    target = get_target()                  # --target / SERVELAB_TARGET, else "local"
    handle = target.up("manifests/rayservice-support-assistant.yaml", wait=True)
    target.status(handle)                  # the same RayService-shaped report on either target
    target.endpoints(handle)               # {"serve": URL, "dashboard": URL, "hint": ""}
    target.down(handle)

Every method that takes `name` also takes the handle `up` returned (a LocalRay on
the local target, the {"kind", "name", "namespace", "action"} dict on Kubernetes).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from servelab.errors import ServelabError


class Target(abc.ABC):
    """Where a manifest runs. Reports use the RayService vocabulary (servelab.targets._vocabulary)."""

    #: the keyword options `get_target` passes on to this target's constructor
    options: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def up(self, path: str | Path, *, wait: bool = False, timeout: float = 300, show: bool = True) -> Any:
        """Bring the manifest up (idempotent); with `wait`, also wait for Ready. Returns a handle:
        local: the LocalRay cluster; kubernetes: {"kind", "name", "namespace", "action"}."""

    @abc.abstractmethod
    def status(self, name) -> dict:
        """A RayService-shaped report: `conditions` (Ready), `activeServiceStatus`, `layer`
        (None when Ready). Local adds `placement` and `nodes`; Kubernetes adds `kind`,
        `pendingServiceStatus`, `numServeEndpoints`, `upgradeInProgress`. Nothing by that
        name: a not-Ready report with reason NotFound."""

    @abc.abstractmethod
    def wait_ready(self, name, *, timeout: float = 300, show: bool = True) -> dict:
        """Wait for the Ready condition and return the report; a `Stuck` naming the layer if it
        does not come (local: a failed deploy ends the wait at once, as a `Failed`)."""

    @abc.abstractmethod
    def down(self, name) -> bool:
        """Stop the cluster (local) or delete the object (kubernetes); False if there was none."""

    @abc.abstractmethod
    def endpoints(self, name) -> dict:
        """{"serve": URL, "dashboard": URL, "hint": ""} where this machine reaches them (local: the
        cluster's own ports; kubernetes: a port-forward this target opened), else both None and a
        `hint` that says how to reach them."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """What runs: local clusters this user started; kubernetes: the objects of the target's kind
        in its namespace."""

    def name_of(self, ref) -> str:
        """The name a handle from `up` (or a name) stands for."""
        if isinstance(ref, str):
            return ref
        if isinstance(ref, Mapping):
            return ref["name"]
        return ref.name


TARGETS = ("local", "kubernetes")


def target_name(name: str | None = None) -> str:
    """`name`, else what SERVELAB_TARGET says, else "local"; an unknown one is refused."""
    given = name if name else os.environ.get("SERVELAB_TARGET", "")
    chosen = given.strip().lower() or "local"
    if chosen not in TARGETS:
        where = f"target {given!r}" if name else f"SERVELAB_TARGET={given!r}"
        raise ServelabError(f"unknown {where}: use 'local' or 'kubernetes'",
                            hint="pass --target local|kubernetes, or set SERVELAB_TARGET to one of them")
    return chosen


def get_target(name: str | None = None, **options) -> Target:
    """The target called `name`, else the one SERVELAB_TARGET names, else "local".

    `options` go to the target's constructor, each to the target that takes it (see `Target.options`):
    local takes `die_with_owner`; kubernetes `namespace`, `kind` and `api_client`.
    """
    from servelab.targets._kubernetes import KubernetesTarget
    from servelab.targets._local import LocalTarget

    classes = {"local": LocalTarget, "kubernetes": KubernetesTarget}
    unknown = set(options) - {o for cls in classes.values() for o in cls.options}
    if unknown:
        raise TypeError(f"get_target() got options no target takes: {', '.join(sorted(unknown))}")
    cls = classes[target_name(name)]
    return cls(**{key: value for key, value in options.items() if key in cls.options})
