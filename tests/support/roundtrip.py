"""What every lab's nbgrader round trip must show, whatever its partial submissions."""


def check_extremes(graded: dict, max_total: float) -> None:
    """The solution earns every point; the untouched student version earns none."""
    solution, untouched = graded["solution"], graded["untouched"]
    assert (solution.total, solution.max_total) == (max_total, max_total), solution
    assert untouched.total == 0, untouched
