"""Check a lab before submitting: its visible test cells, run against the live service.

Inside a lab, `selfcheck.run(LAB)` runs each visible test cell in the learner's own kernel
(where their cluster and service live) and prints, for each failure, the layer to look at
and a hint. From a terminal, `servelab check LAB` runs the learner's notebook top to bottom
in a fresh kernel, as the grader will, and reports the same way.

Hidden tests are not in the student's notebook, so a pass here is necessary, not
sufficient. While grading (SKIP_ENV set) the in-notebook call does nothing: the grader
runs the test cells itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from servelab.course.layout import layout
from servelab.errors import LAYERS, ServelabError
from servelab.grading._labs import graded_cells

SKIP_ENV = "SERVELAB_NO_SELF_CHECK"
TAG = re.compile(r"^\s*\[(Kubernetes|KubeRay|Ray runtime|Serve|application code)\]\s*")
HINTS = {
    "Kubernetes": "pods and nodes: `kubectl describe pod`, and the events at the end",
    "KubeRay": "the RayCluster/RayService status and conditions",
    "Ray runtime": "is your cluster running? Re-run the setup cell; `servelab status` in a terminal",
    "Serve": "Serve's view: cluster.serve_api.application(NAME) — status, deployments, "
             "replicas and route prefix",
    "application code": "your deployment's code: the response body, and the replica's log "
                        "(dashboard → Serve → the replica)",
    "your notebook": "run the cells above it first (Kernel → Restart Kernel and Run All Cells)",
    "your answer": "read the task again: the test's message says what it expected",
}


@dataclass
class Outcome:
    grade_id: str
    points: float
    what: str           # the test cell's first comment line
    passed: bool | None  # None: an answer your instructor grades by hand
    layer: str = ""
    message: str = ""


def test_cells(lab: str, notebook: Path | None = None) -> list[tuple[str, float, str]]:
    """(grade_id, points, source) of the graded test cells in the learner's notebook."""
    return graded_cells(notebook or layout().labs / lab / f"{lab}.ipynb")


def classify(ename: str, message: str, layer: str | None = None) -> tuple[str, str]:
    """(layer, message without its layer tag) for an error raised by a test cell.

    `layer` is the exception's own `.layer`, when the exception itself is at hand (a
    ServelabError raised in this kernel: `run`). An error that comes back only as text
    (ename and evalue of a notebook run in another kernel: `check_notebook`), or that
    carries no layer (an AssertionError from `checks`), is read by the "[layer] " tag its
    message starts with, then by its name.
    """
    tagged = TAG.match(message)
    if layer in LAYERS:
        return layer, message[tagged.end():] if tagged else message
    if tagged:
        return tagged.group(1), message[tagged.end():]
    if ename in ("NameError", "NotImplementedError"):
        return "your notebook", message or "an answer cell still raises NotImplementedError"
    if ename in ("ConnectionError", "ConnectTimeout", "ServeAPIError"):
        return "Ray runtime", message
    if ename in ("AssertionError", "PlanError"):
        return "your answer", message
    return "application code", f"{ename}: {message}"


def _what(source: str) -> str:
    first = source.strip().splitlines()[0] if source.strip() else ""
    return first.lstrip("# ").strip() if first.startswith("#") else ""


def run(lab: str, namespace: dict | None = None, notebook: Path | None = None,
        show: bool = True) -> list[Outcome]:
    """Run the lab's visible test cells in `namespace` (default: this IPython kernel's)."""
    if os.environ.get(SKIP_ENV):
        if show:
            print("self-check skipped: the grader runs the test cells itself")
        return []
    if namespace is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            raise RuntimeError("selfcheck.run needs a namespace outside a notebook; "
                               "from a terminal use `servelab check LAB`")
        namespace = shell.user_ns
    outcomes = by_hand(notebook or layout().labs / lab / f"{lab}.ipynb")
    for grade_id, points, source in test_cells(lab, notebook):
        try:
            exec(compile(source, f"<{grade_id}>", "exec"), namespace)
        except Exception as exc:  # a failing test is a report, never a crash of the check
            layer, message = classify(type(exc).__name__, str(exc),
                                      exc.layer if isinstance(exc, ServelabError) else None)
            outcomes.append(Outcome(grade_id, points, _what(source), False, layer, message))
        else:
            outcomes.append(Outcome(grade_id, points, _what(source), True))
    if show:
        print(report(outcomes))
    return outcomes


def by_hand(notebook: Path) -> list[Outcome]:
    """The notebook's answers that a grader scores by hand (no test can say)."""
    return [Outcome(grade_id, points, "read by your instructor", None)
            for grade_id, points, _ in graded_cells(notebook, manual=True)]


def report(outcomes: list[Outcome]) -> str:
    tested = [o for o in outcomes if o.passed is not None]
    earned = sum(o.points for o in tested if o.passed)
    total = sum(o.points for o in tested)
    lines = [f"hand  {o.grade_id}  ({o.points:g} points, {o.what})" for o in outcomes if o.passed is None]
    for o in tested:
        mark = "pass" if o.passed else "FAIL"
        lines.append(f"{mark}  {o.grade_id}  ({o.what or f'{o.points:g} points'})")
        if not o.passed:
            lines.append(f"      layer: {o.layer} — {o.message[:300]}")
            lines.append(f"      look at: {HINTS[o.layer]}")
    hand = sum(o.points for o in outcomes if o.passed is None)
    lines.append(f"visible tests: {earned:g} of {total:g} points pass "
                 "(hidden tests run only when the lab is graded)"
                 + (f"; {hand:g} more points are read by your instructor" if hand else ""))
    return "\n".join(lines)


def check_notebook(lab: str, notebook: Path, timeout_s: float = 600) -> list[Outcome]:
    """Run a learner's notebook top to bottom in a fresh kernel and read its test cells."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(notebook, as_version=4)
    try:
        NotebookClient(nb, timeout=timeout_s, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}},
                       ).execute(env={**os.environ, SKIP_ENV: "1"})  # no self-check inside the check
    except DeadKernelError as exc:
        raise ServelabError(f"the notebook's kernel died while it ran: {exc}",
                            hint="a cell ran out of memory or ended the process; run the notebook "
                                 "in Jupyter to see which cell") from None
    outcomes = by_hand(notebook)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or meta.get("solution"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        outcome = Outcome(meta["grade_id"], float(meta.get("points") or 0), _what(cell.source), not errors)
        if errors:
            outcome.layer, outcome.message = classify(errors[0].ename, errors[0].evalue)
        outcomes.append(outcome)
    return outcomes
