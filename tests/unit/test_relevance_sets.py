"""The RAG pipeline's relevance sets (servelab/apps/knowledge.py) measure retrieval honestly:
every id they name is a note, the typed set is large enough to mean something, and no
question is a note's own sentence (which would measure copying, not retrieval)."""

import re

from servelab.apps.knowledge import DOCS, HELD_OUT, TYPED, UNANSWERABLE, UNANSWERABLE_LATER


def shingles(text: str, n: int = 6) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9_]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_the_sets_name_real_notes_and_are_large_enough():
    ids = {doc_id for doc_id, _, _ in DOCS}
    for questions in (HELD_OUT, TYPED):
        assert all(relevant and relevant <= ids for _, relevant in questions)
    assert len(TYPED) >= 60 and len(UNANSWERABLE) >= 6 and len(UNANSWERABLE_LATER) >= 6
    asked = [q for q, _ in HELD_OUT + TYPED] + UNANSWERABLE + UNANSWERABLE_LATER
    assert len(set(asked)) == len(asked), "a question appears twice"


def test_no_typed_question_copies_a_note():
    # (HELD_OUT is kept as first measured: one of its questions shares six words with KB-019)
    notes = set().union(*(shingles(f"{title} {text}") for _, title, text in DOCS))
    copied = [q for q, _ in TYPED if shingles(q) & notes]
    assert copied == []
