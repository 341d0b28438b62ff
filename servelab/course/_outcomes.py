"""The learning-outcome map: each outcome and success criterion of the syllabus, the
lessons that teach it and the graded tests that assess it.

This is the single source; README.md and notebooks/00-start-here.ipynb show its table.
`python -m servelab.course._outcomes` rewrites both; a test fails when a name here does not
exist or a copy is stale.
"""

from __future__ import annotations

from dataclasses import dataclass

import nbformat

from servelab.course.layout import layout
from servelab.grading._labs import graded_cells

START, END = "<!-- outcomes:start -->", "<!-- outcomes:end -->"
CELL_ID = "outcomes"


@dataclass(frozen=True)
class Goal:
    kind: str                     # "outcome" or "criterion"
    text: str
    lessons: tuple[str, ...]      # notebooks/<name>.ipynb
    graded: tuple[str, ...]       # "<lab>:<grade_id>" of an autograded test cell


OUTCOMES = (
    Goal("outcome", "Design a Ray Serve deployment that separates cluster lifecycle, model "
         "lifecycle and request routing on Kubernetes",
         ("02-ray-and-kuberay", "06-rayservice", "10-packaging-for-production"),
         ("lab4-rayservice-gpu:test_manifest", "lab4-rayservice-gpu:test_ready",
          "quiz-scenarios:test_new_image", "lab8-production-plan:test_delivery")),
    Goal("outcome", "Configure KubeRay RayCluster and RayService resources with CPU, GPU, "
         "autoscaling and health-check settings that match the workload",
         ("03-installing-kuberay", "05-multi-stage-resources", "06-rayservice",
          "07-autoscaling-batching-gpu", "08-monitoring-and-debugging"),
         ("lab3-kuberay-cluster:test_manifest_workers", "lab3-kuberay-cluster:test_scaled_in_place",
          "lab4-rayservice-gpu:test_gpu_placement",
          "lab5-autoscaling-batching:test_autoscaling_fields", "lab5-autoscaling-batching:test_autoscaler",
          "lab5-autoscaling-batching:test_sheds_load",
          "lab6-fault-injection:test_hang_replaced",
          "quiz-scenarios:test_head_no_cpus", "quiz-scenarios:test_gpu_packing",
          "quiz-scenarios:test_replica_target", "quiz-scenarios:test_autoscaler_bound",
          "lab8-production-plan:test_resource_shapes",
          "lab8-production-plan:test_scaling")),
    Goal("outcome", "Implement a Ray Serve application that composes several model stages "
         "into a production-style inference pipeline",
         ("01-ray-serve-basics", "04-building-serve-apps", "04b-one-endpoint-many-models",
          "05-multi-stage-resources"),
         ("lab1-serve-basics:test_bad_requests", "lab2-rag-pipeline:test_composition",
          "lab2-rag-pipeline:test_hidden_queries", "lab5-autoscaling-batching:test_batching_speedup",
          "quiz-scenarios:test_async_concurrency")),
    Goal("outcome", "Debug common Ray Serve failures by tracing symptoms through Kubernetes, "
         "KubeRay, Ray actors, Serve replicas and application logs",
         ("02-ray-and-kuberay", "08-monitoring-and-debugging", "10-packaging-for-production"),
         ("lab4-rayservice-gpu:test_diagnosis", "lab4-rayservice-gpu:test_rollout",
          "lab6-fault-injection:test_layers_runtime",
          "lab6-fault-injection:test_lost_state_replaced", "lab6-fault-injection:test_alert_fires",
          "lab6-fault-injection:test_replica_query", "lab6-fault-injection:test_latency_query",
          "lab7-debug-by-layer:test_diagnosis_serve",
          "lab7-debug-by-layer:test_fixed_resources", "lab7-debug-by-layer:test_fixed_vision",
          "quiz-scenarios:test_ready_after_typo",
          "quiz-scenarios:test_pending_gpu_pod")),
    Goal("outcome", "Evaluate when Ray Serve fits better than KServe, Triton, Seldon Core or a "
         "plain HTTP service",
         ("09-choosing-a-serving-stack",),
         ("quiz-scenarios:test_many_quiet_models", "quiz-scenarios:test_branching_pipeline")),
)

CRITERIA = (
    Goal("criterion", "A namespace holds a running Ray head and worker pods",
         ("03-installing-kuberay",),
         ("lab3-kuberay-cluster:test_live_nodes", "lab3-kuberay-cluster:test_live_matches_manifest",
          "lab4-rayservice-gpu:test_ready")),
    Goal("criterion", "The RAG application has at least three Serve deployments composed with .bind()",
         ("04-building-serve-apps",),
         ("lab2-rag-pipeline:test_composition",)),
    Goal("criterion", "The endpoint returns different context for different questions",
         ("04-building-serve-apps",),
         ("lab2-rag-pipeline:test_answer", "lab2-rag-pipeline:test_hidden_queries",
          "lab4-rayservice-gpu:test_endpoint")),
    Goal("criterion", "The dashboard shows the Serve application and its deployment replicas",
         ("01-ray-serve-basics", "08-monitoring-and-debugging"),
         ("lab1-serve-basics:test_two_replicas", "lab4-rayservice-gpu:test_gpu_placement")),
    Goal("criterion", "Explain why a generator queue is fixed at the generator, before scaling "
         "other stages",
         ("02-ray-and-kuberay", "05-multi-stage-resources", "07-autoscaling-batching-gpu"),
         ("lab5-autoscaling-batching:test_scales_with_load",)),
    Goal("criterion", "Say whether a failure belongs first to Kubernetes, KubeRay, the Ray "
         "runtime, Ray Serve or application code",
         ("08-monitoring-and-debugging",),
         ("lab7-debug-by-layer:test_diagnosis_import", "lab7-debug-by-layer:test_diagnosis_resources",
          "lab7-debug-by-layer:test_diagnosis_outer",
          "lab6-fault-injection:test_layers_application", "quiz-scenarios:test_pending_gpu_pod",
          "lab8-production-plan:test_alerts")),
    Goal("criterion", "A production plan replaces manual copying with a versioned image or "
         "runtime artifact",
         ("10-packaging-for-production",),
         ("lab8-production-plan:test_delivery",)),
)

GOALS = OUTCOMES + CRITERIA


def graded_ids(lab: str) -> set[str]:
    """grade_ids of the autograded test cells of a lab's nbgrader source."""
    path = layout().grading / "source" / lab / f"{lab}.ipynb"
    return {grade_id for grade_id, points, _ in graded_cells(path) if points} if path.exists() else set()


def problems(goals: tuple[Goal, ...] = GOALS) -> list[str]:
    """Every name in the map that does not exist, and every goal left unmapped."""
    out = []
    for goal in goals:
        if not goal.lessons or not goal.graded:
            out.append(f"{goal.kind} {goal.text!r} needs a lesson and a graded test")
        for lesson in goal.lessons:
            if not (layout().notebooks / f"{lesson}.ipynb").exists():
                out.append(f"{goal.text!r}: no lesson notebooks/{lesson}.ipynb")
        for ref in goal.graded:
            lab, _, grade_id = ref.partition(":")
            if grade_id not in graded_ids(lab):
                out.append(f"{goal.text!r}: {lab} has no graded test cell {grade_id!r}")
    return out


def markdown() -> str:
    """The map as two Markdown tables."""
    lines = []
    for title, goals in (("Learning outcome", OUTCOMES), ("Success criterion", CRITERIA)):
        lines += [f"| {title} | taught in | assessed by |", "|---|---|---|"]
        for goal in goals:
            taught = ", ".join(f"`{name}`" for name in goal.lessons)
            graded = ", ".join(f"`{ref}`" for ref in goal.graded)
            lines.append(f"| {goal.text} | {taught} | {graded} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def readme_block(text: str | None = None) -> str:
    """What README.md holds between the outcome markers."""
    text = layout().readme.read_text() if text is None else text
    if START not in text or END not in text:
        raise ValueError(f"README.md has no {START} ... {END} block")
    return text.split(START, 1)[1].split(END, 1)[0].strip() + "\n"


def start_page_cell() -> nbformat.NotebookNode:
    nb = nbformat.read(layout().start_page, as_version=4)
    for cell in nb.cells:
        if cell.get("id") == CELL_ID:
            return cell
    raise ValueError(f"{layout().start_page.name} has no cell with id {CELL_ID!r}")


START_PAGE_HEADER = """## What you will be able to do

Each outcome of the course and each success criterion of its hands-on work, with the lessons
that teach it and the graded tests (`lab:test cell`) that check it.

"""


def write() -> None:
    """Rewrite the map's copies in README.md and the start page."""
    readme = layout().readme
    text = readme.read_text()
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    readme.write_text(f"{before}{START}\n{markdown()}{END}{after}")
    nb = nbformat.read(layout().start_page, as_version=4)
    for cell in nb.cells:
        if cell.get("id") == CELL_ID:
            cell.source = START_PAGE_HEADER + markdown().rstrip()
    nbformat.write(nb, layout().start_page)


if __name__ == "__main__":
    write()
    print("wrote the outcome map into README.md and notebooks/00-start-here.ipynb")
