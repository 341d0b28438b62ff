"""The course's RAG pipeline: five Ray Serve deployments composed with .bind().

    POST /rag/  {"question": "why are my pods pending?", "top_k": 3}

    RAGPipeline (FastAPI ingress) -> Normalizer -> Retriever -> Reranker -> Generator

- Normalizer cleans the question (cheap, CPU).
- Retriever ranks the shipped knowledge base with BM25, stop words left out (CPU; its
  index is state, so it has a health check).
- Reranker re-scores the candidates with a pretrained sentence encoder (the Universal
  Sentence Encoder, weights shipped in its package: servelab/apps/sentence.py) and drops
  them all when none is relevant, so the Generator says so instead of answering from an
  unrelated note. It is the batched stage (`@serve.batch`): the encoder runs over many
  questions at once, reading each weight matrix once per chunk of up to 384 tokens.
- Generator writes the answer. By default a template stands in for a language
  model (no download); pass `model="package.module:factory"` to use a real one.
  Its user_config can add simulated accelerator time, so autoscaling has a slow
  stage to react to without burning this machine's CPUs.

The code's resource shapes are CPU-only so the app runs anywhere; the GPU shapes
(Reranker 0.25 GPU, Generator 1 GPU) come from the RayService's serveConfigV2.
"""

import asyncio
import importlib
import time
import unicodedata
from collections import deque
from typing import Optional

import numpy as np
import ray
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from servelab.apps.bake import reranker_encoder
from servelab.apps.device import SimulatedDevice, where_am_i
from servelab.apps.knowledge import DOCS, TEXTS
from servelab.apps.textsearch import BM25, content_terms
from servelab.faults import _flags as fault_flags

MAX_QUESTION_CHARS = 2000
MAX_BODY_BYTES = 16 * 1024
MAX_TOP_K = 10
CANDIDATES = 10  # the Retriever hands this many to the Reranker


class Switches:
    """What makes a stage's check_health raise on purpose.

    `fail_health: true` in user_config reaches every replica (and their
    replacements: the whole deployment stays broken until the config changes);
    `servelab fault fail-health` flags one replica only (servelab.faults._flags).
    """

    fail_health = False

    def reconfigure(self, config: dict) -> None:
        self.fail_health = bool(config.get("fail_health", False))

    def _raise_if_told(self) -> None:
        if self.fail_health:
            raise RuntimeError("health check failing on purpose (user_config fail_health)")
        if fault_flags.raised(fault_flags.UNHEALTHY):
            raise RuntimeError("health check failing on purpose (servelab fault fail-health)")


# --- the stages -----------------------------------------------------------------

# The inner stages accept at least what the ingress works on (24: Normalizer 24, Retriever
# 2 x 12, Generator 24). A request a full replica cannot take waits at the caller's router,
# which backs off up to 0.5 s between tries; inside the replica it waits in line and is
# served the moment its turn comes (lesson 07, bench/rag_throughput.py).
@serve.deployment(max_ongoing_requests=24, ray_actor_options={"num_cpus": 0.25})
class Normalizer(Switches):
    def normalize(self, question: str) -> str:
        # NFKC folds full-width and compatibility characters; control characters go.
        text = unicodedata.normalize("NFKC", question)
        text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
        return " ".join(text.split())

    def check_health(self) -> None:
        self._raise_if_told()


@serve.deployment(num_replicas=2, max_ongoing_requests=12, ray_actor_options={"num_cpus": 0.5})
class Retriever(Switches):
    """BM25 over the knowledge base, built once per replica."""

    def __init__(self):
        self.index = BM25(TEXTS, tokenize=content_terms)

    def retrieve(self, query: str, k: int = CANDIDATES) -> list[dict]:
        return [{"id": DOCS[i][0], "title": DOCS[i][1], "score": round(score, 4),
                 "coverage": round(self.index.coverage(query, i), 4)}
                for i, score in self.index.search(query, k)]

    def check_health(self) -> None:
        self._raise_if_told()
        # The index is this replica's state: if it is gone, the replica is useless.
        if len(self.index) != len(DOCS):
            raise RuntimeError(f"index holds {len(self.index)} documents, expected {len(DOCS)}")


# A note may answer the question when the encoder finds it close in meaning, when BM25 finds
# rare words of the question in it, or when it holds most of what a short question asks and
# BM25 agrees a little ("pods pending": every word, though neither signal is high). Below
# those floors, no candidate answers it. Chosen on the relevance sets of knowledge.py
# (unanswerable questions reach at most 0.29, 3.6 and 0.14; every answerable one clears a
# floor) and checked on UNANSWERABLE_LATER, written after the floors: bench/retrieval.py.
# A single common word ("the file") can still clear the short-question floor.
RELEVANT_COSINE = 0.30
RELEVANT_BM25 = 6.0
RELEVANT_COVERAGE = 0.4
SHORT_QUESTION_BM25 = 3.5  # what the coverage floor needs BM25 to agree with
DENSE_CANDIDATES = 5  # the Reranker's own nearest notes, added to BM25's
TITLES = {doc_id: title for doc_id, title, _ in DOCS}
ROW = {doc_id: i for i, (doc_id, _, _) in enumerate(DOCS)}

# Batches can only be as big as the requests a replica accepts at once: keep
# max_ongoing_requests above max_batch_size.
@serve.deployment(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.5})
class Reranker(Switches):
    """Blends the BM25 score with the encoder's cosine similarity, in batches."""

    def __init__(self, weight: float = 0.5):
        self.weight = weight
        self.encoder = reranker_encoder()  # the image's baked table, or the package's own
        self.doc_matrix = self.encoder.encode(TEXTS)  # one row per note, in DOCS order
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # the most recent batches

    def reconfigure(self, config: dict) -> None:
        super().reconfigure(config)
        # max_batch_size 1 turns batching off: the lab compares both.
        self.rerank.set_max_batch_size(int(config.get("max_batch_size", 16)))
        self.rerank.set_batch_wait_timeout_s(float(config.get("batch_wait_timeout_s", 0.0)))

    # No wait: a question alone is encoded at once. Batches still grow with the load because
    # score() holds the event loop while it encodes, so every question that arrived meanwhile
    # is queued when the next batch starts (BENCHMARKS.md, bench/rag_hops.py). A stage that
    # awaits its device would need a wait.
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def rerank(self, queries: list[str], candidates: list[list[dict]]) -> list[dict]:
        self.batch_sizes.append(len(queries))
        here = where_am_i()
        return [{"ranked": ranked, "where": here} for ranked in self.score(queries, candidates)]

    def score(self, queries: list[str], candidates: list[list[dict]]) -> list[list[dict]]:
        query_vectors = self.encoder.encode(queries)  # one pass for the whole batch
        out = []
        for cosines, cands in zip(query_vectors @ self.doc_matrix.T, candidates):
            if not np.isfinite(cosines).all():  # a corrupt table: fail loudly, not with NaN scores
                raise RuntimeError("the encoder returned non-finite vectors")
            top = max((c["score"] for c in cands), default=0.0)
            covered = max((c.get("coverage", 0.0) for c in cands), default=0.0)
            short_match = covered >= RELEVANT_COVERAGE and top >= SHORT_QUESTION_BM25
            if cosines.max() < RELEVANT_COSINE and top < RELEVANT_BM25 and not short_match:
                out.append([])  # nothing here answers the question: say so, do not guess
                continue
            # BM25's candidates, plus the notes nearest in meaning, which may share no word
            # with the question. BM25 scores are scaled by the best one, but never by less
            # than the relevance floor: a weak keyword match does not count as a full one.
            bm25 = {c["id"]: c["score"] for c in cands}
            for i in np.argsort(-cosines)[:DENSE_CANDIDATES]:
                bm25.setdefault(DOCS[i][0], 0.0)
            scored = [{"id": doc_id, "title": TITLES[doc_id],
                       "score": round((1 - self.weight) * score / max(top, RELEVANT_BM25)
                                      + self.weight * float(cosines[ROW[doc_id]]), 4)}
                      for doc_id, score in bm25.items()]
            scored.sort(key=lambda c: c["score"], reverse=True)
            out.append(scored)
        return out

    def stats(self) -> dict:
        sizes = self.batch_sizes or [0]
        return {"batches": len(self.batch_sizes), "mean_batch_size": float(np.mean(sizes)),
                "max_batch_size": self.rerank._get_max_batch_size()}

    def check_health(self) -> None:
        self._raise_if_told()
        if not self.encoder.ready():
            raise RuntimeError("encoder weights are missing or corrupt")


class TemplateModel:
    """Stands in for a language model: answers from the best context, in a fixed form."""

    def generate(self, question: str, contexts: list[dict]) -> str:
        if not contexts:
            return ("I found no note about this. Add the exact error message and what "
                    "`kubectl describe` or `serve status` shows, and ask again.")
        best = contexts[0]
        text = next(body for doc_id, _, body in DOCS if doc_id == best["id"])
        also = ", ".join(c["id"] for c in contexts[1:])
        return f"{best['title']} ({best['id']}): {text}" + (f" See also {also}." if also else "")


def load_model(spec: Optional[str]):
    """None: the template. "package.module:factory": whatever that factory returns
    (any object with `generate(question, contexts) -> str`)."""
    if not spec:
        return TemplateModel()
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)()


@serve.deployment(max_ongoing_requests=24, ray_actor_options={"num_cpus": 0.5})
class Generator(Switches):
    def __init__(self, model: Optional[str] = None):
        self.model = load_model(model)
        self.device = SimulatedDevice()

    def reconfigure(self, config: dict) -> None:
        super().reconfigure(config)
        # Time a GPU would spend decoding one request, one request at a time, so
        # requests queue inside the replica as on a real accelerator (0: no wait).
        self.device.fixed_ms = float(config.get("simulated_gpu_ms", 0))

    async def generate(self, question: str, contexts: list[dict]) -> dict:
        await self.device.run()
        return {"answer": self.model.generate(question, contexts), "where": where_am_i()}

    def check_health(self) -> None:
        self._raise_if_told()
        if self.model is None:
            raise RuntimeError("no model loaded")


# --- the HTTP ingress -----------------------------------------------------------

class Ask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS,
                          description="What the user wants to know, in plain words.")
    top_k: StrictInt = Field(3, ge=1, le=MAX_TOP_K, description="How many notes to return.")

    @field_validator("question")
    @classmethod
    def sane_text(cls, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains invalid Unicode (a lone surrogate)") from None
        if not value.strip():
            raise ValueError("must contain more than whitespace")
        return value


class Context(BaseModel):
    id: str
    title: str
    score: float


class Answer(BaseModel):
    question: str = Field(description="The question after normalization.")
    answer: str
    contexts: list[Context]
    timings_ms: dict[str, float] = Field(description="Time spent in each stage, in milliseconds.")
    placement: dict[str, dict] = Field(description="Node and GPU ids of the stages that hold GPUs.")


class BodyLimit:
    """Refuses bodies over `limit` bytes with a JSON 413, before anything parses them.

    A declared Content-Length is checked up front; a chunked body is counted as it
    arrives, so a client cannot stream an endless body into the replica.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            reason = f"the body is larger than {self.limit} bytes" if declared.isdigit() else "bad Content-Length"
            return await _error(413 if declared.isdigit() else 400, reason)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise StarletteHTTPException(413, f"the body is larger than {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


class PrefixIsRoot:
    """`POST /rag` (the route prefix itself) is the "/" route, answered at once.

    FastAPI would answer it with a 307 to `/rag/`, and a client that follows the redirect sends
    every question through the proxy twice: twice the hops, and Serve's per-route metrics
    split between a 10 ms redirect under `/rag` and the real request under `/rag/`.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        root = scope.get("root_path", "")
        if scope["type"] == "http" and root and scope["path"] == root:
            scope = {**scope, "path": root + "/", "raw_path": (root + "/").encode()}
        await self.app(scope, receive, send)


api = FastAPI(title="servelab RAG pipeline",
              description="Ask the course's operations notes a question.")
api.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
api.add_middleware(PrefixIsRoot)  # the outermost: before routing


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError):
    errors = exc.errors()
    if "json" not in request.headers.get("content-type", ""):
        return _error(415, "send the body as JSON with the header Content-Type: application/json")
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "the body is not valid JSON")
    # Name each bad field and why; never echo the input (it may not even be encodable).
    reasons = ["/".join(str(p) for p in e.get("loc", ())[1:]) + ": " + e.get("msg", "") for e in errors]
    return _error(422, "; ".join(r if not r.startswith(":") else "body" + r for r in reasons))


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException):
    # Starlette's own errors (405, 413, ...) get the same JSON shape as ours.
    return _error(exc.status_code, str(exc.detail))


class StageFailed(Exception):
    def __init__(self, status: int, reason: str):
        self.status, self.reason = status, reason


@api.exception_handler(StageFailed)
async def _stage_failed(request: Request, exc: StageFailed):
    return _error(exc.status, exc.reason)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


# Backpressure at the front door. The ingress works on up to 24 questions at once; past that at
# most 8 wait in each proxy, and the rest get 503 with Retry-After: 1 at once. Without a bound
# every extra request queues at the proxy, whose router backs off (up to 0.5 s) between tries
# while the replica stays full, so throughput falls as the queue grows (lesson 07, BENCHMARKS).
# The few that do wait there sleep at most 50 ms between tries (Serve's default: 0.5 s), so a
# freed slot is found sooner; 8 waiting means 8 clients are never turned away, even when a
# queue-length probe comes late.
@serve.deployment(max_ongoing_requests=24, max_queued_requests=8,
                  backpressure_config={"status_code": 503, "retry_after_s": 1},
                  request_router_config={"max_backoff_s": 0.05},
                  ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class RAGPipeline:
    def __init__(self, normalizer: DeploymentHandle, retriever: DeploymentHandle,
                 reranker: DeploymentHandle, generator: DeploymentHandle):
        self.normalizer, self.retriever = normalizer, retriever
        self.reranker, self.generator = reranker, generator
        self.stage_timeout_s = 10.0

    def reconfigure(self, config: dict) -> None:
        self.stage_timeout_s = float(config.get("stage_timeout_s", 10.0))

    async def _stage(self, name: str, response, timings: dict):
        """Await one stage with a deadline; turn its failures into a clear HTTP status."""
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(response, self.stage_timeout_s)
        except asyncio.TimeoutError:
            response.cancel()
            raise StageFailed(504, f"{name} did not answer within {self.stage_timeout_s:g}s") from None
        except (BackPressureError, DeploymentUnavailableError) as exc:
            raise StageFailed(503, f"{name} has no replica free to take the request: "
                                   f"{type(exc).__name__}") from None
        except ray.exceptions.RayActorError:
            raise StageFailed(503, f"{name}'s replica died while handling the request; retry") from None
        timings[name] = round(1000 * (time.perf_counter() - start), 2)
        return result

    @api.post("/", response_model=Answer, responses={
        400: {"description": "The body is not JSON."},
        413: {"description": f"The body is larger than {MAX_BODY_BYTES} bytes."},
        422: {"description": "A field is missing, of the wrong type or out of range."},
        503: {"description": "A stage has no replica available."},
        504: {"description": "A stage did not answer within stage_timeout_s."}})
    async def ask(self, ask: Ask) -> Answer:
        timings: dict[str, float] = {}
        question = await self._stage("Normalizer", self.normalizer.normalize.remote(ask.question), timings)
        candidates = await self._stage("Retriever", self.retriever.retrieve.remote(question), timings)
        ranked = await self._stage("Reranker", self.reranker.rerank.remote(question, candidates), timings)
        contexts = ranked["ranked"][: ask.top_k]
        generated = await self._stage("Generator", self.generator.generate.remote(question, contexts), timings)
        return Answer(question=question, answer=generated["answer"], contexts=contexts,
                      timings_ms=timings,
                      placement={"Reranker": ranked["where"], "Generator": generated["where"]})

    @api.get("/stages")
    async def stages(self) -> dict:
        """Batching statistics of the Reranker replica that answers."""
        return {"Reranker": await self.reranker.stats.remote()}


def build(model: Optional[str] = None):
    """The application graph; `model` is passed to the Generator."""
    return RAGPipeline.bind(Normalizer.bind(), Retriever.bind(), Reranker.bind(),
                            Generator.bind(model))


app = build()


class InProcessPipeline:
    """The same stages in this process, without Serve: the baseline that shows what
    distribution costs (bench/rag_throughput.py) and a reference for tests."""

    def __init__(self):
        self.normalizer = Normalizer.func_or_class()
        self.retriever = Retriever.func_or_class()
        self.reranker = Reranker.func_or_class()
        self.model = TemplateModel()

    def ask(self, question: str, top_k: int = 3) -> dict:
        q = self.normalizer.normalize(question)
        contexts = self.reranker.score([q], [self.retriever.retrieve(q)])[0][:top_k]
        return {"question": q, "answer": self.model.generate(q, contexts), "contexts": contexts}
