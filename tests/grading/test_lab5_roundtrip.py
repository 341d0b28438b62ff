"""Lab 5 through the real nbgrader CLI: autoscaling under a bounded load, batching measured."""

import pytest
from roundtrip import check_extremes, one_mistake_each, replace_once

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab5-autoscaling-batching"


def old_field_names(solution: str) -> str:
    # What an older tutorial would have you write: Serve ignores the unknown key
    # and autoscales towards its default target instead.
    return replace_once(solution, '"target_ongoing_requests": 1', '"target_num_ongoing_requests_per_replica": 1')


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
    return replace_once(solution, '        "downscale_delay_s": 8,\n', "")


def queue_without_bound(solution: str) -> str:
    # Caps what the replica works on and believes that bounds the wait: with no max_queued_requests
    # every extra request queues at the caller, and 32 clients wait seconds each (4.4 s p50 measured).
    return "\n".join(line for line in solution.splitlines()
                     if '"max_queued_requests"' not in line and '"backpressure_config"' not in line)


def queue_too_long(solution: str) -> str:
    # Bounds the queue and sheds with Retry-After, but lets 12 wait: admitted requests then
    # queue for well over a second, past the 1 s the task asks for.
    return replace_once(solution, '"max_queued_requests": 1,', '"max_queued_requests": 12,')


def titles_not_ids(solution: str) -> str:
    # Finds the right notes, and answers with their titles where the task asks for their ids.
    old = "return [DOCS[i][0] for i in best]"
    return replace_once(solution, old, "return [DOCS[i][1] for i in best]")


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def wrong():
    solution = grading.solution_answers(LAB)
    mistakes = {"old-names": ("autoscaling", old_field_names), "unbatched": ("batching", without_batching),
                "default-idle": ("autoscaler_manifest", default_idle_timeout),
                "unbounded": ("shedding", queue_without_bound), "long-queue": ("shedding", queue_too_long),
                "sticky": ("autoscaling", no_downscale_delay), "titles": ("batching", titles_not_ids)}
    return grading.roundtrip(LAB, one_mistake_each(solution, mistakes), extremes=False)


FULL = {"test_autoscaling_fields": 2.0, "test_scales_with_load": 4.0, "test_scorer_correct": 2.0,
        "test_batching_speedup": 2.0, "test_sheds_load": 4.0, "test_autoscaler": 2.0}


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 16)


@pytest.mark.extended
@pytest.mark.parametrize("name, cell", [
    ("old-names", "test_autoscaling_fields"),  # a lint finding; Serve runs its default target, which still scales
    ("unbatched", "test_batching_speedup"),
    ("default-idle", "test_autoscaler"),       # the idle GPU pods outlive the 45 s
    ("titles", "test_scorer_correct"),         # the right notes, answered by title where the task asks for ids
    ("unbounded", "test_sheds_load"),          # nothing shed, and every admitted request waits seconds
])
def test_each_mistake_loses_exactly_its_cell(wrong, name, cell):
    assert wrong[name].cells == {**FULL, cell: 0.0}, wrong[name]


@pytest.mark.extended
def test_scaling_up_but_never_down_earns_half_the_scaling_points(wrong):
    """Partial credit (checks.credit): 2 of 4 for a Generator that scales up and stays up."""
    assert wrong["sticky"].cells == {
        "test_autoscaling_fields": 2.0, "test_scales_with_load": 2.0, "test_scorer_correct": 2.0,
        "test_batching_speedup": 2.0, "test_sheds_load": 4.0, "test_autoscaler": 2.0,
    }, wrong["sticky"]


@pytest.mark.extended
def test_shedding_with_a_queue_too_long_earns_half_the_shedding_points(wrong):
    """Excess requests get a fast 503 with Retry-After (2 of 4), but the 17 admitted at a time
    wait past the 1 s p99 the task asks for."""
    assert wrong["long-queue"].cells == {**FULL, "test_sheds_load": 2.0}, wrong["long-queue"]
