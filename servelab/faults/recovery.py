"""How a service lives through a fault: bounded load before, during and after it.

    result = recovery.measure(LocalFaults(cluster), lambda f: f.kill_replica("rag", "Retriever"),
                              f"{cluster.serve_url}/rag/ask", {"question": "..."})
    print(result.summary()); result.plot()

The load runs in the background (loopback only, bounded). After a warm-up the
fault is injected; then the service is polled until the fault's own recovery
rule holds (servelab.faults._verbs: the faulty replicas replaced and the deployment
back to its target, the actor restarted, the applications RUNNING again),
or until `max_s`. A bad rollout is rolled back as soon as Serve reports
DEPLOY_FAILED (or after `rollback_after_s`, e.g. replicas that never leave
PENDING), and its recovery is counted from the rollback.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from servelab.clients._serve import count_running
from servelab.faults import load
from servelab.faults._verbs import Fault, Faults


@dataclass
class Recovery:
    fault: Fault
    report: load.Report
    fault_at_s: float                   # since the load started
    recovered_at_s: float | None        # None: not back within max_s
    samples: list[dict] = field(default_factory=list)  # {"t", "<deployment>": RUNNING replicas}
    rollback_at_s: float | None = None
    detail: str = ""                    # the last thing recovery was waiting for
    during: str = ""                    # a bad rollout: what Serve said when it was rolled back

    @property
    def recovered(self) -> bool:
        return self.recovered_at_s is not None

    @property
    def seconds_to_recover(self) -> float | None:
        """From the fault (a bad rollout: from its rollback) until the rule held."""
        if self.recovered_at_s is None:
            return None
        return self.recovered_at_s - (self.rollback_at_s if self.rollback_at_s is not None else self.fault_at_s)

    def failed_after_fault(self) -> int:
        return sum(not s.ok for s in self.report.samples if s.start_s + s.latency_s >= self.fault_at_s)

    def as_dict(self) -> dict:
        r = self.report
        return {"fault": self.fault.verb, "hit": [h.get("what") for h in self.fault.hit],
                "sent": r.sent, "failed": r.failed, "retried": r.retried,
                "statuses": {str(k): v for k, v in sorted(r.statuses.items())},
                "longest_gap_s": round(r.longest_gap_s(), 2),
                "fault_at_s": round(self.fault_at_s, 2),
                "rollback_at_s": None if self.rollback_at_s is None else round(self.rollback_at_s, 2),
                "seconds_to_recover": None if self.seconds_to_recover is None else round(self.seconds_to_recover, 2),
                "recovered": self.recovered, "detail": self.detail, "during": self.during,
                "p50_ms": round(1000 * r.latency(50), 1), "p99_ms": round(1000 * r.latency(99), 1)}

    def summary(self) -> str:
        d = self.as_dict()
        back = (f"back in {d['seconds_to_recover']:.1f} s" if self.recovered
                else f"NOT back after the deadline ({self.detail})")
        retried = f", {d['retried']} retried" if d["retried"] else ""
        return (f"{self.fault.describe()}\n  {d['sent']} requests, {d['failed']} failed{retried}; "
                f"longest gap without a success {d['longest_gap_s']:.1f} s; {back}")

    def plot(self, ax=None):
        from servelab.observe._plots import plot_recovery

        return plot_recovery(self, ax=ax)


def _watched(fault: Fault) -> list[tuple[str, str]]:
    if fault.deployment:
        return [(fault.app, fault.deployment)]
    lost = fault.before.get("lost_replicas") or []
    return sorted({(r["app"], r["deployment"]) for r in lost})


def _sample(faults: Faults, watched: list[tuple[str, str]], t: float) -> dict | None:
    if not watched:
        return None
    try:
        apps = faults.serve_api.applications()
    except Exception:  # the controller may be the thing that is down
        return None
    row = {"t": round(t, 2)}
    for app, dep in watched:
        row[dep] = count_running(((apps.get(app) or {}).get("deployments") or {}).get(dep, {}))
    return row


def measure(faults: Faults, inject: Callable[[Faults], Fault], url: str, payload=None, *,
            concurrency: int = 4, warmup_s: float = 3.0, max_s: float = 120.0, tail_s: float = 2.0,
            timeout_s: float = 5.0, retries: int = 0, rollback_after_s: float = 60.0,
            poll_s: float = 0.5, show: bool = True) -> Recovery:
    """Run load, inject the fault after `warmup_s`, poll until recovered (or `max_s`), then stop."""
    stop = threading.Event()
    box: dict = {}

    def run_load():
        try:
            box["report"] = load.run(url, payload, concurrency=concurrency, count=load.MAX_COUNT,
                                     duration_s=min(load.MAX_DURATION_S, warmup_s + max_s + tail_s + 5),
                                     timeout_s=timeout_s, retries=retries, stop=stop)
        except BaseException as exc:  # surfaced below
            box["error"] = exc

    load.check_loopback(url)
    t0 = time.monotonic()
    loader = threading.Thread(target=run_load, daemon=True, name="servelab-recovery-load")
    loader.start()
    fault = None
    samples: list[dict] = []
    rollback_at = recovered_at = None
    detail = during = ""
    try:
        time.sleep(warmup_s)
        fault = inject(faults)
        fault_at = time.monotonic() - t0
        watched = _watched(fault)
        shown = ""
        while True:
            now = time.monotonic() - t0
            row = _sample(faults, watched, now)
            if row:
                samples.append(row)
            if fault.verb == "bad-rollout" and rollback_at is None:
                detail, failed = _rollout_state(faults, fault)
                if failed or now - fault_at >= rollback_after_s:
                    during = detail
                    if show:
                        print(f"  {now - fault_at:5.1f} s after the rollout: {detail}", flush=True)
                    faults.rollback(fault, show=show)
                    rollback_at = time.monotonic() - t0
            else:
                ok, detail = faults.recovered(fault)
                if ok:
                    recovered_at = time.monotonic() - t0
                    break
            if now - fault_at > max_s:
                break
            if show and detail and detail != shown:
                print(f"  {now - fault_at:5.1f} s after the fault: {detail}", flush=True)
                shown = detail
            time.sleep(poll_s)
        if show:
            print(f"  {'recovered: ' if recovered_at else 'gave up: '}{detail}", flush=True)
        time.sleep(tail_s)
    finally:
        stop.set()
        loader.join(timeout_s + 10)
        if fault is not None:
            faults.release(fault)
    if "error" in box:
        raise box["error"]
    return Recovery(fault, box["report"], fault_at, recovered_at, samples, rollback_at, detail, during)


def _rollout_state(faults: Faults, fault: Fault) -> tuple[str, bool]:
    """What Serve says about the rolled-out applications, and whether it gave up (DEPLOY_FAILED)."""
    try:
        apps = faults.serve_api.applications()
    except Exception as exc:
        return f"status unreadable: {exc}", False
    lines, failed = [], False
    for name in fault.before.get("applications") or list(apps):
        app = apps.get(name) or {}
        message = (app.get("message") or "").strip().splitlines()
        lines.append(f"{name} {app.get('status', 'absent')}" + (f": {message[-1][:200]}" if message else ""))
        failed = failed or app.get("status") == "DEPLOY_FAILED"
    return "; ".join(lines), failed
