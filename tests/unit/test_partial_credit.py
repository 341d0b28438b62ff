"""Partial credit in a test cell (checks.credit), and what the instructor's report reads of it."""

import nbformat
import pytest

from servelab.grading import _report as class_report
from servelab.grading import checks

UP = (2, True, "[Serve] peaked at 3 replicas")
DOWN = (2, False, "[Serve] not back to 1 replica within 60 s")


def test_every_part_passed_is_full_points_with_no_output(capsys):
    assert checks.credit(UP, (2, True, "back to 1")) is None   # no execute_result: nbgrader gives all points
    assert capsys.readouterr().out == ""


def test_no_part_passed_is_an_error_naming_each():
    with pytest.raises(AssertionError, match=r"peaked at 3 replicas \(-2\); \[Serve\] not back"):
        checks.credit((2, False, UP[2]), DOWN)


def test_some_parts_passed_earn_their_points_and_say_which_were_missed(capsys):
    assert checks.credit(UP, DOWN) == 2   # the cell's last value: nbgrader's partial score
    out = capsys.readouterr().out
    assert "earned 2 point(s): [Serve] peaked at 3 replicas" in out
    assert "missed 2 point(s): [Serve] not back to 1 replica within 60 s" in out


def test_the_report_quotes_what_a_partly_credited_cell_missed(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("checks.credit(...)", metadata={"nbgrader": {"grade_id": "test_scales"}})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text="earned 2 point(s): up\nmissed 2 point(s): not back to 1\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    failed = nbformat.v4.new_code_cell("assert False", metadata={"nbgrader": {"grade_id": "test_other"}})
    failed.outputs = [nbformat.v4.new_output("error", ename="AssertionError",
                                             evalue="\x1b[0;31m[Serve] wrong\x1b[0m\nmore", traceback=[])]
    nb.cells = [cell, failed]
    nbformat.write(nb, tmp_path / "lab.ipynb")
    assert class_report._messages(tmp_path / "lab.ipynb") == {
        "test_scales": "missed 2 point(s): not back to 1", "test_other": "AssertionError: [Serve] wrong"}
