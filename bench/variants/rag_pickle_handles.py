"""The RAG app with its ingress calling the stages through handles that serialize with
`pickle` instead of Serve's default `cloudpickle`: a variant for bench/stage_cuts.py only (see
rag_async_stages.py for how the cluster finds it).

`DeploymentHandle.options(request_serialization=..., response_serialization=...)` (Ray 2.60,
serve/_private/serialization.py) chooses how arguments and results cross the gRPC transport
that throughput-optimized mode uses between deployments. The app passes only strings, numbers,
lists and dicts, which plain pickle handles in C; cloudpickle's pickler is partly Python.
`msgpack` and `orjson` need packages the image does not carry (ormsgpack, orjson). One other
difference: `.options()` in __init__ sets up each handle when the replica starts rather than at
its first request; the bench's warm-up requests come before anything is measured."""

from servelab.apps import rag

SERIALIZATION = {"request_serialization": "pickle", "response_serialization": "pickle"}


class PickleHandles(rag.RAGPipeline.func_or_class):
    async def __init__(self, *stages):  # Serve's ingress wrapper has an async __init__
        await super().__init__(*(handle.options(**SERIALIZATION) for handle in stages))


app = rag.RAGPipeline.options(func_or_class=PickleHandles).bind(
    rag.Normalizer.bind(), rag.Retriever.bind(), rag.Reranker.bind(), rag.Generator.bind(None))
