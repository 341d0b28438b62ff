"""The local target's profiles: which one is chosen, and what the small one runs."""

import pytest
import requests

from servelab import processes, profiles
from servelab.testing import start_for_fixture


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
    assert small.node_ids() and small._dashboard_get("/api/v0/actors?limit=10").status_code == 200


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


def test_the_small_profiles_agent_modules_exist_in_this_ray():
    from servelab.slim_agent import module_files

    assert module_files(list(profiles.PROFILES["small"].agent_modules)) == ["ray.dashboard.modules.log.log_agent",
                                         "ray.dashboard.modules.reporter.healthz_agent",
                                         "ray.dashboard.modules.reporter.reporter_agent"]
    with pytest.raises(SystemExit, match="NoSuchAgent"):
        module_files(["LogAgent", "NoSuchAgent"])


def test_a_slim_agent_loads_only_the_modules_it_was_given():
    import subprocess
    import sys

    probe = ("import sys; from servelab import slim_agent; slim_agent._only(['LogAgent', 'HealthzAgent']);"
             "import ray.dashboard.utils as u;"
             "print(sorted(c.__name__ for c in u.get_all_modules(u.DashboardAgentModule)));"
             "print('ray.dashboard.modules.train' in sys.modules, 'ray.dashboard.modules.serve.serve_head' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.splitlines() == ["['HealthzAgent', 'LogAgent']", "False False"]
