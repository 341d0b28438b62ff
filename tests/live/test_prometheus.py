"""A real Prometheus beside a local cluster: it finds every node, its PromQL agrees with the
load generator, and the course's alert fires for an injected fault and resolves after it.

One cluster (default profile, so Prometheus runs by default) serves the RAG pipeline for all
the tests here. Ray exports every 10 s and Prometheus scrapes every 5 s, so each check waits
for the figures to arrive instead of sleeping a fixed time.
"""

import math
import shutil
import time

import psutil
import pytest

from servelab.cluster import _processes as processes
from servelab.cluster.testing import start_for_fixture
from servelab.faults import load
from servelab.observe import wait_for

pytestmark = [pytest.mark.live,
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="`make system` installs prometheus")]
ROUTE = "/rag"
# Ray Serve's latency buckets (ray/serve/_private/constants.py DEFAULT_LATENCY_BUCKET_MS)
BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 300, 400, 500, 1000, 2000, 5000, 10000, math.inf]


def serve_config(cluster, fail_health: bool = False) -> dict:
    return {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": cluster.ports.serve},
            "applications": [{"name": "rag", "route_prefix": ROUTE, "import_path": "servelab.apps.rag:app",
                              "deployments": [{"name": "Normalizer", "health_check_period_s": 1,
                                               "health_check_timeout_s": 3,
                                               "user_config": {"fail_health": fail_health}}]}]}


def wait_until(check, timeout: float, what: str):
    return wait_for(check, what=what, layer="Ray runtime", timeout=timeout, interval=1, show=False)


@pytest.fixture(scope="module")
def cluster(request):
    cluster = start_for_fixture(request, num_cpus=3, profile="default")
    cluster.serve_api.deploy(serve_config(cluster))
    wait_until(lambda: cluster.serve_api.applications().get("rag", {}).get("status") == "RUNNING", 180,
               "the RAG app RUNNING")
    return cluster


def bucket(value: float) -> int:
    return next(i for i, bound in enumerate(BUCKETS) if value <= bound)


def test_prometheus_runs_in_the_cluster_and_finds_a_node_added_later(cluster):
    prom = cluster.prometheus
    assert cluster.prometheus_url.startswith("http://127.0.0.1:")
    mine = {p.pid for p in processes.processes_under(str(cluster.dir))}
    assert any("prometheus" in psutil.Process(pid).name() for pid in mine), "Prometheus is not the cluster's"
    # Ray's discovery file names the head's, the dashboard's and (once it joins) each worker's endpoint
    # (each target turns "up" at its own first scrape, so wait for the head's, not for any)
    wait_until(lambda: cluster.metrics_url in {t["scrapeUrl"] for t in prom.targets() if t["health"] == "up"},
               60, "the head scraped")
    cluster.add_worker(num_cpus=1, show=False)
    worker = f"http://127.0.0.1:{cluster.workers[-1]['ports']['metrics']}/metrics"
    wait_until(lambda: worker in {t["scrapeUrl"] for t in prom.targets() if t["health"] == "up"}, 60,
               "the new worker scraped")
    # the course's rules, once Prometheus has evaluated them (a rule just loaded is "unknown")
    def evaluated():
        rules = [r for g in prom.rules() for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else None

    assert {r["name"] for r in wait_until(evaluated, 30, "every rule evaluated") if r["health"] != "ok"} == set()


@pytest.mark.extended  # 60 s of load; in `make test`, lesson 08 and lab 6's alert run PromQL live
def test_promql_agrees_with_the_load_generator(cluster):
    prom = cluster.prometheus
    counter = f'sum(ray_serve_num_http_requests_total{{route="{ROUTE}"}})'
    time.sleep(11)  # one export interval: the counter Prometheus has is the counter Ray has
    start = prom.value(counter, default=0.0)
    began = time.time()
    # a steady 15 requests/s for 40 s (the RAG app serves about 25/s here)
    report = load.run(f"{cluster.serve_url}{ROUTE}", {"question": "how do I rotate the redis password?"},
                      concurrency=4, rate=15, count=600, duration_s=40)
    assert report.failed == 0, report.summary()
    # counted exactly: every request the generator sent, once
    wait_until(lambda: prom.value(counter) - start == report.sent, 45, f"{report.sent} requests counted")
    # the raw scrape of every node says the same as PromQL (one reader, two ways)
    from servelab.clients import metrics

    raw = metrics.scrape(cluster.metrics_urls)
    assert raw.total("ray_serve_num_http_requests_total", route=ROUTE) == prom.value(counter)
    for q in (0.5, 0.99):  # the same buckets, interpolated by each: over everything counted so far
        everything = f'histogram_quantile({q}, sum by (le) (ray_serve_http_request_latency_ms_bucket{{route="{ROUTE}"}}))'
        assert raw.quantile(q, "ray_serve_http_request_latency_ms", route=ROUTE) == pytest.approx(prom.value(everything))
    # The rate over the last 25 s of the load. Ray exports every 10 s and Prometheus scrapes every
    # 5 s: a 25 s window holds 5 scrapes 20 s apart, two whole exports, so the rate is not cut to
    # a step; and what Prometheus saw then lags the load by at most 15 s, still inside it.
    at = began + 40
    rate = prom.query(f'sum(rate(ray_serve_num_http_requests_total{{route="{ROUTE}"}}[25s]))', at=at)[0]["value"]
    assert abs(rate - report.throughput) <= 0.1 * report.throughput, (rate, report.summary())
    # quantiles within the histogram's resolution: Serve's proxy times each request itself (from
    # its start to the end of its response), so its figure is in the client's bucket or a neighbour
    for q in (0.5, 0.99):
        promql = (f'histogram_quantile({q}, sum by (le) (rate(ray_serve_http_request_latency_ms_bucket'
                  f'{{route="{ROUTE}"}}[25s])))')
        server_ms = prom.query(promql, at=at)[0]["value"]
        client_ms = report.latency(q * 100) * 1000
        assert abs(bucket(server_ms) - bucket(client_ms)) <= 1, (q, server_ms, client_ms)
    # the course's recording rules give the same figures per app and deployment
    recorded = prom.query("serve:requests:rate1m", at=at)
    assert [(r["metric"]["application"], r["metric"]["route"]) for r in recorded] == [("rag", ROUTE)]
    stages = {"RAGPipeline", "Normalizer", "Retriever", "Reranker", "Generator"}
    for name in ("serve:deployment_latency_ms:p99_1m", "serve:ongoing_requests", "serve:replicas:healthy"):
        assert {r["metric"].get("deployment") for r in prom.query(name, at=at)} == stages, name


@pytest.mark.extended  # 75 s; in `make test`, promtool runs the same rule over made-up series
def test_the_course_alert_fires_for_failing_replicas_and_resolves(cluster):
    prom = cluster.prometheus
    assert prom.alert_state("ServeReplicasUnhealthy") == "inactive"
    cluster.serve_api.deploy(serve_config(cluster, fail_health=True))  # every Normalizer replica fails its check
    try:
        wait_until(lambda: prom.alert_state("ServeReplicasUnhealthy") == "pending", 60, "pending")
        wait_until(lambda: prom.alert_state("ServeReplicasUnhealthy") == "firing", 60, "firing")  # for: 30s
        firing = [a for a in prom.alerts() if a["labels"]["alertname"] == "ServeReplicasUnhealthy"]
        assert {(a["labels"]["application"], a["labels"]["deployment"]) for a in firing} == {("rag", "Normalizer")}
    finally:
        cluster.serve_api.deploy(serve_config(cluster))
    wait_until(lambda: prom.alert_state("ServeReplicasUnhealthy") == "inactive", 120, "resolved")
