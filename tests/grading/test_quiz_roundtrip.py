"""The scenario quiz through the real nbgrader CLI: a point per right letter, none otherwise,
no verdict before grading, and every option explained in the feedback after it."""

import html
import json
import re
from pathlib import Path

import nbformat
import pytest
from roundtrip import check_extremes

import servelab
from servelab.course import layout
from servelab.grading import _course as grading

pytestmark = pytest.mark.grading

LAB = "quiz-scenarios"
SOLUTION = grading.solution_answers(LAB)  # answer_<key> -> 'answer_<key> = "b"'
RIGHT = {var: re.fullmatch(r'\w+ = "([a-d])"', code.strip()).group(1) for var, code in SOLUTION.items()}
VARS = list(RIGHT)


def grade_id_of(var: str) -> str:
    return var.replace("answer_", "test_", 1)


def wrong(var: str) -> str:
    return next(c for c in "abcd" if c != RIGHT[var])


@pytest.fixture(scope="module")
def graded():
    variants = {
        "all-wrong": {v: f'{v} = "{wrong(v)}"' for v in VARS},
        "half": {v: f'{v} = "{wrong(v)}"' for v in VARS[::2]},
        "sloppy": {v: f'{v} = "{RIGHT[v].upper()}"' for v in VARS[:3]},
    }
    with grading.Course(LAB) as course:
        course.submit("solution", grading.fill(course.student_version, SOLUTION))
        course.submit("untouched", grading.fill(course.student_version, {}))
        for name, changes in variants.items():
            course.submit(name, grading.fill(course.student_version, {**SOLUTION, **changes}))
        course.autograde()
        results = course.results()
        course._run(["generate_feedback", LAB, "--force"])
        feedback = html.unescape((course.root / "feedback" / "half" / LAB / f"{LAB}.html").read_text())
    return results, feedback


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded[0], len(VARS))


def test_the_right_letters_are_spread_over_the_options():
    # a learner who writes the same letter everywhere must not pass
    assert max(list(RIGHT.values()).count(c) for c in "abcd") <= 3, RIGHT


def test_a_wrong_letter_earns_nothing(graded):
    assert graded[0]["all-wrong"].total == 0, graded[0]["all-wrong"]


def test_each_question_is_scored_on_its_own(graded):
    expected = {grade_id_of(v): 0.0 if i % 2 == 0 else 1.0 for i, v in enumerate(VARS)}
    assert graded[0]["half"].cells == expected, graded[0]["half"]


def test_an_upper_case_letter_is_not_an_answer(graded):
    sloppy = graded[0]["sloppy"]
    assert sloppy.total == len(VARS) - 3
    assert all("AssertionError" in sloppy.errors[grade_id_of(v)] for v in VARS[:3]), sloppy.errors


def test_the_feedback_explains_every_option_of_every_question(graded):
    feedback = graded[1]
    for v in VARS:
        assert f"{RIGHT[v]}) right: " in feedback
    assert feedback.count(") right: ") == len(VARS)
    assert feedback.count(") not this one: ") == 3 * len(VARS)
    # The printed lines, not the traceback's highlighted source line that writes them (its string
    # literal ends in a </span>); a printed line may end its output chunk, so what follows it is not
    # always a newline.
    assert len(re.findall(r'<- your answer(?!</span>|")', feedback)) == len(VARS)


def hidden_explanations() -> list[str]:
    """Every option's explanation, as the quiz's hidden tests hold them."""
    nb = nbformat.read(layout().grading / "source" / LAB / f"{LAB}.ipynb", as_version=4)
    found = [json.loads(literal) for cell in nb.cells if "graded_choice(" in cell.source
             for literal in re.findall(r'^    "[a-d]": (".*"),$', cell.source, re.M)]
    assert len(found) == 4 * len(VARS), len(found)
    return found


def test_no_graded_answer_is_in_the_learners_environment():
    release = (layout().labs / LAB / f"{LAB}.ipynb").read_text()
    assert "graded_choice(" not in release and "HIDDEN TESTS" not in release
    assert not any(f'{v} = "' in release for v in VARS), "a solution letter in the release notebook"
    package = [p.read_text(errors="replace") for p in Path(servelab.__file__).parent.rglob("*")
               if p.is_file() and p.suffix in (".py", ".json", ".yaml", ".md", ".txt", ".html")]
    lessons = [p.read_text() for p in layout().notebooks.glob("*.ipynb")]
    for why in hidden_explanations():
        phrase = why[:50]
        assert phrase not in release, phrase
        assert not any(phrase in text for text in package), f"in the installed package: {phrase}"
        assert not any(phrase in text for text in lessons), f"in a lesson: {phrase}"
