"""Model files made once, so a replica reads them instead of making them.

`python -m servelab.apps.bake DIR` writes the Reranker's sentence encoder
(servelab/apps/sentence.py) to DIR decompressed. The package keeps its weights compressed, and
every process that loads them decompresses and holds its own 65 MB token table. An image that
sets SERVELAB_MODEL_DIR=DIR (docker/rag-app.Dockerfile) bakes at build time; its replicas read
the rows they need from the one table file instead: no decompression at start, one copy in the
node's page cache however many replicas read it.

Without the variable (the local target), the first replica bakes into this user's cache folder
(~/.cache/servelab, or $XDG_CACHE_HOME) and every later one reads from there, so a learner's
2 GB stack does not carry a copy of the table per replica.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from servelab.apps.sentence import PACKAGE, TABLE_FILE, SentenceEncoder, package_version

ENV = "SERVELAB_MODEL_DIR"


def encoder_file(directory: str | Path) -> Path:
    return Path(directory) / TABLE_FILE


def bake(directory: str | Path) -> Path:
    """Write the Reranker's encoder to `directory` and check that what was written encodes
    exactly as the package does (a mismatch fails the image build, not every replica)."""
    package = SentenceEncoder()
    package.save(directory)
    probe = ["pods stuck in Pending", "the head pod was OOMKilled"]
    if not np.array_equal(SentenceEncoder(directory).encode(probe), package.encode(probe)):
        raise RuntimeError(f"the encoder baked into {directory} does not encode as {PACKAGE} does")
    return encoder_file(directory)


def cache_dir() -> Path:
    """Where the local target bakes: per user, per version of the encoder's package."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "servelab" / f"{PACKAGE}-{package_version()}"


def _bake_into_cache() -> Path | None:
    """Bake into cache_dir() unless done; None when the cache cannot be written."""
    target = cache_dir()
    if encoder_file(target).exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Bake beside it, then rename: replicas starting together never read a half-written
        # folder, and the one that loses the race throws its copy away.
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
        bake(partial)
        try:
            partial.rename(target)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
        return target if encoder_file(target).exists() else None
    except OSError:
        return None


def reranker_encoder(directory: str | Path | None = None) -> SentenceEncoder:
    """The encoder baked into `directory` (default: SERVELAB_MODEL_DIR), else into this user's
    cache (baked now if needed), else the package's own copy when the cache is not writable."""
    directory = directory or os.environ.get(ENV)
    if not directory:
        cached = _bake_into_cache()
        return SentenceEncoder(cached) if cached else SentenceEncoder()
    path = encoder_file(directory)
    if not path.exists():
        # A baked image without its model file is a build mistake: fail loudly, in the
        # replica's constructor, where Serve reports it as DEPLOY_FAILED.
        raise FileNotFoundError(f"model directory {directory} has no {path.name}; "
                                f"run `python -m servelab.apps.bake {directory}` in the image build")
    return SentenceEncoder(path.parent)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m servelab.apps.bake DIR")
    print(f"wrote {bake(sys.argv[1])}")
