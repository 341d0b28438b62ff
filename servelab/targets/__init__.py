"""Where a manifest runs: `local` (a private Ray cluster here) or `kubernetes` (KubeRay).

Both take the same manifest files and report status in the same RayService
vocabulary, so lessons and graded checks work on either.

Public: `Target`, the interface both implement (`up`, `status`, `wait_ready`, `down`,
`endpoints`, `names`), and `get_target(name=None)`, which picks one by name, else
SERVELAB_TARGET, else local; `LocalTarget` and `KubernetesTarget`, the two
implementations; `local` (the local target's module functions: `local.up(FILE)`,
`local.status(cluster)`, `local.wait_ready(cluster)`, `local.down(NAME)`), `kubernetes`
(helm install of the operator, `KubernetesTarget`, port-forwards), the status
vocabulary (`is_ready`, `ready_condition`), `ManifestError` and `read_manifest`.
"""

from servelab.targets import _kubernetes as kubernetes
from servelab.targets import _local as local
from servelab.targets._base import Target, get_target
from servelab.targets._kubernetes import KUBERAY_VERSION, KubernetesTarget
from servelab.targets._local import LocalTarget
from servelab.targets._manifest import ManifestError, read_manifest
from servelab.targets._vocabulary import is_ready, ready_condition

__all__ = ["Target", "get_target", "LocalTarget", "KubernetesTarget", "local", "kubernetes", "KUBERAY_VERSION",
           "ManifestError", "read_manifest", "is_ready", "ready_condition"]
