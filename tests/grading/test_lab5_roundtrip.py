"""Lab 5 through the real nbgrader CLI: autoscaling under a bounded load, batching measured."""

import pytest
from roundtrip import check_extremes

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab5-autoscaling-batching"


def old_field_names(solution: str) -> str:
    # What an older tutorial would have you write: Serve ignores the unknown key
    # and autoscales towards its default target instead.
    return solution.replace('"target_ongoing_requests": 1', '"target_num_ongoing_requests_per_replica": 1')


def without_batching(solution: str) -> str:
    # Right answers, one question per device call: no @serve.batch, nothing to reconfigure.
    start = solution.index("    def reconfigure")
    end = solution.index("    async def __call__")
    return solution[:start] + """    def reconfigure(self, config: dict) -> None:
        pass

    async def score(self, question: str) -> str:
        await self.device.run(1)
        return DOCS[int((self.encoder.encode([question]) @ self.notes.T).argmax())][0]

""" + solution[end:]


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def dated():
    solution = grading.solution_answers(LAB)
    assert old_field_names(solution["autoscaling"]) != solution["autoscaling"]
    return grading.roundtrip(LAB, {"dated": {"autoscaling": old_field_names(solution["autoscaling"]),
                                             "batching": without_batching(solution["batching"])}},
                             extremes=False)["dated"]


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 10)


@pytest.mark.extended
def test_old_names_and_no_batching_cost_exactly_their_points(dated):
    assert dated.cells == {
        "test_autoscaling_fields": 0.0,   # lint finding; Serve runs its default target
        "test_scales_with_load": 4.0,     # ...which still scales under this load
        "test_scorer_correct": 2.0,
        "test_batching_speedup": 0.0,
    }, dated
