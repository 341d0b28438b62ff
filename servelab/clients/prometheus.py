"""PromQL against a real Prometheus: the one beside a local cluster, or a port-forwarded one.

    prom = cluster.prometheus                       # or Prometheus("http://127.0.0.1:9090")
    prom = KubernetesTarget().prometheus()          # kube-prometheus-stack, through a port-forward
    prom.value('sum(rate(ray_serve_num_http_requests_total{route="/rag"}[1m]))')
    prom.query('sum by (deployment) (ray_serve_deployment_replica_healthy)')
    prom.series('...', minutes=5)                   # a range query, for plots
    prom.alerts()                                   # what is pending or firing now

Errors come back as Prometheus words them (a PromQL syntax error names the position).
"""

from __future__ import annotations

import time

import requests

from servelab.errors import ServelabError


class PrometheusError(ServelabError, RuntimeError):
    """Prometheus refused a query or could not be reached."""

    layer = "Ray runtime"


class Prometheus:
    def __init__(self, url: str, timeout: float = 10, on_close=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._on_close = on_close  # e.g. the port-forward's stop (KubernetesTarget.prometheus)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> "Prometheus":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, path: str, **params) -> dict | list:
        try:
            reply = requests.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {exc}") from None
        try:
            body = reply.json()
        except ValueError:
            raise PrometheusError(f"{reply.status_code} from {self.url}{path}: {reply.text[:300]}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus: {body.get('errorType', reply.status_code)}: {body.get('error', '')}",
                                  hint="check the query in Prometheus's own UI (Graph tab) at " + self.url)
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """An instant query: [{"metric": {labels}, "value": float}] (a scalar comes back as one row)."""
        data = self._get("/api/v1/query", query=promql, **({"time": at} if at is not None else {}))
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": float(data["result"][1])}]
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    def value(self, promql: str, default: float | None = None) -> float | None:
        """The one number a query gives (an empty result gives `default`)."""
        rows = self.query(promql)
        if not rows:
            return default
        if len(rows) > 1:
            raise PrometheusError(f"{promql!r} gave {len(rows)} series, not one: aggregate it (sum, max, ...)",
                                  hint="e.g. sum(...) or sum by (label) (...) with a label selector")
        return rows[0]["value"]

    def by(self, promql: str, label: str) -> dict[str, float]:
        """{value of `label`: value} for a query aggregated `by (label)`."""
        return {r["metric"].get(label, ""): r["value"] for r in self.query(promql)}

    def series(self, promql: str, *, minutes: float = 5, step: float = 5, end: float | None = None) -> list[dict]:
        """A range query over the last `minutes`: [{"metric": {labels}, "t": [...], "v": [...]}]."""
        end = time.time() if end is None else end
        data = self._get("/api/v1/query_range", query=promql, start=end - minutes * 60, end=end, step=step)
        return [{"metric": r["metric"], "t": [float(t) for t, _ in r["values"]],
                 "v": [float(v) for _, v in r["values"]]} for r in data["result"]]

    def alerts(self) -> list[dict]:
        """Alerts pending or firing now: [{"labels", "annotations", "state", "activeAt", ...}]."""
        return self._get("/api/v1/alerts")["alerts"]

    def alert_state(self, name: str) -> str:
        """"firing", "pending" or "inactive" for the alerting rule `name` (any of its series)."""
        states = {a["state"] for a in self.alerts() if a["labels"].get("alertname") == name}
        return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"

    def rules(self) -> list[dict]:
        """The rule groups Prometheus loaded, each rule with its health and last error."""
        return self._get("/api/v1/rules")["groups"]

    def targets(self) -> list[dict]:
        """What Prometheus scrapes: [{"scrapeUrl", "health", "lastError", "labels"}]."""
        return self._get("/api/v1/targets", state="active")["activeTargets"]

    def reload(self) -> None:
        """Re-read the configuration and rule files (Prometheus runs with --web.enable-lifecycle)."""
        reply = requests.post(f"{self.url}/-/reload", timeout=self.timeout)
        if reply.status_code != 200:
            raise PrometheusError(f"reload failed: {reply.text.strip()[:500]}",
                                  hint="`promtool check rules FILE` names the broken line")

    def __repr__(self) -> str:
        return f"Prometheus({self.url!r})"
