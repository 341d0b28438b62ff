"""servelab.observe._widgets against a live cluster: a GPU worker group, the hello app, real traffic."""

import time

import pytest
import requests

from servelab.clients._serve import ServeAPI
from servelab.cluster._ports import free_port
from servelab.observe import _widgets as widgets

GROUP_LABEL = "servelab.io/group"


@pytest.fixture(scope="module")
def cluster(local_ray):
    local_ray.add_worker(num_cpus=2, num_gpus=1, labels={GROUP_LABEL: "gpu-workers"}, show=False)
    local_ray.serve_api.deploy({
        "http_options": {"host": "127.0.0.1", "port": local_ray.ports.serve},
        "applications": [{"name": "hello", "route_prefix": "/hello", "import_path": "servelab.apps.hello:app",
                          "deployments": [{"name": "Hello", "num_replicas": 2,
                                           "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0.5}}]}]})
    local_ray.serve_api.wait_running(["hello"], show=False)
    return local_ray


@pytest.mark.live
def test_a_reading_shows_replicas_by_state_and_by_node_group_with_gpu_groups_marked(cluster):
    view = widgets.read(cluster)
    assert not view.error
    hello = view.apps["hello"]
    assert hello["status"] == "RUNNING"
    assert hello["deployments"]["Hello"]["states"] == {"RUNNING": 2}
    assert hello["deployments"]["Hello"]["groups"] == {"gpu-workers": 2}  # the head has no GPU
    assert view.groups["gpu-workers"] == {"nodes": 1, "gpus": 1.0} and view.groups["head"]["gpus"] == 0
    page = widgets.render_html(view)
    assert "gpu-workers (GPU): 2" in page and "2 RUNNING" in page and "head: 1 node" in page


@pytest.mark.live
def test_the_dashboard_refreshes_by_itself_and_measures_traffic(cluster):
    dash = widgets.Dashboard(cluster, every_s=1, window_s=30, plot_every=2)
    try:
        deadline = time.monotonic() + 60
        sent = 0
        # Ray exports metrics about every 10 s: keep traffic going until a window shows it.
        while not any(v.rps for v in dash.history) or len(dash.history) < 5:
            assert time.monotonic() < deadline, [(v.t, v.rps, v.error) for v in dash.history]
            for _ in range(5):
                assert requests.get(f"{cluster.serve_url}/hello", timeout=10).status_code == 200
                sent += 1
            time.sleep(0.5)
    finally:
        dash.stop()
    assert len(dash.history) >= 5, "the refresh thread did not keep reading"
    busy = [v for v in dash.history if v.rps]
    assert all(0 < v.rps <= sent for v in busy)
    assert any(v.p50_ms is not None and 0 < v.p50_ms <= v.p99_ms for v in busy)
    assert dash.history[-1].replicas() == {"hello/Hello": 2}
    assert bytes(dash.picture.value[:4]) == b"\x89PNG" and "stopped after" in dash.state.value
    count = len(dash.history)
    time.sleep(2.5)
    assert len(dash.history) == count, "the dashboard kept refreshing after stop()"
    assert dash.timeline().get_ylabel() == "running replicas"


def test_a_target_that_does_not_answer_is_reported_and_the_dashboard_gives_up():
    class Gone:  # a cluster whose dashboard port nobody listens on any more
        serve_api = ServeAPI(f"http://127.0.0.1:{free_port()}", timeout=1)

    dash = widgets.Dashboard(Gone(), every_s=0.2, give_up_s=1)
    dash._thread.join(15)
    assert not dash._thread.is_alive()
    assert "has not answered" in dash.state.value
    assert "could not read the target" in dash.table.value and dash.history[-1].error


def test_the_timeline_leaves_a_gap_where_a_reading_failed_instead_of_plotting_zero():
    deployment = {"status": "HEALTHY", "states": {"RUNNING": 2}, "groups": {}}
    ok = lambda t: widgets.View(t, apps={"rag": {"status": "RUNNING", "deployments": {"Retriever": deployment}}},
                                p50_ms=12.0, p99_ms=40.0)
    history = [ok(0), ok(2), widgets.View(4, error="ConnectionError: controller down"), ok(6)]
    ax = widgets.plot_timeline(history)
    replicas = ax.get_lines()[0].get_ydata()
    assert list(replicas[:2]) == [2, 2] and replicas[-1] == 2
    assert replicas[2] != replicas[2], "a failed reading must be NaN (a gap), not 0 replicas"
