"""What starting nbgrader without jsonschema's IRI grammar saves the grader.

`servelab grade` starts one nbgrader per submission, and more for the feedback and the export.
Each start loads jsonschema, which imports rfc3987-syntax (installed by Jupyter) for its "iri"
format, and that package builds a grammar at import. The grader now starts nbgrader with the
module marked absent (servelab/grading/_labs.py: NBGRADER_CLI). Measured here, alternating in
the same run: the start alone (`nbgrader --version`), and `servelab grade` of a class of four
scenario-quiz submissions (no cluster: what remains is nbgrader, the kernels and the grader).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

from servelab.grading import _autograde as autograde  # noqa: E402
from servelab.grading import _course as grading  # noqa: E402
from servelab.grading import _labs as labs  # noqa: E402

QUIZ = "quiz-scenarios"
STUDENTS = 4
START_ROUNDS = 5
CLASS_ROUNDS = 2
PLAIN = [sys.executable, "-m", "nbgrader"]   # how the grader started nbgrader before
COMMANDS = {"python -m nbgrader (before)": PLAIN, "without the IRI grammar (now)": labs.NBGRADER_CLI}


def _use(command: list[str]) -> None:
    labs.NBGRADER_CLI = autograde.NBGRADER_CLI = command


def time_start(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([*command, "--version"], check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


def quiz_class() -> Path:
    root = labs.scratch_course()
    grading.nbgrader(["generate_assignment", QUIZ], cwd=root)
    release = root / "release" / QUIZ / f"{QUIZ}.ipynb"
    answers = grading.solution_answers(QUIZ)
    for i in range(STUDENTS):
        folder = root / "submitted" / f"s{i}" / QUIZ
        folder.mkdir(parents=True)
        nbformat.write(grading.fill(release, answers), folder / f"{QUIZ}.ipynb")
    return root


def time_class(root: Path) -> float:
    start = time.perf_counter()
    results = autograde.grade(root, QUIZ, force=True, workers=1, show=False)
    elapsed = time.perf_counter() - start
    assert [r.score for r in results] == [10.0] * STUDENTS, results   # a broken run times nothing
    return elapsed


def run() -> dict:
    original = labs.NBGRADER_CLI
    starts: dict[str, list[float]] = {label: [] for label in COMMANDS}
    classes: dict[str, list[float]] = {label: [] for label in COMMANDS}
    root = quiz_class()
    try:
        for _ in range(START_ROUNDS):
            for label, command in COMMANDS.items():
                starts[label].append(time_start(command))
        for i in range(CLASS_ROUNDS):
            for label, command in COMMANDS.items():
                _use(command)
                classes[label].append(time_class(root))
                print(f"  round {i + 1}/{CLASS_ROUNDS}, {label}: {classes[label][-1]:.1f} s", flush=True)
    finally:
        _use(original)
        shutil.rmtree(root, ignore_errors=True)
    before, now = COMMANDS
    start_ratio = statistics.median(starts[now]) / statistics.median(starts[before])
    class_ratio = statistics.median(classes[now]) / statistics.median(classes[before])
    rows = "\n".join(f"| {label} | {statistics.median(starts[label]):.2f} "
                     f"({', '.join(f'{s:.2f}' for s in starts[label])}) | {statistics.median(classes[label]):.1f} "
                     f"({', '.join(f'{s:.1f}' for s in classes[label])}) |" for label in COMMANDS)
    body = f"""
`bench/nbgrader_start.py`: {__doc__.split(chr(10) + chr(10), 1)[1].strip()}
Medians, each round in brackets; the two ways alternate.

| nbgrader started as | start alone, s (`--version`, {START_ROUNDS} rounds) | `servelab grade` of {STUDENTS} quiz submissions, 1 worker, s ({CLASS_ROUNDS} rounds) |
|---|---|---|
{rows}
| **ratio** now / before | **{start_ratio:.2f}x** | **{class_ratio:.2f}x** |

A class of {STUDENTS} quiz submissions starts nbgrader {STUDENTS + 2} times (one autograde each,
then generate_feedback and export), so the class saves about that many starts' difference. The
kernels are not changed: a graded kernel imports what a learner's kernel does.
"""
    write_section("nbgrader-start", "Starting nbgrader without jsonschema's IRI grammar", body)
    print(body)
    return {"start_ratio": round(start_ratio, 2), "class_ratio": round(class_ratio, 2)}


if __name__ == "__main__":
    print(run())
