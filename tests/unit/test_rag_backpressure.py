"""The RAG app's overload settings: the code's defaults, the shipped RayService and Ray's own
reading of them agree (lesson 07 teaches them; bench/rag_throughput.py measures them)."""

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

from servelab.apps.rag import Generator, Normalizer, RAGPipeline, Reranker, Retriever

ROOT = Path(__file__).resolve().parents[2]


def shipped_deployments() -> dict[str, dict]:
    service = yaml.safe_load((ROOT / "manifests" / "rayservice-rag.yaml").read_text())
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)  # Ray itself parses it, backpressure_config included
    (app,) = config["applications"]
    return {d["name"]: d for d in app["deployments"]}


def test_the_ingress_bounds_its_queue_and_tells_clients_when_to_come_back():
    assert RAGPipeline.max_queued_requests > 0  # -1, Serve's default, is a queue without bound
    assert RAGPipeline.max_ongoing_requests >= 8  # the 8-client load is admitted, not shed
    assert RAGPipeline.max_queued_requests >= 8  # 8 closed-loop clients can never overflow it
    assert RAGPipeline._deployment_config.request_router_config.max_backoff_s <= 0.1  # Serve's 0.5 s leaves slots idle
    assert RAGPipeline.backpressure_config.status_code == 503
    assert RAGPipeline.backpressure_config.retry_after_s == 1


def test_the_rayservice_ships_the_same_limits_as_the_code():
    ingress = shipped_deployments()["RAGPipeline"]
    assert ingress["max_ongoing_requests"] == RAGPipeline.max_ongoing_requests
    assert ingress["max_queued_requests"] == RAGPipeline.max_queued_requests
    assert ingress["backpressure_config"] == RAGPipeline.backpressure_config.model_dump()
    assert ingress["request_router_config"]["max_backoff_s"] == RAGPipeline._deployment_config.request_router_config.max_backoff_s


def test_every_stage_accepts_what_the_ingress_admits():
    # A request that a full replica cannot take waits at the ingress's router, which backs off
    # between tries (Ray 2.60, serve/_private/request_router/request_router.py); inside the
    # replica it waits in line. Code defaults and the shipped RayService both.
    admitted = RAGPipeline.max_ongoing_requests
    code = {stage.name: stage for stage in (Normalizer, Retriever, Reranker, Generator)}
    for stage in code.values():
        assert stage.max_ongoing_requests * stage.num_replicas >= admitted, stage.name
    for name, d in shipped_deployments().items():
        if name in code:
            # The fewest replicas it can run with: where an autoscaled stage starts and ends.
            scaling = d.get("autoscaling_config", {})
            replicas = scaling.get("min_replicas") or d.get("num_replicas", code[name].num_replicas)
            cap = d.get("max_ongoing_requests", code[name].max_ongoing_requests)
            assert cap * replicas >= admitted, (name, cap, replicas)


def test_the_reranker_does_not_wait_for_a_batch_to_fill():
    # Batches still form from the requests that queue while one runs (tests/live/test_rag_app.py).
    reranker = shipped_deployments()["Reranker"]
    assert reranker["user_config"]["batch_wait_timeout_s"] == 0
    replica = Reranker.func_or_class.__new__(Reranker.func_or_class)
    assert replica.rerank._get_batch_wait_timeout_s() == 0  # the decorator's own default
    assert reranker["max_ongoing_requests"] >= reranker["user_config"]["max_batch_size"]


def test_every_pod_runs_serve_in_its_throughput_optimized_mode_without_direct_ingress():
    # Ray reads these once per process (ray/serve/_private/constants.py, Ray 2.60): the controller
    # and a proxy run on the head, replicas and their proxies on workers, so every group sets them.
    # Direct ingress would keep Serve's proxy on the head only (controller.py); the manifest counts
    # on one per node, each with its own queue. bench/serve_mode.py measures the mode.
    from servelab.targets._local import _pod_env

    cluster = yaml.safe_load((ROOT / "manifests" / "rayservice-rag.yaml").read_text())["spec"]["rayClusterConfig"]
    wanted = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
    for group in ["head", *(g["groupName"] for g in cluster["workerGroupSpecs"])]:
        env = _pod_env(cluster, group, show=False)  # what the local target starts that pod's Ray with
        assert {k: env.get(k) for k in wanted} == wanted, group
