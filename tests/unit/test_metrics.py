"""servelab.clients.metrics against Prometheus text served on 127.0.0.1 (the format Ray's agents export)."""

import math
from http.server import BaseHTTPRequestHandler

import pytest
import requests
from loopback_http import serving

from servelab.clients import metrics

EXPOSITION = b"""# HELP ray_serve_num_http_requests_total Number of HTTP requests.
# TYPE ray_serve_num_http_requests_total counter
ray_serve_num_http_requests_total{route="/rag",status_code="200",method="POST"} 90.0
ray_serve_num_http_requests_total{route="/rag",status_code="503",method="POST"} 10.0
ray_serve_num_http_requests_total{route="/other",status_code="200",method="GET"} 5.0
# HELP ray_serve_http_request_latency_ms Latency.
# TYPE ray_serve_http_request_latency_ms histogram
ray_serve_http_request_latency_ms_bucket{route="/rag",le="100.0"} 50.0
ray_serve_http_request_latency_ms_bucket{route="/rag",le="200.0"} 90.0
ray_serve_http_request_latency_ms_bucket{route="/rag",le="500.0"} 100.0
ray_serve_http_request_latency_ms_bucket{route="/rag",le="+Inf"} 100.0
ray_serve_http_request_latency_ms_count{route="/rag"} 100.0
ray_serve_http_request_latency_ms_sum{route="/rag"} 12000.0
"""


class Exporter(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(EXPOSITION)


@pytest.fixture(scope="module")
def scraped():
    with serving(Exporter) as url:
        return metrics.scrape(url + "/metrics")


def test_counters_sum_over_series_and_group_by_a_label(scraped):
    assert scraped.total("ray_serve_num_http_requests_total") == 105
    assert scraped.total("ray_serve_num_http_requests_total", route="/rag") == 100
    assert scraped.by("ray_serve_num_http_requests_total", "status_code", route="/rag") == {"200": 90, "503": 10}
    assert scraped.names("ray_serve_num") == ["ray_serve_num_http_requests_total"]


@pytest.mark.parametrize("q, expected", [(0.5, 100.0), (0.7, 150.0), (0.95, 350.0), (1.0, 500.0)])
def test_quantiles_interpolate_within_buckets_like_histogram_quantile(scraped, q, expected):
    assert scraped.quantile(q, "ray_serve_http_request_latency_ms", route="/rag") == pytest.approx(expected)


def test_a_histogram_with_nothing_counted_has_no_quantile(scraped):
    assert math.isnan(scraped.quantile(0.99, "ray_serve_http_request_latency_ms", route="/none"))


def test_beyond_the_last_finite_bucket_the_bound_is_the_answer():
    samples = [metrics.Sample("h_bucket", {"le": "10.0"}, 1.0), metrics.Sample("h_bucket", {"le": "+Inf"}, 4.0)]
    assert metrics.Metrics(samples).quantile(0.9, "h") == 10.0


def test_since_keeps_what_happened_between_two_scrapes(scraped):
    earlier = metrics.Metrics([
        metrics.Sample("ray_serve_num_http_requests_total", {"route": "/rag", "status_code": "200", "method": "POST"}, 80),
        metrics.Sample("ray_serve_num_http_requests_total", {"route": "/other", "status_code": "200", "method": "GET"}, 9),
        metrics.Sample("ray_serve_http_request_latency_ms_bucket", {"route": "/rag", "le": "100.0"}, 50),
        metrics.Sample("ray_serve_http_request_latency_ms_bucket", {"route": "/rag", "le": "200.0"}, 50),
        metrics.Sample("ray_serve_http_request_latency_ms_bucket", {"route": "/rag", "le": "500.0"}, 50),
        metrics.Sample("ray_serve_http_request_latency_ms_bucket", {"route": "/rag", "le": "+Inf"}, 50)])
    window = scraped.since(earlier)
    # /rag 200 went 80 -> 90; 503 is new (10); /other went down (a restarted exporter): counted from 0
    assert window.by("ray_serve_num_http_requests_total", "route") == {"/rag": 20, "/other": 5}
    # the 50 requests of the window all took 100-500 ms
    assert 100 < window.quantile(0.5, "ray_serve_http_request_latency_ms", route="/rag") < 500


def test_scraping_several_endpoints_sums_them_and_skips_one_that_is_down(scraped):
    from servelab.cluster._ports import free_port

    with serving(Exporter) as url:
        both = metrics.scrape([url + "/metrics", url + "/metrics", f"http://127.0.0.1:{free_port()}/metrics"],
                              timeout=2)
    assert both.total("ray_serve_num_http_requests_total") == 2 * scraped.total("ray_serve_num_http_requests_total")
    with pytest.raises(requests.RequestException):  # none answered: the first failure
        metrics.scrape([f"http://127.0.0.1:{free_port()}/metrics"], timeout=2)
