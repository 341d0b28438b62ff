"""Lab 6 through the real nbgrader CLI: hidden tests inject faults into the learner's service, and
watch the learner's alert on the Prometheus beside it."""

import pytest
from roundtrip import check_extremes, one_mistake_each, replace_once

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab6-fault-injection"


def no_model_check(service: str) -> str:
    # Tight health-check timings, but Serve's default check: it asks the actor, never the model.
    start, end = service.index("    def check_health"), service.index("app = Sentiment.bind()")
    return service[:start].rstrip() + "\n\n\n" + service[end:]


def patient(service: str) -> str:
    # A generous health-check timeout "so a slow request never gets a replica killed": a frozen
    # replica then takes minutes of unanswered checks before Serve replaces it.
    return replace_once(service, "health_check_timeout_s=3", "health_check_timeout_s=60")


def two_labels(service: str) -> str:
    # Two labels of its own making: a score of 0 (nothing positive or negative in the text)
    # becomes "negative", where the model says "neutral".
    old = "        return self.model.predict((await request.json())[\"text\"])\n"
    new = ("        score = self.model.predict((await request.json())[\"text\"])[\"score\"]\n"
           "        return {\"label\": \"positive\" if score > 0 else \"negative\", \"score\": score}\n")
    return replace_once(service, old, new)


def answer(answers: str, name: str, value) -> str:
    lines = [line for line in answers.splitlines() if line.startswith(f"{name} = ")]
    assert len(lines) == 1, name
    return answers.replace(lines[0], f"{name} = {value!r}")


def lowercase_deployment(rules: str) -> str:
    # The deployment as the route spells it: label values are case-sensitive, so the
    # expression selects no series and the alert can never fire.
    return replace_once(rules, 'deployment="Sentiment"', 'deployment="sentiment"')


def healthy_or_not(rules: str) -> str:
    # "Any replica's health, whatever it is": true for every replica, healthy ones included,
    # so the alert pages all the time (and so, also, when a replica is down).
    return replace_once(rules, ") == 0", ") >= 0")


def no_summary(rules: str) -> str:
    # An alert that fires at the right time and says nothing: whoever it pages starts from zero.
    return replace_once(rules, '        annotations:\n          summary: "a Sentiment replica is down or failing its health '
                               'checks"\n', "")


def count_every_replica(queries: str) -> str:
    # Counts the replicas' series, not the healthy ones: a replica that is down keeps its
    # series at 0 for about 20 s, and still counts.
    return replace_once(queries, 'ray_serve_deployment_replica_healthy{application="lab6"} == 1)',
                        'ray_serve_deployment_replica_healthy{application="lab6"})')


def quantile_without_le(queries: str) -> str:
    # Sums the buckets by deployment only: without `le` the buckets add up to one number and
    # histogram_quantile has no bounds to read a quantile from.
    return replace_once(queries, "sum by (application, deployment, le)", "sum by (application, deployment)")


MISTAKES = {  # name -> (how the service or the answers change, the one cell it must cost)
    # a hang is blamed on Ray, which sees a live process
    "hang-on-ray": ("answers", lambda a: answer(a, "LAYER_HANG", "Ray runtime"), "test_layers_runtime"),
    # a lost model state is put on Serve, whose health check only runs what the code asks
    "state-on-serve": ("answers", lambda a: answer(a, "LAYER_LOST_STATE", "Serve"), "test_layers_application"),
    # the bound read off a run that lost nothing (lesson 08: "often none")
    "optimistic": ("answers", lambda a: answer(a, "MAX_LOST_ON_KILL", 0), "test_kill_bound"),
    "no-model-check": ("service", no_model_check, "test_lost_state_replaced"),
    "patient": ("service", patient, "test_hang_replaced"),
    "two-labels": ("service", two_labels, "test_answers"),
    "never-fires": ("alert_rules", lowercase_deployment, "test_alert_fires"),
    "always-fires": ("alert_rules", healthy_or_not, "test_alert_silent"),
    "no-summary": ("alert_rules", no_summary, "test_alert_rule"),
    "counts-every-replica": ("queries", count_every_replica, "test_replica_query"),
    "quantile-without-le": ("queries", quantile_without_le, "test_latency_query"),
}
FULL = {"test_answers": 2.0, "test_lost_state_replaced": 3.0, "test_hang_replaced": 2.0, "test_kill_bound": 1.0,
        "test_layers_runtime": 1.0, "test_layers_application": 1.0,
        "test_alert_rule": 1.0, "test_alert_silent": 1.0, "test_alert_fires": 2.0,
        "test_replica_query": 1.0, "test_latency_query": 1.0}


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def wrong():
    mistakes = {name: (cell, change) for name, (cell, change, _) in MISTAKES.items()}
    return grading.roundtrip(LAB, one_mistake_each(grading.solution_answers(LAB), mistakes), extremes=False)


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 16)


@pytest.mark.extended
@pytest.mark.parametrize("name", MISTAKES)
def test_each_mistake_loses_exactly_its_cell(wrong, name):
    assert wrong[name].cells == {**FULL, MISTAKES[name][2]: 0.0}, wrong[name]
