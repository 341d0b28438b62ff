"""bench/stage_cuts.py compares the shipped RAG app with variants: each must differ in the one
thing it claims to and in nothing else."""

import asyncio
import inspect
import sys
from pathlib import Path

from servelab.apps import rag

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "variants"))
import rag_async_stages  # noqa: E402
import rag_pickle_handles  # noqa: E402

STAGES = ["RAGPipeline", "Normalizer", "Retriever", "Reranker", "Generator"]
DUNDERS = {"__module__", "__qualname__", "__doc__"}


def deployments(app) -> dict:
    """name -> Deployment of the ingress and the stages bound into it."""
    ingress = app._bound_deployment
    return {ingress.name: ingress, **{a._bound_deployment.name: a._bound_deployment for a in ingress.init_args}}


def changed_classes(variant: dict, shipped: dict) -> dict:
    """The variant's deployments whose class is not the shipped one; every option the same."""
    assert list(variant) == list(shipped) == STAGES
    for name, deployment in shipped.items():
        assert variant[name]._deployment_config == deployment._deployment_config, name
        assert variant[name].ray_actor_options == deployment.ray_actor_options, name
        assert issubclass(variant[name].func_or_class, deployment.func_or_class), name
    return {name: variant[name].func_or_class for name in STAGES
            if variant[name].func_or_class is not shipped[name].func_or_class}


def test_the_async_variant_only_makes_its_cheap_stages_coroutines_of_the_same_code():
    shipped = deployments(rag.app)
    changed = changed_classes(deployments(rag_async_stages.app), shipped)
    assert set(changed) == {"Normalizer", "Retriever"}
    for name, method, arg in (("Normalizer", "normalize", " Pods\u3000PENDING\t"), ("Retriever", "retrieve", "pods pending")):
        assert set(vars(changed[name])) - DUNDERS == {method}, name
        ours, theirs = changed[name](), shipped[name].func_or_class()
        assert inspect.iscoroutinefunction(getattr(ours, method)), name
        assert not inspect.iscoroutinefunction(getattr(theirs, method)), name
        assert asyncio.run(getattr(ours, method)(arg)) == getattr(theirs, method)(arg), name


class RecordingHandle:
    """Stands in for a DeploymentHandle: remembers the options it was derived with."""

    def __init__(self, name: str, options: dict | None = None):
        self.name, self.seen = name, options or {}

    def options(self, **options):
        return RecordingHandle(self.name, {**self.seen, **options})


def test_the_pickle_variant_only_gives_its_ingress_pickling_handles(monkeypatch):
    changed = changed_classes(deployments(rag_pickle_handles.app), deployments(rag.app))
    assert set(changed) == {"RAGPipeline"}
    assert set(vars(changed["RAGPipeline"])) - DUNDERS == {"__init__"}

    # Run the variant's __init__ with the shipped one recording what it is given.
    async def record(self, *stages):
        self.given = stages

    monkeypatch.setattr(rag.RAGPipeline.func_or_class, "__init__", record)
    monkeypatch.setattr(rag.RAGPipeline.func_or_class, "__del__", lambda self: None)  # Serve's is async
    ingress = object.__new__(changed["RAGPipeline"])
    asyncio.run(changed["RAGPipeline"].__init__(ingress, *(RecordingHandle(n) for n in STAGES[1:])))
    assert [h.name for h in ingress.given] == STAGES[1:]
    assert all(h.seen == {"request_serialization": "pickle", "response_serialization": "pickle"}
               for h in ingress.given), [h.seen for h in ingress.given]
    del ingress  # while __del__ is still the stand-in
