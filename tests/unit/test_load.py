"""The load generator against a small real HTTP server on 127.0.0.1."""

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
from loopback_http import serving

from servelab.faults import load


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(body.get("sleep", 0))
        status = body.get("status", 200)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"echo": body}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def url():
    with serving(Handler) as base:
        yield base + "/"


def test_closed_loop_stops_at_count(url):
    report = load.run(url, {"sleep": 0.01}, concurrency=4, count=40)
    assert report.sent == 40 and report.ok == 40 and report.stopped_by == "count"
    assert 0.01 <= report.latency(50) <= report.latency(99) < 1
    assert report.throughput > 0


def test_duration_bounds_the_run(url):
    start = time.monotonic()
    report = load.run(url, {"sleep": 0.05}, concurrency=2, count=10_000, duration_s=0.5)
    assert report.stopped_by == "time"
    assert 0 < report.sent < 100
    assert time.monotonic() - start < 2


def test_fixed_rate_paces_requests(url):
    report = load.run(url, {}, rate=20, concurrency=4, count=10, duration_s=5)
    starts = [s.start_s for s in report.samples]
    assert report.sent == 10
    # Request i is due at i/20 s: the last starts near 0.45 s, not immediately.
    assert 0.4 <= starts[-1] < 0.9


def test_statuses_errors_and_payload_function(url):
    report = load.run(url, lambda i: {"status": 503 if i % 4 == 0 else 200}, concurrency=2, count=20)
    assert report.statuses == {200: 15, 503: 5}
    assert report.failed == 5
    assert "503: 5" in report.summary()


def test_refused_connection_is_status_zero():
    report = load.run("http://127.0.0.1:9/", {}, count=3, timeout_s=2)
    assert report.statuses == {0: 3} and report.ok == 0
    assert report.longest_gap_s() == pytest.approx(report.duration_s)


def test_timeline_buckets_add_up(url):
    report = load.run(url, {"sleep": 0.02}, concurrency=2, count=30)
    rows = report.timeline(bucket_s=0.1)
    assert sum(r["sent"] for r in rows) == 30
    assert all(r["ok"] + r["failed"] == r["sent"] for r in rows)


@pytest.mark.parametrize("target", ["http://10.0.0.5:8000/", "http://example.com/"])
def test_only_loopback(target):
    with pytest.raises(ValueError, match="only sent to this machine"):
        load.run(target, {}, count=1)


@pytest.mark.parametrize("kwargs", [{"count": 0}, {"count": 10**6}, {"duration_s": 0},
                                    {"duration_s": 3600}, {"concurrency": 0}, {"rate": -1}])
def test_bounds_are_enforced(kwargs):
    with pytest.raises(ValueError):
        load.run("http://127.0.0.1:9/", {}, **kwargs)


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert load.percentile(values, 50) == 50
    assert load.percentile(values, 99) == 99
    assert load.percentile([3.0], 99) == 3.0


def test_cli_load_prints_summary_and_plot(url, tmp_path, capsys):
    from servelab.cli import main

    png = tmp_path / "load.png"
    assert main(["load", url, "--json", '{"sleep": 0.01}', "-c", "2", "-n", "20", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "20 requests (2 clients" in out and "20 ok" in out
    assert png.stat().st_size > 10_000


def test_cli_load_refuses_remote_hosts(capsys):
    from servelab.cli import main

    assert main(["load", "http://192.0.2.1:8000/", "-n", "1"]) == 1
    assert "only sent to this machine" in capsys.readouterr().err


class Flaky(BaseHTTPRequestHandler):
    """Every other request gets 503, as from a replica that is being replaced."""
    calls = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Flaky.calls += 1
        self.send_response(503 if Flaky.calls % 2 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_retries_resend_a_503_and_are_counted():
    with serving(Flaky) as base:
        without = load.run(base + "/", {}, count=10)
        Flaky.calls = 0
        with_retry = load.run(base + "/", {}, count=10, retries=1)
    assert without.failed == 5 and without.retried == 0
    assert with_retry.failed == 0 and with_retry.retried == 10
    assert all(s.attempts == 2 for s in with_retry.samples)
    with pytest.raises(ValueError, match="retries"):
        load.run(base + "/", {}, retries=9)


def test_a_stop_event_ends_the_run_early(url):
    import threading

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    report = load.run(url, {"sleep": 0.02}, concurrency=2, count=10_000, duration_s=20, stop=stop)
    assert report.stopped_by == "stop" and report.duration_s < 2


def test_a_refused_connection_does_not_spin():
    from servelab.cluster._ports import free_port

    report = load.run(f"http://127.0.0.1:{free_port()}/", {}, count=10_000, duration_s=0.5)
    assert report.statuses.keys() == {0}
    assert report.sent <= 0.5 / load.NO_ANSWER_PAUSE_S + 2   # paced, not thousands


class Shedding(BaseHTTPRequestHandler):
    """Sheds the first request of each client with 503 and Retry-After: 1, as Serve does
    past max_queued_requests with backpressure_config.retry_after_s."""
    calls = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Shedding.calls += 1
        shed = Shedding.calls == 1
        self.send_response(503 if shed else 200)
        if shed:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_closed_loop_client_waits_as_long_as_retry_after_asks():
    with serving(Shedding) as base:
        report = load.run(base + "/", {}, count=3)
    first, second = report.samples[:2]
    assert (first.status, first.retry_after_s) == (503, 1.0) and second.status == 200
    assert second.start_s - (first.start_s + first.latency_s) >= 0.95  # came back after a second, not at once
    assert report.failed == 1 and report.samples[2].retry_after_s == 0.0  # a 200 asks for nothing
