"""Retrieval and scoring used by the course's Serve apps: plain Python and numpy.

- `BM25`: ranked keyword retrieval, the classic first stage of a RAG pipeline.
- `Encoder`: turns texts into dense vectors the way a small embedding model would:
  hashed word and character-trigram features through one fixed weight matrix.
  Like a real model, its cost is dominated by reading the weights, which a
  batch reads once for all its texts: that is why batching pays off.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from http import HTTPStatus
from typing import Callable

import numpy as np

_WORD = re.compile(r"[a-z0-9_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    # Enough to match "pods"/"pod" and "scheduled"/"schedule": no dictionary needed.
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) - len(suffix) >= 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            # "flapping" -> "flapp" -> "flap", "stopped" -> "stop" (Porter's step 1b); not "ll",
            # "ss", "zz", and not below 3 letters ("added" -> "add").
            if (suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2]
                    and word[-1] not in "aeioulsz"):
                word = word[:-1]
            return word
    return word


# People paste an error's reason phrase ("Service Unavailable", or 'service unavailable' in
# quotes); the notes name the status code. A 4xx or 5xx phrase of two or more words, from
# Python's own table, adds its code when it is written as a reason phrase is: in quotes or
# in Title Case. Plain prose ("module not found", "request timeouts") adds nothing.
_REASONS = [(re.compile(r"(['\"`]?)\b(" + re.escape(status.phrase) + r")\b(['\"`]?)", re.IGNORECASE), str(status.value))
            for status in HTTPStatus if status.value >= 400 and " " in status.phrase]


def _pasted(match: re.Match) -> bool:
    quoted = match.group(1) and match.group(1) == match.group(3)
    words = match.group(2).split()
    return bool(quoted) or all(w[0].isupper() for w in words if w[0].isalpha())


def with_status_codes(text: str) -> str:
    codes = [code for pattern, code in _REASONS if code not in text
             and any(_pasted(m) for m in pattern.finditer(text))]
    return text + (" " + " ".join(codes) if codes else "")


def terms(text: str) -> list[str]:
    return [stem(w) for w in words(text)]


# Words that say how a question is asked, not what it is about. Left in, a rambling question's
# "the", "my" and "keeps" outweigh the one rare word that names the problem ("redis").
# Negations and up/down stay: "scale up" is not "scale down", "not ready" is not "ready".
STOP_WORDS = frozenset("""
a an the and or but if then else of on in at to for from by with into onto out off over under
before after more few
is are was were be been being am do does did doing have has had i me my we our us you your it its
this that these those there here what which who whom how why when where can could should would
will shall may might must yes so as than too very just also only all any some each every
about again against between both during most other own same such once further while because
until through s t don now get got need needs want wants try trying tried keep keeps still
pls please hi hello thanks urgent asap
""".split())


def content_terms(text: str) -> list[str]:
    """`terms` without the stop words, and a pasted reason phrase's status code: what the
    Retriever's BM25 indexes."""
    return [stem(w) for w in words(with_status_codes(text)) if w not in STOP_WORDS]


class BM25:
    """Okapi BM25 over a fixed list of documents (k1 and b at their usual values).

    `tokenize` turns a text into terms; by default lower-cased, lightly stemmed words.
    """

    def __init__(self, documents: list[str], k1: float = 1.2, b: float = 0.75,
                 tokenize: Callable[[str], list[str]] = terms):
        self.k1, self.b, self.tokenize = k1, b, tokenize
        self.docs = [Counter(tokenize(d)) for d in documents]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg_len = sum(self.lengths) / max(len(self.docs), 1)
        df = Counter(t for d in self.docs for t in d)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def __len__(self) -> int:
        return len(self.docs)

    def coverage(self, query: str, index: int) -> float:
        """How much of the query's weight (idf) document `index` contains, from 0 to 1.

        A term no document contains weighs as much as the rarest one: "kafka" in a question
        about Kafka is what the question is about, and no note here covers it. Numbers do not
        count ("pending for 42 hours" asks what "pending" asks)."""
        query_terms = {t for t in self.tokenize(query) if not t.isdigit()}
        rarest = math.log(1 + (len(self.docs) + 0.5) / 0.5)
        total = sum(self.idf.get(t, rarest) for t in query_terms)
        found = sum(self.idf[t] for t in query_terms if t in self.docs[index])
        return found / total if total else 0.0

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The k best (document index, score) pairs; documents sharing no term are left out."""
        query_terms = set(self.tokenize(query))
        scored = []
        for i, (doc, length) in enumerate(zip(self.docs, self.lengths)):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg_len)
            score = sum(self.idf[t] * doc[t] * (self.k1 + 1) / (doc[t] + norm)
                        for t in query_terms if t in doc)
            if score > 0:
                scored.append((i, score))
        scored.sort(key=lambda s: s[1], reverse=True)
        return scored[:k]


class Encoder:
    """A fixed random projection of hashed features: similar texts get similar vectors.

    `features` x `dim` float32 weights (16 MiB by default), generated from a seed,
    so every replica holds the same "model" without a download.
    """

    def __init__(self, features: int = 1 << 14, dim: int = 256, seed: int = 7):
        self.features, self.dim = features, dim
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((features, dim), dtype=np.float32) / math.sqrt(dim)

    @classmethod
    def from_weights(cls, weights: np.ndarray) -> "Encoder":
        """An encoder around weights saved earlier (see apps/bake.py)."""
        encoder = cls.__new__(cls)
        encoder.features, encoder.dim = weights.shape
        encoder.weights = np.asarray(weights, dtype=np.float32)
        return encoder

    def _hashed(self, text: str) -> Counter:
        grams = Counter()
        for w in terms(text):
            grams[zlib.crc32(w.encode()) % self.features] += 2.0
            padded = f"#{w}#"
            for i in range(len(padded) - 2):
                grams[zlib.crc32(padded[i:i + 3].encode()) % self.features] += 1.0
        return grams

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text; one matrix product for the whole batch."""
        x = np.zeros((len(texts), self.features), dtype=np.float32)
        for row, text in enumerate(texts):
            for col, count in self._hashed(text).items():
                x[row, col] = count
        v = x @ self.weights
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.maximum(norms, 1e-9)

    def ready(self) -> bool:
        return self.weights.shape == (self.features, self.dim) and bool(np.isfinite(self.weights[0, 0]))
