"""labs/ is generated from grading/source, and the sources are well-formed nbgrader labs."""

import ast
import re
import shutil

import nbformat
import pytest

from servelab.course import layout
from servelab.grading import _labs as labs


@pytest.mark.grading
def test_committed_student_labs_match_their_sources():
    assert labs.stale() == [], "run `make labs` and commit labs/"


@pytest.mark.grading
def test_an_edited_source_makes_labs_stale(tmp_path):
    # One lab is enough to show it, and generating one is seconds, not a minute.
    lab = "lab1-serve-basics"
    grading, committed = tmp_path / "grading", tmp_path / "labs"
    grading.mkdir()
    shutil.copy(layout().grading / "nbgrader_config.py", grading)
    shutil.copytree(layout().grading / "source" / lab, grading / "source" / lab)
    shutil.copytree(layout().labs / lab, committed / lab)
    assert labs.stale(committed, grading) == []
    source = grading / "source" / lab / f"{lab}.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source += "\n\nOne more sentence."
    nbformat.write(nb, source)
    assert labs.stale(committed, grading) == [f"{lab}/{lab}.ipynb: differs from grading/source"]


@pytest.mark.parametrize("lab", labs.lab_names())
def test_source_is_a_complete_graded_lab(lab):
    nb = nbformat.read(layout().grading / "source" / lab / f"{lab}.ipynb", as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    tests = [m for m in meta if m.get("grade") and not m.get("solution")]
    assert tests and all(m.get("points", 0) > 0 and m.get("locked") for m in tests)
    for i, m in enumerate(meta):
        if m.get("grade") and m.get("solution"):   # an answer graded by hand
            rubric = nb.cells[i - 1]
            assert m.get("points", 0) > 0 and nb.cells[i].cell_type == "markdown", m
            assert "rubric" in rubric.source and meta[i - 1].get("locked"), \
                "a locked rubric cell right above every answer graded by hand"
    assert any(m.get("solution") for m in meta)
    ids = [m["grade_id"] for m in meta if m]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    for cell, m in zip(nb.cells, meta):
        if "### BEGIN HIDDEN TESTS" in cell.source:
            assert m.get("grade"), "hidden tests belong in graded test cells"
        if cell.cell_type == "code":
            assert not cell.get("outputs"), "commit sources with outputs cleared"
    if any(re.search(r"\bcluster\s*=", c.source) for c in nb.cells if c.cell_type == "code"):  # it starts one
        assert re.search(r"cluster\.stop\(\)|target\.down\(|local\.down\(", nb.cells[-1].source), \
            "the last cell stops the learner's cluster"


@pytest.mark.parametrize("lab", labs.lab_names())
def test_every_check_says_what_it_observed(lab):
    """Feedback hides the hidden tests' code (servelab/grading/_feedback.py), so a failed assert
    without a message would tell the learner nothing but `AssertionError`."""
    bare = []
    for grade_id, _, source in labs.graded_cells(layout().grading / "source" / lab / f"{lab}.ipynb"):
        code = source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")
        bare += [f"{grade_id}: {ast.unparse(node)[:80]}" for node in ast.walk(ast.parse(code))
                 if isinstance(node, ast.Assert) and node.msg is None]
    assert bare == []


@pytest.mark.parametrize("lab", labs.lab_names())
def test_student_version_hides_solutions_and_hidden_tests(lab):
    text = (layout().labs / lab / f"{lab}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    assert "raise NotImplementedError()" in text
