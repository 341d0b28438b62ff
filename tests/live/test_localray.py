"""A real private Ray cluster: ownership, loopback, token auth, Serve, clean stop."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from servelab import Failed, LocalRay
from servelab.cluster import _localray as localray
from servelab.cluster import _processes as processes

pytestmark = pytest.mark.live

# Ray 2.60 binds each Serve replica's internal gRPC server to [::] with no
# setting to change it (ray/serve/_private/replica.py); nothing else may leave loopback.
KNOWN_WILDCARD = "ray::ServeReplica"


def test_every_listener_we_control_is_on_loopback(local_ray):
    local_ray.serve_api.deploy({
        "http_options": {"host": "127.0.0.1", "port": local_ray.ports.serve},
        "applications": [{"name": "hello", "route_prefix": "/hello",
                          "import_path": "servelab.apps.hello:app"}],
    })
    wait_http(f"{local_ray.serve_url}/hello?name=ray", 200)
    found = processes.listeners(local_ray.processes())
    assert {port for _, port, _ in found} >= {local_ray.ports.gcs, local_ray.ports.dashboard,
                                              local_ray.ports.serve, local_ray.ports.metrics}
    outside = [(ip, port, name) for ip, port, name in found
               if ip not in ("127.0.0.1", "::ffff:127.0.0.1") and not name.startswith(KNOWN_WILDCARD)]
    assert outside == []


def test_no_ray_client_server_but_the_monitor_ray_status_reads(local_ray):
    lines = processes.command_lines(local_ray.processes())
    assert any("servelab.cluster._head_node" in line for line in lines)
    assert not [line for line in lines if "ray.util.client.server" in line]
    assert [line for line in lines if "autoscaler/_private/monitor.py" in line]


def test_rest_deploy_by_import_path_answers_over_http(local_ray):
    local_ray.serve_api.deploy({
        "http_options": {"host": "127.0.0.1", "port": local_ray.ports.serve},
        "applications": [{"name": "hello", "route_prefix": "/hello",
                          "import_path": "servelab.apps.hello:app",
                          "deployments": [{"name": "Hello", "num_replicas": 2}]}],
    })
    assert wait_http(f"{local_ray.serve_url}/hello?name=ray", 200).json() == {"message": "hello, ray"}
    deadline = time.monotonic() + 60
    while len(local_ray.serve_api.replicas("hello", "Hello")) != 2:
        assert time.monotonic() < deadline, "second replica never became RUNNING"
        time.sleep(0.5)


def test_dashboard_requires_this_clusters_token(local_ray):
    url = f"{local_ray.dashboard_url}/api/serve/applications/"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, timeout=5, headers={"Authorization": "Bearer wrong"}).status_code == 403
    ok = requests.get(url, timeout=5, headers={"Authorization": f"Bearer {local_ray.token}"})
    assert ok.status_code == 200
    assert oct(local_ray.token_file.stat().st_mode & 0o777) == "0o600"


def test_find_sees_the_cluster_and_its_state(local_ray):
    found = [c for c in LocalRay.find(local_ray.root) if c.dir == local_ray.dir]
    assert len(found) == 1 and found[0].ports == local_ray.ports and found[0].running


def test_driver_connects_by_explicit_address_and_serves(local_ray):
    # A separate interpreter, as a notebook kernel would be: it imports ray first.
    script = textwrap.dedent(f"""
        import ray
        from ray import serve
        from servelab import LocalRay
        cluster = LocalRay.from_state({str(local_ray.dir / 'cluster.json')!r})
        cluster.connect()
        assert ray.get_runtime_context().gcs_address == cluster.gcs_address

        @serve.deployment(num_replicas=1, ray_actor_options={{"num_cpus": 0.1}})
        def double(request):
            return str(2 * int(request.query_params["x"]))

        serve.run(double.bind(), name="double", route_prefix="/double")
        print("deployed")

        @ray.remote(num_cpus=0.1)
        def skipped_the_grammar():  # servelab/cluster/ray_site in the cluster's processes, not in drivers
            import sys
            return "lark" not in sys.modules and sys.modules.get("rfc3987_syntax", "absent") is None
        print("workers skip it:", ray.get(skipped_the_grammar.remote()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert "deployed" in out.stdout, out.stderr[-3000:]
    assert "workers skip it: True" in out.stdout
    assert wait_http(f"{local_ray.serve_url}/double?x=21", 200).text == "42"


def test_find_collects_the_directory_of_a_cluster_whose_owner_died(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    state_dir = tmp_path / "cdead"
    state_dir.mkdir()
    (state_dir / "cluster.json").write_text(json.dumps({
        "name": "ghost", "dir": str(state_dir), "owner_pid": int(dead.stdout), "owner_started": 0.0,
        "ports": {k: 1 for k in ("gcs", "node_manager", "object_manager", "client_server", "dashboard",
                                 "dashboard_agent_http", "dashboard_agent_grpc", "runtime_env_agent",
                                 "metrics", "serve", "min_worker", "max_worker")},
        "num_cpus": 1, "num_gpus": 0}))
    assert LocalRay.find(tmp_path) == []
    assert not state_dir.exists()


def test_cluster_dies_with_its_owner(tmp_path):
    """A kernel killed mid-lab must not leave its cluster behind."""
    script = textwrap.dedent("""
        import time
        from servelab import LocalRay
        c = LocalRay("orphan").start(show=False)
        print(c.dir, flush=True)
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        cluster_dir = owner.stdout.readline().strip()
        assert cluster_dir, "owner did not start its cluster"
        assert processes.processes_under(cluster_dir)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert processes.wait_gone(cluster_dir, timeout=30) == []
    finally:
        if owner.poll() is None:
            owner.kill()


class BrokenHead(LocalRay):
    def _head_cmd(self):
        return super()._head_cmd() + ["--no-such-option"]


def test_failed_start_stops_what_it_started_and_keeps_the_log():
    cluster = BrokenHead("broken")  # the head launcher exits with a usage error
    with pytest.raises(Failed) as info:
        cluster.start(timeout=60, show=False)
    assert info.value.layer == "Ray runtime"
    assert "exited while starting" in str(info.value)
    assert "no-such-option" in str(info.value)  # the log tail is quoted
    assert cluster.processes() == []
    assert (cluster.dir / localray.HEAD_LOG).exists()  # the message points there


class SlowFirstHead(LocalRay):
    """The first head misses Ray's 30 s start-up limit (as on a busy machine)."""
    tries = 0

    def _head_cmd(self):
        SlowFirstHead.tries += 1
        if SlowFirstHead.tries == 1:
            return [sys.executable, "-c", "import sys; print('Exception: The current node "
                    f"{localray.RAY_STARTUP_LIMIT}.'); sys.exit(1)"]
        return super()._head_cmd()


def test_a_start_that_missed_rays_startup_limit_is_tried_once_more(capsys):
    cluster = SlowFirstHead("slowfirst")
    try:
        cluster.start(timeout=120)
        assert SlowFirstHead.tries == 2
        assert "trying once more" in capsys.readouterr().out
        assert cluster.serve_api.applications() == {}
    finally:
        cluster.stop(show=False)
    assert cluster.processes() == []


def test_stop_is_idempotent_and_leaves_nothing():
    cluster = LocalRay("stopper").start(show=False)
    cluster_dir = str(cluster.dir)
    assert len(cluster.processes()) > 5
    cluster.stop(show=False)
    cluster.stop(show=False)
    assert processes.processes_under(cluster_dir) == []
    assert not os.path.exists(cluster_dir)


def wait_http(url, status, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = requests.get(url, timeout=5)
            if r.status_code == status:
                return r
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        time.sleep(0.5)
