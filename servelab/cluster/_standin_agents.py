"""Stand-ins for Ray's two per-node agents, for the small profile.

Each raylet starts a dashboard agent and a runtime-env agent, Python processes that import
Ray and take about 85 and 65 MiB. In a servelab course cluster they have little to do:
- the dashboard agent exports the node's metrics and serves its logs; the course reads
  metrics from the head (the Serve proxy runs there) and logs from files;
- the runtime-env agent builds runtime environments (pip, working_dir, ...); the course's
  applications ship in the image, and the one lesson that sets a runtime_env sets only
  env_vars.
The small profile runs these stand-ins instead: for the runtime-env agent on every node,
for the dashboard agent on worker nodes (the head keeps Ray's, slimmed: servelab.cluster._slim_agent).
A stand-in does what the raylet needs of its agent and nothing else, with the standard
library only (run as a script with `python -S`, a few MiB):

    python -S _standin_agents.py dashboard <Ray's agent arguments>
    python -S _standin_agents.py runtime-env <Ray's agent arguments>

- both record their ports in the session folder as Ray's agents do (-1: not served, as
  Ray's minimal dashboard agent writes), and exit when their raylet does;
- the runtime-env stand-in answers the raylet's HTTP API (protobuf bodies, encoded here by
  hand: three small messages). A runtime environment of env_vars only gets the context
  Ray's agent would build (the variables, set in the worker); any other field is refused
  with a reason that names the fix, and Serve reports it as the deployment's error.
"""

import hmac
import http.server
import json
import os
import stat
import sys
import threading

NOT_SERVED = -1
OK, FAILED = 0, 1  # AgentRpcStatus in Ray's runtime_env_agent.proto
BUILT = {"env_vars", "config"}  # config: setup timeouts and the like, nothing to build
REFUSAL = ("servelab's small profile runs no runtime-env agent, so runtime_env field(s) {fields} can't be "
           "built on this node (only env_vars can). Ship the code in the image (the course does), or start "
           "the cluster with SERVELAB_PROFILE=default.")


def options(argv: list) -> dict:
    """`--name=value` arguments (Ray passes all its agent options that way) as a dict."""
    out = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            out[name.replace("-", "_")] = value
    return out


def persist_port(session_dir: str, node_id: str, name: str, port: int) -> None:
    """What Ray's agents write through the raylet extension's persist_port: the raylet waits for these files."""
    path = os.path.join(session_dir, f"{name}_{node_id}")
    with open(path + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(path + ".tmp", path)


def exit_with_raylet() -> None:
    """Exit once the raylet is gone: it holds the write end of a pipe on our stdin (Ray's
    agents watch it the same way), and a raylet killed outright also reparents us. Without
    the pipe (RAY_enable_pipe_based_agent_to_parent_health_check=0) only the second holds."""
    parent = os.getppid()

    def watch_stdin():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            return
        os._exit(0)

    if stat.S_ISFIFO(os.fstat(0).st_mode):  # not /dev/null, where a read returns nothing at once
        threading.Thread(target=watch_stdin, daemon=True).start()
    while True:
        threading.Event().wait(1.0)
        if os.getppid() != parent:
            os._exit(0)


# Protobuf, just enough for runtime_env_agent.proto: varints and length-delimited fields.

def _varint(data: bytes, i: int) -> tuple:
    value = shift = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7


def read_fields(data: bytes) -> dict:
    """Field number -> value (int or bytes) of a serialized message; nested ones left as bytes."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ValueError(f"field {number} runs past the end of the message")
            fields[number], i = data[i:i + size], i + size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wire} not supported")
    return fields


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def reply(status: int = OK, error: str = "", context: str = "") -> bytes:
    """A GetOrCreateRuntimeEnvReply (status 1, error_message 2, serialized_runtime_env_context 3);
    the first two fields are DeleteRuntimeEnvIfPossibleReply's too."""
    out = b""
    if status:
        out += b"\x08" + _encode_varint(status)
    for number, text in ((2, error), (3, context)):
        if text:
            raw = text.encode()
            out += bytes([number << 3 | 2]) + _encode_varint(len(raw)) + raw
    return out


class Refused(Exception):
    """A runtime env this stand-in can't build; the message says why and what to do."""


def context(serialized_env: str) -> str:
    """The serialized RuntimeEnvContext Ray's agent would build for a runtime env of env_vars
    only; Refused, naming the fields it would have to build, for any other."""
    env = json.loads(serialized_env) if serialized_env else {}
    variables = env.get("env_vars") or {}
    unbuilt = sorted(k for k in set(env) - BUILT if not k.startswith("_"))  # _ray_commit and such: Ray's notes
    if unbuilt or not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise Refused(REFUSAL.format(fields=", ".join(unbuilt) or "env_vars (not all strings)"))
    return json.dumps({"command_prefix": [], "env_vars": variables, "py_executable": sys.executable,
                       "override_worker_entrypoint": None, "java_jars": []})


def answer(path: str, body: bytes) -> bytes:
    """The reply body for one of the raylet's requests."""
    if path == "/get_or_create_runtime_env":
        env = read_fields(body).get(1, b"").decode()
        try:
            return reply(context=context(env))
        except Refused as refused:
            return reply(FAILED, str(refused))
    if path in ("/delete_runtime_env_if_possible", "/get_runtime_envs_info"):
        return b""  # OK; nothing was created, nothing to list
    raise KeyError(path)


def expected_token() -> str:
    """The cluster's token when Ray's token auth is on (the raylet sends it), else ""."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return ""
    # Ray's own order: the variable, the file it names, ~/.ray/auth_token
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip()
    with open(os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")) as f:
        return f.read().strip()


class RuntimeEnvHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the raylet keeps its connection open
    token = ""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        sent = self.headers.get("Authorization", "") or self.headers.get("X-Ray-Authorization", "")
        if self.token and not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
            return self._send(401, b"missing or wrong token", "text/plain")
        try:
            out = answer(self.path, body)
        except KeyError:
            return self._send(404, b"not a runtime-env agent route", "text/plain")
        except (ValueError, IndexError) as e:  # a body that is not the message the route takes
            return self._send(400, f"bad request body: {e}".encode(), "text/plain")
        self._send(200, out, "application/octet-stream")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # the raylet asks often; its own log says enough
        pass


def runtime_env(opts: dict) -> None:
    RuntimeEnvHandler.token = expected_token()
    server = http.server.ThreadingHTTPServer((opts["node_ip_address"], int(opts["runtime_env_agent_port"])),
                                             RuntimeEnvHandler)
    server.daemon_threads = True
    persist_port(opts["session_dir"], opts["node_id"], "runtime_env_agent_port", server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exit_with_raylet()


def dashboard(opts: dict) -> None:
    for name in ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port"):
        persist_port(opts["session_dir"], opts["node_id"], name, NOT_SERVED)
    exit_with_raylet()


def main(argv: list) -> None:
    roles = {"dashboard": dashboard, "runtime-env": runtime_env}
    if len(argv) < 2 or argv[1] not in roles:
        sys.exit(f"usage: python -S _standin_agents.py {{{'|'.join(roles)}}} <Ray's agent arguments>")
    roles[argv[1]](options(argv[2:]))


if __name__ == "__main__":
    main(sys.argv)
