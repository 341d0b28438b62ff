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


def test_any_output_of_any_cell_that_quotes_hidden_code_is_scrubbed():
    # A learner's later cell that prints IPython's input history (`print(*_ih)`) would show the
    # hidden tests that ran before it; so would a traceback formatted by hand.
    import nbformat

    from servelab.grading._feedback import HideHiddenTests

    nb = nbformat.v4.new_notebook()
    test = nbformat.v4.new_code_cell(CELL.replace("### BEGIN", "## BEGIN"))   # nbgrader's match: any line with it
    history = nbformat.v4.new_code_cell("print(*_ih, sep='\\n')")
    history.outputs = [nbformat.v4.new_output("stream", name="stdout", text=CELL + "the learner's own line\n")]
    value = nbformat.v4.new_code_cell("_ih[-2]")
    value.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": repr(CELL)}, execution_count=3)]
    nb.cells = [test, history, value]
    HideHiddenTests().preprocess(nb, {})
    assert "autoscaling_target" not in test.source and HIDDEN_NOTE in test.source
    assert "autoscaling_target" not in history.outputs[0].text
    assert "the learner's own line" in history.outputs[0].text and "(hidden test)" in history.outputs[0].text
    assert "autoscaling_target" not in value.outputs[0].data["text/plain"]
