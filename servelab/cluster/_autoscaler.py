"""Ray's own autoscaler over a manifest's worker groups, on one machine.

On Kubernetes, `enableInTreeAutoscaling: true` adds an autoscaler container to
the head pod: it reads the RayCluster, watches Ray's resource demand, and asks
KubeRay for more or fewer worker pods. With Ray >= 2.47 that is autoscaler v2 unless
`autoscalerOptions.version` says v1 (KubeRay 1.7, apis/ray/v1/raycluster_types.go).
Here Ray's v1 StandardAutoscaler, run by the head's monitor process, does it (the same
demand-driven decisions; the warnings say where v2 would differ). It gets:

- its config from Ray's own KubeRay translation of the RayCluster spec
  (`_derive_autoscaling_config_from_ray_cr`, through _ray.py: groups, min/max, resources, idle timeout);
- a node provider that is Ray's fake multi-node provider with one change:
  a "pod" is a `servelab.cluster._worker_node` process on 127.0.0.1 with its own ports,
  instead of in-process nodes on the machine's address (see worker_node.py).

Ray's `AutoscalingCluster` test helper would do the wiring but is broken in
2.60 (its example config is not shipped) and runs `ray stop --force`, which
would kill every Ray cluster of every user on a shared machine.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

from ray.autoscaler.tags import TAG_RAY_USER_NODE_TYPE

from servelab.clients._state import GROUP_LABEL
from servelab.cluster import _processes as processes
from servelab.cluster import _ray
from servelab.manifests import placement

FakeMultiNodeProvider = _ray.fake_multinode_provider()  # subclassed below
FAKE_HEAD_NODE_ID = _ray.fake_head_node_id()

HEAD_TYPE = "headgroup"  # the name KubeRay's translation gives the head group
UPDATE_INTERVAL_S = "2"  # the autoscaler's loop; Ray's default is 5 s
MAX_RESTARTS_PER_GROUP = 10


def autoscaler_config(name: str, cluster_spec: dict, *, gcs_address: str, temp_dir: str,
                      max_nodes: int) -> tuple[dict, list[str]]:
    """The autoscaler config for a RayCluster spec, and warnings about what was capped."""
    derive_autoscaling_config_from_ray_cr = _ray.kuberay_autoscaling_config()

    spec = copy.deepcopy(cluster_spec)
    warnings = []
    budget = max_nodes - 1  # the head counts
    initial = {}
    for group in spec.get("workerGroupSpecs") or []:
        # KubeRay's defaults for fields the translation requires.
        group.setdefault("minReplicas", 0)
        group.setdefault("maxReplicas", 2**31 - 1)  # KubeRay's default: no upper bound
        group.setdefault("rayStartParams", {})
        name_ = group["groupName"]
        if group["maxReplicas"] > budget:
            warnings.append(f"{name_}: maxReplicas {group['maxReplicas']} capped to {max(budget, 0)} "
                            f"(SERVELAB_MAX_NODES={max_nodes} counts the head)")
            group["maxReplicas"] = max(budget, 0)
            group["minReplicas"] = min(group["minReplicas"], group["maxReplicas"])
        count = group.get("replicas", group["minReplicas"])
        initial[name_] = max(group["minReplicas"], min(count, group["maxReplicas"]))
        if group.get("idleTimeoutSeconds") is not None:
            warnings.append(f"{name_}: idleTimeoutSeconds {group['idleTimeoutSeconds']} is read by Ray's autoscaler v2 "
                            "only (KubeRay's default for Ray >= 2.47, raycluster_types.go); the local target runs "
                            "v1, which removes idle pods of every group after autoscalerOptions.idleTimeoutSeconds")
    if (spec.get("autoscalerOptions") or {}).get("version") == "v2":
        warnings.append("autoscalerOptions.version v2: the local target runs Ray's autoscaler v1 (same demand-driven "
                        "scaling; v2's per-group idle timeouts and labels-based scheduling are not modelled)")
    cr = {"metadata": {"name": name, "namespace": "default"}, "spec": spec}
    config = derive_autoscaling_config_from_ray_cr(cr)
    if config["max_workers"] > budget:
        warnings.append(f"at most {max(budget, 0)} worker nodes at a time on this machine "
                        f"(the groups together allow {config['max_workers']})")
        config["max_workers"] = max(budget, 0)
    types = config["available_node_types"]
    for type_name, node_type in types.items():
        if type_name != HEAD_TYPE:
            node_type["labels"] = {**node_type.get("labels", {}), GROUP_LABEL: type_name}
    config["provider"] = {
        "type": "external",
        "module": f"{__name__}.LocalNodeProvider",
        "gcs_address": gcs_address,
        "temp_dir": temp_dir,
        "head_node_type": HEAD_TYPE,
        # KubeRay starts `replicas` pods before the autoscaler has a say.
        # Each group's Ray container env, as KubeRay puts it in each pod it makes for the group.
        "env": {str(g["groupName"]): placement.container_env(g)[0] for g in spec.get("workerGroupSpecs") or []},
        "initial_workers": {t: {"count": n, "resources": types[t]["resources"], "labels": types[t]["labels"]}
                            for t, n in initial.items() if n},
        # As KubeRay configures it: nodes come up ready, no SSH setup, no config hash.
        "disable_node_updaters": True,
        "disable_launch_config_check": True,
        "foreground_node_launch": True,
        "worker_liveness_check": False,
        # Every node shares 127.0.0.1: the autoscaler must tell them apart by node id.
        "use_node_id_as_ip": True,
    }
    return config, warnings


def monitor_env() -> dict[str, str]:
    """Environment for `ray start --head --autoscaling-config=...`."""
    from servelab.cluster._ports import free_port

    return {
        "RAY_FAKE_CLUSTER": "1",  # the fake provider requires it; it also fixes the head's node id
        "AUTOSCALER_UPDATE_INTERVAL_S": UPDATE_INTERVAL_S,
        "AUTOSCALER_METRIC_PORT": str(free_port()),  # default 44217 would clash between clusters
    }


def worker_env(monitor_env: Mapping[str, str], provider_config: dict, type_name: str) -> dict[str, str]:
    """A new worker pod's environment, from the monitor's (which is the head's): without what
    only the head's container sets (`head_env`: each such variable's value before the head's env
    was applied, None if it had none), with the group's own container env but for the variables
    servelab keeps on every node (`servelab_keeps`), as KubeRay gives each pod its own template's
    env and nothing of the head's."""
    env = dict(monitor_env)
    for key, before in (provider_config.get("head_env") or {}).items():
        if before is None:
            env.pop(key, None)
        else:
            env[key] = before
    keep = set(provider_config.get("servelab_keeps") or ())  # as on the nodes LocalRay starts itself
    env.update((k, v) for k, v in ((provider_config.get("env") or {}).get(type_name) or {}).items() if k not in keep)
    env.pop("RAY_FAKE_CLUSTER", None)
    return env


class LocalNodeProvider(FakeMultiNodeProvider):
    """The fake multi-node provider, launching each node as a worker_node process.

    Runs inside the head's monitor process. Node ids are the fake provider's
    deterministic ones (passed to the raylet), which is how the autoscaler
    matches launched nodes with their resource reports.
    """

    def __init__(self, provider_config: dict, cluster_name: str):
        super().__init__(provider_config, cluster_name)
        self._nodes[FAKE_HEAD_NODE_ID]["tags"][TAG_RAY_USER_NODE_TYPE] = provider_config["head_node_type"]
        self._log_dir = os.path.dirname(os.path.abspath(provider_config["temp_dir"]))
        self._restarts: dict[str, int] = {}  # per group: a crash loop stops, as CrashLoopBackOff would
        for type_name, initial in (provider_config.get("initial_workers") or {}).items():
            for _ in range(initial["count"]):
                self._create_node_with_resources_and_labels(
                    {}, {TAG_RAY_USER_NODE_TYPE: type_name}, 1, initial["resources"], initial["labels"])

    def non_terminated_nodes(self, tag_filters):
        with self.lock:
            for node_id, node in list(self._nodes.items()):
                proc = node.get("proc")
                if proc is None or proc.poll() is None:
                    continue
                # A node whose process died (a crash, `servelab fault kill-node`) is a pod
                # that is gone, and KubeRay recreates a pod the RayCluster still wants.
                # The autoscaler removes nodes through terminate_node, never this way.
                del self._nodes[node_id]
                type_name = node["tags"][TAG_RAY_USER_NODE_TYPE]
                if self._restarts.get(type_name, 0) < MAX_RESTARTS_PER_GROUP:
                    self._restarts[type_name] = self._restarts.get(type_name, 0) + 1
                    self._create_node_with_resources_and_labels(
                        {}, {TAG_RAY_USER_NODE_TYPE: type_name}, 1, node["resources"], node["labels"])
        return super().non_terminated_nodes(tag_filters)

    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        from ray.autoscaler.tags import (
            NODE_KIND_WORKER,
            STATUS_UP_TO_DATE,
            TAG_RAY_NODE_KIND,
            TAG_RAY_NODE_NAME,
            TAG_RAY_NODE_STATUS,
        )

        from servelab.cluster import _worker_node as worker_node
        from servelab.cluster._ports import worker_ports

        custom = dict(resources)
        cpus, gpus, memory = custom.pop("CPU", 0), custom.pop("GPU", 0), custom.pop("memory", None)
        custom.pop("object_store_memory", None)  # worker_node sizes the object store itself
        with self.lock:
            type_name = tags[TAG_RAY_USER_NODE_TYPE]
            node_id = self._next_hex_node_id()
            cmd = worker_node.command(self.provider_config["gcs_address"], self.provider_config["temp_dir"],
                                      worker_ports(), num_cpus=cpus, num_gpus=gpus, memory=memory,
                                      labels=labels, resources=custom)
            env = {**worker_env(os.environ, self.provider_config, type_name),
                   "RAY_OVERRIDE_NODE_ID_FOR_TESTING": node_id,
                   "RAY_CLOUD_INSTANCE_ID": node_id, "RAY_NODE_TYPE_NAME": type_name}
            log_path = os.path.join(self._log_dir, f"node-{type_name}-{node_id[-5:]}.log")
            proc = processes.spawn_node(cmd, env, log_path)
            processes.record_session(self._log_dir, proc.pid)
            all_tags = {TAG_RAY_NODE_KIND: NODE_KIND_WORKER, TAG_RAY_USER_NODE_TYPE: type_name,
                        TAG_RAY_NODE_NAME: node_id, TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE, **tags}
            self._nodes[node_id] = {"tags": all_tags, "proc": proc, "resources": resources, "labels": labels}

    def _terminate_node(self, node):
        processes.stop_child(node["proc"], timeout=30)  # SIGTERM: the node drains, then stops its processes
