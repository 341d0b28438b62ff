"""Learner self-check: visible tests run against what the learner has, each failure named
by layer with a hint. Uses the scenario quiz (no cluster) and tagged messages of live labs."""

import subprocess
import sys

import nbformat
import pytest

from servelab.course import layout
from servelab.grading import _course as grading
from servelab.grading import selfcheck
from servelab.grading._labs import venv_env

LAB = "quiz-scenarios"


def test_each_failure_names_its_layer_and_a_hint(capsys, monkeypatch):
    monkeypatch.delenv(selfcheck.SKIP_ENV, raising=False)
    outcomes = {o.grade_id: o for o in selfcheck.run(
        LAB, namespace={"answer_new_image": "c", "answer_async_concurrency": "B"})}
    assert outcomes["test_new_image"].passed  # any letter passes what a learner sees: no verdict before grading
    assert not outcomes["test_async_concurrency"].passed
    assert outcomes["test_async_concurrency"].layer == "your answer"
    assert "one letter" in outcomes["test_async_concurrency"].message
    assert outcomes["test_branching_pipeline"].layer == "your notebook"   # never answered: NameError
    printed = capsys.readouterr().out
    assert "FAIL  test_async_concurrency" in printed and "pass  test_new_image" in printed
    assert "look at: run the cells above it first" in printed
    assert "visible tests: 1 of 10 points pass" in printed


def test_the_layer_tag_of_a_live_check_is_read():
    assert selfcheck.classify("AssertionError", "[Serve] /search -> 404") == ("Serve", "/search -> 404")
    assert selfcheck.classify("AssertionError", "[application code] expected 400, got 500")[0] == "application code"
    assert selfcheck.classify("ConnectionError", "refused")[0] == "Ray runtime"
    assert selfcheck.classify("KeyError", "'contexts'") == ("application code", "KeyError: 'contexts'")


@pytest.mark.parametrize("lab", sorted(p.name for p in layout().labs.iterdir() if p.is_dir()))
def test_every_lab_offers_the_check_and_its_tests_carry_what_they_check(lab):
    nb = nbformat.read(layout().labs / lab / f"{lab}.ipynb", as_version=4)
    assert any(f'selfcheck.run("{lab}")' in c.source for c in nb.cells), "a one-line self-check cell"
    for grade_id, _, source in selfcheck.test_cells(lab):
        assert source.startswith("#"), f"{grade_id}: start with a comment saying what it checks"


def test_grading_kernels_skip_the_in_notebook_check(capsys, monkeypatch):
    monkeypatch.setenv(selfcheck.SKIP_ENV, "1")
    assert selfcheck.run(LAB, namespace={}) == []
    assert "skipped" in capsys.readouterr().out
    assert venv_env()[selfcheck.SKIP_ENV] == "1"


@pytest.mark.grading
def test_the_cli_runs_the_notebook_fresh_and_exits_by_the_result(tmp_path):
    student = layout().labs / LAB / f"{LAB}.ipynb"
    solution = grading.solution_answers(LAB)
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(grading.fill(student, solution), good)
    nbformat.write(grading.fill(student, {**solution, "answer_new_image": 'answer_new_image = "image"'}), bad)
    env = {k: v for k, v in venv_env().items() if k != selfcheck.SKIP_ENV}
    ok = subprocess.run([sys.executable, "-m", "servelab.cli", "check", LAB, "--notebook", str(good)],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "visible tests: 10 of 10 points pass" in ok.stdout
    failed = subprocess.run([sys.executable, "-m", "servelab.cli", "check", LAB, "--notebook", str(bad)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode == 1
    assert "FAIL  test_new_image" in failed.stdout and "layer: your answer" in failed.stdout


def test_an_answer_graded_by_hand_is_named_not_passed(capsys, monkeypatch):
    monkeypatch.delenv(selfcheck.SKIP_ENV, raising=False)
    from servelab.course import production_plan

    outcomes = selfcheck.run("lab8-production-plan", namespace={
        "production_plan": production_plan, "image": "rag:latest",
        "serve_config": grading.solution_answers("lab8-production-plan")["answer_serve_config"].split('"""')[1]})
    by_id = {o.grade_id: o for o in outcomes}
    assert by_id["plan_written"].passed is None and by_id["test_scaling"].passed
    assert by_id["test_delivery"].layer == "your answer" and "not a pinned image" in by_id["test_delivery"].message
    printed = capsys.readouterr().out
    assert "hand  plan_written  (5 points, read by your instructor)" in printed
    assert "visible tests: 7 of 10 points pass" in printed and "5 more points are read by your instructor" in printed
