"""The local target's profiles: which one is chosen, and what the small one runs."""

from pathlib import Path

import pytest
import requests

from servelab.cluster import _processes as processes
from servelab.cluster import _profiles as profiles
from servelab.cluster.testing import start_for_fixture
from servelab.observe._waiting import Failed


def test_the_variable_wins_over_memory(monkeypatch):
    monkeypatch.setenv(profiles.ENV, "small")
    assert profiles.choose().name == "small"
    monkeypatch.setenv(profiles.ENV, " Default ")
    assert profiles.choose().name == "default"
    assert profiles.choose("small").name == "small"  # an explicit choice wins over both


@pytest.mark.parametrize("limit, expected", [(2 * 1024**3, "small"), (3 * 1024**3, "small"),
                                             (4 * 1024**3, "default"), (24 * 1024**3, "default")])
def test_without_the_variable_memory_decides(monkeypatch, limit, expected):
    monkeypatch.delenv(profiles.ENV, raising=False)
    monkeypatch.setattr(profiles, "memory_limit", lambda: limit)
    assert profiles.choose().name == expected


def test_an_unknown_profile_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(profiles.ENV, "tiny")
    with pytest.raises(ValueError, match=r"'tiny'.*SERVELAB_PROFILE.*default, small"):
        profiles.choose()


def test_memory_limit_is_at_most_physical_memory():
    import psutil

    assert 0 < profiles.memory_limit() <= psutil.virtual_memory().total


@pytest.fixture(scope="module")
def small(request):
    return start_for_fixture(request, num_cpus=2, profile="small")


@pytest.mark.live
def test_small_serves_an_app_over_rest_and_http(small):
    small.serve_api.deploy({
        "http_options": {"host": "127.0.0.1", "port": small.ports.serve},
        "applications": [{"name": "hello", "route_prefix": "/hello", "import_path": "servelab.apps.hello:app"}]})
    small.serve_api.wait_running(["hello"], timeout=120)
    reply = requests.get(f"{small.serve_url}/hello?name=binder", timeout=10)
    assert reply.json() == {"message": "hello, binder"}
    # The State API (faults, placement) and the node list still answer.
    assert small.node_ids() and small.state_api.get("/api/v0/actors?limit=10").status_code == 200


@pytest.mark.live
def test_small_runs_only_the_dashboard_modules_it_names(small):
    lines = processes.command_lines(small.processes())
    modules = {line.split("ray-dashboard-")[1].split("-")[0] for line in lines if "ray-dashboard-" in line}
    assert modules == set(profiles.PROFILES["small"].dashboard_modules)
    lines = " ".join(lines)
    assert "ray.util.client.server" not in lines and "autoscaler/_private/monitor.py" not in lines
    assert "_private/log_monitor.py" not in lines and "JobAgent" not in lines


@pytest.mark.live
def test_small_gives_every_ray_process_its_environment(small):
    raylets = [p for p in small.processes() if p.name() == "raylet"]
    assert raylets
    env = raylets[0].environ()
    assert {k: env.get(k) for k in profiles.PROFILES["small"].env} == profiles.PROFILES["small"].env
    assert env.get(profiles.ENV) == "small"


@pytest.mark.live
def test_a_job_on_small_runs_here_and_its_replicas_import_from_the_folder(small, tmp_path):
    # No Jobs API and no runtime-env agent to unpack an upload (the profile's point): the
    # command runs here as the cluster's driver, and the replicas it deploys import the folder.
    assert not small.has_jobs_api
    (tmp_path / "greeter.py").write_text(
        "from ray import serve\n\n"
        "@serve.deployment(ray_actor_options={'num_cpus': 0.1})\n"
        "class Greeter:\n"
        "    def __call__(self, request):\n"
        "        return {'from': __file__}\n")
    (tmp_path / "deploy.py").write_text(
        "from ray import serve\nfrom greeter import Greeter\n"
        "serve.run(Greeter.bind(), name='greeter', route_prefix='/greeter', blocking=False)\nprint('deployed')\n")
    assert "deployed" in small.run_driver("python deploy.py", working_dir=str(tmp_path), timeout=120)
    small.serve_api.wait_running(["greeter"], timeout=60, show=False)
    reply = requests.get(f"{small.serve_url}/greeter", timeout=10)
    assert reply.json() == {"from": str(tmp_path / "greeter.py")}
    with pytest.raises(Failed, match="exited 1"):
        small.run_driver("python -c 'import nothing_here'", working_dir=str(tmp_path), timeout=60)


@pytest.fixture(scope="module")
def small_worker(small):
    return small.add_worker(num_cpus=1, num_gpus=1, labels={"servelab.io/group": "gpu-workers"}, show=False)


def _agents(small) -> dict[str, list[str]]:
    """Command lines of each raylet's children (its agents and workers), by node role."""
    out = {}
    for raylet in (p for p in small.processes() if p.name() == "raylet"):
        role = "head" if "servelab.cluster._head_node" in " ".join(raylet.parent().cmdline()) else "worker"
        out.setdefault(role, []).extend(" ".join(c.cmdline()) for c in raylet.children())
    return out


@pytest.mark.live
def test_small_runs_stand_ins_for_the_agents_no_lesson_uses(small, small_worker):
    agents = _agents(small)
    standin = "servelab/cluster/_standin_agents.py"
    assert sum(f"{standin} runtime-env" in line for line in agents["head"]) == 1
    assert sum(line.startswith("ray::DashboardAgent") for line in agents["head"]) == 1  # the Serve proxy's metrics
    assert sum(f"{standin} dashboard" in line for line in agents["worker"]) == 1
    assert sum(f"{standin} runtime-env" in line for line in agents["worker"]) == 1
    lines = " ".join(processes.command_lines(small.processes()))
    assert "ray::RuntimeEnvAgent" not in lines and lines.count("ray::DashboardAgent") == 1
    for proc in small.processes():  # standard library only: no Ray loaded
        if standin in " ".join(proc.cmdline()):
            assert "_raylet" not in Path(f"/proc/{proc.pid}/maps").read_text()


@pytest.mark.live
def test_small_builds_env_vars_on_every_node_and_refuses_other_runtime_envs(small, small_worker, tmp_path):
    (tmp_path / "probe_app.py").write_text(
        "import os\nimport ray\nfrom ray import serve\n\n"
        "@serve.deployment(ray_actor_options={'num_cpus': 0.1, 'num_gpus': 0.5})\n"
        "class Probe:\n"
        "    async def __call__(self, request):\n"
        "        return {'probe': os.environ.get('PROBE'), 'node': ray.get_runtime_context().get_node_id()}\n\n"
        "app = Probe.bind()\n")
    http = {"host": "127.0.0.1", "port": small.ports.serve}
    env = {"env_vars": {"PYTHONPATH": str(tmp_path), "PROBE": "from the stand-in"}}
    small.serve_api.deploy({"http_options": http, "applications": [
        {"name": "probe", "route_prefix": "/probe", "import_path": "probe_app:app", "runtime_env": env}]})
    small.serve_api.wait_running(["probe"], timeout=120, show=False)
    reply = requests.get(f"{small.serve_url}/probe", timeout=10).json()
    assert reply == {"probe": "from the stand-in", "node": small_worker}  # the GPU replica, on the worker

    small.serve_api.deploy({"http_options": http, "applications": [
        {"name": "probe", "route_prefix": "/probe", "import_path": "probe_app:app", "runtime_env": env},
        {"name": "pip", "route_prefix": "/pip", "import_path": "servelab.apps.hello:app",
         "runtime_env": {"pip": ["requests"]}}]})
    with pytest.raises(Failed, match=r"(?s)small profile runs no runtime-env agent.*field\(s\) pip can't be built"):
        small.serve_api.wait_running(["pip"], timeout=120, show=False)
    assert requests.get(f"{small.serve_url}/probe", timeout=10).status_code == 200  # the other app lives on


@pytest.mark.live
def test_a_worker_nodes_stand_ins_go_with_its_raylet(small, small_worker):
    import psutil

    raylet = next(p for p in small.processes() if p.name() == "raylet"
                  and "servelab.cluster._worker_node" in " ".join(p.parent().cmdline()))
    standins = raylet.children()
    assert len(standins) >= 2
    raylet.kill()
    gone, alive = psutil.wait_procs(standins, timeout=15)
    assert not alive, [" ".join(p.cmdline()) for p in alive]


def test_the_small_profiles_agent_modules_exist_in_this_ray():
    from servelab.cluster._slim_agent import module_files

    assert module_files(list(profiles.PROFILES["small"].agent_modules)) == ["ray.dashboard.modules.log.log_agent",
                                         "ray.dashboard.modules.reporter.healthz_agent",
                                         "ray.dashboard.modules.reporter.reporter_agent"]
    with pytest.raises(SystemExit, match="NoSuchAgent"):
        module_files(["LogAgent", "NoSuchAgent"])


def test_a_slim_agent_loads_only_the_modules_it_was_given():
    import subprocess
    import sys

    probe = ("import sys; from servelab.cluster import _slim_agent as slim_agent; slim_agent._only(['LogAgent', 'HealthzAgent']);"
             "import ray.dashboard.utils as u;"
             "print(sorted(c.__name__ for c in u.get_all_modules(u.DashboardAgentModule)));"
             "print('ray.dashboard.modules.train' in sys.modules, 'ray.dashboard.modules.serve.serve_head' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.splitlines() == ["['HealthzAgent', 'LogAgent']", "False False"]
