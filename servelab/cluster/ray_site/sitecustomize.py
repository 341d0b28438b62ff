"""Imported by Python at start-up in every process of a servelab cluster (ray_site/__init__.py).

Every Ray process imports jsonschema (Ray validates runtime-env plugin schemas with it), and
jsonschema imports each optional format checker it finds installed. Jupyter installs
rfc3987-syntax for one of them, the "iri" format, and that package builds a grammar with
lark when imported: about 1.4 s of CPU and 15 MiB per process. A cluster has a dozen such
processes, every replica start pays it again, and none of them validates an IRI. Marking
the module absent makes jsonschema skip that one checker, as on a machine without it.
"""

import importlib.machinery
import importlib.util
import os
import sys

sys.modules.setdefault("rfc3987_syntax", None)  # `import rfc3987_syntax` now raises ImportError


def _run_the_one_we_shadow() -> None:
    """This file hides any other sitecustomize on the path (a distribution's): run that too."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec and spec.loader:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_run_the_one_we_shadow()
