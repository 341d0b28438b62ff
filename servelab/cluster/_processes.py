"""Finding the processes that belong to a local cluster.

A cluster's processes are found three ways, because each alone misses some:
- the SERVELAB_CLUSTER_DIR variable servelab puts in the environment of the
  `ray start` it launches (Ray's process-title rewriting blanks
  /proc/PID/environ of some children, so not every process shows it);
- the session id: `ray start` (and each worker node) runs in a session of its
  own, whose id is its pid recorded in <cluster dir>/cluster.json (or, for
  nodes the autoscaler launched, in <cluster dir>/sessions.txt), and Ray's
  children stay in it;
- descendants of anything found.
This is how clusters are stopped by their own pids and how tests detect leaks,
without ever touching another Ray on the machine.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import signal
import subprocess
import time

import psutil

MARKER = "SERVELAB_CLUSTER_DIR"


def _marker_of(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get(MARKER)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None


def _is_under(path: str, root: str) -> bool:
    root = os.path.join(os.path.realpath(root), "")
    return os.path.join(os.path.realpath(path), "").startswith(root)


SESSIONS_FILE = "sessions.txt"


def record_session(cluster_dir: str, pid: int) -> None:
    """Remember a session started for a cluster (a node the autoscaler launched), so its
    processes are found even after the session's leader died."""
    with open(os.path.join(cluster_dir, SESSIONS_FILE), "a") as f:
        f.write(f"{pid}\n")


def _owner_pids(root: str) -> set[int]:
    pids = set()
    for sessions in glob.glob(os.path.join(root, "**", SESSIONS_FILE), recursive=True):
        try:
            pids.update(int(line) for line in open(sessions) if line.strip())
        except (OSError, ValueError):
            pass
    for state in glob.glob(os.path.join(root, "**", "cluster.json"), recursive=True):
        try:
            data = json.load(open(state))
            pids.add(int(data["owner_pid"]))
            pids.update(int(w["pid"]) for w in data.get("workers", []))  # each in its own session
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return pids


def processes_under(root: str) -> list[psutil.Process]:
    """Live processes of every servelab cluster whose directory is inside root."""
    me = os.getpid()
    everyone = [p for p in psutil.process_iter() if p.pid != me]
    found: dict[int, psutil.Process] = {}
    sessions = _owner_pids(root)
    for proc in everyone:
        marker = _marker_of(proc)
        if marker and _is_under(marker, root):
            found[proc.pid] = proc
            try:
                sessions.add(os.getsid(proc.pid))
            except OSError:
                pass
    for proc in everyone:
        try:
            if os.getsid(proc.pid) in sessions and os.getsid(proc.pid) != os.getsid(me):
                found[proc.pid] = proc
        except OSError:
            pass
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                if child.pid != me:
                    found[child.pid] = child
        except psutil.Error:
            pass
    alive = []
    for proc in found.values():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def describe(procs: list[psutil.Process]) -> str:
    lines = []
    for p in procs:
        try:
            where = _marker_of(p)  # which cluster (or serve Service) folder it belongs to
            lines.append(f"  pid {p.pid}: {' '.join(p.cmdline())[:120] or p.name()}"
                         + (f"  [{where}]" if where else ""))
        except psutil.Error:
            lines.append(f"  pid {p.pid}: (gone)")
    return "\n".join(lines)


def command_lines(procs: list[psutil.Process]) -> list[str]:
    """Each live process's command line as one string (processes that are gone are left out)."""
    lines = []
    for p in procs:
        try:
            lines.append(" ".join(p.cmdline()))
        except psutil.Error:
            pass
    return lines


def kill_all(procs: list[psutil.Process], sig: int = signal.SIGKILL) -> None:
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def wait_gone(root: str, timeout: float) -> list[psutil.Process]:
    """Wait until no process is left under root; return the survivors."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes_under(root)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def listeners(procs: list[psutil.Process]) -> list[tuple[str, int, str]]:
    """(address, port, process name) for every TCP socket these processes listen on."""
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="tcp")
            name = p.name()
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                out.append((c.laddr.ip, c.laddr.port, name))
    return out


def wait_gone_pids(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until these processes exit; return the ones still alive."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def spawn_node(cmd: list[str], env: dict, log_path: str | os.PathLike, *,
               die_with_parent_thread: bool = True) -> subprocess.Popen:
    """Start a node launcher (head, worker or autoscaled "pod"): no stdin, its output to
    `log_path`, a session of its own (signals to the caller's process group miss it) and,
    by default, SIGTERM when the thread that started it ends."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=die_with_parent if die_with_parent_thread else None)


def stop_child(proc: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> None:
    """Ask a child to stop (`sig`), give it `timeout` seconds, then SIGKILL it; reaped either way."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """preexec_fn: the child gets `sig` when the thread that started it ends (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, sig, 0, 0, 0)
