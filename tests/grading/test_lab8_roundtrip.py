"""Lab 8 through the real nbgrader CLI: the configured plan is autograded, the written plan
waits for a grader, and a score given by hand (what formgrader stores) reaches the export."""

import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from servelab.grading import _autograde as autograde
from servelab.grading import _course as grading
from servelab.grading._labs import scratch_course

pytestmark = pytest.mark.grading

LAB = "lab8-production-plan"
AUTOGRADED = {"test_plan_valid": 1.0, "test_resource_shapes": 3.0, "test_scaling": 3.0,
              "test_delivery": 1.0, "test_alerts": 2.0}
WRITTEN = "plan_written"


def grade_by_hand(gb: Gradebook, student: str, points: float) -> None:
    """What formgrader's grade API does when a grader saves points."""
    grade = gb.find_grade(WRITTEN, LAB, LAB, student)
    grade.manual_score, grade.needs_manual_grade = points, False
    gb.db.commit()


def variants(solution: dict[str, str]) -> dict[str, dict[str, str]]:
    config = solution["answer_serve_config"]
    assert "target_ongoing_requests: 8" in config and "memory: 4294967296" in config
    return {
        # The name an older tutorial uses: Ray ignores it and autoscales to its default
        # target of 2, so the generator scales out before its batches fill.
        "dated": {"answer_serve_config": config.replace("target_ongoing_requests: 8",
                                                        "target_num_ongoing_requests_per_replica: 8")},
        # The Retriever's RAM not declared: Ray places it by CPU alone.
        "no-memory": {"answer_serve_config": config.replace(", memory: 4294967296", "")},
        # A floating tag: what runs changes under the same manifest.
        "latest": {"answer_image": 'image = "rag-serve:latest"'},
        # Two alerts routed to each other's layer.
        "swapped": {"answer_alerts": solution["answer_alerts"].replace('"Serve"', '"X"')
                    .replace('"application code"', '"Serve"').replace('"X"', '"application code"')},
        # One normalizer: a crash would fail every request until it is replaced.
        "single": {"answer_serve_config": config.replace(
            "      - name: Normalizer\n        num_replicas: 2", "      - name: Normalizer\n        num_replicas: 1")},
    }


@pytest.fixture(scope="module")
def course():
    with grading.Course(LAB) as course:
        solution = grading.solution_answers(LAB)
        course.submit("solution", grading.fill(course.student_version, solution))
        course.submit("untouched", grading.fill(course.student_version, {}))
        for name, changes in variants(solution).items():
            course.submit(name, grading.fill(course.student_version, {**solution, **changes}))
        course.autograde(workers=autograde.default_workers(LAB))
        yield course


@pytest.fixture(scope="module")
def graded(course):
    return course.results()


def test_solution_earns_every_autograded_point_and_waits_for_a_grader(graded, course):
    solution = graded["solution"]
    assert {k: v for k, v in solution.cells.items() if k != WRITTEN} == AUTOGRADED, solution
    assert (solution.total, solution.max_total) == (10, 15), solution
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        grade = gb.find_grade(WRITTEN, LAB, LAB, "solution")
        assert grade.needs_manual_grade and grade.manual_score is None


def test_untouched_earns_nothing(graded):
    assert graded["untouched"].total == 0, graded["untouched"]
    assert "NameError" in graded["untouched"].errors["test_scaling"]


def test_an_ignored_field_costs_validity_and_the_scaling_it_was_meant_to_set(graded):
    dated = graded["dated"]
    assert dated.cells == {**AUTOGRADED, "test_plan_valid": 0.0, "test_scaling": 0.0, WRITTEN: 0.0}, dated
    assert "target_num_ongoing_requests_per_replica" in dated.errors["test_plan_valid"]
    assert "Ray's default" in dated.errors["test_scaling"]


def test_each_mistake_costs_its_own_check(graded):
    for name, cell in [("no-memory", "test_resource_shapes"), ("latest", "test_delivery"), ("swapped", "test_alerts")]:
        assert graded[name].cells == {**AUTOGRADED, cell: 0.0, WRITTEN: 0.0}, graded[name]
    assert "Retriever needs 4 GiB" in graded["no-memory"].errors["test_resource_shapes"]
    assert "2 of 5 alerts" in graded["swapped"].errors["test_alerts"]
    single = graded["single"]
    assert single.cells == {**AUTOGRADED, "test_scaling": 0.0, WRITTEN: 0.0}, single
    assert "Normalizer can drop to 1 replica" in single.errors["test_scaling"]


def test_a_score_given_by_hand_reaches_the_export(graded, course):
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        grade_by_hand(gb, "solution", 4.5)
    regraded = course.results()
    assert (regraded["solution"].total, regraded["solution"].max_total) == (14.5, 15)
    assert regraded["swapped"].total == graded["swapped"].total


@pytest.fixture(scope="module")
def instructor_course():
    root = scratch_course()
    grading.nbgrader(["generate_assignment", LAB], cwd=root)
    student_nb = root / "release" / LAB / f"{LAB}.ipynb"
    folder = root / "submitted" / "alice" / LAB
    folder.mkdir(parents=True)
    nbformat.write(grading.fill(student_nb, grading.solution_answers(LAB)), folder / f"{LAB}.ipynb")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_servelab_grade_lists_the_answer_to_grade_by_hand_and_keeps_its_score(instructor_course):
    alice, = autograde.grade(instructor_course, LAB, workers=1, show=False)
    assert (alice.score, alice.max_score, alice.failed, alice.manual) == (10, 15, [], [WRITTEN])
    assert f"grade by hand: {WRITTEN}" in autograde.table([alice])
    with Gradebook(f"sqlite:///{instructor_course / 'gradebook.db'}") as gb:
        grade_by_hand(gb, "alice", 5)
    alice, = autograde.grade(instructor_course, LAB, workers=1, show=False)   # resumes: not regraded
    assert alice.skipped and (alice.score, alice.manual) == (15, [])
    # --force regrades the code; nbgrader keeps the hand score and flags it for review.
    forced, = autograde.grade(instructor_course, LAB, workers=1, force=True, show=False)
    assert not forced.skipped and (forced.score, forced.manual) == (15, [WRITTEN])
