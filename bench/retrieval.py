"""Retrieval quality of the RAG pipeline, in process (no cluster): the two relevance sets of
servelab/apps/knowledge.py, and what the pipeline answers to questions no note answers.

- HELD_OUT: 32 questions worded as users ask them (the first set).
- TYPED: questions as people type them into a support box: pasted errors, typos, other
  words for the same thing, long descriptions of a symptom.
- UNANSWERABLE: questions no note answers. A retriever "abstains" when it returns no
  context; the score ranges show whether any absolute signal could tell them apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

from servelab.apps.knowledge import HELD_OUT, TYPED, UNANSWERABLE  # noqa: E402
from servelab.apps.rag import InProcessPipeline  # noqa: E402


def quality(pipeline: InProcessPipeline, questions: list[tuple[str, set[str]]]) -> dict:
    r1 = r3 = rr = 0.0
    for question, relevant in questions:
        ids = [c["id"] for c in pipeline.ask(question, 10)["contexts"]]
        r1 += bool(set(ids[:1]) & relevant)
        r3 += bool(set(ids[:3]) & relevant)
        rr += next((1 / (i + 1) for i, d in enumerate(ids) if d in relevant), 0)
    n = len(questions)
    return {"questions": n, "recall@1": r1 / n, "recall@3": r3 / n, "mrr": rr / n}


def top_scores(pipeline: InProcessPipeline, questions: list[str]) -> list[float]:
    """The best context's score for each question (none when the pipeline abstained)."""
    return [contexts[0]["score"] for q in questions if (contexts := pipeline.ask(q, 3)["contexts"])]


def run() -> dict:
    pipeline = InProcessPipeline()
    sets = {"HELD_OUT": quality(pipeline, HELD_OUT), "TYPED": quality(pipeline, TYPED)}
    answerable = top_scores(pipeline, [q for q, _ in TYPED])
    unanswerable = top_scores(pipeline, UNANSWERABLE)
    abstained = len(UNANSWERABLE) - len(unanswerable)
    rows = "\n".join(f"| `{name}` | {s['questions']} | {s['recall@1']:.2f} | {s['recall@3']:.2f} | {s['mrr']:.2f} |"
                     for name, s in sets.items())
    body = f"""
`bench/retrieval.py`: the pipeline's retrieval (BM25, then the Reranker), in one process,
on the two relevance sets of `servelab/apps/knowledge.py`.

| set | questions | recall@1 | recall@3 | MRR |
|---|---|---|---|---|
{rows}

Questions no note answers (`UNANSWERABLE`, {len(UNANSWERABLE)}): the pipeline abstained on
{abstained} of {len(UNANSWERABLE)}. Best context's score: {min(unanswerable, default=0):.2f} to
{max(unanswerable, default=0):.2f} for those, {min(answerable):.2f} to {max(answerable):.2f} for
the answerable `TYPED` questions.
"""
    write_section("retrieval", "RAG retrieval: two relevance sets, and questions no note answers", body)
    return {**{f"{k} recall@3": round(v["recall@3"], 2) for k, v in sets.items()}, "abstained": abstained}


if __name__ == "__main__":
    print(run())
