"""The support assistant: four deployments with four resource shapes, composed with .bind().

    POST /support  {"ticket": "my pod is stuck in Pending", "top_k": 2}

A ticket is cleaned (TicketNormalizer, light CPU), matched against the shipped
runbooks (RunbookRetriever, CPU), reordered (Reranker, a quarter of a GPU) and
answered (AnswerGenerator, a whole GPU). No model is loaded: the point is how
the stages are placed and scaled; the GPUs are Ray's logical ones on the local
target, so each stage reports the devices Ray assigned it (`ray.get_gpu_ids()`).
The resource shapes here are defaults; a RayService's serveConfigV2 overrides them.
"""

from __future__ import annotations

import re

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse

from servelab.apps.device import where_am_i
from servelab.apps.runbooks import RUNBOOKS
from servelab.apps.textsearch import BM25

MAX_TICKET_CHARS = 2000
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25})
class TicketNormalizer:
    def normalize(self, ticket: str) -> str:
        # One line, lower case, single spaces: tickets arrive pasted from anywhere.
        return " ".join(ticket.lower().split())


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.5})
class RunbookRetriever:
    """BM25 over the runbooks' titles and symptoms, computed once at start."""

    def __init__(self):
        self.index = BM25([rb["title"] + " " + rb["symptoms"] for rb in RUNBOOKS], tokenize=words)

    def retrieve(self, ticket: str, k: int) -> list[dict]:
        return [{"id": RUNBOOKS[i]["id"], "title": RUNBOOKS[i]["title"], "score": round(score, 3)}
                for i, score in self.index.search(ticket, k)]


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0.25})
class Reranker:
    """Reorders candidates: a title word in the ticket counts more than a symptom word."""

    def rerank(self, ticket: str, candidates: list[dict]) -> dict:
        query = set(words(ticket))
        titles = {rb["id"]: set(words(rb["title"])) for rb in RUNBOOKS}
        ranked = sorted(candidates, key=lambda c: (len(query & titles[c["id"]]), c["score"]), reverse=True)
        return {"ranked": ranked, "where": where_am_i()}


@serve.deployment(max_ongoing_requests=4, ray_actor_options={"num_cpus": 1, "num_gpus": 1})
class AnswerGenerator:
    """Writes the reply from the best runbook's steps (a template stands in for a model)."""

    def generate(self, ticket: str, ranked: list[dict]) -> dict:
        if not ranked:
            text = ("No runbook matches this ticket yet. Please add the exact error message "
                    "and the output of `kubectl describe` for the failing resource.")
            return {"answer": text, "where": where_am_i()}
        best = next(rb for rb in RUNBOOKS if rb["id"] == ranked[0]["id"])
        steps = " ".join(f"{i}. {step}" for i, step in enumerate(best["steps"], 1))
        return {"answer": f"This looks like '{best['title']}' ({best['id']}). {steps}", "where": where_am_i()}


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25})
class SupportAssistant:
    """The HTTP ingress: validates the request and calls the four stages in order."""

    def __init__(self, normalizer: DeploymentHandle, retriever: DeploymentHandle,
                 reranker: DeploymentHandle, generator: DeploymentHandle):
        self.normalizer, self.retriever = normalizer, retriever
        self.reranker, self.generator = reranker, generator

    async def __call__(self, request: Request):
        if request.method != "POST":
            return _error(405, 'POST a JSON body like {"ticket": "pods stuck in Pending"}')
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, 'the body must be a JSON object with a "ticket" field')
        ticket, top_k = body.get("ticket"), body.get("top_k", 3)
        if not isinstance(ticket, str) or not ticket.strip():
            return _error(400, '"ticket" must be a non-empty string')
        if len(ticket) > MAX_TICKET_CHARS:
            return _error(413, f'"ticket" is longer than {MAX_TICKET_CHARS} characters')
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= len(RUNBOOKS):
            return _error(400, f'"top_k" must be an integer from 1 to {len(RUNBOOKS)}')

        clean = await self.normalizer.normalize.remote(ticket)
        candidates = await self.retriever.retrieve.remote(clean, top_k)
        reranked = await self.reranker.rerank.remote(clean, candidates)
        answer = await self.generator.generate.remote(clean, reranked["ranked"])
        return {
            "ticket": clean,
            "runbooks": reranked["ranked"],
            "answer": answer["answer"],
            "placement": {"Reranker": reranked["where"], "AnswerGenerator": answer["where"]},
        }


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


app = SupportAssistant.bind(TicketNormalizer.bind(), RunbookRetriever.bind(),
                            Reranker.bind(), AnswerGenerator.bind())
