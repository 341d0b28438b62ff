"""What a node's launcher becomes once its Ray processes are up: a few MiB instead of ~70.

A launcher (head_node, worker_node) imports Ray to start a node, then only has to wait:
stop the node's processes on SIGTERM, and stop them all if one dies. Ray's imports stay
resident for that wait, about 70 MiB per node. So the launcher execs this file with
`python -S`: same pid, same children (they keep their parent-death signal, which exec
does not fire), same session and signal disposition, but only the standard library.

Stdlib only, and run as a script: `python -S` has no site-packages, so no servelab.

    python -S _node_supervisor.py servelab.cluster._worker_node '[["raylet", PID], ["gcs_server", PID], ...]'

The first argument is the launcher's module, kept so that its command line still says what
it runs (LocalRay.stop finds worker nodes by it).
"""

import json
import os
import signal
import sys
import time

GRACE_S = 1.0  # per process, as Ray's own kill_all_processes allows
CLEAN_EXITS = (0, -signal.SIGTERM, 128 + signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def stop_all(children: list) -> None:
    """In Ray's order (raylet first, so it stops its workers; then the GCS; then the rest):
    SIGTERM, up to GRACE_S, then SIGKILL."""
    for _, pid in children:
        if not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def main(argv: list) -> int:
    children = [(kind, int(pid)) for kind, pid in json.loads(argv[2])]
    stopping = []

    def on_term(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    kinds = dict((pid, kind) for kind, pid in children)
    while not stopping:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # nothing left to supervise
            return 1
        if pid == 0:
            time.sleep(0.5)
            continue
        code = os.waitstatus_to_exitcode(status)
        if pid in kinds and code not in CLEAN_EXITS:
            print(f"Ray processes died: [({kinds[pid]!r}, {code})]; stopping this node", file=sys.stderr, flush=True)
            stop_all(children)
            return 1
    stop_all(children)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
