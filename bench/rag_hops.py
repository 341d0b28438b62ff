"""Where one RAG request's time goes, hop by hop, and what the load generator itself costs.

The served pipeline is `client -> proxy -> RAGPipeline (FastAPI ingress) -> Normalizer ->
Retriever -> Reranker (batched) -> Generator`. One client sends questions one after another;
each hop's time comes from what Serve itself records:

- the client's own clock: the whole round trip;
- `ray_serve_http_request_latency_ms` (the proxy, from request in to response out);
- `ray_serve_deployment_processing_latency_ms` per deployment (inside a replica);
- `ray_serve_batch_wait_time_ms` / `_execution_time_ms` (the Reranker's @serve.batch);
- `ray_serve_request_router_fulfillment_time_ms` per deployment (choosing a replica);
- the answer's `timings_ms`: each stage's call as the ingress awaited it.

Means over the run (Prometheus histograms give sums and counts), read from every node's
metrics endpoint before and after. Then, in the same run:

- the Reranker's batch wait, none (the app's default) against 10 ms (its default before), at 1
  and 8 clients: what the wait costs a lone request and what it buys under load;
- `servelab load` against Debian's `wrk` (a C load generator) on the same endpoint at 8
  connections, with each one's CPU per request: whether the Python client is what limits the
  figures on a 2-core machine;
- the same stages in one process (bench/rag_throughput.py's baseline), for the ratios;
- the lone-request breakdown once more on a cluster in the mode the RayService ships
  (throughput-optimized), and what its four stage calls alone cost against the in-process p50.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rag_throughput import QUESTIONS, in_process, reconfigure  # noqa: E402
from report import write_section  # noqa: E402

from servelab import LocalRay  # noqa: E402
from servelab.apps.rag import InProcessPipeline  # noqa: E402
from servelab.clients import metrics  # noqa: E402
from servelab.faults import load  # noqa: E402

STAGES = ("Normalizer", "Retriever", "Reranker", "Generator")
SEQUENTIAL = 150      # requests, one at a time, per variant
LOADED = 400          # requests at 8 clients, per variant
WRK_SECONDS = 15
# Replicas report metrics every 10 s by default; every 1 s here (Ray's system config, read from
# the environment by every process of the cluster), so the totals settle quickly.
METRICS_INTERVAL = {"RAY_metrics_report_interval_ms": "1000"}


class Totals:
    """Running totals of the histograms this benchmark reads, over every node's endpoint."""

    def __init__(self, cluster: LocalRay):
        self.urls = cluster.metrics_urls
        self.now = metrics.scrape(self.urls)

    def refresh(self) -> None:
        self.now = metrics.scrape(self.urls)

    def count(self, histogram: str, key: str, value: str) -> float:
        return self.now.total(f"ray_serve_{histogram}_count", **{key: value})

    def wait_for(self, histogram: str, key: str, value: str, expected: float, timeout_s: float = 60) -> None:
        """Until `histogram` has counted `expected` observations for `key=value` in all."""
        deadline = time.time() + timeout_s
        while self.count(histogram, key, value) < expected:
            if time.time() > deadline:
                raise TimeoutError(f"{histogram}{{{key}={value!r}}} counted {self.count(histogram, key, value):.0f} "
                                   f"of {expected:.0f} after {timeout_s:.0f} s")
            time.sleep(1)
            self.refresh()


def means(before: metrics.Metrics, after: metrics.Metrics, histogram: str, key: str, value: str) -> float:
    """Mean of one histogram's observations between two scrapes, in ms."""
    delta = after.since(before)
    n = delta.total(f"ray_serve_{histogram}_count", **{key: value})
    return delta.total(f"ray_serve_{histogram}_sum", **{key: value}) / n if n else float("nan")


def sequential(totals: Totals, sent: dict, url: str) -> dict:
    """One client, one request at a time: the breakdown of a lone request. `sent` holds how
    many requests the proxy and each stage have seen in all, so the totals can be awaited
    exactly before and after."""
    settle(totals, sent)
    before = totals.now
    session = requests.Session()
    client_ms, calls_ms, stage_ms = [], [], defaultdict(list)
    for i in range(SEQUENTIAL):
        start = time.perf_counter()
        reply = session.post(url, json={"question": QUESTIONS[i % len(QUESTIONS)]}, timeout=30)
        client_ms.append(1000 * (time.perf_counter() - start))
        reply.raise_for_status()
        timings = reply.json()["timings_ms"]
        for stage, ms in timings.items():
            stage_ms[stage].append(ms)
        calls_ms.append(sum(timings[s] for s in STAGES))
    session.close()
    count(sent, SEQUENTIAL)
    settle(totals, sent)
    after = totals.now

    def mean(histogram: str, key: str, value: str) -> float:
        return means(before, after, histogram, key, value)

    proxy = mean("http_request_latency_ms", "application", "rag")
    ingress = mean("deployment_processing_latency_ms", "deployment", "RAGPipeline")
    awaited = {s: statistics.fmean(stage_ms[s]) for s in STAGES}
    inside = {s: mean("deployment_processing_latency_ms", "deployment", s) for s in STAGES}
    hops = {"client and HTTP, outside the proxy's clock": statistics.fmean(client_ms) - proxy,
            "proxy: routing to the ingress and back": proxy - ingress,
            "ingress: FastAPI parsing, validation, response": ingress - sum(awaited.values())}
    for s in STAGES:
        hops[f"{s}: the call (routing, transport)"] = awaited[s] - inside[s]
        hops[f"{s}: inside the replica"] = inside[s]
    return {"client_mean": statistics.fmean(client_ms), "client_p50": statistics.median(client_ms),
            "calls_p50": statistics.median(calls_ms), "call_p50": {s: statistics.median(stage_ms[s]) for s in STAGES},
            "hops": hops, "batch_wait": mean("batch_wait_time_ms", "function_name", "rerank"),
            "batch_exec": mean("batch_execution_time_ms", "function_name", "rerank"),
            "fulfil": {s: mean("request_router_fulfillment_time_ms", "deployment", s) for s in ("RAGPipeline", *STAGES)}}


def count(sent: dict, n: int) -> None:
    """n more requests went through the proxy and every stage."""
    for key in sent:
        sent[key] += n


def settle(totals: Totals, sent: dict) -> None:
    """Wait until the proxy and every deployment have reported every request sent so far."""
    totals.refresh()
    totals.wait_for("http_request_latency_ms", "application", "rag", sent["proxy"])
    for deployment in ("RAGPipeline", *STAGES):
        totals.wait_for("deployment_processing_latency_ms", "deployment", deployment, sent[deployment])


# Each hop's totals are awaited exactly, so every request must reach every hop: a 503 would be
# counted by the proxy and by no deployment. The proxy's queue has no bound here (the app's
# is 8); bench/rag_throughput.py measures the bound.
ANSWER_ALL = {"max_queued_requests": -1}


def cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def loaded(url: str, sent: dict, clients: int = 8) -> dict:
    """servelab load, closed loop; its own CPU per request."""
    cpu = cpu_seconds()
    report = load.run(url, lambda i: {"question": QUESTIONS[i % len(QUESTIONS)]},
                      concurrency=clients, count=LOADED, duration_s=120, timeout_s=30)
    assert report.failed == 0, report.summary()
    count(sent, report.sent)
    return {"rps": report.throughput, "p50": 1000 * report.latency(50), "p99": 1000 * report.latency(99),
            "cpu_ms": 1000 * (cpu_seconds() - cpu) / report.sent}


def with_wrk(url: str, sent: dict, connections: int = 8) -> dict:
    """wrk on one thread with `connections` connections, POSTing the same questions in turn as
    `servelab load` does; its CPU per request."""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    bodies = ",\n".join(f"  [==[{json.dumps({'question': q})}]==]" for q in QUESTIONS)
    script.write_text(f"""bodies = {{
{bodies}
}}
n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])
end
""")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{WRK_SECONDS}s", "--latency", "-s", str(script), url],
                          capture_output=True, text=True, timeout=WRK_SECONDS + 60, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(script.parent)
    out = done.stdout
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    count(sent, requests_done)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    assert not failed, out

    def ms(text: str) -> float:
        match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
        if not match:
            raise ValueError(f"wrk printed a latency of {text!r}:\n{out}")
        value, unit = match.groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "p50": ms(re.search(r"50%\s+(\S+)", out).group(1)), "p99": ms(re.search(r"99%\s+(\S+)", out).group(1)),
            "cpu_ms": 1000 * ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / requests_done}


def stage_costs(pipeline: InProcessPipeline) -> dict[str, float]:
    """Each stage's own work for one question, in this process: exact, where Serve's histogram
    means are rebuilt from bucket midpoints."""
    out = defaultdict(list)
    for question in QUESTIONS:
        t0 = time.perf_counter()
        q = pipeline.normalizer.normalize(question)
        t1 = time.perf_counter()
        candidates = pipeline.retriever.retrieve(q)
        t2 = time.perf_counter()
        contexts = pipeline.reranker.score([q], [candidates])[0][:3]
        t3 = time.perf_counter()
        pipeline.model.generate(q, contexts)
        t4 = time.perf_counter()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            out[stage].append(1000 * seconds)
    return {stage: statistics.median(ms) for stage, ms in out.items()}


def ready(cluster: LocalRay, batch_wait_s: float) -> tuple[str, dict, Totals]:
    """Deploy the app answering every request, warm it up, and start counting: the proxy and each
    deployment start from zero with the cluster, so their totals can be awaited exactly."""
    url = f"{cluster.serve_url}/rag/"
    reconfigure(cluster, 16, batch_wait_s, ANSWER_ALL)
    sent = {"proxy": 0, "RAGPipeline": 0, **{s: 0 for s in STAGES}}
    warm = load.run(url, {"question": "warm up"}, concurrency=4, count=40, timeout_s=30)
    count(sent, warm.sent)
    return url, sent, Totals(cluster)


def shipped_mode() -> dict:
    """The lone-request breakdown again, on a cluster started as the shipped RayService's pods are
    (manifests/rayservice-rag.yaml: throughput-optimized, deployments call each other over gRPC)."""
    from serve_mode import manifest_env  # serve_mode imports this module

    cluster = LocalRay("bench-hops", num_cpus=4, env={**METRICS_INTERVAL, **manifest_env()}).start(show=False)
    try:
        url, sent, totals = ready(cluster, 0.0)
        sequential(totals, sent, url)  # as in the default mode's cluster, the second round is kept
        return sequential(totals, sent, url)
    finally:
        cluster.stop(show=False)


def run() -> dict:
    pipeline = InProcessPipeline()
    local = {c: in_process(pipeline, c) for c in (1, 8)}
    costs = stage_costs(pipeline)
    del pipeline

    cluster = LocalRay("bench-hops", num_cpus=4, env=METRICS_INTERVAL).start(show=False)
    try:
        url, sent, totals = ready(cluster, 0.01)
        results = {}
        for wait in (0.01, 0.0, 0.01, 0.0):  # alternate, keep the second round of each
            reconfigure(cluster, 16, wait, ANSWER_ALL)
            results[wait] = {"one": sequential(totals, sent, url), "eight": loaded(url, sent)}
        wrk = with_wrk(url, sent) if shutil.which("wrk") else None
        ours = loaded(url, sent)
    finally:
        cluster.stop(show=False)
    shipped = shipped_mode()

    base = results[0.0]["one"]
    rows = "\n".join(f"| {hop} | {ms:.2f} | {shipped['hops'][hop]:.2f} |" for hop, ms in base["hops"].items())
    exact = ", ".join(f"{stage} {ms:.2f}" for stage, ms in costs.items())
    fulfil = ", ".join(f"{d} {ms:.2f}" for d, ms in base["fulfil"].items())
    lone = {w: r["one"]["client_p50"] for w, r in results.items()}
    eight = {w: r["eight"]["rps"] for w, r in results.items()}
    local_p50 = 1000 * local[1]["p50"]
    wrk_row = (f"| `wrk -t1 -c8` (C) | {wrk['rps']:.1f} | {wrk['p50']:.1f} / {wrk['p99']:.1f} | {wrk['cpu_ms']:.2f} |"
               if wrk else "| `wrk` | not installed (`make system` installs it) | | |")
    hops = base["hops"]
    calls = sum(ms for hop, ms in hops.items() if hop.endswith("(routing, transport)"))
    work = sum(ms for hop, ms in hops.items() if hop.endswith("inside the replica"))
    overhead = base["client_mean"] - work
    client_share = ours["cpu_ms"] * ours["rps"] / 1000  # cores the Python client kept busy
    if wrk:
        ratio = ours["rps"] / wrk["rps"]
        verdict = (f"is not the bottleneck at 8 clients: {ratio:.2f}x wrk's throughput" if ratio >= 0.9 else
                   f"may be the bottleneck at 8 clients: {ratio:.2f}x wrk's throughput")
        client = (f"{verdict}, using {ours['cpu_ms']:.2f} ms of CPU per request ({100 * client_share:.0f}% of "
                  f"one core at this rate) against wrk's {wrk['cpu_ms']:.2f} ms.")
    else:
        client = (f"was not checked against wrk (not installed); it used {ours['cpu_ms']:.2f} ms of CPU per "
                  f"request, {100 * client_share:.0f}% of one core at this rate.")
    reading = f"""
Reading it: the stages' own work is {sum(costs.values()):.1f} ms in one process, and about
{work:.1f} ms inside the replicas (the Reranker's batch wait included) of the
{base['client_mean']:.1f} ms; the rest, {overhead:.1f} ms, is distribution: {calls:.1f} ms for the four handle calls (about
{calls / 4:.1f} ms each to choose a replica, send the arguments and get the result back between
processes, all on this machine's {os.cpu_count()} cores),
{hops['ingress: FastAPI parsing, validation, response']:.1f} ms in the FastAPI ingress around them,
and the HTTP hops. Inside the Reranker, Serve counts {base['batch_wait']:.1f} ms of waiting for a
batch to fill with no wait set (the bucket midpoint of near-zero waits); the old 10 ms wait cost a lone
request {lone[0.01] - lone[0.0]:.1f} ms at p50, and at 8 clients dropping it changed
throughput by {eight[0.0] / eight[0.01]:.2f}x (requests that arrive while a batch runs queue up
and form the next batch without any wait).

The Python load generator {client}

Why 4x at 1 client is out of reach while a question crosses four deployments: in the shipped
mode, the four stage calls as the ingress awaited them (`timings_ms`, exact) took
{shipped['calls_p50']:.1f} ms per request at p50 (the whole request {shipped['client_p50']:.1f} ms). The calls alone are
{shipped['calls_p50'] / local_p50:.1f}x the in-process p50 of {local_p50:.1f} ms, where the whole pipeline runs; 4x would be
{4 * local_p50:.1f} ms for everything, proxy and ingress included. The Normalizer, whose work is
{costs['Normalizer']:.2f} ms, shows what a call costs with nothing to do: {shipped['call_p50']['Normalizer']:.1f} ms at p50. Cheaper calls move the figure by
fractions (bench/stage_cuts.py); reaching 4x takes fewer hops, that is stages merged into one
deployment, which gives up scaling and placing each stage on its own, what the course's pipeline
is for. (The two columns above come from two clusters, one after the other;
`bench/serve_mode.py` compares the modes with their rounds alternated.)
"""
    body = f"""
`bench/rag_hops.py`: the RAG pipeline on a 4-logical-CPU local cluster, Serve in its default
mode, and for the lone request also in the throughput-optimized mode the RayService ships (a
cluster of its own, with `manifests/rayservice-rag.yaml`'s container env; `bench/serve_mode.py`
compares the modes under load). One client sends {SEQUENTIAL} questions one after another; each
hop's mean comes from Serve's own metrics (proxy latency, each replica's processing latency, the
batch wait) and the answers' `timings_ms`.

One lone request (Reranker batch wait 0, the app's default), mean {base['client_mean']:.1f} ms in the
default mode and {shipped['client_mean']:.1f} ms in the shipped one:

| hop | default mode, mean ms | throughput-optimized (shipped), mean ms |
|---|---|---|
{rows}

Serve's histograms are exported with sums rebuilt from bucket midpoints (Ray 2.60,
`ray/_private/telemetry/open_telemetry_metric_recorder.py`: "the histogram sum value will be an
approximation"), so the proxy, ingress and inside-the-replica means are only as fine as
Serve's latency buckets (a stage whose every request took 11 to 19 ms reads 15.00). The
client's clock and `timings_ms` are exact, and so is each stage's own work measured in one
process (median ms per question): {exact}.

Inside the Reranker's replica: {base['batch_wait']:.2f} ms waiting for the batch to fill,
{base['batch_exec']:.2f} ms running it. Choosing a replica (router fulfillment, mean ms): {fulfil}.

The batch wait, measured both ways in the same run:

| Reranker `batch_wait_timeout_s` | 1 client p50 ms | 8 clients req/s |
|---|---|---|
| 0.01 (the default before) | {lone[0.01]:.1f} | {eight[0.01]:.1f} |
| 0 (the app's default now) | {lone[0.0]:.1f} | {eight[0.0]:.1f} |
| ratio 0 / 0.01 | {lone[0.0] / lone[0.01]:.2f}x | {eight[0.0] / eight[0.01]:.2f}x |

Against the same stages in one process: p50 at 1 client {local_p50:.1f} ms, so the served
pipeline costs **{lone[0.0] / local_p50:.1f}x** ({lone[0.01] / local_p50:.1f}x with the old 10 ms batch wait);
at 8 clients {local[8]['rps']:.1f} req/s in process, **{local[8]['rps'] / eight[0.0]:.1f}x** the served
throughput ({local[8]['rps'] / eight[0.01]:.1f}x with the old wait).

Is the load generator the bottleneck? The same endpoint at 8 connections, the same run:

| client | req/s | p50 / p99 ms | client CPU per request (ms) |
|---|---|---|---|
| `servelab load`, 8 threads (Python) | {ours['rps']:.1f} | {ours['p50']:.1f} / {ours['p99']:.1f} | {ours['cpu_ms']:.2f} |
{wrk_row}
{reading}"""
    write_section("rag_hops", "RAG pipeline: one request's time by hop, and the load generator's own cost", body)
    return {"lone_p50_ms": {w: round(v, 1) for w, v in lone.items()}, "eight_rps": {w: round(v, 1) for w, v in eight.items()},
            "in_process": {"p50_ms": round(local_p50, 2), "rps8": round(local[8]["rps"], 1)},
            "shipped_mode_lone": {"p50_ms": round(shipped["client_p50"], 1), "calls_p50_ms": round(shipped["calls_p50"], 1)},
            "stage_ms": {k: round(v, 2) for k, v in costs.items()},
            "load_vs_wrk": (round(ours["rps"], 1), round(wrk["rps"], 1) if wrk else None),
            "client_cpu_ms": (round(ours["cpu_ms"], 2), round(wrk["cpu_ms"], 2) if wrk else None)}


if __name__ == "__main__":
    print(run())
