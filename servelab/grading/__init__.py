"""Grading labs: student versions, nbgrader autograde, sandbox, cross-check, self-check.

Public: the modules `checks` (helpers graded test cells call), `live` (a learner's
cluster as graded checks read it, the same on both targets) and `selfcheck` (a lab's
*Before you submit* cell); `grade` (a batch of submissions, as `servelab
grade` runs it), `generate_labs` (student versions from grading/source), and
`Course` (an nbgrader round trip in a scratch course, as the tests use it). Each is
imported on first use: a lab kernel that imports `checks` must not load nbgrader.
"""

from servelab import _lazy

__all__ = ["checks", "live", "selfcheck", "grade", "generate_labs", "Course", "Result", "roundtrip"]
__getattr__ = _lazy(__name__, {
    "checks": "servelab.grading.checks", "live": "servelab.grading.live", "selfcheck": "servelab.grading.selfcheck",
    "grade": "servelab.grading._autograde:grade", "generate_labs": "servelab.grading._labs:generate",
    "Course": "servelab.grading._course:Course", "Result": "servelab.grading._course:Result",
    "roundtrip": "servelab.grading._course:roundtrip"})
