"""Lab 8's plan checks: the rules pass different sound plans and name the field of a broken one."""

import pytest

from servelab.course import layout
from servelab.course import production_plan as plan
from servelab.course.production_plan import PlanError
from servelab.grading import _course as grading

SOLUTION = grading.solution_answers("lab8-production-plan")["answer_serve_config"]
CONFIG = SOLUTION.split('"""')[1]


def broken(old: str, new: str) -> str:
    assert old in CONFIG, old
    return CONFIG.replace(old, new)


def test_the_solution_passes_every_check():
    plan.check_resources(CONFIG)
    plan.check_scaling(CONFIG)
    plan.check_delivery("registry.example.com/ml/rag-serve:1.4.0", CONFIG)
    plan.check_delivery("ghcr.io/org/rag@sha256:" + "a" * 64, CONFIG)


def test_another_sound_plan_passes_too():
    # Whole GPUs for three generators, the reranker on CPUs instead of sharing a GPU.
    other = broken("num_cpus: 1, num_gpus: 0.1, memory: 1610612736", "num_cpus: 1, memory: 1610612736")
    other = other.replace("num_cpus: 2, num_gpus: 0.6", "num_cpus: 2, num_gpus: 1")
    plan.check_valid(other)
    plan.check_resources(other)
    plan.check_scaling(other)
    assert plan.pack_gpus(plan.shapes(other), 3) == [["Generator"]] * 3


@pytest.mark.parametrize("old, new, check, expected", [
    ("num_cpus: 0.25}", "num_cpus: 0.25, num_gpus: 0.1}", plan.check_resources,
     "deployments[1].ray_actor_options.num_gpus: Normalizer has no GPU code"),
    ("num_gpus: 0.6", "num_gpus: 0.5", plan.check_resources,
     "Ray may put 2 Generator replicas on one GPU: 2 x 15 GB > 24 GB"),
    ("num_gpus: 0.1,", "num_gpus: 0.05,", plan.check_resources, "20 Reranker replicas on one GPU"),
    ("num_cpus: 2, num_gpus: 0.6,", "num_cpus: 2,", plan.check_resources, "Generator only runs on a GPU"),
    (", memory: 6442450944", "", plan.check_resources, "deployments[4].ray_actor_options.memory"),
    ("max_replicas: 3", "max_replicas: 2", plan.check_scaling, "max_replicas equals min_replicas"),
    ("min_replicas: 2, max_replicas: 3", "min_replicas: 1, max_replicas: 1", plan.check_scaling,
     "Generator serves at most 6.2 requests/s at max scale"),
    ("max_replicas: 3", "max_replicas: 5", plan.check_scaling, "do not fit 3 GPUs"),
    ("target_ongoing_requests: 8", "target_ongoing_requests: 2", plan.check_scaling,
     "before a batch of 8 fills"),
    ("max_ongoing_requests: 16", "max_ongoing_requests: 4", plan.check_scaling,
     "deployments[4].max_ongoing_requests"),
    ("memory: 4294967296", "memory: 214748364800", plan.check_scaling,
     "GiB at max scale, the groups have 320"),
    # What the spec's words rule out (a strict instructor's reading, issue 23):
    ("target_ongoing_requests: 8", "target_ongoing_requests: 16", plan.check_scaling,
     "target 16: a second batch of 8 waits"),
    ("max_ongoing_requests: 16", "max_ongoing_requests: 8", plan.check_scaling,
     "no more than its target of 8"),
    ("num_cpus: 2, num_gpus: 0.6", "num_cpus: 10, num_gpus: 0.6", plan.check_scaling,
     "one Generator replica asks for 10 CPUs"),
    ("num_cpus: 2, num_gpus: 0.6", "num_cpus: 2, runtime_env: {pip: [vllm]}, num_gpus: 0.6",
     lambda c: plan.check_delivery("r.io/a/b:1", c), "deployments[4].ray_actor_options.runtime_env.pip"),
    ("num_replicas: 2\n        ray_actor_options: {num_cpus: 1, memory",
     "num_replicas: 60\n        ray_actor_options: {num_cpus: 1, memory", plan.check_scaling,
     "CPUs at max scale, the groups have 56"),
    ("target_ongoing_requests", "target_num_ongoing_requests_per_replica", plan.check_valid,
     "rename it to 'target_ongoing_requests'"),
    ("- name: Normalizer", "- name: Cleaner", plan.check_valid, "no entry for Normalizer"),
    ("route_prefix: /", "route_prefix: /\n    runtime_env: {pip: [torch]}",
     lambda c: plan.check_delivery("r.io/a/b:1", c), "runtime_env.pip"),
])
def test_a_broken_rule_names_its_field(old, new, check, expected):
    with pytest.raises(PlanError) as raised:
        check(broken(old, new))
    assert expected in str(raised.value), str(raised.value)
    assert "fix:" in str(raised.value)


@pytest.mark.parametrize("image", ["rag-serve", "rag-serve:latest", "registry.io/ml/rag:latest",
                                   "registry.example.com/ml/rag-serve:stable",
                                   "registry.io/ml/rag", "kubectl cp rag.py head:/app", 42])
def test_an_unpinned_image_is_refused(image):
    with pytest.raises(PlanError, match="not a pinned image"):
        plan.check_delivery(image, CONFIG)


def test_a_plan_ray_rejects_is_reported_not_crashed():
    with pytest.raises(PlanError, match="not valid YAML|Ray rejects"):
        plan.check_resources("applications: [")
    with pytest.raises(PlanError, match="Ray rejects"):
        plan.check_scaling(broken("num_replicas: 2", "num_replicas: two"))


def test_alert_answers_must_name_every_alert_and_a_layer():
    good = dict.fromkeys(plan.ALERTS, "Serve")
    plan.check_alert_answers(good)  # the layers, not the answers
    with pytest.raises(PlanError, match="keys are exactly"):
        plan.check_alert_answers({"gpu-pending": "Kubernetes"})
    with pytest.raises(PlanError, match="must be one of"):
        plan.check_alert_answers({**good, "http-500": "the app"})


def test_the_summary_and_picture_show_the_plan():
    text = plan.summary(CONFIG)
    assert "Generator" in text and "2-3" in text and "ongoing requests (target 8)" in text
    fig = plan.draw_gpus(CONFIG)
    assert len(fig.axes[0].patches) == 5   # three generators and two rerankers
    assert "| Generator |" in plan.scenario_markdown()


def test_every_graded_cell_is_checked_again_outside_the_kernel():
    from servelab.grading import _crosscheck as crosscheck
    from servelab.grading import _labs as labs

    cells = labs.graded_cells(layout().grading / "source" / "lab8-production-plan" / "lab8-production-plan.ipynb")
    assert len(cells) == 5
    assert all(crosscheck.plan(source)[1] == "" for _, _, source in cells)
