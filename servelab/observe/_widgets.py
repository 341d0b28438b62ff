"""A live view of a running target for notebooks: what is deployed, where, and how it is doing.

    dash = widgets.Dashboard(cluster)   # shows itself and refreshes every 2 s
    ... send load, inject a fault ...
    dash.stop()
    dash.timeline()                     # replicas and latency over time, as a figure

Everything comes from where an operator would look: Serve's REST API (applications,
deployments, replicas by state), Ray's node list (which worker group each replica landed
on, which groups have GPUs) and Ray's Prometheus metrics (ongoing requests, request rate,
p50/p99 latency over the last `window_s` seconds, at least 30 s): PromQL against the
Prometheus beside the cluster when one runs, else a raw scrape of every node's endpoint.
Ray reports metrics every 10 s, so rates and latencies trail the load by that much.

The reading (`read`) and the rendering (`render_html`) are plain functions; `Dashboard` only
adds a background thread and the ipywidgets that show them.
"""

from __future__ import annotations

import html
import io
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import ipywidgets

from servelab.clients import metrics as prom
from servelab.clients._serve import running_by_group
from servelab.clients._state import node_group

STATES = ("RUNNING", "STARTING", "UPDATING", "RECOVERING", "STOPPING")
COLORS = {"RUNNING": "#1a7f37", "HEALTHY": "#1a7f37", "DEPLOYING": "#9a6700", "UPDATING": "#9a6700",
          "UPSCALING": "#9a6700", "DOWNSCALING": "#9a6700", "STARTING": "#9a6700",
          "DEPLOY_FAILED": "#cf222e", "UNHEALTHY": "#cf222e", "DELETING": "#57606a"}


@dataclass
class View:
    """One reading of the target."""
    t: float                                  # seconds since the dashboard started
    apps: dict = field(default_factory=dict)  # app -> {"status", "message", "deployments": {...}}
    groups: dict = field(default_factory=dict)  # node group -> {"nodes": n, "gpus": total}
    ongoing: float | None = None              # HTTP requests in flight at the proxy
    rps: float | None = None                  # requests per second over the window
    p50_ms: float | None = None
    p99_ms: float | None = None
    error: str = ""                           # why this reading is incomplete

    def replicas(self) -> dict[str, int]:
        """RUNNING replicas per 'app/deployment' (what the timeline plots)."""
        return {f"{a}/{d}": dep["states"].get("RUNNING", 0)
                for a, app in self.apps.items() for d, dep in app["deployments"].items()}


def _groups(nodes: list[dict]) -> tuple[dict[str, str], dict]:
    """node id -> group name, and per group its node count and GPUs (the head is its own group)."""
    where, groups = {}, {}
    for n in nodes:
        name = node_group(n)
        where[n["node_id"]] = name
        g = groups.setdefault(name, {"nodes": 0, "gpus": 0.0})
        g["nodes"] += 1
        g["gpus"] += float((n.get("resources_total") or {}).get("GPU", 0))
    return where, groups


def _apps(applications: dict, where: dict[str, str]) -> dict:
    out = {}
    for app_name, app in applications.items():
        deps = {}
        for dep_name, dep in (app.get("deployments") or {}).items():
            replicas = dep.get("replicas") or []
            deps[dep_name] = {
                "status": dep.get("status", "?"),
                "states": dict(Counter(r.get("state", "?") for r in replicas)),
                "groups": running_by_group(dep, where),
            }
        out[app_name] = {"status": app.get("status", "?"), "message": app.get("message", ""),
                         "deployments": deps}
    return out


def _traffic(view: View, now: prom.Metrics, then: prom.Metrics | None, seconds: float) -> None:
    view.ongoing = now.total("ray_serve_num_ongoing_http_requests")
    if then is None or seconds <= 0:
        return
    window = now.since(then)
    view.rps = window.total("ray_serve_num_http_requests_total") / seconds
    for q, attr in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        value = window.quantile(q, "ray_serve_http_request_latency_ms")
        setattr(view, attr, None if math.isnan(value) else value)


def _traffic_promql(view: View, prometheus, window_s: float) -> None:
    """The same figures through PromQL, from the Prometheus beside the cluster."""
    window = f"{max(int(window_s), 30)}s"  # at least two of Ray's 10 s exports, or rate() sees steps
    routes = '{route!~"/-/.*"}'  # not the proxy's health checks
    view.ongoing = prometheus.value("sum(ray_serve_num_ongoing_http_requests)", default=0.0)
    view.rps = prometheus.value(f"sum(rate(ray_serve_num_http_requests_total{routes}[{window}]))")
    for q, attr in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        value = prometheus.value(f"histogram_quantile({q}, sum by (le) "
                                 f"(rate(ray_serve_http_request_latency_ms_bucket{routes}[{window}])))")
        setattr(view, attr, None if value is None or math.isnan(value) else value)


def read(target, t: float = 0.0) -> View:
    """Applications, deployments and node groups of `target` (a LocalRay, or anything with a
    `serve_api` and optionally `nodes()`); traffic figures are filled in by a Dashboard."""
    view = View(t)
    try:
        nodes = target.nodes() if hasattr(target, "nodes") else []
        where, view.groups = _groups(nodes)
        view.apps = _apps(target.serve_api.applications(), where)
    except Exception as exc:  # the dashboard keeps going; the reading says what failed
        view.error = f"{type(exc).__name__}: {exc}"[:300]
    return view


def _badge(status: str) -> str:
    color = COLORS.get(status, "#57606a")
    return f"<span style='color:{color};font-weight:600'>{html.escape(status)}</span>"


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def render_html(view: View) -> str:
    """The reading as HTML tables: traffic, then one row per deployment, then node groups."""
    gpu_groups = {g for g, info in view.groups.items() if info["gpus"] > 0}
    parts = [f"<div class='servelab-dashboard-body'><b>t = {view.t:.0f} s</b> &nbsp; "
             f"ongoing requests {_fmt(view.ongoing)} · {_fmt(view.rps, ' req/s', 1)} · "
             f"p50 {_fmt(view.p50_ms, ' ms')} · p99 {_fmt(view.p99_ms, ' ms')}"]
    if view.error:
        parts.append(f"<div style='color:#cf222e'>could not read the target: {html.escape(view.error)}</div>")
    rows = []
    for app_name, app in view.apps.items():
        for dep_name, dep in app["deployments"].items():
            states = ", ".join(f"{n} {s}" for s, n in sorted(dep["states"].items(),
                               key=lambda kv: STATES.index(kv[0]) if kv[0] in STATES else 99)) or "none"
            placed = ", ".join(f"{g}{' (GPU)' if g in gpu_groups else ''}: {n}"
                               for g, n in sorted(dep["groups"].items())) or "–"
            rows.append(f"<tr><td>{html.escape(app_name)}</td><td>{_badge(app['status'])}</td>"
                        f"<td>{html.escape(dep_name)}</td><td>{_badge(dep['status'])}</td>"
                        f"<td>{html.escape(states)}</td><td>{html.escape(placed)}</td></tr>")
    if rows:
        parts.append("<table><tr><th>application</th><th>status</th><th>deployment</th><th>status</th>"
                     "<th>replicas by state</th><th>running replicas by node group</th></tr>"
                     + "".join(rows) + "</table>")
    elif not view.error:
        parts.append("<div>no Serve applications yet</div>")
    if view.groups:
        groups = ", ".join(f"{html.escape(g)}: {info['nodes']} node{'s' * (info['nodes'] != 1)}"
                           + (f", {info['gpus']:g} GPU" if info["gpus"] else "")
                           for g, info in sorted(view.groups.items()))
        parts.append(f"<div>node groups: {groups}</div>")
    return "".join(parts) + "</div>"


def plot_timeline(history: list[View], ax=None):
    """Replicas per deployment (step lines, left) and p50/p99 latency (dashed, right) over time."""
    from servelab.observe._plots import plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    t = [v.t for v in history]
    for name in sorted({k for v in history for k in v.replicas()}):
        # a reading that failed (say, the controller was down) is a gap, not zero replicas
        ax.step(t, [math.nan if v.error else v.replicas().get(name, 0) for v in history],
                where="post", label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("running replicas")
    ax.yaxis.get_major_locator().set_params(integer=True)
    latency = ax.twinx()
    for attr, color in (("p50_ms", "tab:gray"), ("p99_ms", "black")):
        latency.plot(t, [getattr(v, attr) if getattr(v, attr) is not None else math.nan for v in history],
                     linestyle="--", color=color, label=attr.replace("_ms", " latency"))
    latency.set_ylabel("latency (ms)")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = latency.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, fontsize=7, loc="upper left")
    ax.set_title("replicas and latency over time")
    return ax


class Dashboard:
    """A self-refreshing view of `target` plus its timeline; display it as the cell's result.

    It stops on `stop()`, and by itself when the target has not answered for `give_up_s`
    (the cluster was stopped)."""

    def __init__(self, target, *, every_s: float = 2.0, window_s: float = 15.0, plot_every: int = 3,
                 give_up_s: float = 30.0, start: bool = True):
        self.target, self.every_s, self.window_s = target, every_s, window_s
        self.plot_every, self.give_up_s = plot_every, give_up_s
        self.history: list[View] = []
        self._scrapes: list[tuple[float, prom.Metrics]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self.table = ipywidgets.HTML("reading the target...")
        self.picture = ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="820px"))
        self.state = ipywidgets.HTML()
        self.widget = ipywidgets.VBox([self.state, self.table, self.picture])
        self.widget.add_class("servelab-dashboard")
        self.refresh()
        if start:
            self.start()

    def _metrics(self, now: float) -> tuple[prom.Metrics | None, prom.Metrics | None, float]:
        urls = getattr(self.target, "metrics_urls", None) or getattr(self.target, "metrics_url", None)
        if not urls:
            return None, None, 0.0
        try:
            current = prom.scrape(urls, timeout=2)
        except Exception:
            return None, None, 0.0
        self._scrapes.append((now, current))
        # the oldest scrape inside the window is the baseline; older ones are dropped
        while len(self._scrapes) > 2 and now - self._scrapes[1][0] >= self.window_s:
            self._scrapes.pop(0)
        then_t, then = self._scrapes[0]
        return current, (then if then is not current else None), now - then_t

    def refresh(self) -> View:
        """Take one reading now and redraw."""
        now = time.monotonic() - self._t0
        view = read(self.target, now)
        prometheus_url = getattr(self.target, "prometheus_url", None)
        if prometheus_url:  # PromQL where a Prometheus runs; the raw scrape only where none does
            from servelab.clients.prometheus import Prometheus

            try:
                _traffic_promql(view, Prometheus(prometheus_url, timeout=2), self.window_s)
            except Exception:
                pass  # a reading without traffic figures; the next one tries again
        else:
            current, then, seconds = self._metrics(now)
            if current is not None:
                _traffic(view, current, then, seconds)
        self.history.append(view)
        self.table.value = render_html(view)
        if len(self.history) % self.plot_every == 1 and len(self.history) > 1:
            self.picture.value = self._png()
        return view

    def _png(self) -> bytes:
        # A Figure of its own, not pyplot: this runs in the refresh thread while the
        # notebook may be drawing with pyplot, which is not thread-safe.
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 3))
        plot_timeline(self.history, ax=figure.subplots())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        return buffer.getvalue()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            view = self.refresh()
            broken = [v for v in self.history[-int(self.give_up_s / self.every_s) - 1:] if v.error]
            if view.error and len(broken) * self.every_s > self.give_up_s:
                self.state.value = "<i>stopped: the target has not answered for a while</i>"
                return

    def start(self) -> "Dashboard":
        self.state.value = f"<i>refreshing every {self.every_s:g} s; <code>.stop()</code> ends it</i>"
        self._thread = threading.Thread(target=self._loop, daemon=True, name="servelab-dashboard")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        if not (self.history and self.history[-1].error):
            self.refresh()  # the last picture shows the state at stop(), not up to every_s before
        if self.history:
            self.picture.value = self._png()
        self.state.value = f"<i>stopped after {len(self.history)} readings</i>"

    def timeline(self, ax=None):
        """The whole history as a figure (replicas and latency over time)."""
        return plot_timeline(self.history, ax=ax)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
