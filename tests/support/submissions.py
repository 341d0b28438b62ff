"""Building submissions in nbgrader's layout for the grading tests."""

import re
from pathlib import Path

import nbformat

from servelab.grading._course import solution_answers


def quiz_answers(right: int) -> dict[str, str]:
    """Quiz answer cells with the first `right` questions answered correctly, the rest wrongly
    (the right letters come from the quiz's solution, on the grader's side)."""
    out = {}
    for i, (var, code) in enumerate(solution_answers("quiz-scenarios").items()):
        answer = re.fullmatch(r'\w+ = "([a-d])"', code.strip()).group(1)
        letter = answer if i < right else next(c for c in "abcd" if c != answer)
        out[var] = f'{var} = "{letter}"'
    return out


def quiz_failed(right: int) -> list[str]:
    """The grade ids of the quiz's test cells that a quiz_answers(right) submission fails: the
    cells checking the answers after the first `right`."""
    from servelab.course import layout
    from servelab.grading._labs import graded_cells

    wrong = list(solution_answers("quiz-scenarios"))[right:]
    source = layout().grading / "source" / "quiz-scenarios" / "quiz-scenarios.ipynb"
    return sorted(grade_id for grade_id, _, code in graded_cells(source)
                  if any(re.search(rf"\b{var}\b", code) for var in wrong))


def submit(course: Path, lab: str, student: str, nb=None, raw: str | None = None) -> None:
    """Put a notebook (or raw text, for a corrupt one) at submitted/<student>/<lab>/<lab>.ipynb."""
    folder = course / "submitted" / student / lab
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (folder / f"{lab}.ipynb").write_text(raw)
    else:
        nbformat.write(nb, folder / f"{lab}.ipynb")


def why_failed(course: Path, lab: str, student: str) -> dict[str, str]:
    """grade_id -> "ename: evalue" of each graded cell that ended in an error in the autograded
    notebook, so a test that gets an unexpected score says why (nbgrader keeps only the score)."""
    path = course / "autograded" / student / lab / f"{lab}.ipynb"
    if not path.exists():
        return {"(notebook)": f"{path} was not written"}
    out = {}
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id") if meta.get("grade") else None
        for o in cell.get("outputs", []):
            if grade_id and o.get("output_type") == "error":
                out[grade_id] = f"{o.get('ename')}: {str(o.get('evalue'))[:500]}"
    return out
