"""Ray's dashboard agent, importing only the agent modules a profile names.

Every Ray node runs a dashboard agent, and the agent imports every package under
Ray's dashboard modules package (data, train, serve, state, ...: head modules included) just to
find its own few agent modules. On a node that only exports metrics and serves its logs,
most of that is dead weight, paid once per node. The small profile starts its agents
through this module instead (worker_node.slim_agents rewrites the raylet's
--dashboard_agent_command):

    python -u -m servelab.cluster._slim_agent --servelab-modules=ReporterAgent,LogAgent,... <agent args>

It imports only the files that define those classes, then runs Ray's own agent.
"""

from __future__ import annotations

import importlib
import os
import re
import runpy
import sys

FLAG = "--servelab-modules="
CLASS = re.compile(r"^class (\w+)\(", re.MULTILINE)


def module_files(classes: list[str]) -> list[str]:
    """The dotted names of the files under Ray's dashboard modules package that define `classes`
    (found by reading the source, without importing anything)."""
    from servelab.cluster._ray import dashboard_modules_package

    package = dashboard_modules_package()

    root = package.__path__[0]
    found: dict[str, str] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as source:
                    for cls in CLASS.findall(source.read()):
                        dotted = os.path.relpath(path[:-3], root).replace(os.sep, ".")
                        found.setdefault(cls, f"{package.__name__}.{dotted}")
    missing = [c for c in classes if c not in found]
    if missing:
        raise SystemExit(f"servelab.cluster._slim_agent: no dashboard module defines {missing} in this Ray")
    return sorted({found[c] for c in classes})


def _only(classes: list[str]) -> None:
    from servelab.cluster._ray import dashboard_utils

    utils = dashboard_utils()
    files = module_files(classes)

    def get_all_modules(module_type):
        for name in files:
            importlib.import_module(name)
        return [m for m in module_type.__subclasses__()
                if m.__name__ in classes and getattr(m, "__ray_dashboard_module_enable__", True)]

    utils.get_all_modules = get_all_modules


RUN = "--servelab-run="  # agent.py (default) or dashboard.py: which of Ray's dashboard programs


def main() -> None:
    wanted = [a for a in sys.argv[1:] if a.startswith(FLAG)]
    if not wanted:
        raise SystemExit(f"usage: python -m servelab.cluster._slim_agent {FLAG}A,B,... [{RUN}dashboard.py] <arguments>")
    _only(wanted[-1][len(FLAG):].split(","))
    program = next((a[len(RUN):] for a in sys.argv[1:] if a.startswith(RUN)), "agent.py")
    from servelab.cluster._ray import dashboard_dir

    path = os.path.join(dashboard_dir(), program)
    sys.argv = [path] + [a for a in sys.argv[1:] if not a.startswith((FLAG, RUN))]
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main()
