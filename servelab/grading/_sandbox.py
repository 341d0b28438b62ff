"""Graded kernels in a bubblewrap sandbox.

`servelab grade` gives nbgrader a kernelspec (KERNEL_NAME) whose command is
`python -m servelab.grading._sandbox {connection_file}`. That launcher runs the real
IPython kernel under bwrap (Debian's bubblewrap), so a submission's code:

- sees the filesystem read-only, with the course folder (sources, solutions,
  gradebook, other students) and the repository's grading/ and tests/ replaced by
  empty folders; only its own notebook folder and a private scratch folder
  (TMPDIR, HOME, the Ray temp dirs) are writable;
- runs in a PID namespace of its own: when the kernel ends (or nbgrader, or the
  grader, is killed), every process it started, Ray's included, ends with it;
- has a CPU-time limit per process (RLIMIT_CPU) and, where a cgroup can be made,
  a memory limit for all of its processes together. The wall-clock limit is the
  grader's (autograde.py). It shares the network so that nbgrader reaches the kernel
  and the grader's probes reach its services, on ports the grader assigned.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from servelab.cluster import _processes as processes

KERNEL_NAME = "servelab-sandbox"
SETTINGS_ENV = "SERVELAB_SANDBOX"  # JSON of Settings, in the kernelspec's env


@dataclass
class Settings:
    hide: list[str]            # folders replaced by empty ones inside the sandbox
    scratch: str               # the submission's private folder: TMPDIR, HOME, Ray's temp dirs
    cpu_s: int = 20 * 60       # CPU seconds per process
    memory_bytes: int = 6 * 1024**3
    cgroup_parent: str = ""    # where per-kernel memory cgroups go ("" = no memory limit)


def unavailable() -> str:
    """Why the sandbox cannot run here ("" when it can)."""
    if not shutil.which("bwrap"):
        return "bwrap is not installed (Debian package bubblewrap)"
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                            "--unshare-pid", "--die-with-parent", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return ""


def install_kernel(jupyter_dir: Path, settings: Settings) -> Path:
    """Write the sandboxed kernelspec under jupyter_dir/kernels/ (put jupyter_dir on JUPYTER_PATH)."""
    spec = jupyter_dir / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "servelab.grading._sandbox", "{connection_file}"],
        "display_name": "Python 3 (servelab grading sandbox)",
        "language": "python",
        # Interrupts travel as messages: a signal to the launcher would stop at bwrap.
        "interrupt_mode": "message",
        "env": {SETTINGS_ENV: json.dumps(asdict(settings))},
    }, indent=1))
    return spec


# -- memory cgroup ---------------------------------------------------------------

def cgroup_parent(name: str) -> str:
    """A memory cgroup folder this process may create children in, made now ("" if none)."""
    own_v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    candidates = [Path("/sys/fs/cgroup/memory")]  # cgroup v1
    if own_v2.exists() and "memory" in own_v2.read_text().split():
        candidates.insert(0, Path("/sys/fs/cgroup"))
    for base in candidates:
        parent = base / name
        try:
            parent.mkdir(exist_ok=True)
            if base == Path("/sys/fs/cgroup"):
                (parent / "cgroup.subtree_control").write_text("+memory")
            return str(parent)
        except OSError:
            continue
    return ""


def _join_memory_cgroup(parent: str, name: str, limit: int) -> None:
    group = Path(parent) / name
    group.mkdir()
    limit_file = group / ("memory.max" if (group / "memory.max").exists() else "memory.limit_in_bytes")
    limit_file.write_text(str(limit))
    (group / "cgroup.procs").write_text(str(os.getpid()))


def remove_cgroups(parent: str) -> None:
    """Kill whatever is left in the per-kernel cgroups under `parent`, then remove them."""
    if not parent or not os.path.isdir(parent):
        return
    for group in sorted(Path(parent).iterdir()):
        if not (group / "cgroup.procs").exists():
            continue
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    try:
        os.rmdir(parent)
    except OSError:
        pass


# -- the launcher ------------------------------------------------------------------

def bwrap_argv(settings: Settings, workdir: Path, scratch: Path, command: list[str]) -> list[str]:
    """The bwrap command line: read-only root, hidden course, writable workdir and scratch."""
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/dev/shm", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session"]
    for path in settings.hide:
        if os.path.isdir(path):
            argv += ["--tmpfs", path]
    # Order matters: these mounts come after the hiding ones, so they show through.
    argv += ["--bind", str(workdir), str(workdir), "--bind", str(scratch), str(scratch),
             "--chdir", str(workdir),
             "--setenv", "HOME", str(scratch), "--setenv", "TMPDIR", str(scratch),
             "--setenv", "SERVELAB_TMPDIR", str(scratch),  # short: Ray's socket paths are limited
             "--setenv", "MPLCONFIGDIR", str(scratch / "mpl"),
             "--setenv", "IPYTHONDIR", str(scratch / "ipython"),
             # Inside the namespace the kernel's parent is bwrap's init (pid 1), which
             # ipykernel's parent poller takes for "orphaned"; PDEATHSIG does that job here.
             "--unsetenv", "JPY_PARENT_PID"]
    return argv + ["--", *command]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m servelab.grading._sandbox CONNECTION_FILE")
    settings = Settings(**json.loads(os.environ.pop(SETTINGS_ENV)))
    scratch = Path(settings.scratch)
    # If nbgrader (our parent) dies, so does bwrap, and with it the whole PID namespace.
    processes.die_with_parent(signal.SIGKILL)
    resource.setrlimit(resource.RLIMIT_CPU, (settings.cpu_s, settings.cpu_s + 5))
    if settings.cgroup_parent:
        _join_memory_cgroup(settings.cgroup_parent, f"{scratch.name}-{os.getpid()}", settings.memory_bytes)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", argv[0]]
    os.execvp("bwrap", bwrap_argv(settings, Path.cwd(), scratch, kernel))


if __name__ == "__main__":
    main(sys.argv[1:])
