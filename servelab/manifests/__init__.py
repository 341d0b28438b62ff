"""KubeRay manifests checked before anything runs: structure, Serve config, placement.

Public: `validate_file`, `validate_text`, `validate` (lists of `Finding`s, each naming
the field path and the fix), `load`, and the modules `serve_lint` (the strict
serveConfigV2 pass) and `placement` (node shapes and what they can hold).
"""

from servelab.manifests import placement, serve_lint
from servelab.manifests._findings import Finding
from servelab.manifests._kuberay import load, validate, validate_file, validate_text

__all__ = ["Finding", "load", "validate", "validate_file", "validate_text", "placement", "serve_lint"]
