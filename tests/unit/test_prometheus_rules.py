"""The course's Prometheus rules (servelab/observe/rules.yaml), checked by Prometheus's own promtool.

`promtool check rules` parses them; `promtool test rules` runs them over made-up series on
Prometheus's own evaluation engine, so what an alert does over time is tested without a cluster.
The metric names are Ray 2.60's (seen live in tests/live/test_prometheus.py).
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from servelab.cluster import _prometheus as prom

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool: `make system` installs it")

HEALTHY = 'ray_serve_deployment_replica_healthy{{application="rag",deployment="Normalizer",replica="{}"}}'
LATENCY = 'ray_serve_http_request_latency_ms_bucket{{application="rag",route="/rag",le="{}"}}'


def promtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def run_cases(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess:
    spec = {"rule_files": [str(prom.COURSE_RULES)], "evaluation_interval": "5s", "tests": tests}
    path = tmp_path / "rules_test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return promtool("test", "rules", str(path))


def unhealthy_alert(labels: dict, failing: int) -> list[dict]:
    return [{"exp_labels": {"severity": "page", **labels}, "exp_annotations": {
        "summary": f"{labels['application']}/{labels['deployment']}: {failing} replicas failing health checks",
        "layer": "Serve", "runbook": "servelab get pods; serve status; the replica's log says why check_health raises"}}]


def test_promtool_accepts_the_course_rules():
    checked = promtool("check", "rules", str(prom.COURSE_RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    groups = yaml.safe_load(prom.COURSE_RULES.read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert alerts == {"ServeReplicasUnhealthy", "ServeLatencySLO"}


def test_a_replaced_replica_does_not_page_but_replacements_that_keep_failing_do(tmp_path):
    where = {"application": "rag", "deployment": "Normalizer"}
    result = run_cases(tmp_path, [
        # one replica fails its check, and its series is gone 20 s later (Serve replaced it)
        {"interval": "5s", "input_series": [
            {"series": HEALTHY.format("a"), "values": "1x3 0x3 stale"},
            {"series": HEALTHY.format("b"), "values": "_x6 1x20"}],
         "alert_rule_test": [{"eval_time": f"{t}s", "alertname": "ServeReplicasUnhealthy", "exp_alerts": []}
                             for t in (20, 30, 45, 60)]},
        # every replacement fails too: pending at first, firing after 30 s, resolved once healthy
        {"interval": "5s", "input_series": [
            {"series": HEALTHY.format("a"), "values": "1x2 0x4 stale"},
            {"series": HEALTHY.format("b"), "values": "_x5 0x5 stale"},
            {"series": HEALTHY.format("c"), "values": "_x9 0x5 stale"},
            {"series": HEALTHY.format("d"), "values": "_x14 1x10"}],
         "alert_rule_test": [
             {"eval_time": "25s", "alertname": "ServeReplicasUnhealthy", "exp_alerts": []},  # pending
             {"eval_time": "45s", "alertname": "ServeReplicasUnhealthy", "exp_alerts": unhealthy_alert(where, 2)},
             {"eval_time": "100s", "alertname": "ServeReplicasUnhealthy", "exp_alerts": []}]},
    ])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_latency_objective_pages_after_two_minutes_over_500_ms(tmp_path):
    # 10 requests/s, every one between 500 and 1000 ms: p99 is about 995 ms
    series = [{"series": LATENCY.format(le), "values": "0+0x60"} for le in ("100", "500")]
    series += [{"series": LATENCY.format(le), "values": "0+50x60"} for le in ("1000", "+Inf")]
    result = run_cases(tmp_path, [{
        "interval": "5s", "input_series": series,
        "promql_expr_test": [{"expr": 'serve:latency_ms:p99_1m > 900', "eval_time": "2m",
                              "exp_samples": [{"labels": 'serve:latency_ms:p99_1m{application="rag",route="/rag"}',
                                               "value": 995}]}],
        "alert_rule_test": [
            {"eval_time": "1m30s", "alertname": "ServeLatencySLO", "exp_alerts": []},
            {"eval_time": "3m30s", "alertname": "ServeLatencySLO", "exp_alerts": [
                {"exp_labels": {"severity": "ticket", "application": "rag", "route": "/rag"},
                 "exp_annotations": {
                     "summary": "/rag: p99 995 ms, objective 500 ms",
                     "layer": "Serve",
                     "runbook": "serve:deployment_latency_ms:p99_1m says which stage; "
                                "serve:queued_requests whether replicas are short"}}]}],
    }])
    assert result.returncode == 0, result.stdout + result.stderr


def test_request_rate_leaves_health_checks_out(tmp_path):
    total = 'ray_serve_num_http_requests_total{{application="{}",route="{}",status_code="200"}}'
    result = run_cases(tmp_path, [{
        "interval": "5s",
        "input_series": [{"series": total.format("rag", "/rag"), "values": "0+25x30"},
                         {"series": total.format("", "/-/healthz"), "values": "0+5x30"}],
        "promql_expr_test": [{"expr": "serve:requests:rate1m", "eval_time": "2m",
                              "exp_samples": [{"labels": 'serve:requests:rate1m{application="rag",route="/rag"}',
                                               "value": 5}]}],
    }])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_a_cluster_gets_passes_promtool(tmp_path):
    for minimal in (False, True):
        cfg = prom.config(tmp_path, minimal_dashboard=minimal, head_metrics="127.0.0.1:8080")
        path = tmp_path / f"prometheus-{minimal}.yml"
        path.write_text(yaml.safe_dump(cfg))
        checked = promtool("check", "config", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        discovery = cfg["scrape_configs"][0].get("file_sd_configs")
        assert bool(discovery) is not minimal  # Ray's discovery file, unless the dashboard writes none


def test_the_kubernetes_prometheus_rule_carries_the_same_rules():
    shipped = (prom.COURSE_RULES.parents[2] / "manifests" / "monitoring" / "prometheus-rules.yaml").read_text()
    assert shipped == prom.prometheus_rule(), ("manifests/monitoring/prometheus-rules.yaml is out of date: "
                                               "python -m servelab.cluster._prometheus > it")
    # the PrometheusRule's groups pass promtool too (the operator hands them to Prometheus as a rules file)
    doc = yaml.safe_load(shipped)
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"


def test_the_pod_monitors_select_every_pod_kuberay_makes_by_its_metrics_port():
    """KubeRay 1.7 labels its pods by node type (controllers/ray/common/pod.go labelPod, as
    servelab.targets._kuberay.pod_labels does) and gives the Ray container a port named
    `metrics` (common/pod.go, utils.MetricsPortName in utils/constant.go)."""
    from servelab.targets import _kuberay as kuberay

    path = prom.COURSE_RULES.parents[2] / "manifests" / "monitoring" / "podmonitors.yaml"
    monitors = list(yaml.safe_load_all(path.read_text()))
    assert {m["kind"] for m in monitors} == {"PodMonitor"}
    pods = [kuberay.pod_labels("rag-raycluster-x2k9p", None), kuberay.pod_labels("rag-raycluster-x2k9p", "cpu-workers")]
    for labels in pods:
        chosen = [m for m in monitors
                  if all(labels.get(k) == v for k, v in m["spec"]["selector"]["matchLabels"].items())]
        assert len(chosen) == 1, (labels, [m["metadata"]["name"] for m in chosen])  # scraped once, not twice
        assert [e["port"] for e in chosen[0]["spec"]["podMetricsEndpoints"]] == ["metrics"]
        assert chosen[0]["metadata"]["labels"]["release"] == "prometheus"
        # scraped as often as the local target's Prometheus scrapes, which the lab 6 checks assume
        assert [e["interval"] for e in chosen[0]["spec"]["podMetricsEndpoints"]] == [prom.SCRAPE_INTERVAL]
    assert kuberay.DEFAULT_PORTS["metrics"] == "8080"
