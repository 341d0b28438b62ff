"""The RAG app with its two cheap stages, Normalizer and Retriever, as coroutines: a variant
for bench/stage_cuts.py only. The cluster imports it from this folder (its PYTHONPATH; a folder
of its own, so that no other bench module lands on Ray's path).

Serve runs a plain `def` method in a thread pool (RAY_SERVE_RUN_SYNC_IN_THREADPOOL) and an
`async def` one on the replica's event loop; these stages take well under a millisecond, so
the hand-off to the pool is a candidate cost. The code they run is the shipped app's."""

from servelab.apps import rag


class AsyncNormalizer(rag.Normalizer.func_or_class):
    async def normalize(self, question: str) -> str:
        return super().normalize(question)


class AsyncRetriever(rag.Retriever.func_or_class):
    async def retrieve(self, query: str, k: int = rag.CANDIDATES) -> list[dict]:
        return super().retrieve(query, k)


# Same deployment names and options as the shipped app: only the methods' kind differs.
app = rag.RAGPipeline.bind(rag.Normalizer.options(func_or_class=AsyncNormalizer).bind(),
                           rag.Retriever.options(func_or_class=AsyncRetriever).bind(),
                           rag.Reranker.bind(), rag.Generator.bind(None))
