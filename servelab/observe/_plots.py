"""Pictures a learner would rather look at than read: latency and replicas over time."""

from __future__ import annotations

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "widget", "ipympl")):
    matplotlib.use("Agg")  # scripts and tests: no display needed
import matplotlib.pyplot as plt


def plot_load(report, *, bucket_s: float = 1.0, marks: dict[str, float] | None = None, ax=None):
    """p50/p99 latency (left axis) and failed requests (bars, right axis) per time bucket.

    `marks` draws labelled vertical lines, e.g. {"replica killed": 12.5}.
    """
    rows = report.timeline(bucket_s)
    t = [r["t"] for r in rows]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, [1000 * r["p50"] for r in rows], label="p50 latency", color="tab:blue")
    ax.plot(t, [1000 * r["p99"] for r in rows], label="p99 latency", color="tab:orange")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("latency (ms)")
    errors = ax.twinx()
    errors.bar(t, [r["failed"] for r in rows], width=bucket_s * 0.8, align="edge",
               color="tab:red", alpha=0.3, label="failed requests")
    errors.set_ylabel("failed requests per bucket")
    for label, at in (marks or {}).items():
        ax.axvline(at, color="black", linestyle="--", linewidth=1)
        ax.annotate(label, (at, ax.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8)
    lines, labels = ax.get_legend_handles_labels()
    bars, bar_labels = errors.get_legend_handles_labels()
    ax.legend(lines + bars, labels + bar_labels, loc="upper left", fontsize=8)
    ax.set_title(report.summary().split(":")[0])
    return ax


def plot_replicas(samples: list[dict], *, ax=None, title: str = "replicas over time"):
    """Step plot of replica counts from `watch_replicas` samples: {"t", deployment: count, ...}."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    names = sorted({k for s in samples for k in s if k != "t"})
    for name in names:
        ax.step([s["t"] for s in samples], [s.get(name, 0) for s in samples], where="post", label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("running replicas")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_recovery(result, *, bucket_s: float = 1.0, ax=None):
    """A fault under load: latency and failures over time (top), replicas (bottom), fault marked."""
    marks = {result.fault.verb: result.fault_at_s}
    if result.rollback_at_s is not None:
        marks["rollback"] = result.rollback_at_s
    if result.recovered_at_s is not None:
        marks["recovered"] = result.recovered_at_s
    if ax is None:
        _, (ax, below) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    else:
        below = None
    plot_load(result.report, bucket_s=bucket_s, marks=marks, ax=ax)
    ax.set_title(result.fault.describe(), fontsize=9)
    if below is not None and result.samples:
        plot_replicas(result.samples, ax=below, title="")
        for at in marks.values():
            below.axvline(at, color="black", linestyle="--", linewidth=1)
    return ax
