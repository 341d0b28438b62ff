"""Lab 3 through the real nbgrader CLI: the manifest is checked, then the live cluster it made."""

import pytest
from roundtrip import check_extremes

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab3-kuberay-cluster"

# Valid, and what it promises is what runs, but it misses two points of the
# specification: the head offers its CPU to Ray, and workers get 2 CPUs.
HALF_RIGHT = '''
MANIFEST = """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: lab3-cluster
spec:
  rayVersion: "2.60.0"
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.60.0-py311
            resources:
              limits: {cpu: "1", memory: 2Gi}
  workerGroupSpecs:
    - groupName: cpu-workers
      replicas: 2
      minReplicas: 1
      maxReplicas: 3
      template:
        spec:
          containers:
            - name: ray-worker
              image: rayproject/ray:2.60.0-py311
              resources:
                limits: {cpu: "2", memory: 1Gi}
"""
'''

# Three workers, but by deleting the cluster and creating it again: the head restarts.
RECREATED = '''
SCALED.write_text(MANIFEST.replace("replicas: 2", "replicas: 3", 1))
target.down("lab3-cluster")
cluster = target.up(SCALED, wait=True)
'''

# Not YAML a validator can read: the cluster never starts, grading goes on.
BROKEN = 'MANIFEST = "kind: RayCluster\\n  spec: [unclosed"\n'


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB, {"halfright": {"manifest": HALF_RIGHT}, "broken": {"manifest": BROKEN},
                                   "recreated": {"scale_out": RECREATED}})


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 12)


def test_live_checks_follow_the_learners_own_manifest(graded):
    r = graded["halfright"]
    assert r.cells == {
        "test_manifest_valid": 2.0,
        "test_manifest_head": 0.0,         # num-cpus "0" missing
        "test_manifest_workers": 0.0,      # 2 CPUs per worker (hidden shape check)
        "test_live_nodes": 0.0,            # the head offers a CPU
        "test_live_matches_manifest": 2.0,  # but the cluster is what the manifest says
        "test_scaled_in_place": 2.0,        # and Task 3 scaled it in place
    }, r


def test_a_cluster_recreated_to_scale_loses_the_in_place_points_only(graded):
    r = graded["recreated"]
    assert r.cells == {"test_manifest_valid": 2.0, "test_manifest_head": 2.0, "test_manifest_workers": 2.0,
                       "test_live_nodes": 2.0, "test_live_matches_manifest": 2.0, "test_scaled_in_place": 0.0}, r
    assert "re-created instead of scaled" in r.errors["test_scaled_in_place"], r.errors


def test_a_broken_manifest_costs_its_points_and_grading_goes_on(graded):
    r = graded["broken"]
    assert r.total == 0, r
    assert "test_manifest_valid" in r.errors, r
