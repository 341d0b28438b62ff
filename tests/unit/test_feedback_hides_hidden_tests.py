"""What HideHiddenTests leaves of a graded cell for the learner's feedback (servelab/grading/_feedback.py)."""

from servelab.grading._feedback import HIDDEN_NOTE, scrub_traceback, split_hidden

CELL = '''# 2 points: visible part
assert reply.ok, "[Serve] visible message"
### BEGIN HIDDEN TESTS
assert DIAGNOSIS["chat"] == ("Serve", "autoscaling_target"), "[your diagnosis] chat"
### END HIDDEN TESTS
'''
# An IPython 8 frame as nbclient stores it: ANSI colours, line numbers, the arrow.
FRAME = ("Cell \x1b[0;32mIn[12], line 4\x1b[0m\n"
         "\x1b[1;32m      2\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m reply\x1b[38;5;241m.\x1b[39mok, "
         "\x1b[38;5;124m\"[Serve] visible message\"\x1b[39m\n"
         "\x1b[1;32m      3\x1b[0m \x1b[38;5;66;03m### BEGIN HIDDEN TESTS\x1b[39;00m\n"
         "\x1b[0;32m----> 4\x1b[0m assert DIAGNOSIS[\"chat\"] == (\"Serve\", \"autoscaling_target\"), "
         "\"[your diagnosis] chat\"\n")


def test_a_hidden_region_becomes_one_comment_line():
    shown, hidden = split_hidden(CELL)
    assert shown.splitlines() == ["# 2 points: visible part", 'assert reply.ok, "[Serve] visible message"',
                                  HIDDEN_NOTE]
    assert hidden == ['assert DIAGNOSIS["chat"] == ("Serve", "autoscaling_target"), "[your diagnosis] chat"']


def test_a_traceback_names_the_hidden_line_without_quoting_it():
    _, hidden = split_hidden(CELL)
    [frame] = scrub_traceback([FRAME], hidden)
    assert "autoscaling_target" not in frame
    assert "----> 4 (hidden test)" in frame
    assert '"[Serve] visible message"' in frame          # visible code stays as it was
    assert scrub_traceback(["AssertionError: [your diagnosis] chat"], hidden) == [
        "AssertionError: [your diagnosis] chat"]       # the message is the learner's to read
