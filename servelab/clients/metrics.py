"""Ray's Prometheus metrics, read the way a dashboard query would.

    m = metrics.scrape(cluster.metrics_url)
    m.total("ray_serve_num_http_requests_total", route="/rag")
    m.quantile(0.99, "ray_serve_http_request_latency_ms", route="/rag")

Each Ray node exports its metrics on its own port (`--metrics-export-port`;
KubeRay uses 8080 in every pod), and Prometheus sums them across pods. Here
`scrape` reads one endpoint: on a single-node local cluster that is all of them.
Metrics appear after Ray's report interval (about 10 s), not at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict
    value: float


class Metrics:
    def __init__(self, samples: list[Sample]):
        self.samples = samples

    def names(self, prefix: str = "") -> list[str]:
        return sorted({s.name for s in self.samples if s.name.startswith(prefix)})

    def select(self, name: str, **labels) -> list[Sample]:
        return [s for s in self.samples if s.name == name
                and all(s.labels.get(k) == str(v) for k, v in labels.items())]

    def total(self, name: str, **labels) -> float:
        """Sum over every series of `name` that matches the labels (sum(...) in PromQL)."""
        return sum(s.value for s in self.select(name, **labels))

    def by(self, name: str, label: str, **labels) -> dict[str, float]:
        """Sums grouped by one label (sum(...) by (label))."""
        out: dict[str, float] = {}
        for s in self.select(name, **labels):
            key = s.labels.get(label, "")
            out[key] = out.get(key, 0.0) + s.value
        return out

    def since(self, earlier: "Metrics") -> "Metrics":
        """Counters and histogram buckets minus an earlier scrape: what happened in between
        (increase() in PromQL). A series that went down restarted (a new replica): counted from 0."""
        before = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in earlier.samples}
        out = []
        for s in self.samples:
            if s.name.endswith(("_total", "_bucket", "_count", "_sum")):
                old = before.get((s.name, tuple(sorted(s.labels.items()))), 0.0)
                out.append(Sample(s.name, s.labels, s.value - old if s.value >= old else s.value))
        return Metrics(out)

    def quantile(self, q: float, histogram: str, **labels) -> float:
        """A quantile from histogram buckets, interpolated as histogram_quantile() does
        (over everything counted so far, not a rate window). NaN when nothing was counted."""
        buckets: dict[float, float] = {}
        for s in self.select(f"{histogram}_bucket", **labels):
            bound = float(s.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + s.value
        if not buckets or buckets.get(math.inf, 0) == 0:
            return math.nan
        bounds = sorted(buckets)
        rank = q * buckets[math.inf]
        lower, below = 0.0, 0.0
        for bound in bounds:
            if buckets[bound] >= rank:
                if math.isinf(bound):
                    return lower  # beyond the last finite bucket: its bound is the best we know
                inside = buckets[bound] - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = bound, buckets[bound]
        return lower


def scrape(url: str | list[str], timeout: float = 10) -> Metrics:
    """Read a Prometheus text endpoint (e.g. cluster.metrics_url), or several (every node's,
    cluster.metrics_urls) as one set of samples; an endpoint that does not answer is skipped
    when others did."""
    urls = [url] if isinstance(url, str) else url
    samples, failures = [], []
    for one in urls:
        try:
            text = requests.get(one, timeout=timeout).text
        except requests.RequestException as exc:
            failures.append(exc)
            continue
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples.append(Sample(s.name, dict(s.labels), float(s.value)))
    if failures and len(failures) == len(urls):
        raise failures[0]
    return Metrics(samples)
