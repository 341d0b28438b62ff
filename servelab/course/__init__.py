"""Course content that is code, and where the course's files are.

Public: `layout()` and `Layout` (the course root and its folders), and the modules
`quiz` (`quiz.ask`: the lessons' practice questions) and `production_plan` (lab 8's
scenario and the checks of a plan), imported on first use: they load ipywidgets
and Ray's schemas.
"""

from servelab import _lazy
from servelab.course.layout import Layout, layout

__all__ = ["Layout", "layout", "quiz", "production_plan"]
__getattr__ = _lazy(__name__, {"quiz": "servelab.course.quiz", "production_plan": "servelab.course.production_plan"})
