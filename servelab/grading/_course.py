"""Autograding lab submissions with the real nbgrader CLI.

A scratch course directory is made from grading/ (config and sources), the
assignment is generated there, submissions are placed in nbgrader's layout
(submitted/<student>/<lab>/<lab>.ipynb), and `nbgrader autograde` and
`nbgrader export` run as an instructor would run them. Scores are read back
per test cell from the gradebook and as totals from the exported CSV.
"""

from __future__ import annotations

import csv
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from servelab.course.layout import layout
from servelab.grading._labs import nbgrader, scratch_course

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass
class Result:
    student: str
    total: float
    max_total: float
    cells: dict[str, float] = field(default_factory=dict)  # grade_id -> points earned
    errors: dict[str, str] = field(default_factory=dict)  # grade_id -> first error line

    def __repr__(self) -> str:
        return f"<Result {self.student}: {self.total}/{self.max_total} {self.cells} errors={self.errors}>"


def solution_answers(lab: str, grading: Path | None = None) -> dict[str, str]:
    """grade_id -> the instructor's solution code, markers removed."""
    grading = grading or layout().grading
    nb = nbformat.read(grading / "source" / lab / f"{lab}.ipynb", as_version=4)
    answers = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            lines = [ln for ln in cell.source.splitlines() if ln.strip() not in MARKERS]
            answers[meta["grade_id"]] = "\n".join(lines)
    return answers


def fill(student_nb: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the student notebook with some answer cells replaced."""
    nb = nbformat.read(student_nb, as_version=4)
    unknown = set(answers)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
            unknown.discard(grade_id)
    if unknown:
        raise KeyError(f"no answer cells named {sorted(unknown)} in {student_nb.name}")
    return nb


class Course:
    """A scratch nbgrader course for one lab, deleted by close()."""

    def __init__(self, lab: str, grading: Path | None = None):
        self.lab = lab
        self.root = scratch_course(grading)
        self._run(["generate_assignment", lab, "--force"])

    @property
    def student_version(self) -> Path:
        return self.root / "release" / self.lab / f"{self.lab}.ipynb"

    def _run(self, args: list[str]) -> str:
        done = nbgrader(args, cwd=self.root, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout + done.stderr

    def submit(self, student: str, nb: nbformat.NotebookNode) -> None:
        folder = self.root / "submitted" / student / self.lab
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{self.lab}.ipynb")

    def autograde(self, workers: int = 1) -> None:
        """Grade every submission: one `nbgrader autograde` grades them one by one; with
        workers > 1, one nbgrader per student, that many at a time, each on ports and in a
        cluster folder of its own as `servelab grade` gives them (without its sandbox and
        cross-check: this is nbgrader as it comes)."""
        if workers <= 1:
            self._run(["autograde", self.lab, "--force"])
            return
        from servelab.grading import _autograde as autograde

        students = autograde.submissions(self.root, self.lab)
        run = autograde.GradingRun(self.root, use_sandbox=False, lab=self.lab, crosscheck=False)
        try:
            with ThreadPoolExecutor(workers) as pool:
                done = list(pool.map(lambda s: autograde._autograde_one(
                    self.root, self.lab, s, limit_s=autograde.DEFAULT_LIMIT_S, force=True, run=run), students))
        finally:
            run.close()
        errors = [f"{s}: {error}" for s, (_, error) in zip(students, done) if error]
        if errors:
            raise RuntimeError("nbgrader autograde failed for " + "; ".join(errors))

    def results(self) -> dict[str, Result]:
        """Totals from `nbgrader export`, per-cell points from the gradebook."""
        from nbgrader.api import Gradebook

        self._run(["export", "--to", "grades.csv"])
        results: dict[str, Result] = {}
        with open(self.root / "grades.csv") as f:
            for row in csv.DictReader(f):
                if row["assignment"] == self.lab:
                    results[row["student_id"]] = Result(
                        row["student_id"], float(row["raw_score"]), float(row["max_score"]))
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gb:
            for student, result in results.items():
                sub = gb.find_submission(self.lab, student)
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        result.cells[grade.name] = grade.score
                result.errors = self._errors(student)
        return results

    def _errors(self, student: str) -> dict[str, str]:
        path = self.root / "autograded" / student / self.lab / f"{self.lab}.ipynb"
        if not path.exists():
            return {}
        errors = {}
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade"):
                continue  # only test cells are scored
            grade_id = meta["grade_id"]
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    errors[grade_id] = f"{out.ename}: {out.evalue}"[:300]
                elif out.output_type == "stream" and out.name == "stderr":
                    errors.setdefault(grade_id, "wrote to stderr: " + out.text[:200])
        return errors

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Course":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def roundtrip(lab: str, variants: dict[str, dict[str, str]] | None = None,
              grading: Path | None = None, extremes: bool = True) -> dict[str, Result]:
    """Autograde, with `nbgrader autograde` as it comes, a lab's solution and its untouched
    student version ("untouched"; both left out with extremes=False) and named variants
    (each maps grade_ids to the code that replaces the solution's). As many at a time as
    `servelab grade` would grade of this lab here (autograde.default_workers: one at a time
    for labs whose checks measure time)."""
    from servelab.grading._autograde import default_workers

    with Course(lab, grading) as course:
        student = course.student_version
        solution = solution_answers(lab, grading)
        if extremes:
            course.submit("solution", fill(student, solution))
            course.submit("untouched", fill(student, {}))
        for name, changes in (variants or {}).items():
            unknown = set(changes) - set(solution)
            if unknown:
                raise ValueError(f"{lab} has no solution cells {sorted(unknown)}")
            course.submit(name, fill(student, {**solution, **changes}))
        course.autograde(workers=default_workers(lab))
        return course.results()
