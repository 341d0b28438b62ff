"""Retrieval quality of the RAG pipeline, in process (no cluster): the two relevance sets of
servelab/apps/knowledge.py, and what the pipeline answers to questions no note answers.

- HELD_OUT: 32 questions worded as users ask them (the first set).
- TYPED: questions as people type them into a support box: pasted errors, typos, other
  words for the same thing, long descriptions of a symptom.
- UNANSWERABLE: questions no note answers. The pipeline "abstains" when it returns no
  context (the Reranker's relevance floors, servelab/apps/rag.py, were chosen on these
  sets); UNANSWERABLE_LATER was written after the floors, so its abstain rate is the
  honest one. An answerable question that abstains counts as a miss in recall.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

from servelab.apps.knowledge import HELD_OUT, TYPED, UNANSWERABLE, UNANSWERABLE_LATER  # noqa: E402
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


def abstained(pipeline: InProcessPipeline, questions: list[str]) -> int:
    return sum(not pipeline.ask(q, 3)["contexts"] for q in questions)


def encoder_cost(pipeline: InProcessPipeline) -> tuple[float, float]:
    """ms per question for the Reranker's encoder, alone and in a batch of 16 (best of 5)."""
    questions = [q for q, _ in TYPED[:16]]
    encode = pipeline.reranker.encoder.encode

    def best(batch: list[str]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            encode(batch)
            times.append(time.perf_counter() - start)
        return 1000 * min(times) / len(batch)

    return best(questions[:1]), best(questions)


def run() -> dict:
    pipeline = InProcessPipeline()
    sets = {"HELD_OUT": quality(pipeline, HELD_OUT), "TYPED": quality(pipeline, TYPED)}
    false_abstain = abstained(pipeline, [q for q, _ in HELD_OUT + TYPED])
    abstain = {"UNANSWERABLE": abstained(pipeline, UNANSWERABLE),
               "UNANSWERABLE_LATER": abstained(pipeline, UNANSWERABLE_LATER)}
    one, batched = encoder_cost(pipeline)
    rows = "\n".join(f"| `{name}` | {s['questions']} | {s['recall@1']:.2f} | {s['recall@3']:.2f} | {s['mrr']:.2f} |"
                     for name, s in sets.items())
    body = f"""
`bench/retrieval.py`: the pipeline's retrieval (BM25 without stop words, then the Reranker's
Universal Sentence Encoder blend and relevance floors), in one process, on the relevance
sets of `servelab/apps/knowledge.py`.

| set | questions | recall@1 | recall@3 | MRR |
|---|---|---|---|---|
{rows}

Abstained (no context, "I found no note about this"): {abstain['UNANSWERABLE']} of
{len(UNANSWERABLE)} `UNANSWERABLE` questions (the floors were chosen on these),
**{abstain['UNANSWERABLE_LATER']} of {len(UNANSWERABLE_LATER)} `UNANSWERABLE_LATER`** (written after),
and {false_abstain} of {len(HELD_OUT) + len(TYPED)} answerable questions.

The encoder costs {one:.2f} ms for one question and {batched:.2f} ms per question in a batch
of 16 ({one / batched:.1f}x cheaper per question batched), in this process (`bench/run.py` sets
`OMP_NUM_THREADS=1`, as Ray does for a replica).

`TYPED` is no longer unseen: two rules of the Retriever's BM25 were added after reading its
misses (a doubled consonant goes with its suffix, "flapping" -> "flap"; a reason phrase
written as one is pasted, in quotes or Title Case, such as 'service unavailable', adds its
status code, from Python's `HTTPStatus`).
Together they moved `TYPED` from 0.83 / 0.94 / 0.88 to the figures above and left `HELD_OUT`
unchanged. Still missed in the top 3: "no new worker pods ever appear" (the note says
"worker nodes"), "a 50MB json ... choked" (the note says "oversized bodies") and a long
story around "service unavailable" (its note ranks 4th).

Known weak spots, kept visible: a two-word question whose words are common ("scale up") can
fall below every floor and get no context, and a single common word ("the file") can clear
the short-question floor.
"""
    write_section("retrieval", "RAG retrieval: two relevance sets, and questions no note answers", body)
    return {**{f"{k} recall@1": round(v["recall@1"], 2) for k, v in sets.items()},
            **{f"{k} recall@3": round(v["recall@3"], 2) for k, v in sets.items()},
            **{f"abstained {k}": n for k, n in abstain.items()}, "false abstain": false_abstain,
            "encoder ms (1, batched)": (round(one, 2), round(batched, 2))}


if __name__ == "__main__":
    print(run())
