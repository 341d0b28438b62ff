"""The lessons' practice questions: well formed, explained, and tied to lessons that exist."""

from pathlib import Path

import pytest

from servelab.course import quiz

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("key", quiz.QUESTIONS)
def test_each_question_has_one_right_answer_and_a_reason_for_every_option(key):
    q = quiz.QUESTIONS[key]
    assert set(q.choices) == set(q.why) == {"a", "b", "c", "d"}
    assert q.answer in q.choices
    right = [c for c, why in q.why.items() if why.startswith("Right.")]
    assert right == [q.answer]
    assert (NOTEBOOKS / f"{q.lesson}.ipynb").exists(), q.lesson


def test_feedback_says_right_or_not_and_explains_the_choice():
    q = quiz.QUESTIONS["route"]
    wrong = next(c for c in q.choices if c != q.answer)
    assert "Right" in quiz.explain("route", q.answer) and "Not this one" not in quiz.explain("route", q.answer)
    assert "Not this one" in quiz.explain("route", wrong)
    assert "from Serve&#x27;s proxy" in quiz.explain("route", "a")
    # Graded as written: anything but a lower-case option letter is not an answer.
    for bad in (None, "B", " b", "e", 2):
        assert "one lower-case letter" in quiz.explain("route", bad)
    with pytest.raises(KeyError, match="known: "):
        quiz.explain("no-such-question", "a")


def test_ask_reveals_the_explanation_only_after_an_answer():
    box = quiz.ask("copied-code")
    prompt, buttons, shown = box.children
    assert "<code>rag_app.py</code>" in prompt.value
    assert shown.value == "" and buttons.value is None
    buttons.value = "b"
    assert "versioned image" not in shown.value and "Right" in shown.value
    buttons.value = "c"
    assert "stays dead" in shown.value
