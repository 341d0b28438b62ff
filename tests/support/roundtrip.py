"""What every lab's nbgrader round trip must show, whatever its partial submissions."""


def check_extremes(graded: dict, max_total: float) -> None:
    """The solution earns every point; the untouched student version earns none."""
    solution, untouched = graded["solution"], graded["untouched"]
    assert (solution.total, solution.max_total) == (max_total, max_total), solution
    assert untouched.total == 0, untouched


def replace_once(text: str, old: str, new: str) -> str:
    """`text` with its one `old` made `new`: a wrong-answer variant must change what it says it
    changes, so a solution edited out from under it fails here rather than grading unchanged."""
    assert text.count(old) == 1, f"expected {old!r} once in the solution, found it {text.count(old)} times"
    return text.replace(old, new)


def one_mistake_each(solution: dict[str, str], mistakes: dict) -> dict[str, dict[str, str]]:
    """One submission per mistake, `{name: (answer cell, change)}`: the solution's answer in that
    cell changed, and nothing else."""
    submissions = {}
    for name, (cell, change) in mistakes.items():
        wrong = change(solution[cell])
        assert wrong != solution[cell], f"{name} leaves {cell} as the solution has it"
        submissions[name] = {cell: wrong}
    return submissions
