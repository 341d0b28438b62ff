"""What to re-teach: for each test cell of a lab, how many learners lost its points, and what
their checks observed.

`servelab grade` writes it as `report-LAB.md` beside grades.csv and prints it. The scores
are the gradebook's (after the cross-check); what a check observed is the message of its
failed assertion in the autograded notebook, which every graded check writes for the
learner (tests/grading/test_labs.py holds them to it): "[Serve] Retriever asks for
num_cpus=1, expected 0.5". The most common messages come first, so a mistake half the
class made shows as one line with its count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from servelab.grading._feedback import ANSI
from servelab.grading._labs import graded_cells

SHOWN = 3  # messages per cell in the report


@dataclass
class CellReport:
    grade_id: str
    points: float
    graded: int = 0                                 # submissions with a score for this cell
    lost: list[str] = field(default_factory=list)   # students short of its full points
    observed: Counter = field(default_factory=Counter)   # failed check's message -> students

    @property
    def share(self) -> float:
        return len(self.lost) / self.graded if self.graded else 0.0


def _messages(notebook: Path) -> dict[str, str]:
    """grade_id -> the first line of what its failed check said, from an autograded notebook."""
    import nbformat

    found = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                lines = [line for line in ANSI.sub("", out.get("evalue", "")).splitlines() if line.strip()]
                found[grade_id] = f"{out.ename}: {lines[0].strip()}" if lines else out.ename
            elif out.get("output_type") == "stream" and grade_id not in found:
                # partial credit (checks.credit) prints the parts a learner missed
                missed = [line for line in out.get("text", "").splitlines() if line.startswith("missed ")]
                if missed:
                    found[grade_id] = missed[0]
    return found


def lab_report(course: Path, lab: str) -> list[CellReport]:
    """One CellReport per autograded test cell of `lab`, the most often failed first."""
    from nbgrader.api import Gradebook, MissingEntry

    cells = {grade_id: CellReport(grade_id, points)
             for grade_id, points, _ in graded_cells(course / "source" / lab / f"{lab}.ipynb")}
    order = list(cells)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in sorted(s.id for s in gb.students):
            folder = course / "autograded" / student / lab
            try:
                sub = gb.find_submission(lab, student)
            except MissingEntry:
                continue
            if not folder.is_dir():
                continue  # not graded (stopped at its limit, or not a notebook): summary-LAB.csv says why
            messages = {}
            for notebook in folder.glob("*.ipynb"):
                messages.update(_messages(notebook))
            for grade in (g for nb in sub.notebooks for g in nb.grades):
                cell = cells.get(grade.name)
                if cell is None:
                    continue  # an answer graded by hand
                cell.graded += 1
                if (grade.score or 0) < (grade.max_score or 0):
                    cell.lost.append(student)
                    cell.observed[messages.get(grade.name, "(no message: the cell gave no error output)")] += 1
    return sorted(cells.values(), key=lambda c: (-c.share, order.index(c.grade_id)))


def not_graded(course: Path, lab: str) -> list[str]:
    """Students who submitted `lab` but have no autograded notebook: stopped at their time limit,
    or not a notebook nbgrader could read (summary-LAB.csv says which)."""
    submitted = course / "submitted"
    return sorted(p.name for p in submitted.iterdir() if (p / lab).is_dir()
                  and not (course / "autograded" / p.name / lab).is_dir()) if submitted.is_dir() else []


def render(lab: str, report: list[CellReport], missing: list[str] = ()) -> str:
    """The report as Markdown: one table row per test cell."""
    graded = max((c.graded for c in report), default=0)
    lines = [f"# What learners missed in {lab}", "",
             f"{graded} submission(s) graded. Test cells the most learners lost come first; "
             "the last column quotes what their checks observed, most common first."]
    if missing:
        lines.append(f"{len(missing)} submission(s) not graded, so in no row below: {', '.join(missing)} "
                     f"(summary-{lab}.csv says why).")
    lines += ["", "| test cell | points | lost by | what the checks observed |", "|---|---|---|---|"]
    for cell in report:
        seen = "; ".join(f"{n}× {_cell_text(message)}" for message, n in cell.observed.most_common(SHOWN))
        more = len(cell.observed) - SHOWN
        seen += f"; and {more} other message(s)" if more > 0 else ""
        lost = f"{len(cell.lost)} of {cell.graded} ({100 * cell.share:.0f}%)" if cell.graded else "not graded"
        lines.append(f"| `{cell.grade_id}` | {cell.points:g} | {lost} | {seen or '-'} |")
    return "\n".join(lines) + "\n"


def _cell_text(message: str, limit: int = 160) -> str:
    message = message if len(message) <= limit else message[: limit - 1] + "…"
    return message.replace("|", "\\|").replace("\n", " ")


def write(course: Path, lab: str) -> Path:
    """Write report-LAB.md in the course folder; returns its path."""
    path = course / f"report-{lab}.md"
    path.write_text(render(lab, lab_report(course, lab), not_graded(course, lab)))
    return path
