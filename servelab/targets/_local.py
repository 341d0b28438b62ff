"""The local target: a KubeRay manifest brought up as a private Ray cluster on this machine.

One Ray node per head and per worker-group replica, with the resources KubeRay
would derive from the pod spec (servelab.manifests.placement); a RayService's
serveConfigV2 is deployed through Serve's REST API, as KubeRay deploys it.
Status is reported in RayService vocabulary, so the same checks read both targets.

With `enableInTreeAutoscaling: true`, Ray's autoscaler runs over the worker
groups (servelab.cluster._autoscaler); otherwise each group stays at `replicas`.

The module functions (`up`, `status(cluster)`, `wait_ready(cluster)`, `down(name)`,
`find(name)`) are what lessons and labs call; `LocalTarget` is the same target
behind the `Target` interface the Kubernetes target shares.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import yaml

from servelab.clients._state import GROUP_LABEL, node_group
from servelab.cluster import _processes as processes
from servelab.cluster import _service as service
from servelab.cluster._localray import AUTOSCALER_CONFIG, PROXY_LOCATION, LocalRay, default_root, env_servelab_keeps, max_nodes
from servelab.cluster._ports import LOOPBACK, visible_port
from servelab.errors import ServelabError
from servelab.manifests import placement
from servelab.observe._waiting import Failed, Stuck, wait_for
from servelab.targets import _kuberay as kuberay
from servelab.targets import _local_objects as objects
from servelab.targets._base import Target
from servelab.targets._local_status import applications, cluster_at, status
from servelab.targets._manifest import ManifestError, read_manifest  # noqa: F401  (ManifestError is part of this API)
from servelab.targets._vocabulary import condition, is_ready, ready_condition

MANIFEST_STATE = objects.MANIFEST_STATE


def _parts(doc: dict) -> tuple[dict, dict | None]:
    spec = doc["spec"]
    if doc["kind"] == "RayService":
        return spec["rayClusterConfig"], yaml.safe_load(spec["serveConfigV2"])
    return spec, None


def _service_of(name: str) -> Path | None:
    return service.find(default_root(), name)


def find(name: str) -> LocalRay | None:
    """The running cluster `name` stands for: a RayService's active cluster (its pending one
    before the first switch), else the cluster of that name."""
    folder = _service_of(name)
    if folder is not None:
        svc = service.read(folder)
        for key in ("active", "pending"):
            cluster = cluster_at(svc.get(key))
            if cluster is not None:
                return cluster
    for cluster in LocalRay.find():
        if cluster.name == name:
            return cluster
    return None


def up(path: str | Path, *, show: bool = True, timeout: float = 300,
       die_with_owner: bool = True, upgrade: str | None = None) -> LocalRay:
    """Bring a manifest up (idempotent), deciding as KubeRay decides (servelab.targets._kuberay):

    - a new name: a new cluster;
    - `serveConfigV2` changed: submitted to the running cluster (in place);
    - `rayClusterConfig` changed only in replicas/minReplicas/maxReplicas (or groups appended
      at the end): the running cluster is scaled in place, nodes added or removed;
    - any other cluster change: `upgradeStrategy.type` decides. `None`: nothing happens, and
      `up` says so. `NewCluster` (the default): a pending cluster starts beside the active one,
      the applications are deployed there, the serve Service (the stable `serve_url`) moves to
      it once they are all RUNNING, and the old cluster is deleted after
      `rayClusterDeletionDelaySeconds` (60 s by default); `up` returns the new cluster once
      traffic switched. Two clusters need twice the memory: on the small profile `up` refuses
      unless `upgrade="replace"` (stop, then start: downtime, and said so).
    - a RayCluster whose pod templates changed: its spec changes but its running pods keep
      theirs (KubeRay's default), and pods added from then on use the new templates; with
      `upgradeStrategy.type` `Recreate`, every pod is re-created.

    die_with_owner=False lets the cluster outlive the caller (the CLI's case).
    """
    doc = read_manifest(path)
    name = doc["metadata"]["name"]
    cluster_spec, serve_config = _parts(doc)
    cluster = find(name)
    if cluster is None:
        return _create(doc, show, timeout, die_with_owner)
    # During an upgrade KubeRay compares the manifest with the *pending* cluster, not the
    # active one, and sends serveConfigV2 there (shouldPrepareNewCluster, reconcileServe).
    active, pending = _clusters_of(name)
    upgrading = pending is not None and active is not None
    if pending is not None:
        cluster = pending
    have = objects.manifest_state(cluster)
    old_doc = have.get("doc")
    if old_doc is None or old_doc.get("kind") != doc["kind"]:  # not brought up from a manifest
        if show:
            print(f"{name}: a cluster of that name runs without this manifest: replacing it")
        cluster.stop(show=show)
        return _create(doc, show, timeout, die_with_owner)
    old_spec, old_serve = _parts(old_doc)

    def in_place(keep_cluster_spec: bool) -> LocalRay:
        updated = _update_in_place(cluster, doc, old_doc, show, timeout, keep_cluster_spec=keep_cluster_spec)
        if upgrading:  # as a NewCluster `up` does, return once traffic moved to the pending cluster
            _await_switch(pending, Path(have["service"]), objects.ray_cluster_name(active), show, timeout)
        return updated

    if doc["kind"] == "RayCluster":
        return _update_raycluster(cluster, doc, old_doc, have, show, timeout, die_with_owner)
    change = kuberay.classify_update(old_spec, cluster_spec)
    if change != "new-cluster":  # replicas, bounds, appended groups, serveConfigV2: in place
        if upgrading and show:
            print(f"{name}: an upgrade is in progress: the change goes to the pending cluster "
                  f"{objects.ray_cluster_name(pending)}, as KubeRay sends it there; the active one stays as it is")
        return in_place(keep_cluster_spec=False)
    strategy = kuberay.upgrade_type(doc["spec"])
    if strategy == "None":
        if show:
            print(f"{name}: rayClusterConfig changed, but upgradeStrategy.type is None: KubeRay leaves the running "
                  "cluster as it is, and so does the local target (delete the RayService and re-create it to apply)")
        return in_place(keep_cluster_spec=True)
    if upgrade not in (None, "pending", "replace"):
        raise ServelabError(f"upgrade={upgrade!r}: use 'pending' (KubeRay's NewCluster) or 'replace'")
    if upgrade == "replace":
        if show:
            print(f"{name}: rayClusterConfig changed: replacing the cluster as asked (stop, then start: "
                  "downtime; KubeRay's NewCluster upgrade would have none)")
        folder = Path(have["service"]) if have.get("service") else None
        port = service.read(folder).get("port") if folder else None
        for old in [c for c in LocalRay.find() if c.name == name]:  # active, pending and deleting alike
            old.stop(show=show)
        if folder is not None:
            service.stop(folder)  # the new one takes the same port: serve_url stays
        return _create(doc, show, timeout, die_with_owner, generation=have.get("generation", 1) + 1,
                       note=LOCAL_REPLACED, port=port)
    return _upgrade(cluster, doc, show, timeout, die_with_owner)


def _clusters_of(name: str) -> tuple[LocalRay | None, LocalRay | None]:
    """A RayService's running active and pending clusters (None, None for anything else)."""
    folder = _service_of(name)
    if folder is None:
        return None, None
    svc = service.read(folder)
    active, pending = cluster_at(svc.get("active")), cluster_at(svc.get("pending"))
    if active is not None and pending is not None and active.dir == pending.dir:
        pending = None
    return active, pending


LOCAL_REPLACED = ("The last rayClusterConfig change replaced the cluster (upgrade='replace'): the service was down "
                  "until the new one was Ready; KubeRay's NewCluster upgrade has no downtime.")
INCREMENTAL_LIMIT = ("NewClusterWithIncrementalUpgrade moves traffic in steps through the Gateway API on KubeRay; "
                     "the local target has no Gateway, so it switches all traffic at once, as NewCluster does.")
TWO_CLUSTERS = ("A NewCluster upgrade runs two clusters at once: the pending one beside the active one, until "
                "traffic switched and the old one is deleted.")


def _create(doc: dict, show: bool, timeout: float, die_with_owner: bool, generation: int = 1,
            note: str = "", port: int | None = None) -> LocalRay:
    name = doc["metadata"]["name"]
    cluster_spec, serve_config = _parts(doc)
    if doc["kind"] != "RayService":
        # Recorded before the head starts: a status read during start-up sees the pods still to
        # come, and the RayCluster not ready yet, as KubeRay reports it.
        return _start(name, cluster_spec, show, timeout, die_with_owner, on_folder=lambda cluster: (
            objects.write_manifest_state(cluster, {"doc": doc, "generation": generation, "note": note,
                                                   "rayClusterName": name, "desired": _desired(cluster_spec),
                                                   # what KubeRay stamps on the head pod (Recreate compares it)
                                                   "podsHash": kuberay.spec_hash(cluster_spec)})))
    # A RayService: its serve Service first (the stable port), then its first cluster, which
    # is pending until its applications are RUNNING, as KubeRay starts every RayService.
    folder = service.create(default_root(), name, port or visible_port("serve"), kuberay.deletion_delay_s(doc["spec"]))
    cluster = None
    try:
        def register(new: LocalRay) -> None:
            _record(new, doc, generation, folder)
            with service.locked(folder) as svc:
                svc.update(pending=str(new.dir), doc=doc, generation=generation, note=note)

        cluster = _start(name, cluster_spec, show, timeout, die_with_owner, service_port=service.read(folder)["port"],
                         on_head=register)
        service.start(folder, os.environ)
        _deploy(cluster, serve_config, show)
    except BaseException:
        if cluster is not None:
            cluster.stop(show=False, keep_logs=True)
        service.stop(folder)
        raise
    return cluster


def _record(cluster: LocalRay, doc: dict, generation: int, folder: Path) -> None:
    """What a RayService's cluster keeps about itself: the manifest it was made from, its
    RayCluster name (`<service>-<5 chars>`, GenerateRayClusterName), its service folder."""
    name = doc["metadata"]["name"]
    objects.write_manifest_state(cluster, {
        "doc": doc, "generation": generation, "rayClusterGeneration": 1, "service": str(folder),
        "rayClusterName": kuberay.ray_cluster_name(name, str(cluster.dir)),
        "desired": _desired(doc["spec"]["rayClusterConfig"])})


def _upgrade(current: LocalRay, doc: dict, show: bool, timeout: float, die_with_owner: bool) -> LocalRay:
    """KubeRay's NewCluster upgrade (rayservice_controller.go): a pending cluster beside the
    active one; the serve Service moves to it once its applications are all RUNNING.
    `current` is the cluster the manifest was compared with (the pending one, if any)."""
    name = doc["metadata"]["name"]
    folder = Path(objects.manifest_state(current)["service"])
    svc = service.read(folder)
    serving = cluster_at(svc.get("active"))
    old_name = objects.ray_cluster_name(serving or current)
    small = current.profile.name == "small"
    if small and serving is not None:
        raise ServelabError(
            f"{name}: rayClusterConfig changed, and KubeRay's NewCluster upgrade needs a second cluster beside the "
            f"running one; the small profile has no memory for two. {TWO_CLUSTERS}",
            layer="KubeRay",
            hint="choose: local.up(FILE, upgrade='replace') or `servelab up FILE --replace` stops the cluster and "
                 "starts the new one (downtime); or run with SERVELAB_PROFILE=default where memory allows")
    # An earlier pending cluster that never took traffic is replaced by the new one; KubeRay
    # deletes it rayClusterDeletionDelaySeconds later, as any cluster it no longer names
    # (cleanUpRayClusterInstance). It is handed over once the new one is named, so the serve
    # Service always has a cluster to wait for.
    stale = cluster_at(svc.get("pending"))
    generation = svc.get("generation", 1) + 1
    cluster_spec, serve_config = _parts(doc)
    if show and serving is not None:
        print(f"{name}: rayClusterConfig changed: preparing a pending RayCluster beside {old_name} "
              f"(upgradeStrategy {kuberay.upgrade_type(doc['spec'])}); {old_name} keeps serving meanwhile")
    note = INCREMENTAL_LIMIT if kuberay.upgrade_type(doc["spec"]) == "NewClusterWithIncrementalUpgrade" else ""
    if note and show:
        print(f"{name}: {note}")
    delay = kuberay.deletion_delay_s(doc["spec"])
    stop_stale_now = False

    started: dict[str, str] = {}

    def register(new: LocalRay) -> None:  # KubeRay names the pending cluster as it creates it
        nonlocal stale, stop_stale_now
        started["dir"], started["name"] = str(new.dir), objects.ray_cluster_name(new)
        _record(new, doc, generation, folder)
        with service.locked(folder) as svc:
            if stale is not None and svc.get("pending") != str(stale.dir):
                stale = None  # promoted while the new cluster started: it serves, and goes after the next switch
            elif stale is not None and small:
                stop_stale_now = True  # no memory for it to linger: said below
            elif stale is not None:
                svc["deleting"].append({"dir": str(stale.dir), "deleteAt": time.time() + delay})
            svc.update(pending=str(new.dir), doc=doc, generation=generation, note=note, deletionDelaySeconds=delay)

    pending = None
    try:
        try:
            pending = _start(name, cluster_spec, show, timeout, die_with_owner, service_port=svc["port"],
                             on_head=register)
        except Failed as exc:
            # A newer manifest replaced this cluster while its nodes were still starting, and its
            # deletion took those nodes away: that is the reason, not the node that failed.
            if started and service.read(folder).get("pending") != started["dir"]:
                raise _superseded(started["name"]) from exc
            raise
        if stale is not None and show:
            stale_name = objects.ray_cluster_name(stale)
            print(f"{name}: the pending cluster {stale_name} never took traffic and is replaced by "
                  f"{objects.ray_cluster_name(pending)}; "
                  + (f"deleting {stale_name} now (the small profile has no memory to keep it "
                     f"rayClusterDeletionDelaySeconds={delay:g}, as KubeRay would)" if stop_stale_now
                     else f"{stale_name} is deleted in {delay:g}s (rayClusterDeletionDelaySeconds)"))
        if stale is not None and stop_stale_now:
            stale.stop(show=False)
        # the latest manifest's serveConfigV2: it may have changed in place while the cluster started
        latest = objects.manifest_state(pending).get("doc") or doc
        _deploy(pending, _parts(latest)[1], show)
        _await_switch(pending, folder, old_name, show, timeout)
    except Failed:
        raise  # KubeRay keeps the pending cluster and keeps trying; so does its status here
    except BaseException:
        if pending is not None:
            pending.stop(show=False, keep_logs=True)
        with service.locked(folder) as svc:
            if cluster_at(svc.get("pending")) is None:  # ours, and it did not come up
                svc["pending"] = None
        raise
    return pending


def _superseded(cluster_name: str) -> Failed:
    return Failed("KubeRay", f"{cluster_name} was replaced by a newer manifest before it took traffic; "
                  f"it is deleted after rayClusterDeletionDelaySeconds, as KubeRay deletes it",
                  hint="the newer `up` waits for its own cluster; `servelab get rayservice` shows it")


def _await_switch(pending: LocalRay, folder: Path, old_name: str, show: bool, timeout: float) -> None:
    """Wait until the serve Service points at `pending` (every application RUNNING, its head's
    proxy healthy); a DEPLOY_FAILED application ends the wait, and the old cluster still serves."""
    new_name = objects.ray_cluster_name(pending)
    had_active = bool(service.read(folder).get("active"))

    def switched():
        svc = service.read(folder)
        if svc.get("active") == str(pending.dir):
            return True
        if svc.get("pending") != str(pending.dir):
            raise _superseded(new_name)
        for app_name, app in pending.serve_api.applications().items():
            if app.get("status") == "DEPLOY_FAILED":
                raise Failed("application code", f"the pending cluster {new_name} cannot run application "
                             f"{app_name!r}: {app.get('message', '')[-600:]}",
                             hint=f"{old_name} still serves; fix the manifest and `up` it again")
        return False

    wait_for(switched, what=f"{new_name}: applications RUNNING, then the serve Service switches",
             layer="Serve", timeout=timeout, show=show)
    if show and had_active:
        delay = service.read(folder).get("deletionDelaySeconds")
        print(f"{pending.name}: traffic switched to {new_name}; {old_name} is deleted in {delay:g}s "
              "(rayClusterDeletionDelaySeconds)")
    elif show:
        print(f"{pending.name}: {new_name} is the first cluster to take traffic")


def _update_in_place(cluster: LocalRay, doc: dict, old_doc: dict, show: bool, timeout: float,
                     keep_cluster_spec: bool) -> LocalRay:
    """Apply `doc` to the running cluster: scale its groups, submit a changed serveConfigV2.
    keep_cluster_spec: a RayService's rayClusterConfig is not applied (upgradeStrategy None),
    as KubeRay then leaves its RayCluster alone."""
    state = objects.manifest_state(cluster)
    old_spec, old_serve = _parts(old_doc)
    new_spec, serve_config = _parts(doc)
    applied = json.loads(json.dumps(doc))
    changed = False
    if keep_cluster_spec:
        applied["spec"]["rayClusterConfig"] = old_spec
    elif old_spec != new_spec:
        changed = True
        _scale_in_place(cluster, new_spec, show, timeout)
        state["desired"] = _desired(new_spec)
        if "rayClusterGeneration" in state:  # KubeRay updated the RayCluster object's spec
            state["rayClusterGeneration"] += 1
    if serve_config is not None and serve_config != old_serve:
        changed = True
        if show:
            print(f"{cluster.name}: serveConfigV2 changed: submitting it to the running cluster (in place)")
        _deploy(cluster, serve_config, show)
    folder = Path(state["service"]) if state.get("service") else None
    generation = service.read(folder).get("generation", 1) if folder else state.get("generation", 1)
    if doc != old_doc:
        generation += 1  # metadata.generation: every spec change
    state.update(doc=applied, generation=generation)
    objects.write_manifest_state(cluster, state)
    if folder is not None:
        with service.locked(folder) as svc:
            svc.update(doc=applied, generation=generation)
    if show and not changed and doc == old_doc:
        print(f"{cluster.name}: already up and unchanged")
    return cluster


def _update_raycluster(cluster: LocalRay, doc: dict, old_doc: dict, have: dict, show: bool, timeout: float,
                       die_with_owner: bool) -> LocalRay:
    """A changed RayCluster, as raycluster_controller.go (v1.7.0) reconciles it. With
    upgradeStrategy Recreate, every pod is re-created once the spec's hash (replicas, bounds and
    tolerations muted) differs from the one stamped on the head pod when it was made
    (shouldRecreatePodsForUpgrade). Otherwise the running pods stay as they were made, groups
    scale to their replicas, and pods made from now on use the current templates (reconcilePods)."""
    name = doc["metadata"]["name"]
    new_hash, old_hash = kuberay.spec_hash(doc["spec"]), kuberay.spec_hash(old_doc["spec"])
    made_from = have.get("podsHash") or old_hash
    if new_hash != made_from and (doc["spec"].get("upgradeStrategy") or {}).get("type") == "Recreate":
        if show:
            print(f"{name}: the spec changed since the pods were made and upgradeStrategy.type is Recreate: "
                  "every pod is re-created")
        cluster.stop(show=show)
        return _create(doc, show, timeout, die_with_owner, generation=have.get("generation", 1) + 1)
    if new_hash != old_hash:
        if show:
            print(f"{name}: more than replicas changed; KubeRay does not apply that to running pods unless "
                  "spec.upgradeStrategy.type is Recreate, and neither does the local target. Pods made from "
                  "now on (a scale-out) use the new templates")
        objects.keep_pod_templates(cluster, old_doc["spec"])
    return _update_in_place(cluster, doc, old_doc, show, timeout, keep_cluster_spec=False)


def _desired(cluster_spec: dict) -> dict[str, int]:
    """Each worker group's desired pods, as KubeRay counts them (GetWorkerGroupDesiredReplicas)."""
    return {str(g.get("groupName")): kuberay.group_desired_replicas(g)
            for g in cluster_spec.get("workerGroupSpecs") or []}


def _scale_in_place(cluster: LocalRay, new_spec: dict, show: bool, timeout: float) -> None:
    """Replicas, min and max changed (or groups appended): add or remove this group's nodes,
    as KubeRay adds or deletes worker pods; the cluster and its applications stay."""
    name = cluster.name
    # Ray's autoscaler runs in the head pod, made when the cluster was: turning
    # enableInTreeAutoscaling on or off later changes no running pod (KubeRay, without Recreate).
    runs_autoscaler = cluster.dir is not None and (cluster.dir / AUTOSCALER_CONFIG).exists()
    if bool(new_spec.get("enableInTreeAutoscaling")) != runs_autoscaler and show:
        print(f"{name}: enableInTreeAutoscaling changed, but the head pod that runs (or not) Ray's autoscaler is "
              f"not re-created for it: the autoscaler {'keeps running' if runs_autoscaler else 'stays off'}")
    if runs_autoscaler:
        cluster.set_autoscaling(new_spec)
        if show:
            print(f"{name}: worker-group bounds changed: Ray's autoscaler scales within the new ones from its "
                  "next loop (a few seconds)")
        return
    want = _desired(new_spec)
    have = Counter(node_group(n) for n in cluster.nodes())
    shapes = {s.group: s for s in placement.node_shapes(new_spec)[1:]}
    budget = max_nodes() - sum(have.values())
    for group, count in want.items():
        extra = count - have.get(group, 0)
        if extra > 0:
            start = min(extra, max(budget, 0))
            if show:
                print(f"{name}: {group}: {have.get(group, 0)} -> {count} worker pod(s), in place"
                      + (f" ({extra - start} stay Pending: this machine's node cap)" if start < extra else ""))
            shape, env = shapes[group], _pod_env(new_spec, group, show and start > 0)
            for _ in range(start):
                cluster.add_worker(num_cpus=shape.cpus, num_gpus=shape.gpus, memory=shape.memory,
                                   labels={GROUP_LABEL: group}, env=env, timeout=timeout, show=show)
            budget -= start
        elif extra < 0:
            if show:
                print(f"{name}: {group}: {have.get(group, 0)} -> {count} worker pod(s), in place")
            _remove_workers(cluster, group, -extra)


def _remove_workers(cluster: LocalRay, group: str, count: int) -> None:
    """Stop `count` nodes of `group`, the ones with the fewest replicas first (KubeRay deletes
    random pods when replicas drop; Ray's autoscaler picks idle ones via workersToDelete)."""
    from servelab.faults._verbs import LocalFaults

    faults = LocalFaults(cluster)
    on = faults._replicas_by_node()
    nodes = sorted((n for n in cluster.nodes() if node_group(n) == group),
                   key=lambda n: len(on.get(n["node_id"], [])))
    for node in nodes[:count]:
        faults.stop_node(node)


def _start(name: str, cluster_spec: dict, show: bool, timeout: float, die_with_owner: bool,
           service_port: int | None = None, on_head=None, on_folder=None) -> LocalRay:
    """Start the head, then the workers; `on_head(cluster)` runs in between (a RayService's new
    cluster is named in its status as soon as KubeRay creates it, before its pods are up), and
    `on_folder(cluster)` before the head (LocalRay's)."""
    shapes = placement.node_shapes(cluster_spec)
    head = shapes[0]
    autoscale = bool(cluster_spec.get("enableInTreeAutoscaling"))
    cluster = LocalRay(name, num_cpus=int(head.cpus), num_gpus=int(head.gpus), memory=head.memory,
                       die_with_owner=die_with_owner, service_port=service_port,
                       autoscale=cluster_spec if autoscale else None, on_folder=on_folder,
                       env=_pod_env(cluster_spec, "head", show))
    cluster.start(timeout=timeout, show=show)
    try:
        if on_head is not None:
            on_head(cluster)
        if autoscale:
            _wait_initial_nodes(cluster, timeout, show)
        else:
            for shape, count in _fixed_plan(shapes, cluster_spec, show):
                env = _pod_env(cluster_spec, shape.group, show and count > 0)
                for _ in range(count):
                    cluster.add_worker(num_cpus=shape.cpus, num_gpus=shape.gpus, memory=shape.memory,
                                       labels={GROUP_LABEL: shape.group}, env=env, timeout=timeout, show=show)
    except BaseException:
        cluster.stop(show=False, keep_logs=True)
        raise
    return cluster


def _pod_env(cluster_spec: dict, group: str, show: bool) -> dict[str, str]:
    """The env of a group's Ray container, which KubeRay keeps in every pod it makes from the
    template (controllers/ray/common/pod.go adds its own RAY_* entries beside it)."""
    spec = cluster_spec.get("headGroupSpec") if group == "head" else next(
        (g for g in cluster_spec.get("workerGroupSpecs") or [] if g.get("groupName") == group), None)
    env, unresolved = placement.container_env(spec or {})
    if unresolved and show:
        print(f"note: {group}: env {', '.join(unresolved)}: a Secret, a ConfigMap or the pod's fields "
              "(valueFrom, envFrom), which only an API server resolves: the local target leaves them unset")
    kept = sorted(set(env) & env_servelab_keeps())
    if kept and show:
        print(f"note: {group}: env {', '.join(kept)} keep the local target's values (its nodes need them: "
              "token auth, the fault folder, this machine's profile and Python); on KubeRay yours apply")
    return env


def _fixed_plan(shapes: list, cluster_spec: dict, show: bool = True) -> list[tuple]:
    """(shape, count) per worker group at `replicas`, within this machine's node cap (the pods
    left out are Pending, with a FailedScheduling event, in `servelab get pods`)."""
    plan = []
    for shape, group in zip(shapes[1:], cluster_spec.get("workerGroupSpecs") or []):
        count = group.get("replicas", group.get("minReplicas", 0)) or 0
        count = max(group.get("minReplicas", 0) or 0, min(count, group.get("maxReplicas", count)))
        plan.append((shape, count))
    budget = max_nodes() - 1
    if sum(n for _, n in plan) <= budget:
        return plan
    if show:
        print(f"warning: the manifest asks for {sum(n for _, n in plan)} worker nodes; this machine's cap "
              f"is {budget} (SERVELAB_MAX_NODES={budget + 1} counts the head). Starting fewer:")
    trimmed = []
    for shape, count in plan:
        keep = min(count, max(budget, 0))
        budget -= keep
        if keep < count and show:
            print(f"  {shape.group}: {keep} of {count} (the rest stay Pending)")
        trimmed.append((shape, keep))
    return trimmed


def _wait_initial_nodes(cluster: LocalRay, timeout: float, show: bool) -> None:
    """With the autoscaler, the provider starts `replicas` nodes per group: wait until they joined."""
    config = json.loads((cluster.dir / AUTOSCALER_CONFIG).read_text())
    expected = 1 + sum(t["count"] for t in config["provider"]["initial_workers"].values())
    wait_for(lambda: len(cluster.node_ids()) >= expected,
             what=f"{expected - 1} initial worker node(s) from the autoscaler's provider",
             layer="Ray runtime", timeout=timeout, show=show,
             hint=f"Autoscaler log: {cluster.dir}/r/session_latest/logs/monitor.log; "
                  f"node logs: {cluster.dir}/node-*.log")


def _deploy(cluster: LocalRay, serve_config: dict, show: bool) -> None:
    config = dict(serve_config)
    http = dict(config.get("http_options") or {})
    if http.get("host") not in (None, LOOPBACK) and show:
        print(f"note: http_options.host {http['host']!r} becomes {LOOPBACK} on the local target")
    http.update(host=LOOPBACK, port=cluster.ports.serve)
    config["http_options"] = http
    config["proxy_location"] = PROXY_LOCATION
    cluster.serve_api.deploy(config)


def wait_ready(cluster: LocalRay, *, timeout: float = 300, show: bool = True) -> dict:
    """Wait for the Ready condition, as KubernetesTarget.wait_ready does. Before the first
    Ready, a deploy that failed ends the wait at once, and the error names the layer the status
    points at. Once Ready, a failed in-place update leaves Ready True (KubeRay's meaning: the
    old version still serves); the report's application status and `layer` show the failure."""
    last: dict = {}

    def ready():
        last.clear()
        last.update(status(cluster))
        if is_ready(last):
            return dict(last)
        apps = applications(last)
        for name, app in apps.items():
            if app.get("status") == "DEPLOY_FAILED":  # a Failed ends the wait at once
                raise Failed(last.get("layer") or "application code",
                             f"application {name!r} DEPLOY_FAILED: {app.get('message', '')[-800:]}")
        return None

    try:
        return wait_for(ready, what=f"{cluster.name} Ready", layer="Serve", timeout=timeout, show=show)
    except Stuck:
        if not last.get("layer"):
            raise
        cond = ready_condition(last)
        raise Stuck(last["layer"], f"{cluster.name} not Ready after {timeout:.0f}s: "
                                   f"{cond.get('reason')}: {cond.get('message', '')}") from None


def wait_running(cluster: LocalRay, *, timeout: float = 300, show: bool = True) -> dict:
    """Wait until every application is RUNNING, and return the status. That is what KubeRay
    waits for before it sends traffic to a cluster (getAndCheckServeStatus); after an in-place
    update Ready stays True meanwhile, so `wait_ready` does not wait for the new version.
    A DEPLOY_FAILED application ends the wait at once (a `Failed` naming the layer)."""
    last: dict = {}

    def running():
        last.clear()
        last.update(status(cluster))
        apps = applications(last)
        for name, app in apps.items():
            if app.get("status") == "DEPLOY_FAILED":
                raise Failed(last.get("layer") or "application code",
                             f"application {name!r} DEPLOY_FAILED: {app.get('message', '')[-800:]}")
        return dict(last) if kuberay.applications_ready(apps) else None

    try:
        return wait_for(running, what=f"{cluster.name}: every application RUNNING", layer="Serve",
                        timeout=timeout, show=show)
    except Stuck:
        if not last.get("layer"):
            raise
        raise Stuck(last["layer"], f"{cluster.name}: applications not RUNNING after {timeout:.0f}s") from None


def down(name: str) -> bool:
    """Stop every cluster of `name` (a RayService's active, pending and deleting ones) and its
    serve Service; False if nothing of that name ran."""
    folder = _service_of(name)
    svc = service.read(folder) if folder is not None else {}
    listed = [svc.get("active"), svc.get("pending")] + [d["dir"] for d in svc.get("deleting") or []]
    clusters = [c for c in LocalRay.find() if c.name == name]
    for cluster in clusters:
        cluster.stop()
    if folder is not None:
        service.stop(folder)  # lets it finish a deletion it has begun
    # A cluster the Service was deleting has no owner any more, so LocalRay.find() skips it:
    # whatever is left of it goes now, by the pids under its folder.
    for cluster_dir in filter(None, listed):
        left = processes.processes_under(cluster_dir)
        if left:
            processes.kill_all(left)
            processes.wait_gone(cluster_dir, 10)
        if not os.environ.get("SERVELAB_KEEP_LOGS"):
            shutil.rmtree(cluster_dir, ignore_errors=True)
    return bool(clusters) or folder is not None


class LocalTarget(Target):
    """The local target behind the `Target` interface: the module functions above, by name or handle.

    A handle is the LocalRay cluster `up` returns. die_with_owner=False lets clusters outlive
    the caller (the CLI's case); by default they end with this process, as `local.up`'s do.
    """

    options = ("die_with_owner",)

    def __init__(self, *, die_with_owner: bool = True):
        self.die_with_owner = die_with_owner

    def __repr__(self) -> str:
        return f"LocalTarget(die_with_owner={self.die_with_owner})"

    def find(self, ref) -> LocalRay | None:
        """The running cluster a name (or handle) stands for, or None."""
        return ref if isinstance(ref, LocalRay) else find(ref)

    def up(self, path: str | Path, *, wait: bool = False, timeout: float = 300, show: bool = True,
           upgrade: str | None = None) -> LocalRay:
        cluster = up(path, show=show, timeout=timeout, die_with_owner=self.die_with_owner, upgrade=upgrade)
        if wait:
            wait_ready(cluster, timeout=timeout, show=show)
        return cluster

    def status(self, name) -> dict:
        cluster = self.find(name)
        if cluster is None:
            return {"name": self.name_of(name), "layer": "Ray runtime",
                    "conditions": [condition(False, "NotFound", f"no local cluster named {self.name_of(name)!r} "
                                                                "is running")]}
        return status(cluster)

    def wait_ready(self, name, *, timeout: float = 300, show: bool = True) -> dict:
        cluster = self.find(name)
        if cluster is None:
            raise Failed("Ray runtime", f"no local cluster named {self.name_of(name)!r} is running",
                         hint="bring it up first: `servelab up FILE`, or `local.up(FILE)` in Python")
        return wait_ready(cluster, timeout=timeout, show=show)

    def down(self, name) -> bool:
        return down(self.name_of(name))

    def endpoints(self, name) -> dict:
        cluster = self.find(name)
        if cluster is None:
            return {"serve": None, "dashboard": None,
                    "hint": f"no local cluster named {self.name_of(name)!r} is running (servelab status lists them)"}
        return {"serve": cluster.serve_url, "dashboard": cluster.dashboard_url, "hint": ""}

    def names(self) -> list[str]:
        return list(dict.fromkeys(cluster.name for cluster in LocalRay.find()))  # a RayService's clusters once
