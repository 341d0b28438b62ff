"""The local serve Service (servelab/cluster/_service.py) against stand-in clusters.

Each stand-in "cluster" is a folder with the cluster.json and token a real one has, an owner
process (a sleeping child) and one loopback HTTP server playing both its dashboard (Serve's
REST API) and its Serve proxy. The service process itself is real: it proxies real HTTP and
runs KubeRay's promotion (rayservice_controller.go: a pending cluster takes traffic once every
application is RUNNING and the head's proxy answers /-/healthz) and the deletion after
rayClusterDeletionDelaySeconds.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler

import psutil
import pytest
import requests
from loopback_http import serving

from servelab.cluster import _processes as processes
from servelab.cluster import _service as service
from servelab.cluster._ports import Ports, free_port

PORT_FIELDS = list(Ports.__dataclass_fields__)


def handler_for(label: str, apps_status: dict):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, code: int, body: bytes, headers=()):
            self.send_response(code)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/api/serve/applications/":
                assert self.headers["Authorization"] == "Bearer token-" + label
                body = {"applications": {"app": {"status": apps_status["status"]}}}
                return self._send(200, json.dumps(body).encode())
            if self.path == "/-/healthz":
                return self._send(200, b"success")
            if self.path == "/broken":  # a replica that dies mid-answer
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"only ten b")
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if self.path == "/stream":  # a chunked answer, as a streaming Serve response is
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (b"one ", b"two ", label.encode()):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
                return None
            return self._send(200, json.dumps({"cluster": label, "path": self.path}).encode(),
                              [("Content-Type", "application/json"), ("X-Cluster", label)])

        def do_POST(self):
            if self.path == "/count":  # a large body, counted as it arrives (chunked or not)
                return self._send(200, json.dumps({"bytes": len(self._body())}).encode())
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            return self._send(201, json.dumps({"cluster": label, "echo": body.decode()}).encode())

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding") != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(parts)

    return Handler


def stand_in_cluster(stack: ExitStack, root, label: str, apps_status: dict, proxy_port: int | None = None) -> str:
    """A folder a LocalRay could have written, with a live owner and a live HTTP server
    (its dashboard, and its Serve proxy unless `proxy_port` names another)."""
    url = stack.enter_context(serving(handler_for(label, apps_status)))
    port = int(url.rsplit(":", 1)[1])
    folder = root / f"c{label}"
    folder.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                             env={**os.environ, processes.MARKER: str(folder)})
    stack.callback(owner.wait)  # callbacks run last-in first-out: kill, then reap
    stack.callback(lambda: owner.poll() is None and owner.kill())
    (folder / "auth_token").write_text("token-" + label)
    (folder / "cluster.json").write_text(json.dumps({
        "name": "svc", "dir": str(folder), "owner_pid": owner.pid,
        "owner_started": psutil.Process(owner.pid).create_time(), "num_cpus": 1, "num_gpus": 0,
        "ports": {**dict.fromkeys(PORT_FIELDS, 0), "serve": proxy_port or port, "dashboard": port},
        "workers": []}))
    return str(folder)


def wait(condition, seconds=15):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.fixture
def stack():
    with ExitStack() as stack:
        yield stack


def test_the_service_follows_kuberays_promotion_and_deletion(tmp_path, stack):
    old_apps, new_apps = {"status": "RUNNING"}, {"status": "DEPLOYING"}
    old = stand_in_cluster(stack, tmp_path, "old", old_apps)
    folder = service.create(tmp_path, "svc", free_port(), deletion_delay_s=1)
    stack.callback(service.stop, folder)
    with service.locked(folder) as state:
        state["pending"] = old
    service.start(folder, dict(os.environ))
    url = f"http://127.0.0.1:{service.read(folder)['port']}"
    session = requests.Session()  # keep-alive: the next request after the switch goes to the new cluster

    # the first cluster is pending until it is ready, then it is the active one
    wait(lambda: service.read(folder).get("active") == old)
    reply = session.get(url + "/hello?x=1")
    assert reply.json() == {"cluster": "old", "path": "/hello?x=1"} and reply.headers["X-Cluster"] == "old"
    assert session.post(url + "/echo", data=b"payload").json() == {"cluster": "old", "echo": "payload"}
    assert session.get(url + "/stream").text == "one two old"

    # an upgrade: a pending cluster takes no traffic until its applications are all RUNNING
    new = stand_in_cluster(stack, tmp_path, "new", new_apps)
    with service.locked(folder) as state:
        state["pending"] = new
    time.sleep(2.5)
    assert service.read(folder)["active"] == old and session.get(url + "/").json()["cluster"] == "old"
    new_apps["status"] = "RUNNING"
    wait(lambda: service.read(folder).get("active") == new)
    assert session.get(url + "/").json()["cluster"] == "new"  # the same keep-alive client, moved
    state = service.read(folder)
    assert state["pending"] is None and [d["dir"] for d in state["deleting"]] == [old]

    # the old cluster's processes go after the deletion delay, by their own pids
    wait(lambda: not processes.processes_under(old) and service.read(folder)["deleting"] == [])
    assert processes.processes_under(new)


def test_no_endpoint_yet_is_a_503_that_says_why(tmp_path, stack):
    pending = stand_in_cluster(stack, tmp_path, "p", {"status": "DEPLOY_FAILED"})
    folder = service.create(tmp_path, "svc", free_port(), deletion_delay_s=1)
    stack.callback(service.stop, folder)
    with service.locked(folder) as state:
        state["pending"] = pending
    service.start(folder, dict(os.environ))
    reply = requests.get(f"http://127.0.0.1:{service.read(folder)['port']}/anything", timeout=5)
    assert reply.status_code == 503 and "svc-serve-svc has no ready endpoints" in reply.json()["error"]


def test_the_service_ends_when_its_clusters_are_gone(tmp_path, stack):
    cluster = stand_in_cluster(stack, tmp_path, "only", {"status": "RUNNING"})
    folder = service.create(tmp_path, "svc", free_port(), deletion_delay_s=1)
    with service.locked(folder) as state:
        state["pending"] = cluster
    pid = service.start(folder, dict(os.environ))
    assert service.find(tmp_path, "svc") == folder and service.folder_of(cluster) == folder
    owner = psutil.Process(json.loads((tmp_path / "conly" / "cluster.json").read_text())["owner_pid"])
    owner.kill()  # the cluster died with its owner (a crashed kernel)
    wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, seconds=20)
    assert not folder.exists()


def started_service(stack, tmp_path, cluster: str) -> str:
    folder = service.create(tmp_path, "svc", free_port(), deletion_delay_s=1)
    stack.callback(service.stop, folder)
    with service.locked(folder) as state:
        state["pending"] = cluster
    service.start(folder, dict(os.environ))
    wait(lambda: service.read(folder).get("active") == cluster)
    return f"http://127.0.0.1:{service.read(folder)['port']}"


def test_bodies_stream_through_and_a_broken_answer_stays_broken(tmp_path, stack):
    url = started_service(stack, tmp_path, stand_in_cluster(stack, tmp_path, "c", {"status": "RUNNING"}))
    size = 65 * 1024**2 + 1  # more than aiohttp's default cap for a body read whole (the proxy streams)
    assert requests.post(url + "/count", data=b"x" * size, timeout=60).json() == {"bytes": size}
    chunks = (b"y" * 1024**2 for _ in range(3))  # chunked upload, no Content-Length
    assert requests.post(url + "/count", data=chunks, timeout=60).json() == {"bytes": 3 * 1024**2}
    # the replica sent its headers, then died: the client must see a failure, never a short 200
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url + "/broken", timeout=10).raise_for_status()
    assert requests.get(url + "/hello", timeout=5).json()["cluster"] == "c"  # and the Service goes on


@pytest.fixture
def websocket_echo():
    """A WebSocket endpoint on loopback (aiohttp, in a thread), as a Serve app with a
    FastAPI websocket route would offer one."""
    from aiohttp import WSMsgType, web

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    async def echo(request):
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str("echo: " + message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    async def healthz(request):
        return web.Response(text="success")

    async def main():
        app = web.Application()
        app.router.add_get("/ws", echo)
        app.router.add_get("/-/healthz", healthz)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["port"], box["runner"] = site._server.sockets[0].getsockname()[1], runner
        ready.set()

    thread = threading.Thread(target=lambda: (asyncio.set_event_loop(loop), loop.run_until_complete(main()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(10)
    yield box["port"]
    asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_a_websocket_passes_through(tmp_path, stack, websocket_echo):
    import aiohttp

    cluster = stand_in_cluster(stack, tmp_path, "ws", {"status": "RUNNING"}, proxy_port=websocket_echo)
    url = started_service(stack, tmp_path, cluster)

    async def talk():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url.replace("http", "ws") + "/ws", protocols=("chat",)) as ws:
                assert ws.protocol == "chat"
                await ws.send_str("hi")
                assert (await ws.receive(timeout=5)).data == "echo: hi"
                await ws.send_bytes(b"abc")
                assert (await ws.receive(timeout=5)).data == b"cba"
            async with session.get(url + "/ws") as plain:  # not an upgrade: the endpoint says what it wants
                return plain.status

    assert asyncio.run(talk()) in (400, 426)


def test_down_ends_what_is_left_of_a_cluster_the_service_was_deleting(tmp_path, stack, monkeypatch):
    from servelab.targets import local

    monkeypatch.setenv("SERVELAB_TMPDIR", str(tmp_path))
    url = started_service(stack, tmp_path, stand_in_cluster(stack, tmp_path, "live", {"status": "RUNNING"}))
    assert url
    # A cluster mid-deletion: its owner is gone (so LocalRay.find skips it), a process of it lingers.
    half = tmp_path / "chalf"
    half.mkdir()
    lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                 env={**os.environ, processes.MARKER: str(half)})
    stack.callback(lingering.wait)
    stack.callback(lambda: lingering.poll() is None and lingering.kill())
    folder = service.find(tmp_path, "svc")
    with service.locked(folder) as state:
        state["deleting"].append({"dir": str(half), "deleteAt": time.time() + 3600})
    assert local.down("svc")
    wait(lambda: lingering.poll() is not None)
    assert not half.exists() and service.find(tmp_path, "svc") is None
