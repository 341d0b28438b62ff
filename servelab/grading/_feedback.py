"""Feedback that shows a learner what their checks said, never the hidden checks themselves.

nbgrader's autograde puts the hidden tests back into each test cell before running it, and
`generate_feedback` renders that notebook as it is: the hidden code in the cell, and again
in the traceback of any check that failed (IPython prints the failing line and its
neighbours). A learner who reads their feedback would learn the hidden checks, answers
included, before a resubmission or a next cohort. `HideHiddenTests` runs in
`generate_feedback` (grading/nbgrader_config.py, and `servelab grade` for any course
folder): each hidden region becomes one comment line, and any output line of any cell that
quotes hidden code verbatim (a traceback's context, or a learner's cell printing IPython's
input history) says `(hidden test)` instead. What the checks printed and their assertion
messages stay: those are written for the learner (observed, expected, which layer to look
at). Output that encodes the code some other way is beyond a text filter.
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"  # nbgrader's ClearHiddenTests matches lines containing them
HIDDEN_NOTE = "# (hidden tests: their messages below say what they observed)"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A context line of an IPython traceback frame: "      3 code" or "----> 4 code".
CONTEXT_LINE = re.compile(r"^(\s*-*>?\s*\d+ ?)(.*)$")
QUOTED = 16  # a hidden line at least this long is hidden wherever an output quotes it

#: the generate_feedback preprocessors with this one added (GetGrades must come first); the
#: course's nbgrader_config.py sets them, and `servelab grade` for any other course folder
FEEDBACK_PREPROCESSORS = ["nbgrader.preprocessors.GetGrades", "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
                          "servelab.grading._feedback.HideHiddenTests"]
CONFIG = f"c.GenerateFeedback.preprocessors = {FEEDBACK_PREPROCESSORS!r}\n"


def split_hidden(source: str) -> tuple[str, list[str]]:
    """The source with each hidden region replaced by HIDDEN_NOTE, and the hidden lines."""
    shown, hidden, inside = [], [], False
    for line in source.splitlines():
        if BEGIN in line:
            inside = True
            shown.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif END in line:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            shown.append(line)
    return "\n".join(shown), hidden


def scrub_text(text: str, hidden: list[str]) -> str:
    """`text` with each line that quotes hidden code replaced by `(hidden test)`: a traceback's
    context line holding a hidden line, or any line containing a long one."""
    exact = {line.strip() for line in hidden if line.strip()}
    long = [line for line in exact if len(line) >= QUOTED]
    lines = []
    for line in text.split("\n"):
        plain = ANSI.sub("", line)
        m = CONTEXT_LINE.match(plain)
        if m and m.group(2).strip() in exact:
            line = m.group(1) + "(hidden test)"
        elif any(quoted in plain for quoted in long):
            line = "(hidden test)"
        lines.append(line)
    return "\n".join(lines)


def scrub_traceback(entries: list[str], hidden: list[str]) -> list[str]:
    """The traceback with each line that quotes hidden code replaced by `(hidden test)`."""
    return [scrub_text(entry, hidden) for entry in entries]


class HideHiddenTests(Preprocessor):
    """For generate_feedback: hidden test code leaves the cells, and every output that quotes it."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled; nbgrader's are on

    def preprocess(self, nb, resources):
        hidden = []
        for cell in nb.cells:
            if cell.cell_type == "code" and BEGIN in cell.source:
                cell.source, lines = split_hidden(cell.source)
                hidden += lines
        for cell in nb.cells:
            for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
                kind = output.get("output_type")
                if kind == "error":
                    output["traceback"] = scrub_traceback(output.get("traceback", []), hidden)
                elif kind == "stream":
                    output["text"] = scrub_text(output.get("text", ""), hidden)
                elif kind in ("execute_result", "display_data") and "text/plain" in output.get("data", {}):
                    output["data"]["text/plain"] = scrub_text(output["data"]["text/plain"], hidden)
        return nb, resources
