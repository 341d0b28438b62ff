"""The scenario quiz through the real nbgrader CLI: a point per right letter, none otherwise."""

import pytest
from roundtrip import check_extremes

from servelab.course.quiz import QUESTIONS, variable
from servelab.grading import _course as grading

pytestmark = pytest.mark.grading

LAB = "quiz-scenarios"


def grade_id_of(key: str) -> str:
    return variable(key).replace("answer_", "test_", 1)


def wrong(key: str) -> str:
    return next(c for c in QUESTIONS[key].choices if c != QUESTIONS[key].answer)


@pytest.fixture(scope="module")
def graded():
    keys = list(QUESTIONS)
    half = {variable(k): f'{variable(k)} = "{wrong(k)}"' for k in keys[::2]}
    sloppy = {variable(k): f'{variable(k)} = "{QUESTIONS[k].answer.upper()}"' for k in keys[:3]}
    return grading.roundtrip(LAB, {
        "all-wrong": {variable(k): f'{variable(k)} = "{wrong(k)}"' for k in keys},
        "half": half,
        "sloppy": sloppy,
    })


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, len(QUESTIONS))


def test_a_wrong_letter_earns_nothing(graded):
    assert graded["all-wrong"].total == 0, graded["all-wrong"]


def test_each_question_is_scored_on_its_own(graded):
    keys = list(QUESTIONS)
    expected = {grade_id_of(k): 0.0 if i % 2 == 0 else 1.0 for i, k in enumerate(keys)}
    assert graded["half"].cells == expected, graded["half"]


def test_an_upper_case_letter_is_not_an_answer(graded):
    assert graded["sloppy"].total == len(QUESTIONS) - 3
    assert all("AssertionError" in graded["sloppy"].errors[grade_id_of(k)]
               for k in list(QUESTIONS)[:3]), graded["sloppy"].errors
