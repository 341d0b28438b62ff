"""Lab 7 through the real nbgrader CLI: five broken services, diagnosed and fixed live."""

import pytest
from roundtrip import check_extremes

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab7-debug-by-layer"


def careless_diagnosis(solution: str) -> str:
    # Blames Kubernetes for a GPU request no Ray node can meet.
    return solution.replace('"captioner": ("Ray runtime", "gpu_request")', '"captioner": ("Kubernetes", "gpu_request")')


def careless_fix(solution: str) -> str:
    # Fixes four services and leaves chat's autoscaling target alone.
    return "\n".join(line for line in solution.splitlines() if "target_ongoing_requests" not in line)


def careless_vision(solution: str) -> str:
    # Reads the Ray symptom (a replica waiting for a GPU) as the cause, calls the old image a bad
    # tag, and so fixes only the pod count: upgradeStrategy None keeps the old pods' image.
    wrong = (solution.replace('("Kubernetes", "pod_unschedulable")', '("Ray runtime", "gpu_request")')
             .replace('("KubeRay", "upgrade_strategy")', '("Kubernetes", "image_tag")'))
    return wrong.replace('.replace("upgradeStrategy: {type: None}", "upgradeStrategy: {type: NewCluster}")', "")


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def careless():
    solution = grading.solution_answers(LAB)
    assert careless_diagnosis(solution["diagnosis"]) != solution["diagnosis"]
    assert careless_fix(solution["fix"]) != solution["fix"]
    assert careless_vision(solution["vision_fix"]).count("NewCluster") == 0
    return grading.roundtrip(LAB, {"careless": {"diagnosis": careless_diagnosis(solution["diagnosis"]),
                                                "fix": careless_fix(solution["fix"]),
                                                "vision_fix": careless_vision(solution["vision_fix"])}},
                             extremes=False)["careless"]


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 14)


@pytest.mark.extended
def test_careless_submission_loses_exactly_what_it_broke(careless):
    assert careless.cells == {
        "test_diagnosis_import": 1.0,
        "test_diagnosis_resources": 0.0,   # a Ray resource question, not Kubernetes
        "test_diagnosis_serve": 2.0,
        "test_fixed_sentiment": 1.0,
        "test_fixed_resources": 2.0,
        "test_fixed_search": 1.0,
        "test_diagnosis_outer": 0.0,       # the Ray symptom, not the Pending pod; not KubeRay's strategy
        "test_fixed_vision": 0.0,          # with type None KubeRay applies none of it: a GPU pod stays Pending
        "test_fixed_chat_slo": 0.0,        # target 16: one replica, p95 about 800 ms
    }, careless
