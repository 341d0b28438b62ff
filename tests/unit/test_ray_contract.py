"""The contract between servelab and Ray's private internals (servelab/cluster/_ray.py).

Every accessor in _ray.py is called here, and every attribute the rest of servelab
uses on what it returns is checked by name: after a Ray upgrade this is the one test
that fails, saying which symbol moved. No cluster is started.
"""

import importlib
import inspect
import os

import pytest
import ray

import servelab
from servelab.cluster import _ray
from servelab.errors import ServelabError


def missing(obj, names):
    return [n for n in names if not hasattr(obj, n)]


def params_of(fn):
    return set(inspect.signature(fn).parameters)


def assert_has(obj, names, what):
    gone = missing(obj, names)
    assert not gone, f"Ray {ray.__version__}: {what} has no {', '.join(gone)} (servelab/cluster/_ray.py)"


def assert_accepts(fn, names, what):
    gone = sorted(set(names) - params_of(fn))
    assert not gone, f"Ray {ray.__version__}: {what} takes no {', '.join(gone)} (servelab/cluster/_ray.py)"


# -- the version -------------------------------------------------------------------------------

def test_written_for_the_installed_ray_and_the_one_servelab_pins():
    assert _ray.WRITTEN_FOR == servelab.RAY_VERSION == ray.__version__


def test_another_ray_version_is_refused_naming_both(monkeypatch):
    monkeypatch.setattr(ray, "__version__", "9.9.9")
    try:
        with pytest.raises(ServelabError) as error:
            importlib.reload(_ray)
    finally:
        monkeypatch.undo()
        importlib.reload(_ray)
    assert error.value.layer == "Ray runtime"
    text = str(error.value)
    assert "9.9.9" in text and _ray.WRITTEN_FOR in text and "test_ray_contract.py" in error.value.hint


# -- node launchers (_head_node, _worker_node) ---------------------------------------------------

WORKER_PARAMS = {"plasma_store_socket_name", "raylet_socket_name", "node_ip_address", "gcs_address", "temp_dir",
                 "num_cpus", "num_gpus", "memory", "object_store_memory", "resources", "labels",
                 "node_manager_port", "object_manager_port", "min_worker_port", "max_worker_port",
                 "dashboard_agent_listen_port", "metrics_agent_port", "runtime_env_agent_port",
                 "metrics_export_port", "include_log_monitor"}
HEAD_PARAMS = {"gcs_server_port", "include_dashboard", "dashboard_host", "dashboard_port", "autoscaling_config",
               "no_monitor", "ray_client_server_port"}


def test_ray_params_takes_every_field_servelab_passes():
    assert_accepts(_ray.ray_params_class(), WORKER_PARAMS | HEAD_PARAMS, "RayParams")


def test_node_starts_and_reports_as_servelab_expects():
    Node = _ray.node_class()
    assert_accepts(Node.__init__, {"ray_params", "head", "shutdown_at_exit", "spawn_reaper"}, "Node()")
    assert_has(Node, ["node_id", "dead_processes", "kill_all_processes"], "Node")
    assert_accepts(Node.kill_all_processes, {"check_alive", "allow_graceful"}, "Node.kill_all_processes")
    init = inspect.getsource(Node.__init__)
    gone = [a for a in ("self.head =", "self.all_processes") if a not in init]
    assert not gone, f"Ray {ray.__version__}: Node.__init__ no longer sets {gone} (_worker_node._become_supervisor)"
    # node.all_processes: kind -> [ProcessInfo], of which servelab reads .process.pid
    assert "process" in _ray.services().ProcessInfo._fields


def test_ray_constants():
    assert_has(_ray.ray_constants(), ["PROCESS_TYPE_RAYLET", "PROCESS_TYPE_DASHBOARD", "ENABLE_RAY_CLUSTER"],
               "Ray's constants module")


def test_services_starts_processes_through_one_function():
    services = _ray.services()
    assert_has(services, ["RAY_PATH", "start_ray_process"], "Ray's services module")
    assert list(inspect.signature(services.start_ray_process).parameters)[:2] == ["command", "process_type"]
    assert os.path.isdir(services.RAY_PATH)


def test_agent_scripts_exist():
    scripts = _ray.agent_scripts()
    assert set(scripts) == {"dashboard_agent", "runtime_env_agent"}
    gone = [path for path in scripts.values() if not os.path.isfile(path)]
    assert not gone, f"Ray {ray.__version__}: no agent script {gone}"


def test_auth_token_setup():
    setup = _ray.auth_token_setup()
    assert_has(setup, ["maybe_enable_token_auth_if_token_available", "ensure_token_if_auth_enabled"],
               "Ray's authentication token setup")
    assert_accepts(setup.ensure_token_if_auth_enabled, {"create_token_if_missing"}, "ensure_token_if_auth_enabled")


# -- driver (_localray) --------------------------------------------------------------------------

def test_raylet_settings_can_be_refreshed():
    assert_has(_ray.raylet_config(), ["initialize"], "the raylet extension's Config")
    assert_has(_ray.auth_token_loader(), ["instance", "reset_cache"], "AuthenticationTokenLoader")


# -- autoscaler (_autoscaler) --------------------------------------------------------------------

def test_fake_multinode_provider_is_what_local_node_provider_extends(monkeypatch):
    Provider = _ray.fake_multinode_provider()
    assert_has(Provider, ["non_terminated_nodes", "create_node_with_resources_and_labels",
                          "_create_node_with_resources_and_labels", "terminate_node", "_terminate_node",
                          "_next_hex_node_id"], "FakeMultiNodeProvider")
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")  # the provider requires it; nothing is started
    provider = Provider({"head_node_type": "headgroup"}, "contract")
    assert_has(provider, ["lock", "_nodes", "provider_config"], "a FakeMultiNodeProvider")
    head = _ray.fake_head_node_id()
    assert isinstance(head, str) and "tags" in provider._nodes[head]
    assert provider._next_hex_node_id() != head


def test_kuberay_translation():
    derive = _ray.kuberay_autoscaling_config()
    assert derive.__name__ == "_derive_autoscaling_config_from_ray_cr"
    spec = {"headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
                {"name": "ray-head", "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}},
            "workerGroupSpecs": [{"groupName": "cpu", "minReplicas": 0, "maxReplicas": 2, "rayStartParams": {},
                                  "template": {"spec": {"containers": [
                                      {"name": "ray-worker", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}}]}
    config = derive({"metadata": {"name": "c", "namespace": "default"}, "spec": spec})
    gone = [key for key in ("max_workers", "available_node_types") if key not in config]
    assert not gone, f"Ray {ray.__version__}: the KubeRay translation's config has no {gone}"
    assert {"headgroup", "cpu"} <= set(config["available_node_types"])
    assert "resources" in config["available_node_types"]["cpu"]


# -- dashboard (_slim_agent, _head_node) ---------------------------------------------------------

def test_dashboard_internals():
    package = _ray.dashboard_modules_package()
    assert package.__name__ == "ray.dashboard.modules" and os.path.isdir(package.__path__[0])
    utils = _ray.dashboard_utils()
    assert_has(utils, ["get_all_modules"], "the dashboard's utils module")
    assert list(inspect.signature(utils.get_all_modules).parameters) == ["module_type"]
    folder = _ray.dashboard_dir()
    assert folder.endswith("dashboard")  # _head_node recognises dashboard/dashboard.py in Ray's command
    gone = [p for p in ("agent.py", "dashboard.py") if not os.path.isfile(os.path.join(folder, p))]
    assert not gone, f"Ray {ray.__version__}: no dashboard program {gone}"


def test_every_profiles_dashboard_modules_exist():
    from servelab.cluster._profiles import PROFILES
    from servelab.cluster._slim_agent import module_files

    for profile in PROFILES.values():
        for classes in (profile.agent_modules, profile.dashboard_modules):
            if classes:
                assert module_files(list(classes))  # SystemExit names what is missing
