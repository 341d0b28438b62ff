"""Feedback that shows a learner what their checks said, never the hidden checks themselves.

nbgrader's autograde puts the hidden tests back into each test cell before running it, and
`generate_feedback` renders that notebook as it is: the hidden code in the cell, and again
in the traceback of any check that failed (IPython prints the failing line and its
neighbours). A learner who reads their feedback would learn the hidden checks, answers
included, before a resubmission or a next cohort. `HideHiddenTests` runs in
`generate_feedback` (grading/nbgrader_config.py, and `servelab grade` for any course
folder): each hidden region becomes one comment line, and traceback lines that quote hidden
code say `(hidden test)` instead. What the checks printed and their assertion messages stay:
those are written for the learner (observed, expected, which layer to look at).
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: their messages below say what they observed)"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A context line of an IPython traceback frame: "      3 code" or "----> 4 code".
CONTEXT_LINE = re.compile(r"^(\s*-*>?\s*\d+ ?)(.*)$")

#: the generate_feedback preprocessors with this one added (GetGrades must come first)
CONFIG = (
    "c.GenerateFeedback.preprocessors = ['nbgrader.preprocessors.GetGrades',\n"
    "    'nbconvert.preprocessors.CSSHTMLHeaderPreprocessor', 'servelab.grading._feedback.HideHiddenTests']\n"
)


def split_hidden(source: str) -> tuple[str, list[str]]:
    """The source with each hidden region replaced by HIDDEN_NOTE, and the hidden lines."""
    shown, hidden, inside = [], [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
            shown.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif line.strip() == END:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            shown.append(line)
    return "\n".join(shown), hidden


def scrub_traceback(entries: list[str], hidden: list[str]) -> list[str]:
    """The traceback with each line that quotes hidden code replaced by `(hidden test)`."""
    quoted = {line.strip() for line in hidden if line.strip()}
    out = []
    for entry in entries:
        lines = []
        for line in entry.split("\n"):
            m = CONTEXT_LINE.match(ANSI.sub("", line))
            if m and m.group(2).strip() in quoted:
                line = m.group(1) + "(hidden test)"
            lines.append(line)
        out.append("\n".join(lines))
    return out


class HideHiddenTests(Preprocessor):
    """For generate_feedback: hidden test code leaves the cells and their tracebacks."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled; nbgrader's are on

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            return cell, resources
        cell.source, hidden = split_hidden(cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = scrub_traceback(output.get("traceback", []), hidden)
        return cell, resources
