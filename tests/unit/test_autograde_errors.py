"""What the grader keeps of a failed `nbgrader autograde`: the line that says why."""

from servelab.grading._autograde import error_summary

LOCKED = """[AutogradeApp] Autograding submission for alice
[AutogradeApp] ERROR | There was an error processing assignment: /course/submitted/alice/quiz
Traceback (most recent call last):
  File "nbgrader/apps/baseapp.py", line 402, in convert_notebooks
sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked
[AutogradeApp] ERROR | Please see the above traceback for details on the specific errors on the above failures.
"""


def test_the_exception_wins_over_nbgraders_pointer_to_it():
    assert error_summary(LOCKED) == "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"


def test_an_error_line_that_is_not_a_pointer_is_kept_when_there_is_no_traceback():
    out = "[AutogradeApp] ERROR | No notebooks were matched\n[AutogradeApp] ERROR | Please see the above traceback\n"
    assert error_summary(out) == "[AutogradeApp] ERROR | No notebooks were matched"


def test_no_output_still_says_something():
    assert error_summary("") == "nbgrader autograde failed"
    assert error_summary("killed\n") == "killed"
