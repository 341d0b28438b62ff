"""Fault injection: the same verbs on the local target and on Kubernetes.

    faults = LocalFaults(cluster)                # or KubernetesFaults(...)
    fault = faults.kill_replica("rag", "Retriever")
    faults.recovered(fault)                      # (True/False, what is still missing)

Each verb prints what it did and returns a `Fault`: when, where, what was hit,
and what "recovered" means for it. Every verb works through two views both
targets share (Serve's REST API and Ray's State API on the dashboard port) and
a few primitives that differ: how to signal a process on a Ray node, how to
drop a flag file there, how to take a node away, how to roll out a config.

Faults touch only the cluster they were given. On the local target every pid
is checked against that cluster's own processes before a signal is sent.
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from servelab.clients._dashboard import DashboardClients
from servelab.clients._serve import ServeAPI, ServeAPIError, replicas_in
from servelab.clients._state import GROUP_LABEL, HEAD_GROUP, StateAPI, node_group
from servelab.errors import ServelabError
from servelab.faults import _flags as fault_flags

VERBS = ("kill-replica", "hang-replica", "fail-health", "lose-state", "kill-node", "bad-rollout",
         "kill-controller", "kill-proxy", "kill-head")


class FaultError(ServelabError, RuntimeError):
    """A fault could not be injected (nothing to hit, not on this target, not ours).

    `.layer` is "Serve" (replicas, the controller and proxy, the config) unless the
    raise names another: Ray's nodes and processes, KubeRay's objects, Kubernetes pods.
    """

    layer = "Serve"


@dataclass
class Fault:
    verb: str
    target: str                        # "local:<cluster>" or "kubernetes:<namespace>/<name>"
    at: float                          # time.time() when it was injected
    hit: list[dict]                    # what was hit: replicas, actors, nodes, a config
    app: str | None = None
    deployment: str | None = None
    before: dict = field(default_factory=dict)  # what recovery is measured against

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        what = ", ".join(h.get("what", "?") for h in self.hit)
        where = f" in {self.app}/{self.deployment}" if self.deployment else (f" in {self.app}" if self.app else "")
        return f"[{self.target}] {self.verb}{where}: {what}"


# -- what both targets share -------------------------------------------------------
class Faults:
    """The verbs, written once over the primitives each target provides."""

    target = "?"

    # primitives (per target)
    @property
    def serve_api(self) -> ServeAPI:
        raise NotImplementedError

    @property
    def state_api(self) -> StateAPI:
        raise NotImplementedError

    def _signal(self, where: dict, pid: int, sig: signal.Signals) -> None:
        raise NotImplementedError

    def _raise_flag(self, where: dict, name: str) -> None:
        raise NotImplementedError

    def _take_node(self, node: dict) -> dict:
        raise NotImplementedError

    def _current_serve_config(self) -> dict:
        raise NotImplementedError

    def _roll_out(self, serve_config: dict) -> None:
        raise NotImplementedError

    def kill_head(self, *, show: bool = True) -> Fault:
        raise FaultError("kill-head is for the Kubernetes target, where KubeRay recreates the head pod "
                         "(and GCS fault tolerance keeps replicas serving meanwhile); here the head "
                         "is the cluster itself")

    # shared views
    def _nodes(self) -> dict[str, dict]:
        """ALIVE Ray nodes by id, each with its group ('head' for the head node)."""
        return {n["node_id"]: {"node_id": n["node_id"], "node_ip": n.get("node_ip"), "group": node_group(n),
                               "resources": n.get("resources_total") or {}}
                for n in self.state_api.nodes()}

    def _actors(self, class_name: str) -> list[dict]:
        return self.state_api.actors(class_name)

    def _replicas(self, app: str, deployment: str) -> list[dict]:
        reps = replicas_in(self.serve_api.deployment(app, deployment))
        return sorted((r for r in reps if r.get("pid")),
                      key=lambda r: r.get("replica_id", ""))

    def _pick_replicas(self, app: str, deployment: str, count: int, replica_id: str | None = None) -> list[dict]:
        if count < 1:
            raise FaultError(f"count must be at least 1, got {count}")
        reps = self._replicas(app, deployment)
        if replica_id is not None:
            reps = [r for r in reps if r.get("replica_id") == replica_id]
            if not reps:
                raise FaultError(f"{app}/{deployment} has no RUNNING replica {replica_id!r}")
        if len(reps) < count:
            raise FaultError(f"{app}/{deployment} has {len(reps)} RUNNING replica(s); cannot hit {count}")
        return reps[:count]

    def _record(self, verb: str, hit: list[dict], show: bool, **extra) -> Fault:
        fault = Fault(verb, self.target, time.time(), hit, **extra)
        if show:
            print(fault.describe())
        return fault

    def _replica_fault(self, verb: str, app: str, deployment: str, count: int, act, show: bool,
                       replica_id: str | None = None) -> Fault:
        before = len(self._replicas(app, deployment))
        hit = []
        for r in self._pick_replicas(app, deployment, count, replica_id):
            where = {"node_id": r.get("node_id"), "node_ip": r.get("node_ip")}
            act(where, int(r["pid"]))
            hit.append({"what": f"replica {r['replica_id']} (pid {r['pid']})", "replica_id": r["replica_id"],
                        "pid": int(r["pid"]), **where})
        return self._record(verb, hit, show, app=app, deployment=deployment,
                            before={"replicas": before})

    # the verbs
    def kill_replica(self, app: str, deployment: str, count: int = 1, *, replica_id: str | None = None,
                     show: bool = True) -> Fault:
        """The replica's process dies at once (SIGKILL), as in an OOM kill or a segfault.
        `replica_id` picks the replica (say, one that went bad without Serve noticing)."""
        return self._replica_fault("kill-replica", app, deployment, count,
                                   lambda where, pid: self._signal(where, pid, signal.SIGKILL), show, replica_id)

    def hang_replica(self, app: str, deployment: str, *, show: bool = True) -> Fault:
        """The replica's process stops (SIGSTOP): it answers nothing, so its health check times out."""
        return self._replica_fault("hang-replica", app, deployment, 1,
                                   lambda where, pid: self._signal(where, pid, signal.SIGSTOP), show)

    def fail_health(self, app: str, deployment: str, *, show: bool = True) -> Fault:
        """One replica's check_health starts raising (a flag only that replica sees)."""
        return self._replica_fault(
            "fail-health", app, deployment, 1,
            lambda where, pid: self._raise_flag(where, fault_flags.flag_name(fault_flags.UNHEALTHY, pid)),
            show)

    def lose_state(self, app: str, deployment: str, *, show: bool = True) -> Fault:
        """One replica's model silently forgets its weights (models that honour the flag, such
        as servelab.apps.sentiment): it still answers, wrongly. Only a check_health that
        inspects the model's state can notice."""
        return self._replica_fault(
            "lose-state", app, deployment, 1,
            lambda where, pid: self._raise_flag(where, fault_flags.flag_name(fault_flags.LOSE_STATE, pid)),
            show)

    def kill_node(self, group: str, *, show: bool = True) -> Fault:
        """A worker node of `group` dies with everything on it (on Kubernetes: its pod is deleted)."""
        nodes = self._nodes()
        candidates = sorted((n for n in nodes.values() if n["group"] == group), key=lambda n: n["node_id"])
        if group == HEAD_GROUP:
            raise FaultError("kill-node takes a worker group; the head is `kill-head` (Kubernetes only)")
        if not candidates:
            groups = sorted({n["group"] for n in nodes.values()} - {HEAD_GROUP})
            raise FaultError(f"no ALIVE node in group {group!r} (groups with nodes: {', '.join(groups) or 'none'})",
                             layer="Ray runtime")
        # The node with the most replicas on it: a fault on an idle node teaches little.
        on = self._replicas_by_node()
        node = max(candidates, key=lambda n: len(on.get(n["node_id"], [])))
        lost = on.get(node["node_id"], [])
        detail = self._take_node(node)
        hit = [{"what": f"node {_short(node['node_id'])} of {group}", **node, **detail}]
        return self._record("kill-node", hit, show,
                            before={"group_nodes": len(candidates), "lost_replicas": lost})

    def _replicas_by_node(self) -> dict[str, list[dict]]:
        """RUNNING replicas of every application, by the node they run on."""
        out: dict[str, list[dict]] = {}
        for app_name, app in self.serve_api.applications().items():
            for dep_name, dep in (app.get("deployments") or {}).items():
                for r in replicas_in(dep):
                    out.setdefault(r.get("node_id"), []).append(
                        {"app": app_name, "deployment": dep_name, "replica_id": r["replica_id"]})
        return out

    def bad_rollout(self, path: str | Path, *, show: bool = True) -> Fault:
        """Roll out the serveConfigV2 (or Serve config) in `path`; `rollback(fault)` undoes it."""
        new = read_serve_config(path)
        previous = self._current_serve_config()
        apps = [a.get("name", "default") for a in new.get("applications") or []]
        self._roll_out(new)
        hit = [{"what": f"config from {Path(path).name} (applications: {', '.join(apps)})", "file": str(path)}]
        return self._record("bad-rollout", hit, show, app=apps[0] if len(apps) == 1 else None,
                            before={"config": previous, "applications": apps})

    def rollback(self, fault: Fault, *, show: bool = True) -> None:
        """Roll out the config that ran before a bad-rollout fault."""
        if fault.verb != "bad-rollout":
            raise FaultError(f"only a bad-rollout can be rolled back, not {fault.verb}")
        self._roll_out(fault.before["config"])
        if show:
            print(f"[{self.target}] rolled back to the config that ran before {fault.hit[0]['file']}")

    def _kill_actor(self, verb: str, class_name: str, show: bool) -> Fault:
        actors = self._actors(class_name)
        if not actors:
            raise FaultError(f"no ALIVE {class_name} actor: is Serve running on this cluster?")
        nodes = self._nodes()
        hit = []
        for a in actors:
            where = {"node_id": a.get("node_id"), "node_ip": nodes.get(a.get("node_id"), {}).get("node_ip")}
            self._signal(where, int(a["pid"]), signal.SIGKILL)
            hit.append({"what": f"{class_name} (pid {a['pid']})", "actor_id": a.get("actor_id"),
                        "pid": int(a["pid"]), **where})
        return self._record(verb, hit, show)

    def kill_controller(self, *, show: bool = True) -> Fault:
        """Serve's controller dies; Ray restarts it, and requests keep flowing meanwhile."""
        return self._kill_actor("kill-controller", "ServeController", show)

    def kill_proxy(self, *, show: bool = True) -> Fault:
        """Serve's HTTP proxy dies; the controller starts a new one."""
        return self._kill_actor("kill-proxy", "ProxyActor", show)

    def release(self, fault: Fault) -> None:
        """Let a hung replica continue (SIGCONT) if Serve has not replaced (killed) it yet."""
        if fault.verb != "hang-replica":
            return
        for h in fault.hit:
            try:
                self._signal(h, h["pid"], signal.SIGCONT)
            except Exception:  # already gone: nothing to release
                pass

    def inject(self, verb: str, *args, show: bool = True, **kwargs) -> Fault:
        """Any verb by its CLI name, e.g. inject("kill-replica", "rag", "Retriever")."""
        if verb not in VERBS:
            raise FaultError(f"unknown fault {verb!r}; choose one of {', '.join(VERBS)}")
        return getattr(self, verb.replace("-", "_"))(*args, show=show, **kwargs)

    # recovery
    def recovered(self, fault: Fault) -> tuple[bool, str]:
        """Is the service back to what it was before the fault? (yes/no, what is missing)."""
        try:
            if fault.verb in ("kill-replica", "hang-replica", "fail-health", "lose-state"):
                return self._deployment_back(fault.app, fault.deployment,
                                             {h["replica_id"] for h in fault.hit}, fault.before["replicas"])
            if fault.verb == "kill-node":
                lost: dict[tuple, set] = {}
                for r in fault.before["lost_replicas"]:
                    lost.setdefault((r["app"], r["deployment"]), set()).add(r["replica_id"])
                for (app, dep), ids in lost.items():
                    ok, why = self._deployment_back(app, dep, ids, None)
                    if not ok:
                        return ok, why
                return True, "every replica the node took down was replaced"
            if fault.verb in ("kill-controller", "kill-proxy"):
                return self._actors_back(fault)
            if fault.verb in ("bad-rollout", "kill-head"):
                return self._applications_running()
        except (ServeAPIError, OSError, KeyError, ValueError) as exc:  # noqa: B014 — mid-recovery reads fail
            return False, f"status not readable yet: {str(exc)[:160]}"
        raise FaultError(f"no recovery rule for {fault.verb}")

    def _deployment_back(self, app: str, deployment: str, gone: set, want: int | None) -> tuple[bool, str]:
        dep = self.serve_api.deployment(app, deployment)
        running = {r["replica_id"] for r in replicas_in(dep)}
        target = dep.get("target_num_replicas") or want or 1
        if running & gone:
            return False, f"{deployment}: the faulty replica is still RUNNING"
        if len(running) < target:
            return False, f"{deployment}: {len(running)}/{target} replicas RUNNING"
        if dep.get("status") != "HEALTHY":
            return False, f"{deployment}: {dep.get('status')}"
        return True, f"{deployment}: {len(running)}/{target} replicas RUNNING, HEALTHY"

    def _actors_back(self, fault: Fault) -> tuple[bool, str]:
        class_name = "ServeController" if fault.verb == "kill-controller" else "ProxyActor"
        killed = {h["pid"] for h in fault.hit}
        alive = [a for a in self._actors(class_name) if int(a["pid"]) not in killed]
        if len(alive) < len(fault.hit):
            return False, f"{class_name}: {len(alive)}/{len(fault.hit)} restarted"
        details = self.serve_api.details()
        if class_name == "ProxyActor":
            bad = [p.get("status") for p in (details.get("proxies") or {}).values() if p.get("status") != "HEALTHY"]
            if bad:
                return False, f"proxy {bad[0]}"
        return True, f"{class_name} restarted (pid {alive[0]['pid']})"

    def _applications_running(self) -> tuple[bool, str]:
        apps = self.serve_api.applications()
        waiting = {n: a.get("status") for n, a in apps.items() if a.get("status") != "RUNNING"}
        if not apps or waiting:
            return False, "; ".join(f"{n} {s}" for n, s in waiting.items()) or "no applications"
        return True, "every application RUNNING"


def _short(node_id: str) -> str:
    """Enough of a node id to tell nodes apart (the fake provider's ids differ only at the end)."""
    return f"{node_id[:6]}…{node_id[-6:]}" if len(node_id) > 14 else node_id


def read_serve_config(path: str | Path) -> dict:
    """A Serve config from a RayService manifest (its serveConfigV2) or a plain Serve config file."""
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict):
        raise FaultError(f"{path}: expected a RayService manifest or a Serve config (a mapping)")
    if doc.get("kind") == "RayService":
        doc = yaml.safe_load((doc.get("spec") or {}).get("serveConfigV2") or "")
    if not isinstance(doc, dict) or not isinstance(doc.get("applications"), list):
        raise FaultError(f"{path}: no `applications` list (spec.serveConfigV2 of a RayService, "
                         "or a Serve config file)")
    return doc


# -- the local target ----------------------------------------------------------------
STOPPED_NODES = "stopped-nodes"  # ids of the Ray nodes servelab stopped, one a line


class LocalFaults(Faults):
    """Faults on a servelab local cluster: signals to its own pids, its own directory."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.target = f"local:{cluster.name}"

    @property
    def serve_api(self) -> ServeAPI:
        return self.cluster.serve_api

    @property
    def state_api(self) -> StateAPI:
        return self.cluster.state_api

    def _ours(self, pid: int):
        for proc in self.cluster.processes():
            if proc.pid == pid:
                return proc
        raise FaultError(f"pid {pid} is not a process of cluster {self.cluster.name!r}; not touching it",
                         layer="Ray runtime")

    def _signal(self, where: dict, pid: int, sig: signal.Signals) -> None:
        self._ours(pid).send_signal(sig)

    def _raise_flag(self, where: dict, name: str) -> None:
        folder = self.cluster.dir / "faults"
        folder.mkdir(exist_ok=True)
        (folder / name).touch()

    def stop_node(self, node: dict) -> int:
        """SIGKILL a worker node's whole process tree (no replacement); returns its session id."""
        from servelab.cluster import _processes as processes

        sid = self._node_session(node)  # each worker node runs in a session of its own
        doomed = [p for p in self.cluster.processes() if _sid(p.pid) == sid]
        processes.kill_all(doomed)
        processes.wait_gone_pids(doomed, 10)
        # Ray lists a dead node as ALIVE until its health checks run out; Kubernetes shows a
        # deleted pod gone at once. The pods view leaves out the nodes named here.
        with (self.cluster.dir / STOPPED_NODES).open("a") as handle:
            handle.write(node["node_id"] + "\n")
        return sid

    def kill_node_of(self, node: dict, *, show: bool = True) -> Fault:
        """This worker node dies with everything on it, and comes back as KubeRay would bring its
        pod back (`servelab delete pod`)."""
        detail = self._take_node(node)
        return self._record("kill-node", [{"what": f"node {_short(node['node_id'])}", **node, **detail}], show)

    def _take_node(self, node: dict) -> dict:
        """SIGKILL the node's whole process tree, then start a replacement as KubeRay would
        (with the autoscaler, replacing it is the autoscaler's job, as on Kubernetes)."""
        sid = self.stop_node(node)
        record = next((w for w in self.cluster.workers if w.get("pid") == sid), None)
        if self.cluster.autoscale or _has_autoscaler(self.cluster) or record is None:
            return {"pid": sid, "replaced_by": "autoscaler"}
        if not self.cluster._children:  # not the owner (the CLI): the new node must outlive us
            self.cluster.die_with_owner = False
        # Launched, not awaited, as KubeRay recreates a pod: the fault is the node's loss,
        # and recovery (measured from now) includes the new node's start. (Not from a
        # thread: a node dies with the thread that started it, see processes.die_with_parent.)
        shape = _replacement_shape(self.cluster, record)
        if shape is None:
            return {"pid": sid, "replaced_by": "nothing: its group is no longer in the RayCluster's spec"}
        self.cluster.add_worker(**shape, labels=record.get("labels"), env=record.get("env"), show=False, wait=False)
        return {"pid": sid, "replaced_by": "servelab, as KubeRay would"}

    def _node_session(self, node: dict) -> int:
        """The session of the process tree that runs this Ray node, found by its raylet."""
        flags = (f"--node_id={node['node_id']}", f"--node-id={node['node_id']}")
        head_sid = _sid(self.cluster.owner_pid) if self.cluster.owner_pid else None
        for proc in self.cluster.processes():
            try:
                cmd = proc.cmdline()
            except Exception:
                continue
            if any(arg in flags for arg in cmd) and "raylet" in " ".join(cmd[:1]):
                sid = _sid(proc.pid)
                if sid is not None and sid != head_sid:
                    return sid
        raise FaultError(f"no process of cluster {self.cluster.name!r} runs node {_short(node['node_id'])}",
                         layer="Ray runtime")

    def _current_serve_config(self) -> dict:
        details = self.serve_api.details()
        apps = [a["deployed_app_config"] for a in (details.get("applications") or {}).values()
                if a.get("deployed_app_config")]
        return {"applications": copy.deepcopy(apps)}

    def _roll_out(self, serve_config: dict) -> None:
        from servelab.targets._local import _deploy

        _deploy(self.cluster, serve_config, show=False)


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _replacement_shape(cluster, record: dict) -> dict | None:
    """What the re-created pod offers: KubeRay makes it from the RayCluster's template as it is
    now (raycluster_controller.go, reconcilePods), which may differ from the lost node's; None
    when its group left the spec, whose pods KubeRay then no longer reconciles."""
    from servelab.targets import _local_objects as objects

    shapes = objects.group_shapes(cluster)
    if shapes is None:  # started without a manifest: the same node again
        return {"num_cpus": record["num_cpus"], "num_gpus": record["num_gpus"], "memory": record.get("memory")}
    now = shapes.get((record.get("labels") or {}).get(GROUP_LABEL))
    return None if now is None else {"num_cpus": now.cpus, "num_gpus": now.gpus, "memory": now.memory}


def _has_autoscaler(cluster) -> bool:
    from servelab.cluster._localray import AUTOSCALER_CONFIG

    return cluster.dir is not None and (cluster.dir / AUTOSCALER_CONFIG).exists()


# -- the Kubernetes target --------------------------------------------------------------
# The labels KubeRay puts on its pods (ray-operator/controllers/ray/utils/constant.go).
CLUSTER_LABEL, POD_GROUP_LABEL, NODE_TYPE_LABEL = "ray.io/cluster", "ray.io/group", "ray.io/node-type"


def exec_command(action: str, pid: int | None = None, flag: str | None = None) -> list[str]:
    """What runs inside a Ray pod (`kubectl exec`) for one primitive. A flag goes where the
    replica looks (faults/_flags.py fault_dir): the folder SERVELAB_FAULT_DIR names in the
    container's environment, else /tmp/servelab-faults."""
    if action == "signal":
        return ["kill", "-s", flag or "KILL", str(pid)]
    if action == "flag":
        folder = f'"${{{fault_flags.ENV}:-{fault_flags.POD_DIR}}}"'
        return ["sh", "-c", f'mkdir -p {folder} && touch {folder}/{flag}']
    raise ValueError(action)


class KubernetesFaults(DashboardClients, Faults):
    """Faults on a RayService/RayCluster managed by KubeRay.

    Serve and the State API are read through a port-forward to the head's
    dashboard (`target.port_forward(name)`); processes are reached with
    `kubectl exec`; nodes are pods, deleted without grace as a crash would.
    """

    def __init__(self, target, name: str, dashboard_url: str, *, kind: str = "RayService",
                 namespace: str | None = None, token: str | None = None):
        self.k8s, self.name, self.kind = target, name, kind
        self.namespace = namespace or target.namespace or "default"
        self.dashboard_url, self.token = dashboard_url.rstrip("/"), token
        self.target = f"kubernetes:{self.namespace}/{name}"

    @property
    def _core(self):
        from kubernetes import client

        return client.CoreV1Api(self.k8s.api_client)

    def ray_cluster_name(self) -> str:
        if self.kind == "RayCluster":
            return self.name
        obj = self.k8s.get(self.name, "RayService", self.namespace) or {}
        active = ((obj.get("status") or {}).get("activeServiceStatus") or {}).get("rayClusterName")
        if not active:
            raise FaultError(f"RayService {self.name} has no active RayCluster yet", layer="KubeRay")
        return active

    def pods(self, **labels) -> list:
        selector = ",".join(f"{k}={v}" for k, v in {CLUSTER_LABEL: self.ray_cluster_name(), **labels}.items())
        return self._core.list_namespaced_pod(self.namespace, label_selector=selector).items

    def _pod_at(self, where: dict):
        for pod in self.pods():
            if pod.status and pod.status.pod_ip == where.get("node_ip"):
                return pod
        raise FaultError(f"no pod of {self.target} has IP {where.get('node_ip')}", layer="Kubernetes")

    def _exec(self, pod, command: list[str]) -> str:
        """`kubectl exec` in the Ray container (KubeRay puts it first): the command a learner
        would type, and kubectl's exit status, which the pod exec API leaves out."""
        if shutil.which("kubectl") is None:
            raise FaultError("kubectl is not installed; see https://kubernetes.io/docs/tasks/tools/",
                             layer="Kubernetes")
        argv = ["kubectl", "exec", "-n", self.namespace, pod.metadata.name, "-c", pod.spec.containers[0].name,
                "--", *command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise FaultError(f"`{shlex.join(argv)}` did not return within 60 s", layer="Kubernetes") from None
        if done.returncode != 0:
            raise FaultError(f"`{shlex.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-500:]}",
                             layer="Kubernetes")
        return done.stdout

    def _signal(self, where: dict, pid: int, sig: signal.Signals) -> None:
        self._exec(self._pod_at(where), exec_command("signal", pid, sig.name.removeprefix("SIG")))

    def _raise_flag(self, where: dict, name: str) -> None:
        self._exec(self._pod_at(where), exec_command("flag", flag=name))

    def _delete_pod(self, pod) -> None:
        self._core.delete_namespaced_pod(pod.metadata.name, self.namespace, grace_period_seconds=0)

    def _take_node(self, node: dict) -> dict:
        pod = self._pod_at(node)
        self._delete_pod(pod)
        return {"pod": pod.metadata.name, "replaced_by": "KubeRay"}

    def _nodes(self) -> dict[str, dict]:
        nodes = super()._nodes()
        by_ip = {p.status.pod_ip: (p.metadata.labels or {}) for p in self.pods() if p.status}
        for n in nodes.values():
            labels = by_ip.get(n["node_ip"]) or {}
            if labels.get(NODE_TYPE_LABEL) == "head":
                n["group"] = HEAD_GROUP
            elif labels.get(POD_GROUP_LABEL):
                n["group"] = labels[POD_GROUP_LABEL]
        return nodes

    def kill_head(self, *, show: bool = True) -> Fault:
        """Delete the head pod. Without GCS fault tolerance (an external Redis), every
        worker pod restarts with it and Serve is down until a new head is Ready; with it,
        replicas keep serving and the new head picks the state up from Redis."""
        heads = self.pods(**{NODE_TYPE_LABEL: "head"})
        if not heads:
            raise FaultError(f"no head pod for {self.target}", layer="Kubernetes")
        self._delete_pod(heads[0])
        return self._record("kill-head", [{"what": f"head pod {heads[0].metadata.name}",
                                           "pod": heads[0].metadata.name}], show)

    def _current_serve_config(self) -> dict:
        obj = self.k8s.get(self.name, "RayService", self.namespace)
        if obj is None or self.kind != "RayService":
            raise FaultError("bad-rollout needs a RayService (its serveConfigV2)", layer="KubeRay")
        return yaml.safe_load(obj["spec"]["serveConfigV2"])

    def _roll_out(self, serve_config: dict) -> None:
        from kubernetes import client

        body = {"spec": {"serveConfigV2": yaml.safe_dump(serve_config, sort_keys=False)}}
        client.CustomObjectsApi(self.k8s.api_client).patch_namespaced_custom_object(
            "ray.io", "v1", self.namespace, "rayservices", self.name, body)

