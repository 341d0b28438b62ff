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


def default_idle_timeout(solution: str) -> str:
    # Ray's autoscaler on, bounds right, but no autoscalerOptions: idle GPU pods stay the
    # default 60 s (idleTimeoutSeconds, apis/ray/v1/raycluster_types.go in KubeRay 1.7).
    start = solution.index("  autoscalerOptions:")
    end = solution.index("  headGroupSpec:")
    return solution[:start] + solution[end:]


def no_downscale_delay(solution: str) -> str:
    # downscale_delay_s left out: Serve's default keeps extra replicas for 600 s after a load.
    assert solution.count('        "downscale_delay_s": 8,\n') == 1
    return solution.replace('        "downscale_delay_s": 8,\n', "")


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def wrong():
    solution = grading.solution_answers(LAB)
    assert old_field_names(solution["autoscaling"]) != solution["autoscaling"]
    assert "autoscalerOptions" not in default_idle_timeout(solution["autoscaler_manifest"])
    return grading.roundtrip(LAB, {"dated": {"autoscaling": old_field_names(solution["autoscaling"]),
                                             "batching": without_batching(solution["batching"]),
                                             "autoscaler_manifest": default_idle_timeout(
                                                 solution["autoscaler_manifest"])},
                                   "sticky": {"autoscaling": no_downscale_delay(solution["autoscaling"])}},
                             extremes=False)


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 12)


@pytest.mark.extended
def test_old_names_no_batching_and_default_idle_time_cost_exactly_their_points(wrong):
    assert wrong["dated"].cells == {
        "test_autoscaling_fields": 0.0,   # lint finding; Serve runs its default target
        "test_scales_with_load": 4.0,     # ...which still scales under this load
        "test_scorer_correct": 2.0,
        "test_batching_speedup": 0.0,
        "test_autoscaler": 0.0,           # the idle GPU pods outlive the 45 s
    }, wrong["dated"]


@pytest.mark.extended
def test_scaling_up_but_never_down_earns_half_the_scaling_points(wrong):
    """Partial credit (checks.credit): 2 of 4 for a Generator that scales up and stays up."""
    assert wrong["sticky"].cells == {
        "test_autoscaling_fields": 2.0, "test_scales_with_load": 2.0, "test_scorer_correct": 2.0,
        "test_batching_speedup": 2.0, "test_autoscaler": 2.0,
    }, wrong["sticky"]


def titles_not_ids(solution: str) -> str:
    # Finds the right notes, and answers with their titles where the task asks for their ids.
    old = "return [DOCS[i][0] for i in best]"
    assert solution.count(old) == 1
    return solution.replace(old, "return [DOCS[i][1] for i in best]")


@pytest.mark.extended
def test_a_scorer_that_answers_titles_loses_exactly_its_points():
    solution = grading.solution_answers(LAB)
    graded = grading.roundtrip(LAB, {"titles": {"batching": titles_not_ids(solution["batching"])}},
                               extremes=False)["titles"]
    assert graded.cells == {"test_autoscaling_fields": 2.0, "test_scales_with_load": 4.0,
                            "test_scorer_correct": 0.0, "test_batching_speedup": 2.0,
                            "test_autoscaler": 2.0}, graded
