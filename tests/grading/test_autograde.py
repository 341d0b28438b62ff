"""`servelab grade`: a folder of submissions through the real nbgrader CLI, resumable, one
broken submission costing only its own points. Uses the scenario quiz (no cluster)."""

import csv
import html
import re
import shutil
import subprocess
import sys

import pytest
from submissions import quiz_answers, quiz_failed, submit

from servelab.grading import _autograde as autograde
from servelab.grading import _course as grading
from servelab.grading import _report as class_report
from servelab.grading._feedback import split_hidden
from servelab.grading._labs import graded_cells, scratch_course

pytestmark = pytest.mark.grading

LAB = "quiz-scenarios"


@pytest.fixture(scope="module")
def course():
    root = scratch_course()
    grading.nbgrader(["generate_assignment", LAB], cwd=root)
    student_nb = root / "release" / LAB / f"{LAB}.ipynb"
    submit(root, LAB, "alice", grading.fill(student_nb, quiz_answers(10)))
    submit(root, LAB, "bob", grading.fill(student_nb, quiz_answers(4)))
    submit(root, LAB, "carol", raw="{ this is not a notebook")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def first_run(course):
    return {r.student: r for r in autograde.grade(course, LAB, show=False)}


def test_each_submission_gets_its_own_score(first_run):
    assert (first_run["alice"].score, first_run["alice"].max_score) == (10, 10)
    assert first_run["alice"].failed == [] and first_run["alice"].error == ""
    assert first_run["bob"].score == 4
    assert first_run["bob"].failed == quiz_failed(4)   # test_ray_grading's reference too
    assert first_run["carol"].score is None and first_run["carol"].error


def test_feedback_grades_and_summary_are_written(course, first_run):
    assert (course / "feedback" / "alice" / LAB / f"{LAB}.html").exists()
    assert (course / "feedback" / "bob" / LAB / f"{LAB}.html").exists()
    grades = {row["student_id"]: row for row in csv.DictReader(open(course / "grades.csv"))}
    assert float(grades["alice"]["raw_score"]) == 10 and float(grades["bob"]["raw_score"]) == 4
    summary = {row["student"]: row for row in csv.DictReader(open(course / f"summary-{LAB}.csv"))}
    assert set(summary) == {"alice", "bob", "carol"}
    assert summary["carol"]["score"] == "" and summary["carol"]["error"]
    table = autograde.table(list(first_run.values()))
    assert "alice" in table and "10/10" in table and "4/10" in table


def test_feedback_shows_no_hidden_test_code(course, first_run):
    """nbgrader's autograde puts the hidden tests back into the cells, and its own
    generate_feedback renders them (and quotes the failing hidden line again in the traceback).
    servelab's feedback leaves both out and keeps what the checks printed for the learner."""
    hidden = {line.strip() for _, _, source in graded_cells(course / "source" / LAB / f"{LAB}.ipynb")
              for line in split_hidden(source)[1] if len(line.strip()) > 3}
    assert len(hidden) > 30
    autograded = (course / "autograded" / "bob" / LAB / f"{LAB}.ipynb").read_text()
    assert any(json_line in autograded for json_line in ('"d", {', "graded_choice(")), "nothing hidden to leak"
    page = (course / "feedback" / "bob" / LAB / f"{LAB}.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert [line for line in hidden if line in text] == []
    assert "(hidden test)" in text                           # bob's failed checks: the line is named, not shown
    assert text.count(") right: ") == 10                     # every explanation, printed for the learner
    assert "[your answer]" in text                           # and the assertion's own message


def test_the_report_says_which_checks_the_class_failed_and_what_they_observed(course, first_run):
    report = class_report.lab_report(course, LAB)
    assert len(report) == 10 and all(cell.graded == 2 for cell in report)   # alice and bob; carol's is no notebook
    failed = [cell for cell in report if cell.lost]
    assert sorted(c.grade_id for c in failed) == sorted(first_run["bob"].failed)
    assert report[:len(failed)] == failed                                  # the most often lost first
    for cell in failed:
        assert cell.lost == ["bob"]
        [(message, count)] = cell.observed.items()
        assert message.startswith("AssertionError: [your answer]") and count == 1, message
    text = (course / f"report-{LAB}.md").read_text()
    assert f"| `{failed[0].grade_id}` | 1 | 1 of 2 (50%) | 1× AssertionError: [your answer]" in text
    assert "| 0 of 2 (0%) | - |" in text
    assert "1 submission(s) not graded, so in no row below: carol" in text   # not a notebook


def test_a_second_run_resumes_and_force_regrades(course, first_run):
    submit(course, LAB, "dave", grading.fill(course / "release" / LAB / f"{LAB}.ipynb", quiz_answers(7)))
    again = {r.student: r for r in autograde.grade(course, LAB, show=False)}
    assert again["alice"].skipped and again["bob"].skipped
    assert again["alice"].score == 10 and again["bob"].score == 4   # read back, not regraded
    assert not again["dave"].skipped and again["dave"].score == 7 and again["dave"].failed == quiz_failed(7)
    assert not again["carol"].skipped   # never graded: tried again
    forced = {r.student: r for r in autograde.grade(course, LAB, force=True, show=False)}
    assert not any(r.skipped for r in forced.values())
    assert forced["alice"].score == 10 and forced["dave"].score == 7


def test_a_submission_over_its_time_limit_is_stopped(course, first_run):
    slow = grading.fill(course / "release" / LAB / f"{LAB}.ipynb", quiz_answers(10))
    # In an answer cell: nbgrader puts locked cells back as the instructor wrote them.
    answer = next(c for c in slow.cells if c.metadata.get("nbgrader", {}).get("solution"))
    answer.source = "import time\ntime.sleep(600)\n" + answer.source
    submit(course, LAB, "erin", slow)
    out = {r.student: r for r in autograde.grade(course, LAB, limit_s=20, show=False)}
    assert out["erin"].score == 0 and "limit" in out["erin"].error
    assert out["erin"].seconds < 60
    assert not (course / "autograded" / "erin").joinpath(LAB).exists()   # retried by the next run
    assert out["alice"].score == 10   # the others are untouched


def test_the_cli_names_a_folder_that_is_not_a_course(tmp_path):
    done = subprocess.run([sys.executable, "-m", "servelab.cli", "grade", LAB, "--course", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "not an nbgrader course root" in done.stderr


def test_two_workers_give_the_same_grades(course, first_run):
    # Without erin's endless submission: a time limit short enough to stop it soon could also stop
    # alice, graded beside bob on 2 cores (20 s did, once, in CI). test_adversarial stops an endless
    # submission graded two at a time.
    shutil.rmtree(course / "submitted" / "erin", ignore_errors=True)
    parallel = {r.student: r for r in autograde.grade(course, LAB, force=True, workers=2, show=False)}
    assert set(parallel) == {"alice", "bob", "carol", "dave"}
    assert parallel["alice"].score == 10 and parallel["bob"].score == 4 and parallel["dave"].score == 7
    assert parallel["carol"].score is None and parallel["carol"].error
    assert sorted(parallel["bob"].failed) == sorted(first_run["bob"].failed)


def test_timed_labs_get_two_cores_per_submission_by_default(monkeypatch):
    monkeypatch.setattr(autograde.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(autograde.psutil, "virtual_memory", lambda: type("M", (), {"available": 64 * 1024**3})())
    assert autograde.default_workers("lab2-rag-pipeline") == 4
    assert autograde.default_workers("lab5-autoscaling-batching") == 2
    monkeypatch.setattr(autograde.os, "cpu_count", lambda: 2)
    assert autograde.default_workers("lab6-fault-injection") == 1
    monkeypatch.setattr(autograde.psutil, "virtual_memory", lambda: type("M", (), {"available": 5 * 1024**3})())
    assert autograde.default_workers("lab2-rag-pipeline") == 1  # one per 4 GiB


@pytest.mark.extended
@pytest.mark.live
def test_servelab_grade_gives_a_lab_with_two_clusters_full_marks():
    """Lab 5 starts a second cluster in the graded kernel (Task 3's RayCluster), as lab 7 does: the
    ports servelab grade pins belong to the first, and the second must not fail on them."""
    lab = "lab5-autoscaling-batching"
    root = scratch_course()
    try:
        grading.nbgrader(["generate_assignment", lab], cwd=root)
        release = root / "release" / lab / f"{lab}.ipynb"
        submit(root, lab, "sol", grading.fill(release, grading.solution_answers(lab)))
        [result] = autograde.grade(root, lab, show=False)
        assert (result.score, result.max_score, result.failed) == (12, 12, []), result
    finally:
        shutil.rmtree(root, ignore_errors=True)
