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


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def careless():
    solution = grading.solution_answers(LAB)
    assert careless_diagnosis(solution["diagnosis"]) != solution["diagnosis"]
    assert careless_fix(solution["fix"]) != solution["fix"]
    return grading.roundtrip(LAB, {"careless": {"diagnosis": careless_diagnosis(solution["diagnosis"]),
                                                "fix": careless_fix(solution["fix"])}},
                             extremes=False)["careless"]


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 10)


@pytest.mark.extended
def test_careless_submission_loses_exactly_what_it_broke(careless):
    assert careless.cells == {
        "test_diagnosis_import": 1.0,
        "test_diagnosis_resources": 0.0,   # a Ray resource question, not Kubernetes
        "test_diagnosis_serve": 2.0,
        "test_fixed_sentiment": 1.0,
        "test_fixed_resources": 2.0,
        "test_fixed_search": 1.0,
        "test_fixed_chat_slo": 0.0,        # target 16: one replica, p95 about 800 ms
    }, careless
