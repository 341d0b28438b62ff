"""A tiny sentiment model whose weights a fault can wipe (Lab 6).

A word list scores a text: positive words +1, negative words -1. What makes it
useful for fault drills is `servelab fault lose-state`: the flagged replica's
model forgets its weights and keeps answering — every text becomes "neutral"
with HTTP 200. No request fails and Ray sees nothing wrong; only a health
check that looks at the model's own state can tell.
"""

from __future__ import annotations

from servelab.apps.textsearch import words
from servelab.faults import _flags as fault_flags

POSITIVE = ("great", "fast", "good", "love", "excellent", "reliable", "happy", "smooth", "works", "helpful")
NEGATIVE = ("slow", "broken", "bad", "hate", "awful", "crash", "crashes", "error", "fails", "timeout")


class LexiconModel:
    def __init__(self):
        self.weights = {**{w: 1.0 for w in POSITIVE}, **{w: -1.0 for w in NEGATIVE}}

    def _apply_faults(self) -> None:
        if self.weights and fault_flags.raised(fault_flags.LOSE_STATE):
            self.weights = {}  # what an evicted cache or a corrupted device buffer looks like

    def loaded(self) -> bool:
        """Are the weights there? (What a health check should ask.)"""
        self._apply_faults()
        return len(self.weights) == len(POSITIVE) + len(NEGATIVE)

    def predict(self, text: str) -> dict:
        self._apply_faults()
        score = sum(self.weights.get(w, 0.0) for w in words(text))
        label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
        return {"label": label, "score": score}
