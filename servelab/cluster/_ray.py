"""The one place servelab touches Ray's private internals, written for Ray 2.60.0.

Ray's private modules change without notice between releases, so everything servelab
needs from them goes through the accessors below, and this module refuses to load
under any other Ray version (a `ServelabError`, layer "Ray runtime"). After a Ray
upgrade: run tests/unit/test_ray_contract.py, which calls every accessor and checks
every attribute servelab uses on what it returns, fix what it names, then bump
`WRITTEN_FOR` and `servelab.RAY_VERSION` together.

Each accessor imports what it returns only when called: the node launchers set
environment variables before Ray reads them at import, then exec into a stdlib
supervisor, so nothing is loaded before (or beyond) its use.

Node launchers (_head_node, _worker_node):
- `ray_params_class()`: RayParams, a node's settings;
- `node_class()`: Node, a Ray node started from this process;
- `ray_constants()`: Ray's constants module (process types, ENABLE_RAY_CLUSTER);
- `services()`: Ray's process-starting module (RAY_PATH, start_ray_process, which
  servelab wraps to rewrite the agent and dashboard commands);
- `agent_scripts()`: the scripts the raylet runs for a node's two agents;
- `auth_token_setup()`: what `ray start` calls to enable token auth and check the token.
Driver (_localray):
- `raylet_config()`, `auth_token_loader()`: re-read Ray's settings and token after import.
Autoscaler (_autoscaler):
- `fake_multinode_provider()`, `fake_head_node_id()`: the fake multi-node NodeProvider
  that LocalNodeProvider subclasses, and the head's fixed node id;
- `kuberay_autoscaling_config()`: Ray's translation of a RayCluster into an autoscaler config.
Dashboard (_slim_agent):
- `dashboard_modules_package()`, `dashboard_utils()`, `dashboard_dir()`: where the
  dashboard's modules live, the loader servelab replaces, the folder of its programs.
"""

from __future__ import annotations

import os

import ray

from servelab.errors import ServelabError

WRITTEN_FOR = "2.60.0"  # equal to servelab.RAY_VERSION (tests/unit/test_ray_contract.py checks)

if ray.__version__ != WRITTEN_FOR:
    raise ServelabError(
        f"servelab's access to Ray's internals (servelab/cluster/_ray.py) was written for Ray {WRITTEN_FOR}, "
        f"but Ray {ray.__version__} is installed",
        layer="Ray runtime",
        hint=f"install ray=={WRITTEN_FOR}, or re-check the accessors in servelab/cluster/_ray.py against "
             f"Ray {ray.__version__} (run tests/unit/test_ray_contract.py) and update WRITTEN_FOR")


# Node launchers.

def ray_params_class():
    """RayParams: the settings a node is started with."""
    from ray._private.parameter import RayParams

    return RayParams


def node_class():
    """Node: one Ray node (its GCS, raylet, agents...) started from this process."""
    import ray._private.node

    return ray._private.node.Node


def ray_constants():
    """Ray's constants module: PROCESS_TYPE_RAYLET, PROCESS_TYPE_DASHBOARD, ENABLE_RAY_CLUSTER."""
    from ray._private import ray_constants as constants

    return constants


def services():
    """Ray's process-starting module: RAY_PATH, start_ray_process."""
    from ray._private import services as module

    return module


def agent_scripts() -> dict[str, str]:
    """The scripts the raylet's --dashboard_agent_command / --runtime_env_agent_command run."""
    ray_path = services().RAY_PATH
    return {"dashboard_agent": os.path.join(ray_path, "dashboard", "agent.py"),
            "runtime_env_agent": os.path.join(ray_path, "_private", "runtime_env", "agent", "main.py")}


def auth_token_setup():
    """The module with `maybe_enable_token_auth_if_token_available` and `ensure_token_if_auth_enabled`."""
    from ray._private.authentication import authentication_token_setup

    return authentication_token_setup


# Driver.

def raylet_config():
    """The raylet extension's Config (`initialize("")` re-reads RAY_* settings)."""
    from ray._raylet import Config

    return Config


def auth_token_loader():
    """The raylet extension's AuthenticationTokenLoader (`instance().reset_cache()`)."""
    from ray._raylet import AuthenticationTokenLoader

    return AuthenticationTokenLoader


# Autoscaler.

def fake_multinode_provider():
    """FakeMultiNodeProvider: the autoscaler's NodeProvider for many nodes on one machine."""
    from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

    return FakeMultiNodeProvider


def fake_head_node_id() -> str:
    """The head's node id under RAY_FAKE_CLUSTER=1 (the fake provider's first node)."""
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    return FAKE_HEAD_NODE_ID


def kuberay_autoscaling_config():
    """Ray's translation of a RayCluster custom resource (a dict) into an autoscaler config."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    return _derive_autoscaling_config_from_ray_cr


# Dashboard.

def dashboard_modules_package():
    """The package whose files define the dashboard's (head and agent) module classes."""
    import ray.dashboard.modules as package

    return package


def dashboard_utils():
    """The dashboard's utils module, whose `get_all_modules` finds the module classes to load."""
    import ray.dashboard.utils as utils

    return utils


def dashboard_dir() -> str:
    """The folder of Ray's dashboard programs (agent.py, dashboard.py)."""
    import ray.dashboard

    return os.path.dirname(ray.dashboard.__file__)
