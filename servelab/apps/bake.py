"""Model files made at image build time, so a replica maps them instead of making them.

`python -m servelab.apps.bake DIR` writes the Reranker's sentence encoder
(servelab/apps/sentence.py) to DIR decompressed. The package keeps its weights compressed, and
every process that loads them decompresses its own 65 MB token table. An image that sets
SERVELAB_MODEL_DIR=DIR (docker/rag-app.Dockerfile) lets every replica map the same table file
read-only instead: no decompression at start, one copy in the node's page cache however many
replicas read it. Without the variable, replicas load the package's own copy (the local target).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from servelab.apps.sentence import TABLE_FILE, SentenceEncoder

ENV = "SERVELAB_MODEL_DIR"


def encoder_file(directory: str | Path) -> Path:
    return Path(directory) / TABLE_FILE


def bake(directory: str | Path) -> Path:
    """Write the Reranker's encoder to `directory`; returns its table file."""
    SentenceEncoder().save(directory)
    return encoder_file(directory)


def reranker_encoder(directory: str | Path | None = None) -> SentenceEncoder:
    """The encoder over the table baked into `directory` (default: SERVELAB_MODEL_DIR), else
    over the package's own copy when neither is given."""
    directory = directory or os.environ.get(ENV)
    if not directory:
        return SentenceEncoder()
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
