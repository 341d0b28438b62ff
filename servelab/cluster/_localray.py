"""A private local Ray cluster that belongs to the process that starts it.

Why not `ray.init()` or `ray start` as they come:
- `ray.init()` without an address silently joins any other cluster on the
  machine, and `ray stop` stops every cluster of the user. Here each cluster
  has its own temp dir and ports, and is stopped by its own pids.
- Ray 2.60 rewrites `--node-ip-address=127.0.0.1` to the machine's address.
  Turning off Ray's multi-node IP detection keeps every listener that Ray lets
  us choose on 127.0.0.1 (Serve replicas' internal gRPC servers are the one
  exception: Ray 2.60 binds them to [::] unconditionally).
- Ray 2.59+ enables token auth for new local clusters and keeps one shared
  token in ~/.ray/auth_token. We keep auth on (the dashboard port can run
  arbitrary code) but give every cluster its own token file, so clusters of
  different users or graders never share a credential.

The head runs as `python -m servelab.cluster._head_node` (what `ray start --head --block`
does, without the Ray Client server) in its own session; once its processes are
up it execs into _node_supervisor.py, which waits in a few MiB instead of keeping
Ray's imports. On SIGTERM it stops its children, raylet first (no drain: the
whole cluster is going away, and Ray's autoscaler drains a node through the GCS
before it removes one). Ray fate-shares every child with its parent, and (by
default) the head dies with the process that started it, so a crashed notebook
kernel does not leave a cluster behind.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import requests

from servelab.clients._serve import ServeAPI
from servelab.clients._state import StateAPI
from servelab.cluster import _processes as processes
from servelab.cluster import _profiles as profiles
from servelab.cluster import _prometheus as prom
from servelab.cluster._links import browser_url, html_links, proxy_prefix
from servelab.cluster._ports import LOOPBACK, Ports, choose_ports, hold, release, visible_port
from servelab.errors import ServelabError
from servelab.faults import _flags as fault_flags
from servelab.observe._waiting import Failed, Stuck, wait_for

STATE_FILE = "cluster.json"
AUTOSCALER_CONFIG = "autoscaler.json"
HEAD_LOG = "head.log"  # what the head launcher (head_node.py) printed
RAY_STARTUP_LIMIT = "timed out during startup"  # Ray's message when a raylet missed its 30 s
# Ray puts AF_UNIX sockets (at most 107 bytes) at
# <temp dir>/session_<date>_<time>_<micros>_<pid>/sockets/plasma_store.
_SOCKET_SUFFIX_LEN = len("/session_2026-11-22_16-09-16_055240_4194304/sockets/plasma_store")
# Every node here shares 127.0.0.1, so only one of them can own the Serve port:
# on Kubernetes each pod has its own IP and a proxy may run on every node.
PROXY_LOCATION = "HeadOnly"
RAY_SITE = str(Path(__file__).resolve().parent / "ray_site")  # its sitecustomize runs in every Ray process
DEFAULT_OBJECT_STORE_BYTES = 256 * 1024**2


def max_nodes() -> int:
    """The most Ray nodes (head included) one cluster may run here: SERVELAB_MAX_NODES, default 6."""
    return int(os.environ.get("SERVELAB_MAX_NODES", "6"))


def default_root() -> Path:
    """Where clusters keep their temp dirs (short: Ray's socket paths are limited)."""
    return Path(os.environ.get("SERVELAB_TMPDIR") or f"/tmp/servelab-{os.getuid()}")


class LocalRay:
    """One Ray head node on 127.0.0.1 with Serve's HTTP proxy, owned by its starter.

    >>> with LocalRay() as cluster:          # doctest: +SKIP
    ...     cluster.connect()                # ray.init(address=<this cluster>)
    ...     serve.run(app)
    """

    def __init__(
        self,
        name: str = "servelab",
        *,
        num_cpus: int | None = None,
        num_gpus: int = 0,
        memory: int | None = None,
        root: str | os.PathLike | None = None,
        die_with_owner: bool = True,
        autoscale: dict | None = None,
        profile: str | None = None,
        service_port: int | None = None,
        on_folder=None,
        prometheus: bool | None = None,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.num_cpus = num_cpus if num_cpus is not None else max(4, os.cpu_count() or 1)
        self.num_gpus = num_gpus
        self.memory = memory  # bytes of Ray's logical `memory` resource (default: Ray's own estimate)
        self.root = Path(root) if root else default_root()
        self.die_with_owner = die_with_owner
        self.autoscale = autoscale  # a RayCluster spec: run Ray's autoscaler over its worker groups
        self.autoscaler_warnings: list[str] = []
        self.profile = profiles.choose(profile)  # SERVELAB_PROFILE, or by available memory
        # A RayService's clusters sit behind its serve Service (cluster/_service.py): serve_url is
        # the Service's stable port, proxy_url this cluster's own Serve proxy.
        self.service_port = service_port
        # Called with this cluster once its folder exists, before any Ray process starts: what a
        # manifest records there is known to status readers for the whole start-up.
        self.on_folder = on_folder
        # A Prometheus beside it (cluster/_prometheus.py): None lets SERVELAB_PROMETHEUS or the profile decide.
        self.prometheus_asked = prometheus
        # The head pod's container env (a RayCluster's), set for the head's Ray processes only.
        self.env = dict(env or {})
        self.prometheus_port: int | None = None
        self.prometheus_note = ""  # why none runs, when none does
        self.dir: Path | None = None
        self.ports: Ports | None = None
        self.owner_pid: int | None = None
        self._owner_started: float | None = None
        self.workers: list[dict] = []  # pid, started, node_id, ports, resources of each worker node
        self._children: list[subprocess.Popen] = []  # reaped by stop() when this process started them

    # -- addresses -------------------------------------------------------
    @property
    def gcs_address(self) -> str:
        return f"{LOOPBACK}:{self._ports.gcs}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self._ports.dashboard}"

    @property
    def serve_url(self) -> str:
        """Where clients send requests: the RayService's serve Service, else this cluster's proxy."""
        return f"http://{LOOPBACK}:{self.service_port}" if self.service_port else self.proxy_url

    @property
    def proxy_url(self) -> str:
        """This cluster's own Serve HTTP proxy (the head's, as KubeRay's health check reaches it)."""
        return f"http://{LOOPBACK}:{self._ports.serve}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self._ports.metrics}/metrics"

    @property
    def metrics_urls(self) -> list[str]:
        """Every node's metrics endpoint (head first): what Prometheus would scrape."""
        self._adopt_workers()
        return [self.metrics_url] + [f"http://{LOOPBACK}:{w['ports']['metrics']}/metrics"
                                     for w in self.workers if "metrics" in w.get("ports", {})]

    @property
    def prometheus_url(self) -> str | None:
        """The Prometheus that scrapes this cluster, or None (`prometheus_note` says why)."""
        return f"http://{LOOPBACK}:{self.prometheus_port}" if self.prometheus_port else None

    @property
    def prometheus(self):
        """PromQL against this cluster's Prometheus (servelab.clients.Prometheus)."""
        from servelab.clients.prometheus import Prometheus, PrometheusError

        if self.prometheus_url is None:
            raise PrometheusError(f"no Prometheus runs beside {self.name}: {self.prometheus_note}")
        return Prometheus(self.prometheus_url)

    def add_prometheus_rules(self, name: str, text: str) -> list[dict]:
        """Load a Prometheus rules file (YAML text) into this cluster's Prometheus as <name>.yaml,
        after `promtool check rules`; returns the rule groups Prometheus loaded from it."""
        return prom.add_rules(self._dir, self.prometheus, name, text)

    @property
    def token_file(self) -> Path:
        return self._dir / "auth_token"

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def serve_api(self) -> ServeAPI:
        return ServeAPI(self.dashboard_url, token=self.token)

    @property
    def _ports(self) -> Ports:
        if self.ports is None:
            raise RuntimeError("this LocalRay has not been started")
        return self.ports

    @property
    def _dir(self) -> Path:
        if self.dir is None:
            raise RuntimeError("this LocalRay has not been started")
        return self.dir

    def ray_env(self) -> dict[str, str]:
        """Environment for every process that runs or talks to this cluster."""
        return cluster_env(self._dir, self.profile)

    def cli_env(self) -> dict[str, str]:
        """What Ray's own CLIs (`ray`, `serve`) need to talk to this cluster unchanged: its GCS
        and dashboard addresses, its token, and the switches that keep Ray on 127.0.0.1.
        A shell: eval "$(servelab env --shell --name NAME)"; a notebook: os.environ.update(cluster.cli_env())."""
        return {**self.ray_env(), "RAY_ADDRESS": self.gcs_address, "RAY_DASHBOARD_ADDRESS": self.dashboard_url,
                "RAY_API_SERVER_ADDRESS": self.dashboard_url}

    def _node_env(self, pod_env: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for this cluster's node launchers, and so for all its Ray processes:
        the pod's container env, then ray_env(), the marker that finds them, and
        servelab/cluster/ray_site first on PYTHONPATH (what keeps the node local wins)."""
        path = os.pathsep.join(p for p in (RAY_SITE, (pod_env or {}).get("PYTHONPATH"),
                                           os.environ.get("PYTHONPATH")) if p)
        # `python` in a job's entrypoint is this environment's, as it is Ray's in a Ray image
        bins = os.pathsep.join(p for p in (str(Path(sys.executable).parent), os.environ.get("PATH")) if p)
        return {**os.environ, **(pod_env or {}), **self.ray_env(), processes.MARKER: str(self._dir),
                "PYTHONPATH": path, "PATH": bins}

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 180, show: bool = True) -> "LocalRay":
        if self.running:
            return self
        try:
            return self._start_once(timeout, show)
        except (Stuck, Failed) as error:  # the head exits when its raylet misses the limit
            if RAY_STARTUP_LIMIT not in str(error):
                raise
        # Ray gives a new node's raylet 30 s (fixed) to register; on a busy 2-core machine
        # the agents it waits for can take longer. The second try usually has the CPU.
        if show:
            print("  the machine was too busy for Ray's 30 s start-up limit; trying once more")
        return self._start_once(timeout, show)

    def _start_once(self, timeout: float, show: bool) -> "LocalRay":
        # before anything is created: a PortError leaves nothing behind
        self.ports = choose_ports(serve_free=self.service_port is not None,
                                  exclude={self.service_port} if self.service_port else None)
        hold(self.ports.serve, self.ports.dashboard, self.ports.metrics)
        wanted, self.prometheus_note = prom.choice(self.profile.prometheus, self.profile.name, self.prometheus_asked)
        if wanted:
            self.prometheus_port = visible_port("prometheus", taken=set(self.ports.as_dict().values()))
            hold(self.prometheus_port)
        self.root.mkdir(parents=True, exist_ok=True)
        # Short on purpose (the name lives in cluster.json): see _SOCKET_SUFFIX_LEN.
        self.dir = Path(tempfile.mkdtemp(prefix="c", dir=self.root))
        if len(str(self.dir / "r")) + _SOCKET_SUFFIX_LEN > 107:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise ServelabError(
                f"cluster directory {self.dir} is too long for Ray's socket paths "
                "(107 bytes); set SERVELAB_TMPDIR to a shorter directory, e.g. /tmp/sl", layer="Ray runtime")
        self.token_file.write_text(secrets.token_hex(32))
        self.token_file.chmod(0o600)
        if self.on_folder is not None:
            self.on_folder(self)
        if show:
            print(f"Starting a private Ray cluster '{self.name}' on {LOOPBACK} "
                  f"(Serve :{self.ports.serve}, dashboard :{self.ports.dashboard}, "
                  f"{self.profile.name} profile)")
            print("  in your browser: " + "   ".join(f"{k} {v}" for k, v in self.browser_links().items()))
        try:
            self._write_autoscaler_config()
            self._launch_head()
            self._write_state()
            self._wait_head(timeout, show)
            self._start_prometheus(timeout, show)
            self._start_serve_proxy(timeout, show)
        except BaseException:
            self.stop(show=False, keep_logs=True)  # the error message points at them
            raise
        return self

    def _write_autoscaler_config(self) -> None:
        if not self.autoscale:
            return
        from servelab.cluster import _autoscaler as autoscaling

        config, self.autoscaler_warnings = autoscaling.autoscaler_config(
            self.name, self.autoscale, gcs_address=self.gcs_address, temp_dir=str(self._dir / "r"),
            max_nodes=max_nodes())
        # What the head's container env put in the monitor's env, undone for the worker pods it
        # starts (autoscaler.worker_env); the variables servelab sets on every node stay.
        kept = {*env_servelab_keeps(self.profile), "PYTHONPATH"}
        config["provider"]["head_env"] = {k: os.environ.get(k) for k in self.env if k not in kept}
        config["provider"]["servelab_keeps"] = sorted(env_servelab_keeps(self.profile))
        tmp = self._dir / (AUTOSCALER_CONFIG + ".tmp")  # atomic: the monitor re-reads it every loop
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(self._dir / AUTOSCALER_CONFIG)
        for warning in self.autoscaler_warnings:
            print(f"warning: {warning}")

    def set_autoscaling(self, cluster_spec: dict) -> None:
        """New worker-group bounds for Ray's autoscaler, applied from its next loop: it re-reads
        its config file each time, as on KubeRay it re-reads the RayCluster each time."""
        if not (self._dir / AUTOSCALER_CONFIG).exists():  # (a handle from from_state has no spec)
            raise RuntimeError(f"{self.name} was started without Ray's autoscaler")
        self.autoscale = cluster_spec
        self._write_autoscaler_config()

    def _head_cmd(self) -> list[str]:
        from servelab.cluster import _head_node as head_node

        return head_node.command(
            str(self._dir / "r"), self._ports.as_dict(), num_cpus=self.num_cpus, num_gpus=self.num_gpus,
            memory=self.memory, object_store_memory=DEFAULT_OBJECT_STORE_BYTES,
            autoscaling_config=str(self._dir / AUTOSCALER_CONFIG) if self.autoscale else None,
            dashboard_modules=self.profile.dashboard_modules, monitor=self.profile.status_monitor,
            log_monitor=self.profile.log_monitor)

    def _launch_head(self) -> None:
        env = self._node_env(self.env)
        if self.prometheus_port:  # the dashboard's Metrics view asks it (Ray's RAY_PROMETHEUS_HOST)
            env["RAY_PROMETHEUS_HOST"] = self.prometheus_url
        if self.autoscale:
            from servelab.cluster._autoscaler import monitor_env

            env.update(monitor_env())
        proc = processes.spawn_node(self._head_cmd(), env, self._dir / HEAD_LOG,
                                    die_with_parent_thread=self.die_with_owner)
        self.owner_pid = proc.pid
        self._owner_started = psutil.Process(proc.pid).create_time()
        self._children.append(proc)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = (self._dir / HEAD_LOG).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_head(self, timeout: float, show: bool) -> None:
        def head_up():
            if not self._owner_alive():
                raise Failed("Ray runtime", "the head node exited while starting:\n" + self._log_tail())
            # The dashboard answers before the raylet has registered: wait for both. Serve's
            # module (which the serve CLI asks for its version) is loaded on every profile.
            return (" up on " in self._log_tail(1000)
                    and self.state_api.get("/api/ray/version", timeout=2).status_code == 200)

        wait_for(head_up, what="Ray head node and dashboard", layer="Ray runtime",
                 timeout=timeout, show=show,
                 hint=f"Logs: {self._dir / HEAD_LOG} and {self._dir / 'r'}/session_latest/logs/")

    def _start_prometheus(self, timeout: float, show: bool) -> None:
        if not self.prometheus_port:
            if show and self.prometheus_note:
                print(f"  Prometheus: {self.prometheus_note}")
            return
        proc = prom.launch(self._dir, self.prometheus_port, self._node_env(),
                           dashboard_modules=self.profile.dashboard_modules,
                           head_metrics=f"{LOOPBACK}:{self._ports.metrics}", die_with_parent_thread=self.die_with_owner)
        self._children.append(proc)
        prom.wait_ready(self.prometheus_url, proc, self._dir / prom.LOG, timeout, show)

    def _start_serve_proxy(self, timeout: float, show: bool) -> None:
        # The same REST call KubeRay makes: an empty application list starts
        # the Serve controller and its HTTP proxy with our host and port.
        self.serve_api.deploy({
            "proxy_location": PROXY_LOCATION,
            "http_options": {"host": LOOPBACK, "port": self._ports.serve},
            "applications": [],
        })

        def proxy_answers():
            # With no application yet, a healthy proxy says 503 "Route table is
            # not populated yet"; /-/healthz turns 200 once an app is deployed.
            r = requests.get(f"{self.proxy_url}/-/healthz", timeout=2)
            return r.status_code == 200 or "route table" in r.text.lower()

        wait_for(proxy_answers, what="Serve HTTP proxy", layer="Serve", timeout=timeout,
                 show=show, hint=f"Serve logs: {self._dir / 'r'}/session_latest/logs/serve/")

    def _owner_alive(self) -> bool:
        return self.owner_pid is not None and _same_process(self.owner_pid, self._owner_started)

    @property
    def running(self) -> bool:
        return self.dir is not None and self._owner_alive()

    def add_worker(self, *, num_cpus: float = 1, num_gpus: float = 0, memory: int | None = None,
                   labels: dict | None = None, resources: dict | None = None, env: dict | None = None,
                   timeout: float = 120, show: bool = True, wait: bool = True) -> str:
        """Start one more Ray node on 127.0.0.1 and wait until it joins; returns its node id.

        On Kubernetes each worker pod is one Ray node; here each is a process tree
        of its own with the resources the pod would advertise (GPUs are logical).
        """
        if not self.running:
            raise RuntimeError("start the cluster before adding workers")
        self._adopt_workers()
        from servelab.cluster import _worker_node as worker_node
        from servelab.cluster._ports import worker_ports

        ports = worker_ports()
        before = set(self.node_ids())
        cmd = worker_node.command(self.gcs_address, str(self._dir / "r"), ports, num_cpus=num_cpus,
                                  num_gpus=num_gpus, memory=memory, labels=labels, resources=resources)
        proc = processes.spawn_node(cmd, self._node_env(env), self._dir / f"worker-{len(self.workers)}.log",
                                    die_with_parent_thread=self.die_with_owner)
        record = {"pid": proc.pid, "started": psutil.Process(proc.pid).create_time(),
                  "ports": ports, "num_cpus": num_cpus, "num_gpus": num_gpus, "memory": memory,
                  "labels": labels or {}, "env": dict(env or {})}
        self.workers.append(record)
        self._children.append(proc)
        self._write_state()
        if not wait:  # the caller does not need the node id (a pod recreated in the background)
            return ""

        def joined():
            if proc.poll() is not None:
                raise Failed("Ray runtime", f"worker node exited with {proc.returncode}; "
                                            f"see {self._dir}/worker-{len(self.workers) - 1}.log")
            new = set(self.node_ids()) - before
            return new.pop() if new else None

        node_id = wait_for(joined, what=f"worker node ({num_cpus:g} CPU, {num_gpus:g} GPU)",
                           layer="Ray runtime", timeout=timeout, show=show)
        record["node_id"] = node_id
        self._write_state()
        return node_id

    @property
    def has_jobs_api(self) -> bool:
        """Whether the dashboard runs Ray's Jobs module (the small profile leaves it out)."""
        return self.profile.dashboard_modules is None or "JobHead" in self.profile.dashboard_modules

    def run_driver(self, entrypoint: str, *, working_dir: str | None = None, timeout: float = 300) -> str:
        """Run `entrypoint` (a shell command, as a Ray job's) as a driver of this cluster on this
        machine, and return its output. What a Ray job with a working_dir does when no Jobs API
        or runtime-env agent can: the nodes are processes on this machine, so they import from
        the folder itself (its path goes to every worker through the job's env_vars) instead of
        from an upload. Raises Failed, with the end of the output, if the command fails."""
        folder = str(Path(working_dir or ".").resolve())
        node_path = self._node_env()["PYTHONPATH"]
        job_config = {"runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join((folder, node_path))}}}
        env = {**os.environ, **self.cli_env(), "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(job_config),
               "PATH": self._node_env()["PATH"]}
        try:
            done = subprocess.run(entrypoint, shell=True, cwd=folder, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            output = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else (exc.output or "")
            raise Failed("application code", f"`{entrypoint}` did not end within {timeout:.0f}s:\n"
                                              f"{output[-1500:]}") from None
        if done.returncode != 0:
            raise Failed("application code", f"`{entrypoint}` exited {done.returncode}:\n{done.stdout[-1500:]}")
        return done.stdout

    @property
    def state_api(self) -> StateAPI:
        """Ray's State API on this cluster's dashboard, with its token (Ray token auth is on)."""
        return StateAPI(self.dashboard_url, token=self.token)

    def nodes(self) -> list[dict]:
        """The ALIVE Ray nodes (State API): node_id, labels, resources_total, is_head_node..."""
        return self.state_api.nodes()

    def node_ids(self) -> list[str]:
        """Ids of the ALIVE Ray nodes."""
        return [n["node_id"] for n in self.nodes()]

    def processes(self) -> list[psutil.Process]:
        """Every live process of this cluster (none of any other cluster)."""
        return processes.processes_under(str(self._dir)) if self.dir else []

    def stop(self, timeout: float = 30, show: bool = True, keep_logs: bool = False) -> None:
        """Stop this cluster by its own pids; idempotent."""
        if self.dir is None:
            return
        self._disconnect_driver()
        nodes = []
        for proc in processes.processes_under(str(self._dir)):
            try:
                if proc.status() == psutil.STATUS_STOPPED:  # SIGTERM waits while a process is
                    proc.resume()                            # stopped (servelab fault hang-replica)
                if "servelab.cluster._worker_node" in proc.cmdline() or proc.name() == "prometheus":
                    nodes.append(proc)  # (Prometheus is no child of the head: it needs its own SIGTERM)
            except psutil.Error:
                pass
        # Worker nodes first (those we added and those the autoscaler launched): a node
        # that outlives the head waits for it before giving up, which costs the timeout.
        for proc in nodes:
            try:
                proc.terminate()
            except psutil.Error:
                pass
        if self._owner_alive():
            os.kill(self.owner_pid, signal.SIGTERM)  # stops its children, raylet first
        left = processes.wait_gone(str(self._dir), min(timeout, 5))
        if left:
            # A worker node's own dashboard and runtime-env agents (Ray's, not the stand-ins) wait
            # about 30 s for their gone raylet and ignore SIGTERM meanwhile: a short last word,
            # then the SIGKILL below, not the whole timeout.
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
            left = processes.wait_gone(str(self._dir), min(max(timeout - 5, 1), 3))
        if left:  # did not go quietly: the pids are ours, so no mercy
            processes.kill_all(left)
            left = processes.wait_gone(str(self._dir), 10)
        for child in self._children:  # reap, so no zombie outlives the cluster
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if left:
            raise ServelabError("processes of this cluster survived SIGKILL:\n" + processes.describe(left),
                                layer="Ray runtime")
        self.workers, self._children = [], []
        if self.ports is not None:
            release(self.ports.serve, self.ports.dashboard, self.ports.metrics, self.prometheus_port or 0)
        (self._dir / STATE_FILE).unlink(missing_ok=True)
        if not (keep_logs or os.environ.get("SERVELAB_KEEP_LOGS")):
            shutil.rmtree(self._dir, ignore_errors=True)
        if show:
            print(f"Stopped Ray cluster '{self.name}'.")

    def _adopt_workers(self) -> None:
        """Worker nodes another process added (`servelab fault kill-node` from the CLI
        replaces a node) are in the state file: keep them there when adding one."""
        try:
            state = json.loads((self._dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return
        known = {w["pid"] for w in self.workers}
        self.workers += [w for w in state.get("workers", []) if w.get("pid") not in known]

    # -- driver ------------------------------------------------------------
    def connect(self, namespace: str = "servelab", log_to_driver: bool = False):
        """Connect this Python process to the cluster (an explicit-address ray.init).

        Replica logs are not streamed here by default: Ray writes them to the
        driver's stderr at arbitrary moments, where they would land in whatever
        notebook cell is running (and nbgrader fails a test cell that wrote to
        stderr). They stay in the session's logs/serve/ and in the dashboard.
        """
        import ray

        os.environ.update(self.ray_env())
        if ray.is_initialized():
            if ray.get_runtime_context().gcs_address == self.gcs_address:
                return ray.get_runtime_context()
            raise RuntimeError(
                "This process is already connected to another Ray cluster "
                f"({ray.get_runtime_context().gcs_address}); call ray.shutdown() first."
            )
        _refresh_ray_settings()
        return ray.init(address=self.gcs_address, namespace=namespace,
                        logging_level="WARNING", log_to_driver=log_to_driver)

    def _disconnect_driver(self) -> None:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            try:
                if ray.get_runtime_context().gcs_address == self.gcs_address:
                    ray.shutdown()
            except Exception:
                pass

    # -- state for other processes (CLI) -----------------------------------
    def _write_state(self) -> None:
        state = {
            "name": self.name,
            "dir": str(self._dir),
            "owner_pid": self.owner_pid,
            "owner_started": self._owner_started,
            "ports": self._ports.as_dict(),
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "profile": self.profile.name,
            "workers": self.workers,
            "env": self.env,
            "service_port": self.service_port,
            "prometheus_port": self.prometheus_port,
            "prometheus_note": self.prometheus_note,
        }
        # Atomic: other processes (the CLI, a RayService's serve Service) read it at any moment.
        tmp = self._dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._dir / STATE_FILE)

    @classmethod
    def from_state(cls, path: str | os.PathLike) -> "LocalRay":
        state = json.loads(Path(path).read_text())
        cluster = cls(state["name"], num_cpus=state["num_cpus"], num_gpus=state["num_gpus"],
                      root=Path(state["dir"]).parent, profile=state.get("profile", "default"),
                      service_port=state.get("service_port"))
        cluster.dir = Path(state["dir"])
        cluster.ports = Ports(**state["ports"])
        cluster.owner_pid = state["owner_pid"]
        cluster._owner_started = state["owner_started"]
        cluster.workers = state.get("workers", [])
        cluster.env = state.get("env", {})
        cluster.prometheus_port = state.get("prometheus_port")
        cluster.prometheus_note = state.get("prometheus_note", "")
        return cluster

    @classmethod
    def find(cls, root: str | os.PathLike | None = None) -> list["LocalRay"]:
        """Clusters started under root (by any process of this user) that still run.

        Directories of clusters whose owner died without stopping them (and
        that have no process left) are removed on the way.
        """
        root = Path(root) if root else default_root()
        found = []
        for state in sorted(root.glob(f"*/{STATE_FILE}")):
            try:
                cluster = cls.from_state(state)
            except (OSError, ValueError, KeyError):
                continue
            if cluster.running:
                found.append(cluster)
            elif not cluster.processes() and not os.environ.get("SERVELAB_KEEP_LOGS"):
                shutil.rmtree(cluster.dir, ignore_errors=True)  # its owner died without stop()
        return found

    def __enter__(self) -> "LocalRay":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"serve={self.serve_url}, dashboard={self.dashboard_url}" if self.ports else "not started"
        return f"<LocalRay {self.name!r} {where} running={self.running}>"

    def browser_links(self) -> dict[str, str]:
        """The dashboard and the Serve endpoint (and Prometheus's own page) as the learner's browser
        reaches them."""
        if not self.ports:
            return {}
        links = {"Ray dashboard": browser_url(self.ports.dashboard), "Serve endpoint": browser_url(self.ports.serve)}
        if self.prometheus_port and proxy_prefix() is None:  # its pages assume they are served at /
            links["Prometheus"] = browser_url(self.prometheus_port)
        return links

    def _repr_html_(self) -> str:
        if not self.ports:
            return html.escape(repr(self))
        return (f"<b>LocalRay {html.escape(self.name)}</b> running={self.running}"
                + html_links(self.browser_links(), "the dashboard asks for the token in cluster.token_file"))


def _same_process(pid: int, started: float | None) -> bool:
    """Is pid still the process we started (and not a recycled pid)?"""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - (started or 0)) < 1e-3 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _refresh_ray_settings() -> None:
    """Make an already-imported Ray see ray_env(): node IP, auth mode and token.

    Ray reads these once, at import. A notebook usually imports ray before it
    starts a cluster, so the values are refreshed here.
    """
    from servelab.cluster import _ray

    _ray.ray_constants().ENABLE_RAY_CLUSTER = False  # what RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 sets
    try:
        _ray.raylet_config().initialize("")
        _ray.auth_token_loader().instance().reset_cache()
    except Exception:  # older or newer Ray without these hooks: env vars suffice
        pass


def cluster_env(folder: Path, profile) -> dict[str, str]:
    """What LocalRay.ray_env sets for every process of the cluster in `folder`."""
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(folder / "auth_token"),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node IP stays 127.0.0.1
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # no drain on SIGTERM (see the module doc)
        "RAY_USAGE_STATS_ENABLED": "0",
        fault_flags.ENV: str(folder / "faults"),  # where `servelab fault` flags replicas
        profiles.ENV: profile.name,  # worker nodes and drivers follow the head
        **profile.env,
    }


def env_servelab_keeps(profile=None) -> set[str]:
    """The variables a pod's container env cannot change on a local node (LocalRay._node_env):
    the cluster's own, its marker, and PATH (this environment's Python first)."""
    return {*cluster_env(Path("/"), profile or profiles.choose()), processes.MARKER, "PATH"}

