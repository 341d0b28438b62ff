"""Lab 7 through the real nbgrader CLI: five broken services, diagnosed and fixed live."""

import pytest
from roundtrip import check_extremes, replace_once

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


def hasty_diagnosis(solution: str) -> str:
    # Files the import error under Serve, which reported it, and reads chat's slowness as too few
    # replicas, its symptom, instead of the target that keeps it at one.
    return (solution.replace('"sentiment": ("application code", "import_path")', '"sentiment": ("Serve", "import_path")')
            .replace('"chat":      ("Serve", "autoscaling_target")', '"chat":      ("Serve", "replica_count")'))


def hasty_fix(solution: str) -> str:
    # Leaves search at /serch (the clients "should call the right path") and makes the captioner
    # schedulable by taking its GPU away.
    lines = [line for line in solution.splitlines() if 'apps["search"]' not in line]
    return "\n".join(lines).replace('["num_gpus"] = 1', '["num_gpus"] = 0')


def dropped_sentiment(solution: str) -> str:
    # Makes the status green by taking the application that fails to import out of the config:
    # the clients' /sentiment is then a 404. (The lab's deploy cell then waits its 180 s for the
    # missing application: this variant adds three minutes to the run.)
    old = 'apps["sentiment"]["import_path"] = "servelab.apps.incidents:sentiment_app"'
    return replace_once(solution, old, 'FIXED["applications"].remove(apps["sentiment"])')


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB)


@pytest.fixture(scope="module")
def wrong():
    solution = grading.solution_answers(LAB)
    assert careless_diagnosis(solution["diagnosis"]) != solution["diagnosis"]
    assert careless_fix(solution["fix"]) != solution["fix"]
    assert careless_vision(solution["vision_fix"]).count("NewCluster") == 0
    assert hasty_diagnosis(solution["diagnosis"]).count('("Serve", ') == 3
    assert hasty_fix(solution["fix"]).count('"/search"') == 0 and '["num_gpus"] = 0' in hasty_fix(solution["fix"])
    return grading.roundtrip(LAB, {"careless": {"diagnosis": careless_diagnosis(solution["diagnosis"]),
                                                "fix": careless_fix(solution["fix"]),
                                                "vision_fix": careless_vision(solution["vision_fix"])},
                                   "hasty": {"diagnosis": hasty_diagnosis(solution["diagnosis"]),
                                             "fix": hasty_fix(solution["fix"])},
                                   "dropped": {"fix": dropped_sentiment(solution["fix"])}},
                             extremes=False)


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 14)


@pytest.mark.extended
def test_careless_submission_loses_exactly_what_it_broke(wrong):
    assert wrong["careless"].cells == {
        "test_diagnosis_import": 1.0,
        "test_diagnosis_resources": 0.0,   # a Ray resource question, not Kubernetes
        "test_diagnosis_serve": 2.0,
        "test_fixed_sentiment": 1.0,
        "test_fixed_resources": 2.0,
        "test_fixed_search": 1.0,
        "test_diagnosis_outer": 0.0,       # the Ray symptom, not the Pending pod; not KubeRay's strategy
        "test_fixed_vision": 0.0,          # with type None KubeRay applies none of it: a GPU pod stays Pending
        "test_fixed_chat_slo": 0.0,        # target 16: one replica, p95 about 800 ms
    }, wrong["careless"]


@pytest.mark.extended
def test_a_hasty_submission_loses_exactly_what_it_broke(wrong):
    assert wrong["hasty"].cells == {
        "test_diagnosis_import": 0.0,      # Serve reported it; the import_path is the code's
        "test_diagnosis_resources": 2.0,
        "test_diagnosis_serve": 0.0,       # one replica is the symptom; the target is the cause
        "test_fixed_sentiment": 1.0,
        "test_fixed_resources": 0.0,       # the captioner must keep its GPU
        "test_fixed_search": 0.0,          # still at /serch: the clients' /search is a 404
        "test_diagnosis_outer": 2.0,
        "test_fixed_vision": 2.0,
        "test_fixed_chat_slo": 1.0,
    }, wrong["hasty"]


@pytest.mark.extended
def test_an_application_dropped_instead_of_fixed_loses_exactly_its_point(wrong):
    full = {"test_diagnosis_import": 1.0, "test_diagnosis_resources": 2.0, "test_diagnosis_serve": 2.0,
            "test_fixed_sentiment": 1.0, "test_fixed_resources": 2.0, "test_fixed_search": 1.0,
            "test_diagnosis_outer": 2.0, "test_fixed_vision": 2.0, "test_fixed_chat_slo": 1.0}
    assert wrong["dropped"].cells == {**full, "test_fixed_sentiment": 0.0}, wrong["dropped"]
