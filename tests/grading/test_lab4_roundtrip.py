"""Lab 4 through the real nbgrader CLI: a RayService with CPU and GPU groups, graded live."""

import pytest
from roundtrip import check_extremes, replace_once

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab4-rayservice-gpu"

# The service is right; the helper only looks at the Generator and ignores rayStartParams.
NAIVE_DIAGNOSIS = '''
def gpu_misfits(manifest_text):
    spec = yaml.safe_load(manifest_text)["spec"]
    config = yaml.safe_load(spec["serveConfigV2"])
    generator = next(d for d in config["applications"][0]["deployments"] if d["name"] == "Generator")
    return ["Generator"] if generator["ray_actor_options"].get("num_gpus", 0) > 1 else []
'''


# ...and the rollout check trusts KubeRay's Ready alone: True for a live service, so the visible
# test passes, but Ready stays True after a bad in-place update (rayservice_controller.go).
READY_ONLY_ROLLOUT = '''
def rollout_ok(report):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in report["conditions"])
'''



def stock_image_manifest() -> str:
    """The solution's manifest on stock rayproject/ray images: it runs here (the local target
    imports from this environment) but not on KubeRay, where no pod has servelab's code."""
    solution = grading.solution_answers(LAB)["manifest"]
    assert solution.count("image: servelab-rag:") == 3
    return solution.replace("image: servelab-rag:", "image: rayproject/ray:")


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB, {"naive": {"manifest": stock_image_manifest(), "diagnose": NAIVE_DIAGNOSIS,
                                            "rollout": READY_ONLY_ROLLOUT}})


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 12)


def test_stock_images_and_naive_helpers_lose_exactly_their_cells(graded):
    assert graded["naive"].cells == {
        "test_manifest": 0.0, "test_ready": 2.0, "test_gpu_placement": 2.0,
        "test_endpoint": 2.0, "test_diagnosis": 0.0, "test_rollout": 0.0,
    }, graded["naive"]


def reranker_on_cpu_manifest() -> str:
    """The solution's manifest with the Reranker's quarter GPU forgotten: everything runs and
    answers, but the Reranker lands on a CPU worker."""
    solution = grading.solution_answers(LAB)["manifest"]
    return replace_once(solution, "{num_cpus: 0.25, num_gpus: 0.25}", "{num_cpus: 0.25}")


def default_batch_manifest() -> str:
    """The solution's manifest without the Reranker's user_config: it answers right, but its
    replicas run the app's default batch size, not the one the spec asks for."""
    solution = grading.solution_answers(LAB)["manifest"]
    return replace_once(solution, "            user_config: {max_batch_size: 8}\n", "")


def one_gpu_pod_manifest() -> str:
    """The task's "work it out" missed: one GPU pod, for a Generator's whole GPU and a Reranker's
    quarter. The validator says the Reranker can never be placed and `up` refuses it, as KubeRay's
    service would never turn Ready. Ready cannot be lost alone: it means serve endpoints, which
    every live check needs; the checks of the manifest's groups and of the helper keep theirs."""
    solution = grading.solution_answers(LAB)["manifest"]
    old = "      - groupName: gpu-workers\n        replicas: 2\n        minReplicas: 2\n        maxReplicas: 2\n"
    return replace_once(solution, old, old.replace("2", "1"))


@pytest.fixture(scope="module")
def wrong():
    return grading.roundtrip(LAB, {"cpu-reranker": {"manifest": reranker_on_cpu_manifest()},
                                   "default-batch": {"manifest": default_batch_manifest()},
                                   "one-gpu-pod": {"manifest": one_gpu_pod_manifest()},
                                   "stock-images": {"manifest": stock_image_manifest()},
                                   "naive-diagnosis": {"diagnose": NAIVE_DIAGNOSIS},
                                   "ready-only": {"rollout": READY_ONLY_ROLLOUT}}, extremes=False)


FULL = {"test_manifest": 2.0, "test_ready": 2.0, "test_gpu_placement": 2.0, "test_endpoint": 2.0,
        "test_diagnosis": 2.0, "test_rollout": 2.0}


@pytest.mark.extended
def test_a_reranker_without_its_gpu_loses_exactly_the_placement_points(wrong):
    assert wrong["cpu-reranker"].cells == {**FULL, "test_gpu_placement": 0.0}, wrong["cpu-reranker"]


@pytest.mark.extended
def test_a_forgotten_user_config_loses_exactly_the_endpoint_points(wrong):
    assert wrong["default-batch"].cells == {**FULL, "test_endpoint": 0.0}, wrong["default-batch"]
    assert "batches up to 16 requests, expected 8" in wrong["default-batch"].errors["test_endpoint"]


@pytest.mark.extended
def test_one_gpu_pod_for_two_gpu_stages_loses_the_manifest_and_every_live_check(wrong):
    assert wrong["one-gpu-pod"].cells == {**FULL, "test_manifest": 0.0, "test_ready": 0.0, "test_gpu_placement": 0.0,
                                          "test_endpoint": 0.0, "test_rollout": 0.0}, wrong["one-gpu-pod"]
    assert "Reranker cannot be placed" in wrong["one-gpu-pod"].errors["test_manifest"]


@pytest.mark.extended
def test_the_naive_mistakes_one_at_a_time_lose_exactly_their_cells(wrong):
    for name, cell in [("stock-images", "test_manifest"), ("naive-diagnosis", "test_diagnosis"),
                       ("ready-only", "test_rollout")]:
        assert wrong[name].cells == {**FULL, cell: 0.0}, wrong[name]
