"""Ray's own CLIs (`ray`, `serve`) against a local cluster, set up by `servelab env --shell`.

What a platform engineer types against any Ray cluster (on KubeRay through a port-forward)
works unchanged here once the shell has the cluster's address, token and Ray's switches.
"""

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
import yaml

from servelab.cli import _main as cli

pytestmark = pytest.mark.live
BIN = Path(sys.executable).parent

APP = textwrap.dedent('''
    from ray import serve


    @serve.deployment
    class Echo:
        def __call__(self, request):
            return {"echo": request.query_params.get("say", "")}


    app = Echo.bind()
''')


@pytest.fixture(scope="module")
def shell(local_ray, tmp_path_factory):
    """The environment `eval "$(servelab env --shell --name NAME)"` leaves, and a folder with an app."""
    out = subprocess.run([str(BIN / "servelab"), "env", "--shell", "--name", local_ray.name],
                         capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        assert line.startswith("export ")
        key, _, value = line[len("export "):].partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    folder = tmp_path_factory.mktemp("app")
    (folder / "echo_app.py").write_text(APP)
    return env, folder


def run(shell, *argv, timeout=120):
    env, folder = shell
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], env=env, cwd=folder, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def test_env_names_the_cluster_and_its_token(local_ray, capsys):
    assert cli.main(["env", "--json", "--name", local_ray.name]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["RAY_ADDRESS"] == local_ray.gcs_address
    assert values["RAY_AUTH_TOKEN_PATH"] == str(local_ray.token_file)
    assert values["RAY_DASHBOARD_ADDRESS"] == local_ray.dashboard_url


def test_serve_run_of_an_application_file(shell, local_ray):
    # the seed's step 4: `serve run module:app` of a file the learner wrote, against the cluster
    run(shell, "serve", "run", "--non-blocking", "--working-dir", ".", "--name", "echo",
        "--route-prefix", "/echo", "echo_app:app", timeout=180)
    assert requests.get(f"{local_ray.serve_url}/echo?say=hi", timeout=10).json() == {"echo": "hi"}


def test_serve_build_deploy_and_status(shell, local_ray):
    _, folder = shell
    run(shell, "serve", "build", "echo_app:app", "--app-dir", ".", "-o", "config.yaml")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    app = config["applications"][0]
    # local:// names a folder every node has already: true here, where the nodes share this disk
    app.update(name="echo", route_prefix="/echo", runtime_env={"working_dir": f"local://{folder}"})
    app["deployments"] = [{"name": "Echo", "num_replicas": 2}]
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    run(shell, "serve", "deploy", "config.yaml")
    local_ray.serve_api.wait_running(["echo"], timeout=120, show=False)
    status = yaml.safe_load(run(shell, "serve", "status"))
    assert status["applications"]["echo"]["status"] == "RUNNING"
    assert status["applications"]["echo"]["deployments"]["Echo"]["replica_states"] == {"RUNNING": 2}
    assert requests.get(f"{local_ray.serve_url}/echo?say=again", timeout=10).json() == {"echo": "again"}


def test_ray_status_and_ray_list_actors(shell):
    assert "Resources" in run(shell, "ray", "status")
    actors = run(shell, "ray", "list", "actors", "--format", "json")
    classes = {a["class_name"] for a in json.loads(actors)}
    assert "ServeController" in classes
