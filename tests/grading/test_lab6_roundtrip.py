"""Lab 6 through the real nbgrader CLI: hidden tests inject faults into the learner's service."""

import pytest
from roundtrip import check_extremes

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab6-fault-injection"

# Right answers, but the health check asks nothing and Serve's defaults stay:
# a replica that lost its weights or froze is never replaced in time.
CARELESS_SERVICE = '''
@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.25})
class Sentiment:
    def __init__(self):
        self.model = LexiconModel()

    async def __call__(self, request: Request) -> dict:
        return self.model.predict((await request.json())["text"])


serve.run(Sentiment.bind(), name="lab6", route_prefix="/sentiment")
'''

# A bound that promises nothing, and a hang blamed on Ray.
CARELESS_ANSWERS = '''
MAX_LOST_ON_KILL = 10
LAYER_CRASH = "Ray runtime"
LAYER_HANG = "Ray runtime"
LAYER_LOST_STATE = "application code"
LAYER_BAD_ROLLOUT = "application code"
'''

# Everything right but the bound, taken from a run that lost nothing (lesson 08: "often none").
OPTIMISTIC_ANSWERS = '''
MAX_LOST_ON_KILL = 0
LAYER_CRASH = "Ray runtime"
LAYER_HANG = "Serve"
LAYER_LOST_STATE = "application code"
LAYER_BAD_ROLLOUT = "application code"
'''

# Answers with two labels of its own making: a score of 0 (nothing positive or negative in the
# text) becomes "negative", where the model says "neutral". Health checks and layers are right,
# but a lost model state is put on Serve, whose health check only runs what the code asks.
TWO_LABEL_SERVICE = '''
@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.25},
                  health_check_period_s=1, health_check_timeout_s=3, graceful_shutdown_timeout_s=2)
class Sentiment:
    def __init__(self):
        self.model = LexiconModel()

    async def __call__(self, request: Request) -> dict:
        score = self.model.predict((await request.json())["text"])["score"]
        return {"label": "positive" if score > 0 else "negative", "score": score}

    def check_health(self) -> None:
        if not self.model.loaded():
            raise RuntimeError("the model's weights are gone")


serve.run(Sentiment.bind(), name="lab6", route_prefix="/sentiment")
'''
STATE_ON_SERVE_ANSWERS = OPTIMISTIC_ANSWERS.replace("MAX_LOST_ON_KILL = 0", "MAX_LOST_ON_KILL = 2").replace(
    'LAYER_LOST_STATE = "application code"', 'LAYER_LOST_STATE = "Serve"')


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def wrong():
    return grading.roundtrip(LAB, {"careless": {"service": CARELESS_SERVICE, "answers": CARELESS_ANSWERS},
                                   "optimistic": {"answers": OPTIMISTIC_ANSWERS},
                                   "two-labels": {"service": TWO_LABEL_SERVICE, "answers": STATE_ON_SERVE_ANSWERS}},
                             extremes=False)


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 10)


@pytest.mark.extended
def test_careless_submission_loses_exactly_what_it_broke(wrong):
    assert wrong["careless"].cells == {
        "test_answers": 2.0,
        "test_lost_state_replaced": 0.0,    # check_health never asks the model
        "test_hang_replaced": 0.0,          # default health checks: about two minutes
        "test_kill_bound": 0.0,             # 10 does not follow from 2 requests in flight
        "test_layers_runtime": 0.0,         # a hang is Serve's to see
        "test_layers_application": 1.0,
    }, wrong["careless"]


@pytest.mark.extended
def test_a_bound_read_off_a_lucky_run_loses_exactly_its_point(wrong):
    assert wrong["optimistic"].cells == {
        "test_answers": 2.0, "test_lost_state_replaced": 3.0, "test_hang_replaced": 2.0,
        "test_kill_bound": 0.0,             # 0 is what a kill usually costs, not what it can cost
        "test_layers_runtime": 1.0, "test_layers_application": 1.0,
    }, wrong["optimistic"]


@pytest.mark.extended
def test_a_made_up_label_scheme_and_a_misplaced_layer_lose_exactly_their_cells(wrong):
    assert wrong["two-labels"].cells == {
        "test_answers": 0.0,                # "the weather report for tuesday" is neutral
        "test_lost_state_replaced": 3.0, "test_hang_replaced": 2.0, "test_kill_bound": 1.0,
        "test_layers_runtime": 1.0,
        "test_layers_application": 0.0,     # only the model's code knows its state is lost
    }, wrong["two-labels"]
