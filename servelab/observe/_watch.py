"""Watching a running application over time: replica counts sampled from Serve's REST API.

    with ReplicaWatcher(cluster.serve_api, "rag", ["Generator"]) as watch:
        load.run(...)
    watch.samples   # [{"t": 0.0, "Generator": 1}, {"t": 0.5, "Generator": 2}, ...]
    watch.peak("Generator")

It samples in a background thread, so it runs alongside a load run or a fault.
"""

from __future__ import annotations

import threading
import time

from servelab.clients._serve import ServeAPI, count_running
from servelab.observe._waiting import progress


class ReplicaWatcher:
    def __init__(self, api: ServeAPI, app: str, deployments: list[str], interval_s: float = 0.5):
        self.api, self.app, self.deployments, self.interval_s = api, app, deployments, interval_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def running(self) -> dict[str, int]:
        """RUNNING replicas per watched deployment, now."""
        deps = self.api.application(self.app)["deployments"]
        return {d: count_running(deps.get(d, {})) for d in self.deployments}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append({"t": round(time.monotonic() - self._t0, 2), **self.running()})
            except Exception:  # a missed sample (controller busy) is not worth dying for
                pass
            self._stop.wait(self.interval_s)

    def start(self) -> "ReplicaWatcher":
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="servelab-replica-watch")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> "ReplicaWatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def peak(self, deployment: str) -> int:
        return max((s.get(deployment, 0) for s in self.samples), default=0)

    def last(self, deployment: str) -> int:
        return self.samples[-1].get(deployment, 0) if self.samples else 0

    def wait_for(self, deployment: str, count: int, timeout_s: float, show: bool = True) -> float | None:
        """Seconds until `deployment` has exactly `count` RUNNING replicas, or None at the deadline."""
        start = time.monotonic()
        shown = progress(f"{deployment} at {count} running replicas", timeout_s) if show else None
        while time.monotonic() - start < timeout_s:
            if self.samples and self.last(deployment) == count:
                if shown:
                    shown.finish(time.monotonic() - start, ok=True)
                return self.elapsed()
            if shown:
                shown.update(time.monotonic() - start, note=f"{self.last(deployment)} now")
            time.sleep(self.interval_s)
        if shown:
            shown.finish(time.monotonic() - start, ok=False)
        return None
