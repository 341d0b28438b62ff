"""What the start page prints: versions, machine size, and the active target."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import psutil

PACKAGES = ("ray", "jupyterlab", "nbgrader", "ipywidgets", "kubernetes", "servelab")


def active_target() -> str:
    """`local` unless SERVELAB_TARGET says `kubernetes`."""
    from servelab.targets._base import target_name

    return target_name()


def where() -> str:
    if os.environ.get("BINDER_SERVICE_HOST") or os.environ.get("BINDER_REQUEST"):
        return "Binder"
    if os.environ.get("CI"):
        return "CI"
    return "this computer"


def report() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    mem = psutil.virtual_memory()
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "versions": versions,
        "cores": os.cpu_count(),
        "memory_total_gb": round(mem.total / 1024**3, 1),
        "memory_available_gb": round(mem.available / 1024**3, 1),
        "target": active_target(),
        "running_on": where(),
    }


def print_report() -> dict:
    r = report()
    print(f"Python {r['python']}  ({r['executable']})")
    for name, version in r["versions"].items():
        print(f"  {name:<11} {version}")
    print(f"Machine: {r['cores']} cores, {r['memory_total_gb']} GB memory "
          f"({r['memory_available_gb']} GB available), running on {r['running_on']}")
    print(f"Target: {r['target']}" + (
        "  (an embedded Ray cluster on this machine; no Kubernetes needed)"
        if r["target"] == "local" else "  (KubeRay on the cluster your kubeconfig points at)"))
    return r
