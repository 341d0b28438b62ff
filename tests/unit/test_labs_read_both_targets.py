"""The graded cells of the deploying labs read only what both targets expose.

A learner on a real cluster runs the same notebook with SERVELAB_TARGET=kubernetes, so a
graded cell (hidden tests included) may reach the cluster only through the target and
`servelab.grading.live`: the RayService/RayCluster status, pods, Serve's HTTP and REST
API, Ray's State API. These are the names that would tie a check to the local target.
tests/live/test_labs_on_kubernetes.py runs the same cells through the Kubernetes API.
"""

import re

import pytest
from k8s_bridge import BOTH_TARGET_LABS

from servelab.course.layout import layout
from servelab.grading._labs import graded_cells

LOCAL_ONLY = {
    r"\blocal\.": "the local target's module (use `target` and `lab`)",
    r"\b_local_objects\b|\blocal_objects\b": "the local target's object listing (use `lab.pods()`)",
    r"\bLocalFaults\b|\bstart_local\b": "a local-only cluster or fault injector",
    r"\bcluster\.\w+": "the handle `up` returned (a LocalRay locally, a dict on Kubernetes)",
    r"(status\([^)]*\)|report)\[\"(placement|nodes|localTarget)\"\]":
        "a field only the local status adds (use `lab.placement()`, `lab.nodes()`)",
}


def source(lab: str):
    return layout().grading / "source" / lab / f"{lab}.ipynb"


@pytest.mark.parametrize("lab", BOTH_TARGET_LABS)
def test_graded_cells_use_nothing_local_only(lab):
    found = [(grade_id, why, m.group(0)) for grade_id, _, text in graded_cells(source(lab))
             for pattern, why in LOCAL_ONLY.items() for m in re.finditer(pattern, text)]
    assert found == [], found


def test_the_guard_catches_what_graded_lab_4_used_to_read():
    old = 'placement = local.status(cluster)["placement"]\nassert cluster.serve_url'
    hits = [LOCAL_ONLY[pattern] for pattern in LOCAL_ONLY if re.search(pattern, old)]
    assert len(hits) == 3, hits
    # ...and not what the app itself answers, which is the same on both targets
    assert not any(re.search(p, 'answer["placement"]["Generator"]') for p in LOCAL_ONLY)
