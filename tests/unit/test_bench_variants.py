"""bench/stage_cuts.py compares the shipped RAG app with variants: each must differ in the one
thing it claims to and in nothing else."""

import inspect
import sys
from pathlib import Path

from servelab.apps import rag

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "variants"))
import rag_async_stages  # noqa: E402
import rag_pickle_handles  # noqa: E402

STAGES = ["RAGPipeline", "Normalizer", "Retriever", "Reranker", "Generator"]


def deployments(app) -> dict:
    """name -> Deployment of the ingress and the stages bound into it."""
    ingress = app._bound_deployment
    return {ingress.name: ingress, **{a._bound_deployment.name: a._bound_deployment for a in ingress.init_args}}


def same_options(variant: dict, shipped: dict) -> None:
    assert list(variant) == list(shipped) == STAGES
    for name, deployment in shipped.items():
        assert variant[name]._deployment_config == deployment._deployment_config, name
        assert variant[name].ray_actor_options == deployment.ray_actor_options, name
        assert issubclass(variant[name].func_or_class, deployment.func_or_class), name


def test_the_async_variant_differs_only_in_its_cheap_stages_being_coroutines():
    shipped, variant = deployments(rag.app), deployments(rag_async_stages.app)
    same_options(variant, shipped)
    changed = {name for name in STAGES if variant[name].func_or_class is not shipped[name].func_or_class}
    assert changed == {"Normalizer", "Retriever"}
    for name, method in (("Normalizer", "normalize"), ("Retriever", "retrieve")):
        ours, theirs = getattr(variant[name].func_or_class, method), getattr(shipped[name].func_or_class, method)
        assert inspect.iscoroutinefunction(ours) and not inspect.iscoroutinefunction(theirs), name


def test_the_pickle_variant_differs_only_in_how_its_ingress_builds_its_handles():
    shipped, variant = deployments(rag.app), deployments(rag_pickle_handles.app)
    same_options(variant, shipped)
    changed = {name for name in STAGES if variant[name].func_or_class is not shipped[name].func_or_class}
    assert changed == {"RAGPipeline"}
    assert set(vars(variant["RAGPipeline"].func_or_class)) - {"__module__", "__qualname__", "__doc__"} == {"__init__"}
