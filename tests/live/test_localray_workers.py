"""Worker nodes on 127.0.0.1: what each KubeRay worker pod becomes on the local target."""

import time

import psutil
import pytest
import requests

from servelab.clients._serve import ServeAPIError
from servelab.cluster import _processes as processes

pytestmark = pytest.mark.live
GROUP_LABEL = "servelab.io/group"


@pytest.fixture(scope="module")
def gpu_node(local_ray):
    return local_ray.add_worker(num_cpus=2, num_gpus=1, labels={GROUP_LABEL: "gpu-workers"}, show=False)


def nodes(cluster):
    r = requests.get(f"{cluster.dashboard_url}/nodes?view=summary", timeout=10,
                     headers={"Authorization": f"Bearer {cluster.token}"})
    return {n["raylet"]["nodeId"]: n["raylet"] for n in r.json()["data"]["summary"]}


def test_worker_joins_with_the_resources_and_labels_of_its_group(local_ray, gpu_node):
    raylet = nodes(local_ray)[gpu_node]
    assert raylet["state"] == "ALIVE" and raylet["nodeManagerAddress"] == "127.0.0.1"
    assert raylet["resourcesTotal"]["GPU"] == 1 and raylet["resourcesTotal"]["CPU"] == 2
    assert raylet["labels"][GROUP_LABEL] == "gpu-workers"


def test_gpu_replicas_land_on_the_gpu_node(local_ray, gpu_node):
    local_ray.serve_api.deploy({
        "http_options": {"host": "127.0.0.1", "port": local_ray.ports.serve},
        "applications": [{"name": "hello", "route_prefix": "/hello", "import_path": "servelab.apps.hello:app",
                          "deployments": [{"name": "Hello", "num_replicas": 2,
                                           "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0.5}}]}],
    })
    deadline = time.monotonic() + 120
    running = []
    while len(running) < 2:
        assert time.monotonic() < deadline, "GPU replicas never ran"
        time.sleep(0.5)
        try:
            running = local_ray.serve_api.replicas("hello", "Hello")
        except ServeAPIError:  # the app is listed before its deployments are
            pass
    assert {r.node_id for r in running} == {gpu_node}  # the head has no GPU
    assert requests.get(f"{local_ray.serve_url}/hello", timeout=10).status_code == 200


def test_a_killed_node_is_recreated_and_its_replicas_come_back(local_ray, gpu_node):
    from servelab.faults._verbs import LocalFaults

    faults = LocalFaults(local_ray)
    fault = faults.kill_node("gpu-workers", show=False)
    assert fault.hit[0]["node_id"] == gpu_node
    assert len(fault.before["lost_replicas"]) == 2      # both Hello replicas were on it
    deadline = time.monotonic() + 150
    while not faults.recovered(fault)[0]:
        assert time.monotonic() < deadline, faults.recovered(fault)[1]
        time.sleep(1)
    # Serve can have its replicas back on the new node before the GCS's health checks
    # have declared the killed one dead (about 15 s after its raylet stopped answering).
    while gpu_node in (groups := {n["node_id"]: n["group"] for n in faults._nodes().values()}):
        assert time.monotonic() < deadline, f"the killed node {gpu_node[:8]} is still listed as alive"
        time.sleep(1)
    assert list(groups.values()).count("gpu-workers") == 1  # a new pod
    assert {groups[r.node_id] for r in local_ray.serve_api.replicas("hello", "Hello")} == {"gpu-workers"}


def test_every_node_stays_on_loopback(local_ray, gpu_node):
    outside = [(ip, port, name) for ip, port, name in processes.listeners(local_ray.processes())
               if ip not in ("127.0.0.1", "::ffff:127.0.0.1") and not name.startswith("ray::ServeReplica")]
    assert outside == []


def test_each_node_waits_in_a_supervisor_of_a_few_mib_not_a_ray_process(local_ray, gpu_node):
    supervisors = [p for p in local_ray.processes() if any(a.endswith("_node_supervisor.py") for a in p.cmdline())]
    alive = [n for n in nodes(local_ray).values() if n["state"] == "ALIVE"]
    assert len(supervisors) == len(alive) == 2  # the head's and the (recreated) GPU worker's
    assert {p.cmdline()[3] for p in supervisors} == {"servelab.cluster._head_node", "servelab.cluster._worker_node"}
    assert local_ray.owner_pid in {p.pid for p in supervisors}  # same pid as the launcher it was
    for p in supervisors:
        assert p.memory_info().rss < 40 * 1024**2, p.cmdline()[:4]
        assert not [m for m in p.memory_maps() if "_raylet" in m.path], "Ray is still loaded"


def test_stop_ends_workers_too():
    from servelab import LocalRay

    cluster = LocalRay("workers").start(show=False)
    cluster.add_worker(num_cpus=1, show=False)
    worker_pid = cluster.workers[0]["pid"]
    cluster_dir = str(cluster.dir)
    cluster.stop(show=False)
    assert processes.processes_under(cluster_dir) == []
    assert not psutil.pid_exists(worker_pid)  # stopped and reaped, not a zombie
    assert cluster.workers == []  # a restarted LocalRay starts without stale workers
