"""The deploying labs, graded cells and hidden tests included, run on the Kubernetes target.

No Kubernetes runs here, so the lab runs up to the API boundary: SERVELAB_TARGET=kubernetes,
a kubeconfig that points at the stand-in API server, and real clusters behind it
(tests/support/k8s_bridge.py). The kernel has its own empty cluster folder, so a check that
reads a local cluster instead of what KubeRay exposes (the object's status, pods, Services,
Serve's HTTP and REST API, Ray's State API) fails here. The objects and status fields the
bridge returns are shaped as KubeRay 1.7 writes them (apis/ray/v1/rayservice_types.go,
raycluster_types.go; controllers/ray/common/pod.go and service.go for pods and Services).
"""

import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from k8s_bridge import BOTH_TARGET_LABS, NODE_POOL, LocalBridge
from nbclient import NotebookClient

from servelab.course.layout import layout
from servelab.grading import selfcheck
from servelab.grading._labs import graded_cells

pytestmark = pytest.mark.live

PROBE = """
from servelab.cluster import LocalRay
from servelab.targets import KubernetesTarget, LocalTarget
assert isinstance(target, KubernetesTarget), target
assert not any(isinstance(v, LocalRay) for v in list(globals().values())), "the kernel holds a local cluster"
assert LocalTarget().names() == [], f"the kernel reached a local cluster: {LocalTarget().names()}"
"""


def run_on_kubernetes(lab: str, tmp_path: Path) -> tuple[dict, LocalBridge]:
    """Execute the lab's grading source (solution and hidden tests) with the Kubernetes target;
    returns {grade_id: error} for the graded cells that failed, and the bridge."""
    source = layout().grading / "source" / lab / f"{lab}.ipynb"
    nb = nbformat.read(source, as_version=4)
    # Before the teardown: what the lab made is not a local cluster this kernel could reach.
    teardown = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "teardown")
    nb.cells.insert(teardown, nbformat.v4.new_code_cell(PROBE, metadata={"nbgrader": {"grade_id": "probe"}}))
    work, objects = tmp_path / "work", tmp_path / "objects"
    work.mkdir()
    objects.mkdir()
    base = Path(f"/tmp/servelab-{os.getuid()}")  # short: Ray's socket paths are limited
    base.mkdir(parents=True, exist_ok=True)
    kernel_root = tempfile.mkdtemp(prefix="k", dir=base)
    try:
        with LocalBridge(objects) as bridge:
            env = {**os.environ, "SERVELAB_TARGET": "kubernetes", "SERVELAB_TMPDIR": kernel_root,
                   "KUBECONFIG": str(bridge.kubeconfig(tmp_path / "kubeconfig")),
                   "PATH": f"{bridge.kubectl_bin(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
                   selfcheck.SKIP_ENV: "1"}
            NotebookClient(nb, timeout=600, allow_errors=True,
                           resources={"metadata": {"path": str(work)}}).execute(env=env)
            assert os.listdir(kernel_root) == [], "the kernel started a cluster of its own"
    finally:
        shutil.rmtree(kernel_root, ignore_errors=True)
    graded = {grade_id for grade_id, _, _ in graded_cells(source)}
    failures = {}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and (grade_id in graded or grade_id in ("setup", "bring_up", "probe")):
            failures[grade_id] = f"{errors[0]['ename']}: {errors[0]['evalue']}"[:600]
    return failures, bridge


# What else a lab must do through the API: lab 6's faults are `kubectl exec` in the pod and its
# alert a PrometheusRule (not signals to local pids, not a file beside a local Prometheus).
ALSO_THROUGH_THE_API = {"lab6-fault-injection": ("/exec", "/prometheusrules")}
NEEDS_PROMETHEUS = {"lab6-fault-injection"}

# Labs 5 and 7 take 4 to 5 minutes each here, lab 6 about 3: `make test-extended` runs them (the
# guard in tests/unit/test_labs_read_both_targets.py checks every lab in `make test`; lab 6's
# `kubectl exec` faults and PrometheusRule calls are checked against a stand-in API server in
# tests/unit/test_faults.py and test_target_kubernetes.py).
EXTENDED = {"lab5-autoscaling-batching", "lab6-fault-injection", "lab7-debug-by-layer"}


@pytest.mark.parametrize("lab", [pytest.param(lab, marks=pytest.mark.extended) if lab in EXTENDED else lab
                                 for lab in BOTH_TARGET_LABS])
def test_graded_cells_pass_through_the_kubernetes_api(lab, tmp_path, monkeypatch):
    if lab in NEEDS_PROMETHEUS and shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (`make system`): it plays kube-prometheus-stack's")
    if lab in NODE_POOL:
        monkeypatch.setenv("SERVELAB_MAX_NODES", str(NODE_POOL[lab]))
    failures, bridge = run_on_kubernetes(lab, tmp_path)
    assert failures == {}, failures
    created = [path for method, path, _ in bridge.calls("POST") if "/apis/ray.io/v1/" in path]
    assert created, "the lab created nothing through the Kubernetes API"
    for what in ALSO_THROUGH_THE_API.get(lab, ()):
        assert any(what in path for _, path, _ in bridge.calls("POST")), f"nothing went through {what}"
    assert bridge.objects == {}, f"the lab's teardown left {sorted(bridge.objects)}"  # deleted as the kind it is
    assert bridge.rules == {}, f"the lab's teardown left {sorted(bridge.rules)}"  # deleted with their owner
