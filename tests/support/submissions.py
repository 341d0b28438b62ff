"""Building submissions in nbgrader's layout for the grading tests."""

from pathlib import Path

import nbformat

from servelab.course.quiz import QUESTIONS, variable


def quiz_answers(right: int) -> dict[str, str]:
    """Quiz answer cells with the first `right` questions answered correctly, the rest wrongly."""
    out = {}
    for i, (key, q) in enumerate(QUESTIONS.items()):
        letter = q.answer if i < right else next(c for c in q.choices if c != q.answer)
        out[variable(key)] = f'{variable(key)} = "{letter}"'
    return out


def submit(course: Path, lab: str, student: str, nb=None, raw: str | None = None) -> None:
    """Put a notebook (or raw text, for a corrupt one) at submitted/<student>/<lab>/<lab>.ipynb."""
    folder = course / "submitted" / student / lab
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (folder / f"{lab}.ipynb").write_text(raw)
    else:
        nbformat.write(nb, folder / f"{lab}.ipynb")
