"""Lab 3 through the real nbgrader CLI: the manifest is checked, then the live cluster it made."""

import pytest
from roundtrip import check_extremes, replace_once

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


def unquoted_params(manifest: str) -> str:
    """What lesson 03 and the task warn against: a number in rayStartParams. KubeRay's CRD takes
    only strings, so the API server (and the local target) refuse the manifest and nothing runs:
    it costs validity, the head's check and every live check; the workers' spec keeps its points."""
    return replace_once(manifest, 'num-cpus: "0"', "num-cpus: 0")


# The scale-out also gives the workers 2Gi. KubeRay makes the third pod from the new template and
# leaves the two running ones at 1Gi (raycluster_controller.go, reconcilePods): the live nodes no
# longer match the manifest applied last, and only that check says so.
DRIFTED = '''
SCALED.write_text(MANIFEST.replace("replicas: 2", "replicas: 3", 1).replace("memory: 1Gi", "memory: 2Gi"))
cluster = target.up(SCALED, wait=True)
'''


@pytest.fixture(scope="module")
def graded():
    solution = grading.solution_answers(LAB)
    return grading.roundtrip(LAB, {"halfright": {"manifest": HALF_RIGHT},
                                   "unquoted": {"manifest": unquoted_params(solution["manifest"])},
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


def test_an_invalid_manifest_costs_what_depends_on_it_and_grading_goes_on(graded):
    r = graded["unquoted"]
    assert r.cells == {"test_manifest_valid": 0.0, "test_manifest_head": 0.0, "test_manifest_workers": 2.0,
                       "test_live_nodes": 0.0, "test_live_matches_manifest": 0.0, "test_scaled_in_place": 0.0}, r
    assert "rayStartParams.num-cpus: value 0 is not a string" in r.errors["test_manifest_valid"], r.errors


@pytest.mark.extended
def test_workers_changed_while_scaling_lose_exactly_the_live_match():
    r = grading.roundtrip(LAB, {"drifted": {"scale_out": DRIFTED}}, extremes=False)["drifted"]
    assert r.cells == {"test_manifest_valid": 2.0, "test_manifest_head": 2.0, "test_manifest_workers": 2.0,
                       "test_live_nodes": 2.0, "test_live_matches_manifest": 0.0, "test_scaled_in_place": 2.0}, r
    assert "running pods keep theirs" in r.errors["test_live_matches_manifest"], r.errors
