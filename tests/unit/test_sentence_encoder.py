"""The Reranker's retrieval by meaning (servelab/apps/sentence.py, rag.py), in process."""

import numpy as np
import pytest

from servelab.apps import bake, rag
from servelab.apps.knowledge import HELD_OUT, TEXTS, TYPED, UNANSWERABLE, UNANSWERABLE_LATER
from servelab.apps.sentence import SentenceEncoder
from servelab.apps.textsearch import content_terms


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


@pytest.fixture(scope="module")
def pipeline():
    return rag.InProcessPipeline()


def cosine(encoder, a, b):
    x = encoder.encode([a, b])
    return float(x[0] @ x[1])


def test_similar_meaning_beats_similar_spelling(encoder):
    # "wipe" shares no letters with "delete"; "deploy" shares five.
    assert cosine(encoder, "delete the ray cluster", "wipe the ray cluster") > \
        cosine(encoder, "delete the ray cluster", "deploy the ray cluster")
    assert cosine(encoder, "how do I remove the old deployment", "delete a serve deployment") > \
        cosine(encoder, "how do I remove the old deployment", "scale a serve deployment") + 0.1


def test_a_batch_encodes_as_each_text_alone(encoder):
    texts = [q for q, _ in HELD_OUT[:8]]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert together.shape == (8, 512)
    assert np.allclose(together, alone, atol=1e-5)
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)


def test_the_baked_encoder_is_the_packages_encoder(encoder, tmp_path):
    bake.bake(tmp_path)
    baked = bake.reranker_encoder(tmp_path)
    assert isinstance(baked._use._model.table, np.memmap)   # mapped, not copied
    assert np.array_equal(baked.encode(TEXTS[:10]), encoder.encode(TEXTS[:10]))


def test_bm25_indexes_what_a_question_is_about():
    assert content_terms("what do I need to keep the pods on, redis?") == ["pod", "redi"]


def test_questions_no_note_answers_get_no_context(pipeline):
    # The floors were chosen on UNANSWERABLE; UNANSWERABLE_LATER was written after them.
    assert all(pipeline.ask(q, 3)["contexts"] == [] for q in UNANSWERABLE)
    later = sum(pipeline.ask(q, 3)["contexts"] == [] for q in UNANSWERABLE_LATER)
    assert later >= 5, f"{later} of {len(UNANSWERABLE_LATER)} abstained"
    assert "no note" in pipeline.ask(UNANSWERABLE_LATER[0], 3)["answer"]


def test_answerable_questions_keep_their_contexts(pipeline):
    # The floors must not cost recall: every answerable question gets contexts, and the typed
    # set (pasted errors, typos, synonyms) is answered in the top 3 at least 9 times in 10.
    questions = HELD_OUT + TYPED
    assert all(pipeline.ask(q, 3)["contexts"] for q, _ in questions)
    hits = [bool({c["id"] for c in pipeline.ask(q, 3)["contexts"]} & relevant) for q, relevant in TYPED]
    assert sum(hits) / len(hits) >= 0.9


def test_short_keyword_questions_are_not_mistaken_for_unanswerable(pipeline):
    # Two words score low on both BM25 and the encoder; they are answered because the note
    # holds all of what they ask (the coverage floor). Without it "pods pending" abstained.
    for question in ["pods pending", "pods pending 3", "batching", "serve status", "autoscaling"]:
        assert pipeline.ask(question, 3)["contexts"], question
