"""Which graded cells the grader can run again outside the learner's kernel."""

import pytest

from servelab import crosscheck, labs


def test_names_read_through_globals_keep_a_cell_in_the_kernel():
    names, why = crosscheck.plan('for n in ("A", "B"):\n    assert globals()[n] in LAYERS\n')
    assert names == [] and "globals()" in why


def test_names_the_cell_spells_out_are_fetched_as_data():
    names, why = crosscheck.plan('assert (A, B) == ("x", "y") and URL in URLS\n')
    assert (names, why) == (["A", "B", "URL", "URLS"], "")


@pytest.mark.parametrize("lab", labs.lab_names())
def test_no_graded_cell_looks_names_up_dynamically(lab):
    # Such a cell cannot be cross-checked: the outside run would lack the names it reads.
    notebook = labs.GRADING / "source" / lab / f"{lab}.ipynb"
    dynamic = [grade_id for grade_id, _, source in labs.graded_cells(notebook)
               if "looks names up" in crosscheck.plan(source)[1]]
    assert dynamic == []
