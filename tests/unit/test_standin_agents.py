"""servelab/cluster/_standin_agents.py on its own: the protobuf it speaks, checked against Ray's own
generated classes, and the processes the raylet would start (run here without a raylet)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from ray.core.generated import runtime_env_agent_pb2 as pb

from servelab.cluster import _standin_agents as standin
from servelab.cluster._ports import free_port

SCRIPT = Path(standin.__file__)
NODE = "ab" * 28


def ask(serialized_env: str) -> pb.GetOrCreateRuntimeEnvReply:
    request = pb.GetOrCreateRuntimeEnvRequest(serialized_runtime_env=serialized_env, job_id=b"\x01\x00\x00\x00",
                                              source_process="raylet")
    request.runtime_env_config.setup_timeout_seconds = 600  # a nested message to skip over
    body = standin.answer("/get_or_create_runtime_env", request.SerializeToString())
    return pb.GetOrCreateRuntimeEnvReply.FromString(body)


def test_an_empty_runtime_env_gets_the_context_rays_agent_builds():
    from ray._private.runtime_env.context import RuntimeEnvContext

    for empty in ("", "{}"):
        reply = ask(empty)
        assert reply.status == pb.AGENT_RPC_STATUS_OK and not reply.error_message
        assert json.loads(reply.serialized_runtime_env_context) == json.loads(RuntimeEnvContext().serialize())


def test_env_vars_reach_the_context():
    reply = ask(json.dumps({"env_vars": {"PYTHONPATH": "/pod/disk", "MODE": "x"}, "config": {"eager_install": True}}))
    assert reply.status == pb.AGENT_RPC_STATUS_OK
    assert json.loads(reply.serialized_runtime_env_context)["env_vars"] == {"PYTHONPATH": "/pod/disk", "MODE": "x"}


@pytest.mark.parametrize("env, named", [({"pip": ["requests"], "env_vars": {"A": "1"}, "_ray_commit": "x"}, "pip"),
                                        ({"working_dir": "s3://b/x.zip", "py_modules": []}, "py_modules, working_dir"),
                                        ({"env_vars": {"A": 1}}, "env_vars (not all strings)")])
def test_anything_else_is_refused_with_the_fields_and_the_fix(env, named):
    reply = ask(json.dumps(env))
    assert reply.status == pb.AGENT_RPC_STATUS_FAILED and not reply.serialized_runtime_env_context
    assert f"field(s) {named} can't be built" in reply.error_message
    assert "SERVELAB_PROFILE=default" in reply.error_message


def test_delete_and_info_answer_ok_and_unknown_routes_are_not_found():
    request = pb.DeleteRuntimeEnvIfPossibleRequest(serialized_runtime_env="{}", source_process="raylet")
    body = standin.answer("/delete_runtime_env_if_possible", request.SerializeToString())
    assert pb.DeleteRuntimeEnvIfPossibleReply.FromString(body).status == pb.AGENT_RPC_STATUS_OK
    assert pb.GetRuntimeEnvsInfoReply.FromString(standin.answer("/get_runtime_envs_info", b"")).total == 0
    with pytest.raises(KeyError):
        standin.answer("/nope", b"")


def test_long_fields_use_multi_byte_lengths():
    long_env = json.dumps({"env_vars": {f"V{i}": "x" * 50 for i in range(40)}})  # > 16 KiB of varint length
    reply = ask(long_env)
    assert len(json.loads(reply.serialized_runtime_env_context)["env_vars"]) == 40
    refused = ask(json.dumps({"pip": ["p" * 300]}))
    assert pb.GetOrCreateRuntimeEnvReply.FromString(standin.reply(standin.FAILED, refused.error_message)) == refused


def _start(role: str, tmp_path: Path, env: dict, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-u", "-S", str(SCRIPT), role, f"--node-id={NODE}", "--node-ip-address=127.0.0.1",
           f"--session-dir={tmp_path}", *extra]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, env=env, stderr=subprocess.PIPE)


def _port_file(tmp_path: Path, name: str, proc: subprocess.Popen) -> str:
    path = tmp_path / f"{name}_{NODE}"
    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"no {path.name}"
        time.sleep(0.05)
    return path.read_text()


def _exits_when_stdin_closes(proc: subprocess.Popen) -> None:
    proc.stdin.close()  # what the raylet's death looks like to its agents
    assert proc.wait(timeout=10) == 0


def test_the_runtime_env_process_serves_the_raylets_http_api_with_its_token(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    port = free_port()
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file), "PATH": "/usr/bin:/bin"}
    proc = _start("runtime-env", tmp_path, env, f"--runtime-env-agent-port={port}", "--gcs-address=127.0.0.1:1")
    try:
        assert _port_file(tmp_path, "runtime_env_agent_port", proc) == str(port)
        url = f"http://127.0.0.1:{port}/get_or_create_runtime_env"
        body = pb.GetOrCreateRuntimeEnvRequest(serialized_runtime_env='{"env_vars": {"A": "b"}}').SerializeToString()
        assert requests.post(url, data=body, timeout=5).status_code == 401
        assert requests.post(url, data=body, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
        with requests.Session() as session:  # one kept-alive connection, as the raylet's client keeps it
            session.headers["Authorization"] = "Bearer s3cret"
            for _ in range(3):
                reply = session.post(url, data=body, timeout=5)
                assert reply.status_code == 200
                context = pb.GetOrCreateRuntimeEnvReply.FromString(reply.content).serialized_runtime_env_context
                assert json.loads(context)["env_vars"] == {"A": "b"}
            assert session.post(url.replace("get_or_create", "make"), data=body, timeout=5).status_code == 404
            bad = session.post(url, data=b"\x0a\x05ab", timeout=5)  # a length past the end of the body
            assert bad.status_code == 400 and b"bad request body" in bad.content
    finally:
        if proc.poll() is None:
            _exits_when_stdin_closes(proc)
    assert proc.returncode == 0


def test_the_dashboard_stand_in_says_it_serves_nothing_and_exits_with_its_raylet(tmp_path):
    proc = _start("dashboard", tmp_path, {"PATH": "/usr/bin:/bin"}, "--grpc-port=1234", "--listen-port=5678")
    try:
        for name in ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port"):
            assert _port_file(tmp_path, name, proc) == "-1"
    finally:
        _exits_when_stdin_closes(proc)


def test_without_the_pipe_it_waits_for_its_parent_instead(tmp_path):
    # A raylet that gives its agents no pipe leaves them its own stdin (/dev/null here):
    # reading that returns nothing at once, which must not pass for the raylet's death.
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(sys.argv[1:], "
         "stdin=subprocess.DEVNULL); time.sleep(60)",
         sys.executable, "-S", str(SCRIPT), "dashboard", f"--node-id={NODE}", f"--session-dir={tmp_path}"])
    try:
        _port_file(tmp_path, "metrics_agent_port", parent)
        standin = next(p for p in psutil.Process(parent.pid).children() if "_standin_agents.py" in " ".join(p.cmdline()))
        time.sleep(2)
        assert standin.is_running() and standin.status() != psutil.STATUS_ZOMBIE
    finally:
        parent.kill()
        parent.wait()
    standin.wait(timeout=10)  # reparented: its poll of the parent pid sees it


def test_a_wrong_role_says_how_to_call_it():
    out = subprocess.run([sys.executable, "-S", str(SCRIPT), "metrics"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "usage:" in out.stderr and "dashboard|runtime-env" in out.stderr
