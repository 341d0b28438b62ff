"""A RayService's serve Service on the local target, and KubeRay's part in its upgrades.

On Kubernetes, clients reach a RayService through `<name>-serve-svc`, a Service that KubeRay
points at one RayCluster at a time. During a `NewCluster` upgrade KubeRay starts a *pending*
cluster beside the active one, deploys the applications there, moves the Service to it once
every application is RUNNING, and deletes the old cluster `rayClusterDeletionDelaySeconds`
later (controllers/ray/rayservice_controller.go in ray-project/kuberay v1.7.0).

Here one small process per RayService plays both parts:
- the Service: an HTTP reverse proxy on the RayService's stable port (127.0.0.1), sending each
  request to the proxy of the cluster that is active *when the request arrives*, so keep-alive
  clients move to the new cluster with their next request;
- KubeRay's loop, once a second: promote a pending cluster whose applications are all RUNNING
  (and whose head's Serve proxy answers /-/healthz), and delete clusters whose deletion time
  has come (by their own pids, as `LocalRay.stop` does).
It exits when none of its clusters runs any more (they die with their owner), so a crashed
kernel leaves nothing behind.

The state is `service.json` in the service's own folder under the clusters' root; `local.up`
writes a pending cluster into it, this process writes everything else. Both hold a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

STATE = "service.json"
LOCK = "service.lock"
LOG = "service.log"
TICK_S = 1.0
QUIET_TICKS = 5  # passes in a row without a running cluster before the Service ends
# headers that belong to one hop (RFC 9110 section 7.6.1), not to the request or response
HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "content-length"}


# -- state shared with local.up ----------------------------------------------------------------

def create(root: Path, name: str, port: int, deletion_delay_s: float) -> Path:
    """A new service folder for RayService `name` on `port` (nothing runs yet)."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="s", dir=root))
    write(folder, {"name": name, "port": port, "deletionDelaySeconds": deletion_delay_s,
                   "active": None, "pending": None, "deleting": [], "pid": None, "started": None})
    return folder


def read(folder: Path) -> dict:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return {}


def write(folder: Path, state: dict) -> None:
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(folder / STATE)


@contextlib.contextmanager
def locked(folder: Path):
    """The state, for a read-modify-write under the service's lock (written back on exit)."""
    with open(folder / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = read(folder)
            yield state
            write(folder, state)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def find(root: Path, name: str) -> Path | None:
    """The folder of the running service of RayService `name`, if there is one."""
    for path in sorted(Path(root).glob(f"s*/{STATE}")):
        state = read(path.parent)
        if state.get("name") == name and _alive(state.get("pid"), state.get("started")):
            return path.parent
    return None


def folder_of(cluster_dir: str | os.PathLike) -> Path | None:
    """The service folder whose RayService this cluster belongs to (its siblings hold them)."""
    cluster_dir = str(cluster_dir)
    for path in sorted(Path(cluster_dir).parent.glob(f"s*/{STATE}")):
        state = read(path.parent)
        clusters = [state.get("active"), state.get("pending")] + [d["dir"] for d in state.get("deleting") or []]
        if cluster_dir in clusters:
            return path.parent
    return None


def _alive(pid, started) -> bool:
    """Is this the process that was started then? (A second of slack: another process may
    compute a start time from a boot time that moved; pid reuse within it is not a concern.)"""
    import psutil

    try:
        proc = psutil.Process(int(pid))
        return abs(proc.create_time() - float(started)) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, TypeError, ValueError):
        return False


def start(folder: Path, env: dict) -> int:
    """Start the service process for `folder`; returns once it listens on its port."""
    import subprocess

    import psutil

    from servelab.cluster import _processes as processes

    log = open(folder / LOG, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "servelab.cluster._service", str(folder)],
        env={**env, processes.MARKER: str(folder)}, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)
    with locked(folder) as state:
        state.update(pid=proc.pid, started=psutil.Process(proc.pid).create_time())
    port = read(folder)["port"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (folder / LOG).read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the serve Service process exited ({proc.returncode}) and does not listen on "
                               f"{port}; see {folder / LOG}: " + " | ".join(tail))
        if read(folder).get("listening") == proc.pid:  # it bound the port itself
            return proc.pid
        time.sleep(0.1)
    raise RuntimeError(f"the serve Service process did not listen on {port} within 30 s; see {folder / LOG}")


def stop(folder: Path, timeout: float = 60) -> None:
    """Stop the service process (its clusters are the caller's to stop) and remove its folder.
    The timeout covers a deletion in progress, which the process finishes before it exits
    (LocalRay.stop: 30 s, then SIGKILL and 10 s more)."""
    import signal

    import psutil

    state = read(folder)
    if _alive(state.get("pid"), state.get("started")):
        proc = psutil.Process(int(state["pid"]))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
    if not os.environ.get("SERVELAB_KEEP_LOGS"):
        shutil.rmtree(folder, ignore_errors=True)


# -- the process ---------------------------------------------------------------------------------

class _Cluster:
    """What the loop needs of a cluster: from its cluster.json and token file, no Ray import."""

    def __init__(self, folder: str):
        self.dir = Path(folder)
        state = json.loads((self.dir / "cluster.json").read_text())
        self.owner_pid, self.owner_started = state["owner_pid"], state["owner_started"]
        self.proxy_url = f"http://127.0.0.1:{state['ports']['serve']}"
        self.dashboard_url = f"http://127.0.0.1:{state['ports']['dashboard']}"
        self.token = (self.dir / "auth_token").read_text().strip()

    @property
    def alive(self) -> bool:
        return _alive(self.owner_pid, self.owner_started)


def _cluster(folder: str | None) -> _Cluster | None:
    if not folder:
        return None
    try:
        return _Cluster(folder)
    except (OSError, ValueError, KeyError):
        return None


async def _ready_for_traffic(session, cluster: _Cluster) -> bool:
    """KubeRay's test before it moves the Service (getAndCheckServeStatus, updateHeadPodServeLabel):
    at least one application, every one RUNNING, and the head's proxy healthy."""
    import aiohttp

    try:
        async with session.get(f"{cluster.dashboard_url}/api/serve/applications/",
                               headers={"Authorization": f"Bearer {cluster.token}"},
                               timeout=aiohttp.ClientTimeout(total=5)) as reply:
            if reply.status != 200:
                return False
            apps = (await reply.json(content_type=None)).get("applications") or {}
        if not apps or any(app.get("status") != "RUNNING" for app in apps.values()):
            return False
        async with session.get(f"{cluster.proxy_url}/-/healthz", timeout=aiohttp.ClientTimeout(total=2)) as health:
            return health.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return False


def _stop_cluster(folder: str) -> None:
    from servelab.cluster._localray import STATE_FILE, LocalRay

    try:
        LocalRay.from_state(Path(folder) / STATE_FILE).stop(show=False)
    except Exception as exc:  # a cluster that cannot be stopped must not stop the Service
        print(f"could not stop {folder}: {exc!r}", flush=True)


async def _reconcile(folder: Path, session, proxy: dict) -> bool:
    """One pass of KubeRay's part; False once no cluster of this service runs."""
    import asyncio

    state = read(folder)
    pending = _cluster(state.get("pending"))
    if pending is not None and pending.alive and await _ready_for_traffic(session, pending):
        with locked(folder) as state:
            if state.get("pending") == str(pending.dir):  # not replaced meanwhile
                if state.get("active"):
                    state["deleting"].append({"dir": state["active"],
                                              "deleteAt": time.time() + float(state["deletionDelaySeconds"])})
                state.update(active=str(pending.dir), pending=None, switchedAt=time.time())
                print(f"{time.strftime('%H:%M:%S')} serve Service now points at {pending.dir.name}", flush=True)
        state = read(folder)
    # traffic moves first: a deletion below may take a while (rayClusterDeletionDelaySeconds may be 0)
    active = _cluster(state.get("active"))
    proxy["target"] = active.proxy_url if active is not None and active.alive else None
    due = [d for d in state.get("deleting") or [] if d["deleteAt"] <= time.time()]
    for entry in due:
        print(f"{time.strftime('%H:%M:%S')} deleting the old cluster {Path(entry['dir']).name}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, _stop_cluster, entry["dir"])
        with locked(folder) as state:
            state["deleting"] = [d for d in state.get("deleting") or [] if d["dir"] != entry["dir"]]
    state = read(folder)
    folders = [state.get("active"), state.get("pending")] + [d["dir"] for d in state.get("deleting") or []]
    return any(c is not None and c.alive for c in map(_cluster, folders))


async def _serve(folder: Path) -> None:
    import asyncio
    import signal

    import aiohttp
    from aiohttp import web

    state = read(folder)
    proxy: dict = {"target": None}
    session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
    service = f"{state['name']}-serve-svc"

    def no_endpoint() -> web.Response:
        return web.json_response({"error": f"Service {service} has no ready endpoints yet: its RayService's "
                                           "applications are not all RUNNING"}, status=503)

    def unreachable(target: str, exc: BaseException) -> web.Response:
        return web.json_response({"error": f"Service {service}: the endpoint at {target} did not answer "
                                           f"({type(exc).__name__})"}, status=502)

    async def forward(request: web.Request) -> web.StreamResponse:
        target = proxy["target"]
        if target is None:
            return no_endpoint()
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await tunnel(request, target)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        reply = None
        try:  # the body streams both ways: neither side is held in memory
            async with session.request(request.method, target + request.rel_url.raw_path_qs, headers=headers,
                                       data=request.content if request.body_exists else None,
                                       allow_redirects=False) as upstream:
                reply = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_HEADERS:
                        reply.headers.add(key, value)
                if upstream.content_length is not None:
                    reply.content_length = upstream.content_length
                await reply.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await reply.write(chunk)
                await reply.write_eof()
                return reply
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            if reply is None or not reply.prepared:
                return unreachable(target, exc)
            # the status line went out already: cut the connection, so the client sees a broken
            # response (as it would through a Kubernetes Service), never a short one that looks whole
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError(f"upstream {target} broke off the response: {exc!r}") from None

    async def tunnel(request: web.Request, target: str) -> web.StreamResponse:
        """A WebSocket, passed through message by message (a Kubernetes Service passes its TCP stream)."""
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in HOP_HEADERS and not k.lower().startswith("sec-websocket-")}
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            upstream = await session.ws_connect("ws" + target[len("http"):] + request.rel_url.raw_path_qs,
                                                headers=headers, protocols=offered, autoping=False)
        except aiohttp.WSServerHandshakeError as exc:
            return web.json_response({"error": f"the endpoint refused the WebSocket: {exc.message}"},
                                     status=exc.status)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return unreachable(target, exc)
        client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (), autoping=False)
        await client.prepare(request)

        async def pump(source, sink) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                elif message.type == aiohttp.WSMsgType.PING:
                    await sink.ping(message.data)
                elif message.type == aiohttp.WSMsgType.PONG:
                    await sink.pong(message.data)
            await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK)

        pumps = [asyncio.ensure_future(pump(client, upstream)), asyncio.ensure_future(pump(upstream, client))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            await upstream.close()
            await client.close()
        return client

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", state["port"], reuse_address=True)
    await site.start()
    with locked(folder) as listening:  # `start` waits for this, not for any process on the port
        listening["listening"] = os.getpid()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    quiet = 0
    while not stopping.is_set():
        try:
            running = await _reconcile(folder, session, proxy)
        except Exception as exc:  # the Service keeps serving; the next pass tries again
            print(f"{time.strftime('%H:%M:%S')} reconcile failed: {exc!r}", flush=True)
            running = True
        quiet = 0 if running else quiet + 1
        if quiet >= QUIET_TICKS:  # every cluster of this RayService is gone: so is its Service
            print(f"{time.strftime('%H:%M:%S')} no cluster of this RayService runs any more: stopping", flush=True)
            break
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), TICK_S)
    await runner.cleanup()
    await session.close()
    if quiet >= QUIET_TICKS and not os.environ.get("SERVELAB_KEEP_LOGS"):
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    import asyncio

    argv = sys.argv[1:] if argv is None else argv
    asyncio.run(_serve(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
