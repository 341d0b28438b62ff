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

- the Reranker's batch wait (10 ms, the default) against none, at 1 and 8 clients: what the
  wait costs a lone request and what it buys under load;
- `servelab load` against Debian's `wrk` (a C load generator) on the same endpoint at 8
  connections, with each one's CPU per request: whether the Python client is what limits the
  figures on a 2-core machine;
- the same stages in one process (bench/rag_throughput.py's baseline), for the ratios.
"""

from __future__ import annotations

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
from rag_throughput import QUESTIONS, in_process  # noqa: E402
from report import write_section  # noqa: E402

from servelab import LocalRay  # noqa: E402
from servelab.apps.rag import InProcessPipeline  # noqa: E402
from servelab.faults import load  # noqa: E402

STAGES = ("Normalizer", "Retriever", "Reranker", "Generator")
SEQUENTIAL = 150      # requests, one at a time, per variant
LOADED = 400          # requests at 8 clients, per variant
WRK_SECONDS = 15
SAMPLE = re.compile(r'^(ray_serve_[a-z_]+?)_(sum|count)\{([^}]*)\} ([0-9.e+-]+)$')


def config(batch_wait_s: float) -> dict:
    return {"applications": [{
        "name": "rag", "route_prefix": "/rag", "import_path": "servelab.apps.rag:app",
        "deployments": [{"name": "Reranker",
                         "user_config": {"max_batch_size": 16, "batch_wait_timeout_s": batch_wait_s}}]}]}


def scrape(urls: list[str]) -> dict[tuple[str, str, str], float]:
    """(metric, label that tells hops apart, sum|count) -> value, added over nodes and replicas."""
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for url in urls:
        for line in requests.get(url, timeout=10).text.splitlines():
            match = SAMPLE.match(line)
            if not match:
                continue
            name, part, labels, value = match.groups()
            tags = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if tags.get("application", "rag") != "rag":
                continue
            key = tags.get("function_name") or tags.get("deployment") or tags.get("route", "")
            out[(name, key, part)] += float(value)
    return out


def settled(cluster: LocalRay, before: dict, sent: int, timeout_s: float = 40) -> dict:
    """Scrape until the proxy and every deployment have counted the `sent` requests (replicas
    report their metrics every few seconds, not at once)."""
    wanted = [("ray_serve_http_request_latency_ms", None)] + \
        [("ray_serve_deployment_processing_latency_ms", d) for d in ("RAGPipeline", *STAGES)]

    def counted(snapshot: dict, name: str, key: str | None) -> float:
        return sum(v for (n, k, p), v in snapshot.items() if n == name and p == "count" and key in (None, k))

    deadline = time.time() + timeout_s
    while True:
        now = scrape(cluster.metrics_urls)
        if all(counted(now, n, k) - counted(before, n, k) >= sent for n, k in wanted) or time.time() > deadline:
            return now
        time.sleep(2)


def quiet(cluster: LocalRay, timeout_s: float = 40) -> dict:
    """Scrape until two scrapes 5 s apart agree: no earlier request is still being reported."""
    last = scrape(cluster.metrics_urls)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        time.sleep(5)
        now = scrape(cluster.metrics_urls)
        if {k: v for k, v in now.items() if k[2] == "count"} == {k: v for k, v in last.items() if k[2] == "count"}:
            return now
        last = now
    return last


def means(before: dict, after: dict) -> dict[tuple[str, str], float]:
    """Mean of each histogram over the interval, in ms."""
    out = {}
    for (name, key, part), total in after.items():
        if part != "sum":
            continue
        n = after.get((name, key, "count"), 0) - before.get((name, key, "count"), 0)
        if n > 0:
            out[(name, key)] = (total - before.get((name, key, "sum"), 0)) / n
    return out


def sequential(cluster: LocalRay, url: str) -> dict:
    """One client, one request at a time: the breakdown of a lone request."""
    before = quiet(cluster)
    session = requests.Session()
    client_ms, stage_ms = [], defaultdict(list)
    for i in range(SEQUENTIAL):
        start = time.perf_counter()
        reply = session.post(url, json={"question": QUESTIONS[i % len(QUESTIONS)]}, timeout=30)
        client_ms.append(1000 * (time.perf_counter() - start))
        reply.raise_for_status()
        for stage, ms in reply.json()["timings_ms"].items():
            stage_ms[stage].append(ms)
    session.close()
    after = settled(cluster, before, SEQUENTIAL)
    m = means(before, after)

    def metric(name: str, key: str) -> float:
        return m.get((f"ray_serve_{name}", key), float("nan"))

    proxy = next((v for (n, _), v in m.items() if n == "ray_serve_http_request_latency_ms"), float("nan"))
    ingress = metric("deployment_processing_latency_ms", "RAGPipeline")
    awaited = {s: statistics.fmean(stage_ms[s]) for s in STAGES}
    inside = {s: metric("deployment_processing_latency_ms", s) for s in STAGES}
    hops = {"client and HTTP, outside the proxy's clock": statistics.fmean(client_ms) - proxy,
            "proxy: routing to the ingress and back": proxy - ingress,
            "ingress: FastAPI parsing, validation, response": ingress - sum(awaited.values())}
    for s in STAGES:
        hops[f"{s}: the call (routing, transport)"] = awaited[s] - inside[s]
        hops[f"{s}: inside the replica"] = inside[s]
    return {"client_mean": statistics.fmean(client_ms), "client_p50": statistics.median(client_ms),
            "hops": hops, "batch_wait": metric("batch_wait_time_ms", "rerank"),
            "batch_exec": metric("batch_execution_time_ms", "rerank"),
            "fulfil": {s: metric("request_router_fulfillment_time_ms", s) for s in ("RAGPipeline", *STAGES)}}


def cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def loaded(url: str, clients: int = 8) -> dict:
    """servelab load, closed loop; its own CPU per request."""
    cpu = cpu_seconds()
    report = load.run(url, lambda i: {"question": QUESTIONS[i % len(QUESTIONS)]},
                      concurrency=clients, count=LOADED, duration_s=120, timeout_s=30)
    assert report.failed == 0, report.summary()
    return {"rps": report.throughput, "p50": 1000 * report.latency(50), "p99": 1000 * report.latency(99),
            "cpu_ms": 1000 * (cpu_seconds() - cpu) / report.sent}


def with_wrk(url: str, connections: int = 8) -> dict:
    """wrk on one thread with `connections` connections, POSTing one question; its CPU per request."""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    body = '{"question": "my worker pods never get scheduled and sit in pending"}'
    script.write_text(f"wrk.method = 'POST'\nwrk.body = '{body}'\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{WRK_SECONDS}s", "--latency", "-s", str(script), url],
                          capture_output=True, text=True, timeout=WRK_SECONDS + 60, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(script.parent)
    out = done.stdout
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert not bad, out

    def ms(text: str) -> float:
        value, unit = re.match(r"([0-9.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "p50": ms(re.search(r"50%\s+(\S+)", out).group(1)), "p99": ms(re.search(r"99%\s+(\S+)", out).group(1)),
            "cpu_ms": 1000 * ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / requests_done}


def redeploy(cluster: LocalRay, batch_wait_s: float) -> None:
    cluster.serve_api.deploy(config(batch_wait_s), timeout=120)
    time.sleep(3)
    cluster.serve_api.wait_running(["rag"], show=False)


def run() -> dict:
    pipeline = InProcessPipeline()
    local = {c: in_process(pipeline, c) for c in (1, 8)}
    del pipeline

    cluster = LocalRay("bench-hops", num_cpus=4).start(show=False)
    try:
        url = f"{cluster.serve_url}/rag/"
        redeploy(cluster, 0.01)
        load.run(url, {"question": "warm up"}, concurrency=4, count=40, timeout_s=30)
        results = {}
        for wait in (0.01, 0.0, 0.01, 0.0):  # alternate, keep the second round of each
            redeploy(cluster, wait)
            results[wait] = {"one": sequential(cluster, url), "eight": loaded(url)}
        wrk = with_wrk(url) if shutil.which("wrk") else None
        ours = loaded(url)
    finally:
        cluster.stop(show=False)

    base = results[0.01]["one"]
    rows = "\n".join(f"| {hop} | {ms:.2f} |" for hop, ms in base["hops"].items())
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
    verdict = ("is not the bottleneck" if wrk and ours["rps"] >= 0.9 * wrk["rps"] else
               "may be the bottleneck" if wrk else "was not checked against wrk")
    reading = f"""
Reading it: the stages' own work is {work:.1f} ms of the {base['client_mean']:.1f} ms; the rest,
{overhead:.1f} ms, is distribution: {calls:.1f} ms for the four handle calls (about
{calls / 4:.1f} ms each to choose a replica, send the arguments and get the result back between
processes on two busy cores), {hops['ingress: FastAPI parsing, validation, response']:.1f} ms in the
FastAPI ingress around them, and the HTTP hops. Inside the Reranker, {base['batch_wait']:.1f} ms is
Serve's wait for a batch to fill: a lone request pays it in full, and at 8 clients dropping it
changed throughput by {eight[0.0] / eight[0.01]:.2f}x (requests that arrive while a batch runs
queue up and form the next batch without any wait).

The Python load generator {verdict} at 8 clients: it used {ours['cpu_ms']:.2f} ms of CPU per
request ({100 * client_share:.0f}% of one core at this rate), against wrk's
{wrk['cpu_ms'] if wrk else float('nan'):.2f} ms, for the same throughput within noise.
"""
    body = f"""
`bench/rag_hops.py`: the RAG pipeline on a 4-logical-CPU local cluster. One client sends
{SEQUENTIAL} questions one after another; each hop's mean comes from Serve's own metrics
(proxy latency, each replica's processing latency, the batch wait) and the answers' `timings_ms`.

One lone request (Reranker batch wait 10 ms, the default), mean {base['client_mean']:.1f} ms:

| hop | mean ms |
|---|---|
{rows}

Inside the Reranker's replica: {base['batch_wait']:.2f} ms waiting for the batch to fill,
{base['batch_exec']:.2f} ms running it. Choosing a replica (router fulfillment, mean ms): {fulfil}.

The batch wait, measured both ways in the same run:

| Reranker `batch_wait_timeout_s` | 1 client p50 ms | 8 clients req/s |
|---|---|---|
| 0.01 (default) | {lone[0.01]:.1f} | {eight[0.01]:.1f} |
| 0 | {lone[0.0]:.1f} | {eight[0.0]:.1f} |
| ratio 0 / 0.01 | {lone[0.0] / lone[0.01]:.2f}x | {eight[0.0] / eight[0.01]:.2f}x |

Against the same stages in one process: p50 at 1 client {local_p50:.1f} ms, so the served
pipeline costs **{lone[0.01] / local_p50:.1f}x** ({lone[0.0] / local_p50:.1f}x without the batch wait);
at 8 clients {local[8]['rps']:.1f} req/s in process, **{local[8]['rps'] / eight[0.01]:.1f}x** the served
throughput ({local[8]['rps'] / eight[0.0]:.1f}x without the wait).

Is the load generator the bottleneck? The same endpoint at 8 connections, the same run:

| client | req/s | p50 / p99 ms | client CPU per request (ms) |
|---|---|---|---|
| `servelab load`, 8 threads (Python) | {ours['rps']:.1f} | {ours['p50']:.1f} / {ours['p99']:.1f} | {ours['cpu_ms']:.2f} |
{wrk_row}
{reading}"""
    write_section("rag_hops", "RAG pipeline: one request's time by hop, and the load generator's own cost", body)
    return {"lone_p50_ms": {w: round(v, 1) for w, v in lone.items()}, "eight_rps": {w: round(v, 1) for w, v in eight.items()},
            "in_process": {"p50_ms": round(local_p50, 2), "rps8": round(local[8]["rps"], 1)},
            "load_vs_wrk": (round(ours["rps"], 1), round(wrk["rps"], 1) if wrk else None),
            "client_cpu_ms": (round(ours["cpu_ms"], 2), round(wrk["cpu_ms"], 2) if wrk else None)}


if __name__ == "__main__":
    print(run())
