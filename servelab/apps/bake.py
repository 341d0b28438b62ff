"""Model files made at image build time, so a replica loads them instead of making them.

`python -m servelab.apps.bake DIR` writes the Reranker's encoder weights to DIR. An image
that sets SERVELAB_MODEL_DIR=DIR (docker/rag-app.Dockerfile) gives every replica the same
file, read in milliseconds: no download, no recomputation, nothing lost when a pod restarts.
Without the variable, replicas generate the weights themselves (the local target).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from servelab.apps.textsearch import Encoder

ENV = "SERVELAB_MODEL_DIR"
RERANKER_DIM = 1024


def encoder_file(directory: str | Path) -> Path:
    return Path(directory) / f"encoder-{RERANKER_DIM}.npz"


def bake(directory: str | Path) -> Path:
    """Write the Reranker's encoder to `directory`; returns the file."""
    encoder = Encoder(dim=RERANKER_DIM)
    path = encoder_file(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, weights=encoder.weights, features=encoder.features, dim=encoder.dim)
    return path


def reranker_encoder(directory: str | Path | None = None) -> Encoder:
    """The encoder baked into `directory` (default: SERVELAB_MODEL_DIR), else a freshly
    generated one when neither is given."""
    directory = directory or os.environ.get(ENV)
    if not directory:
        return Encoder(dim=RERANKER_DIM)
    path = encoder_file(directory)
    if not path.exists():
        # A baked image without its model file is a build mistake: fail loudly, in the
        # replica's constructor, where Serve reports it as DEPLOY_FAILED.
        raise FileNotFoundError(f"model directory {directory} has no {path.name}; "
                                f"run `python -m servelab.apps.bake {directory}` in the image build")
    with np.load(path) as data:
        return Encoder.from_weights(data["weights"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m servelab.apps.bake DIR")
    print(f"wrote {bake(sys.argv[1])}")
