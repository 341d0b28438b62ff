"""Grading labs: student versions, nbgrader autograde, sandbox, cross-check, self-check.

Public: the modules `checks` (helpers graded test cells call) and `selfcheck` (a
lab's *Before you submit* cell); `grade` (a batch of submissions, as `servelab
grade` runs it), `generate_labs` (student versions from grading/source), and
`Course` (an nbgrader round trip in a scratch course, as the tests use it).
"""

from servelab.grading import checks, selfcheck
from servelab.grading._autograde import grade
from servelab.grading._course import Course, Result, roundtrip
from servelab.grading._labs import generate as generate_labs

__all__ = ["checks", "selfcheck", "grade", "generate_labs", "Course", "Result", "roundtrip"]
