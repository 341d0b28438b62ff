# nbgrader course root for servelab. Instructors run nbgrader from this folder
# (or through `make labs`, which works on a scratch copy).
c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "servelab"

# A lab's first cell starts a Ray cluster and serve.run() waits for replicas:
# give cells minutes, not nbgrader's default 30 seconds.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Feedback shows what the checks said, never the hidden tests' code (servelab/grading/_feedback.py).
from servelab.grading._feedback import FEEDBACK_PREPROCESSORS  # noqa: E402

c.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS
