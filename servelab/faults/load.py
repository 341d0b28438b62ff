"""A bounded load generator for Serve endpoints on this machine.

Two shapes of load:

- closed loop (`concurrency=N`): N clients, each sends its next request as soon
  as the previous one answers; throughput is whatever the service sustains.
- fixed rate (`rate=R`): R requests per second whatever the service does, up to
  `concurrency` in flight; the queue grows when the service falls behind.

Every run is bounded by `count` and by `duration_s`, whichever comes first, and
only loopback addresses are allowed (this is for a cluster on this machine or a
port-forward to one). Each request's start, latency and status are kept, so the
report gives percentiles, errors and a timeline to plot.
"""

from __future__ import annotations

import ipaddress
import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Union
from urllib.parse import urlsplit

import requests

from servelab.errors import ServelabError

MAX_COUNT = 100_000
MAX_DURATION_S = 600.0


class LoadError(ServelabError, ValueError):
    """The load asked for is not one this generator sends (not loopback, out of bounds)."""

    layer = "Serve"

Payload = Union[dict, list, str, bytes, None]


@dataclass
class Sample:
    start_s: float     # since the run started
    latency_s: float
    status: int        # HTTP status; 0 when no response came back (refused, reset, timeout)
    error: str = ""
    attempts: int = 1  # more than 1 when the client retried (see `retries`)
    retry_after_s: float = 0.0  # the service's Retry-After on a 429/503: it sheds load, come back later

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Report:
    samples: list[Sample]
    duration_s: float
    concurrency: int
    rate: float | None = None
    stopped_by: str = "count"

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.samples)

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    @property
    def retried(self) -> int:
        """Requests that needed more than one attempt (whatever their final outcome)."""
        return sum(s.attempts > 1 for s in self.samples)

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def latency(self, q: float) -> float:
        """Latency percentile of the successful requests, in seconds."""
        return percentile([s.latency_s for s in self.samples if s.ok], q)

    @property
    def statuses(self) -> Counter:
        return Counter(s.status for s in self.samples)

    def longest_gap_s(self) -> float:
        """The longest time without a successful answer finishing (fault recovery)."""
        ends = sorted(s.start_s + s.latency_s for s in self.samples if s.ok)
        edges = [0.0] + ends + [self.duration_s]
        return max(b - a for a, b in zip(edges, edges[1:]))

    def timeline(self, bucket_s: float = 1.0) -> list[dict]:
        """Per time bucket (by request start): sent, ok, failed, p50 and p99 latency."""
        buckets: dict[int, list[Sample]] = {}
        for s in self.samples:
            buckets.setdefault(int(s.start_s // bucket_s), []).append(s)
        rows = []
        for i in range(int(self.duration_s // bucket_s) + 1):
            group = buckets.get(i, [])
            lat = [s.latency_s for s in group if s.ok]
            rows.append({"t": i * bucket_s, "sent": len(group), "ok": len(lat),
                         "failed": len(group) - len(lat),
                         "p50": percentile(lat, 50), "p99": percentile(lat, 99)})
        return rows

    def as_dict(self) -> dict:
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed, "retried": self.retried,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "duration_s": round(self.duration_s, 3), "concurrency": self.concurrency,
                "rate": self.rate, "stopped_by": self.stopped_by,
                "throughput_rps": round(self.throughput, 2),
                "p50_ms": round(1000 * self.latency(50), 2), "p95_ms": round(1000 * self.latency(95), 2),
                "p99_ms": round(1000 * self.latency(99), 2),
                "longest_gap_s": round(self.longest_gap_s(), 3)}

    def summary(self) -> str:
        d = self.as_dict()
        shape = f"rate {self.rate:g}/s" if self.rate else f"{self.concurrency} clients"
        errors = ", ".join(f"{k}: {v}" for k, v in d["statuses"].items() if not k.startswith("2"))
        return (f"{d['sent']} requests ({shape}, {d['duration_s']:.1f} s, stopped by {self.stopped_by}): "
                f"{d['ok']} ok, {d['failed']} failed{f' ({errors})' if errors else ''}; "
                f"{d['throughput_rps']:.1f} ok/s; latency p50 {d['p50_ms']:.1f} ms, "
                f"p95 {d['p95_ms']:.1f} ms, p99 {d['p99_ms']:.1f} ms")


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise LoadError(f"load is only sent to this machine (127.0.0.1 or localhost), not to {host!r}: "
                    "reach a remote cluster through `servelab k8s port-forward`")


def run(url: str, payload: Payload | Callable[[int], Payload] = None, *,
        concurrency: int = 1, rate: float | None = None, count: int = 100,
        duration_s: float = 30.0, timeout_s: float = 10.0, method: str = "POST",
        retries: int = 0, stop: threading.Event | None = None,
        on_progress: Callable[[int, int], None] | None = None) -> Report:
    """Send at most `count` requests for at most `duration_s` seconds; return a Report.

    `payload` is JSON-encoded (dict or list), sent as is (str or bytes), or a
    function of the request number returning either, to vary the requests.
    `retries` resends a request that got no answer or a 502/503/504 (what a
    client with a retry policy does during a fault), after a short pause.
    Setting `stop` ends the run early (no new requests; those in flight finish).
    """
    check_loopback(url)
    if not 1 <= count <= MAX_COUNT:
        raise LoadError(f"count must be between 1 and {MAX_COUNT}, got {count}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise LoadError(f"duration_s must be in (0, {MAX_DURATION_S:g}], got {duration_s}")
    if concurrency < 1:
        raise LoadError(f"concurrency must be at least 1, got {concurrency}")
    if rate is not None and rate <= 0:
        raise LoadError(f"rate must be positive, got {rate}")
    if not 0 <= retries <= 5:
        raise LoadError(f"retries must be between 0 and 5, got {retries}")

    make = payload if callable(payload) else (lambda i: payload)
    samples: list[Sample] = []
    lock = threading.Lock()
    issued = 0
    t0 = time.monotonic()
    deadline = t0 + duration_s
    stopped = {"by": "count"}

    def next_index() -> int | None:
        nonlocal issued
        with lock:
            if issued >= count:
                return None
            if time.monotonic() >= deadline:
                stopped["by"] = "time"
                return None
            if stop is not None and stop.is_set():
                stopped["by"] = "stop"
                return None
            if rate is not None:
                # Fixed rate: request i is due at t0 + i / rate.
                due = t0 + issued / rate
                if due >= deadline:
                    stopped["by"] = "time"
                    return None
            issued += 1
            return issued - 1

    def client() -> None:
        session = requests.Session()
        while (i := next_index()) is not None:
            if rate is not None:
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            sample = _send(session, method, url, make(i), timeout_s, t0, retries)
            with lock:
                samples.append(sample)
                done = len(samples)
            if sample.status == 0 and rate is None:
                time.sleep(NO_ANSWER_PAUSE_S)
            elif sample.retry_after_s and rate is None:
                # A well-behaved client waits as long as a shedding service asks (capped, and
                # never past the run's end) instead of resending at once.
                time.sleep(max(0.0, min(sample.retry_after_s, MAX_RETRY_AFTER_S, deadline - time.monotonic())))
            if on_progress:
                on_progress(done, count)
        session.close()

    threads = [threading.Thread(target=client, daemon=True, name=f"servelab-load-{n}")
               for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + timeout_s + 5)
    elapsed = time.monotonic() - t0
    samples.sort(key=lambda s: s.start_s)
    return Report(samples, elapsed, concurrency, rate, stopped["by"])


# A refused connection fails in microseconds: a closed-loop client that got no
# answer waits this long before its next request, so a dead endpoint is not
# hammered in a tight loop (which would also starve the recovery it measures).
NO_ANSWER_PAUSE_S = 0.05
RETRY_ON = (0, 502, 503, 504)  # no answer, or the proxy/app says "try again"
RETRY_PAUSE_S = 0.1
MAX_RETRY_AFTER_S = 5.0


def _retry_after(reply: requests.Response) -> float:
    """Retry-After in seconds (RFC 9110 delay-seconds) on a 429 or 503; 0 when absent or a date."""
    if reply.status_code not in (429, 503):
        return 0.0
    try:
        return max(0.0, float(reply.headers.get("Retry-After", "")))
    except ValueError:
        return 0.0


def _send(session: requests.Session, method: str, url: str, payload: Payload,
          timeout_s: float, t0: float, retries: int = 0) -> Sample:
    if isinstance(payload, (dict, list)):
        kwargs = {"data": json.dumps(payload), "headers": {"Content-Type": "application/json"}}
    elif payload is None:
        kwargs = {}
    else:
        kwargs = {"data": payload, "headers": {"Content-Type": "application/json"}}
    start = time.monotonic()
    for attempt in range(1, retries + 2):
        try:
            reply = session.request(method, url, timeout=timeout_s, **kwargs)
            status, error = reply.status_code, "" if reply.ok else reply.text[:200]
            retry_after = _retry_after(reply)
        except requests.RequestException as exc:
            status, error, retry_after = 0, type(exc).__name__, 0.0
        if status not in RETRY_ON or attempt > retries:
            break
        time.sleep(max(RETRY_PAUSE_S, min(retry_after, MAX_RETRY_AFTER_S)))
    return Sample(start - t0, time.monotonic() - start, status, error, attempt, retry_after)
