"""Reading the manifest a target brings up: validated first, so errors stop before anything starts."""

from __future__ import annotations

from pathlib import Path

from servelab.errors import ServelabError
from servelab.manifests import _kuberay as manifests


class ManifestError(ServelabError, ValueError):
    """The manifest has errors; nothing was started."""

    layer = "KubeRay"


def read_manifest(path: str | Path) -> dict:
    """The first RayCluster or RayService in the file; errors stop here, not halfway up."""
    findings = manifests.validate_file(path)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise ManifestError("the manifest has errors; fix them first:\n" + "\n".join(map(str, errors)))
    docs, _ = manifests.load(Path(path).read_text(), str(path))
    for doc in docs:
        if doc.get("kind") in ("RayCluster", "RayService"):
            return doc
    raise ManifestError(f"{path} holds no RayCluster or RayService")
