"""The autoscaler config servelab derives from a RayCluster spec (no cluster started)."""

from pathlib import Path

import yaml

from servelab.cluster._autoscaler import GROUP_LABEL, HEAD_TYPE, autoscaler_config

REPO = Path(__file__).parents[2]


def support_spec():
    doc = yaml.safe_load((REPO / "manifests" / "rayservice-support-assistant.yaml").read_text())
    return doc["spec"]["rayClusterConfig"]


def config_for(spec, max_nodes=6):
    return autoscaler_config("support", spec, gcs_address="127.0.0.1:1", temp_dir="/tmp/x/r", max_nodes=max_nodes)


def test_groups_become_node_types_with_kuberays_resources():
    config, warnings = config_for(support_spec())
    assert warnings == []
    types = config["available_node_types"]
    assert types["gpu-workers"]["resources"] == {"CPU": 4, "GPU": 1, "memory": 16 * 2**30}
    assert (types["gpu-workers"]["min_workers"], types["gpu-workers"]["max_workers"]) == (1, 3)
    assert types["cpu-workers"]["labels"] == {GROUP_LABEL: "cpu-workers"}
    assert types[HEAD_TYPE]["resources"]["CPU"] == 0  # num-cpus: "0"
    assert config["max_workers"] == 5 and config["idle_timeout_minutes"] == 1.0


def test_the_provider_starts_replicas_and_tells_nodes_apart_by_id():
    provider = config_for(support_spec())[0]["provider"]
    assert provider["module"] == "servelab.cluster._autoscaler.LocalNodeProvider"
    assert {t: v["count"] for t, v in provider["initial_workers"].items()} == {"cpu-workers": 1, "gpu-workers": 1}
    assert provider["use_node_id_as_ip"] and provider["disable_launch_config_check"]


def test_the_node_cap_trims_groups_with_a_warning():
    config, warnings = config_for(support_spec(), max_nodes=3)
    assert config["available_node_types"]["gpu-workers"]["max_workers"] == 2
    assert config["max_workers"] == 2
    assert any("gpu-workers: maxReplicas 3 capped to 2" in w for w in warnings)


def test_idle_timeout_and_missing_bounds_follow_kuberay_defaults():
    spec = support_spec()
    spec["autoscalerOptions"] = {"idleTimeoutSeconds": 30}
    group = spec["workerGroupSpecs"][0]
    del group["minReplicas"], group["maxReplicas"]
    config, warnings = config_for(spec)
    assert config["idle_timeout_minutes"] == 0.5
    cpu = config["available_node_types"]["cpu-workers"]
    assert (cpu["min_workers"], cpu["max_workers"]) == (0, 5)  # unbounded in KubeRay; this machine's cap
    assert any(w.startswith("cpu-workers: maxReplicas 2147483647 capped to 5") for w in warnings)


def test_what_only_autoscaler_v2_reads_is_said_not_silently_dropped():
    # KubeRay 1.7 apis/ray/v1/raycluster_types.go: a worker group's idleTimeoutSeconds is read by
    # autoscaler v2 only, and v2 is the default from Ray 2.47 when autoscalerOptions.version is unset.
    spec = support_spec()
    spec["workerGroupSpecs"][1]["idleTimeoutSeconds"] = 30
    spec["autoscalerOptions"] = {"version": "v2", "idleTimeoutSeconds": 45}
    config, warnings = config_for(spec)
    assert config["idle_timeout_minutes"] == 0.75  # the cluster-wide one is what v1 uses
    assert any(w.startswith("gpu-workers: idleTimeoutSeconds 30") and "v2 only" in w for w in warnings), warnings
    assert any(w.startswith("autoscalerOptions.version v2") for w in warnings), warnings


def test_each_groups_container_env_goes_with_the_pods_the_provider_starts():
    # KubeRay v1.7.0 ray-operator/controllers/ray/common/pod.go (BuildPod, setContainerEnvVars):
    # the template's container env stays in every pod, KubeRay's own RAY_* entries beside it.
    spec = support_spec()
    gpu = next(g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu-workers")
    gpu["template"]["spec"]["containers"][0]["env"] = [
        {"name": "RAY_SERVE_SLOW_STARTUP_WARNING_S", "value": "10"},
        {"name": "EMPTY"},  # Kubernetes: no value is ""
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    env = config_for(spec)[0]["provider"]["env"]
    assert env == {"cpu-workers": {}, "gpu-workers": {"RAY_SERVE_SLOW_STARTUP_WARNING_S": "10", "EMPTY": ""}}
    from servelab.manifests.placement import container_env

    assert container_env(gpu) == ({"RAY_SERVE_SLOW_STARTUP_WARNING_S": "10", "EMPTY": ""}, ["TOKEN"])


def test_a_worker_the_autoscaler_starts_has_none_of_the_heads_container_env():
    # KubeRay builds a worker pod from its group's template alone (v1.7.0 ray-operator/controllers/
    # ray/common/pod.go, DefaultWorkerPodTemplate: workerSpec.Template): the local monitor runs
    # with the head's env, so the provider undoes what only the head's container set.
    from servelab.cluster._autoscaler import worker_env

    monitor = {"PATH": "/bin", "HEAD_ONLY": "1", "SHARED": "head's", "RAY_FAKE_CLUSTER": "1", "RAY_AUTH_MODE": "token"}
    provider = {"head_env": {"HEAD_ONLY": None, "SHARED": "shell's"}, "servelab_keeps": ["PATH", "RAY_AUTH_MODE"],
                "env": {"gpu-workers": {"GROUP": "gpu", "RAY_AUTH_MODE": "disabled"}}}
    kept = {"PATH": "/bin", "SHARED": "shell's", "RAY_AUTH_MODE": "token"}
    assert worker_env(monitor, provider, "gpu-workers") == {**kept, "GROUP": "gpu"}
    assert worker_env(monitor, provider, "cpu-workers") == kept


def test_the_local_target_says_which_pod_env_it_cannot_honour(capsys):
    # KubeRay keeps a container's env in the pod (v1.7.0 ray-operator/controllers/ray/common/pod.go,
    # DefaultHeadPodTemplate: headSpec.Template); a local node keeps servelab's
    # own variables instead, and says so rather than drop the learner's value silently.
    from servelab.targets._local import _pod_env

    spec = {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "ray-head", "env": [
        {"name": "RAY_AUTH_MODE", "value": "disabled"}, {"name": "MY_SETTING", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}}}
    assert _pod_env(spec, "head", show=True) == {"RAY_AUTH_MODE": "disabled", "MY_SETTING": "1"}
    said = capsys.readouterr().out
    assert "env envFrom configMapRef settings, TOKEN: a Secret" in said
    assert "env RAY_AUTH_MODE keep the local target's values" in said
    assert "MY_SETTING" not in said
