"""Lab 1 through the real nbgrader CLI: generate, autograde (live endpoints), export."""

import pytest
from roundtrip import replace_once

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab1-serve-basics"

# Right normalization and error handling, but one replica and no `replica` field.
HALF_RIGHT = '''
import json
import unicodedata

from starlette.requests import Request
from starlette.responses import JSONResponse


@serve.deployment(num_replicas=1)
class Normalizer:
    async def __call__(self, request: Request):
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse({"error": "need a string field 'text'"}, status_code=400)
        text = unicodedata.normalize("NFKC", body["text"]).lower()
        return {"normalized": " ".join(text.split())}
'''


@pytest.fixture(scope="module")
def graded():
    return grading.roundtrip(LAB, {"halfright": {"normalizer": HALF_RIGHT}})


def test_solution_scores_full_marks(graded):
    r = graded["solution"]
    assert r.max_total == 10
    assert r.total == 10, r


def test_untouched_student_version_scores_zero(graded):
    r = graded["untouched"]
    assert r.total == 0, r
    assert len(r.cells) == 5


def test_half_right_scores_exactly_the_tests_it_passes(graded):
    r = graded["halfright"]
    assert r.cells == {  # the two replica tests fail, the rest pass
        "test_normalize_basic": 2.0,
        "test_normalize_hidden": 2.0,
        "test_bad_requests": 2.0,
        "test_two_replicas": 0.0,
        "test_replicas_answer": 0.0,
    }
    assert r.total == 6, r
    assert set(r.errors) == {"test_two_replicas", "test_replicas_answer"}, r


# The wrong-answer corpus: one plausible mistake per test cell the halfright submission keeps.
def no_nfkc(solution: str) -> str:
    # Lower-cases and collapses whitespace, but never folds Unicode compatibility forms
    # (full-width letters, the "ﬁ" ligature, no-break spaces): only the hidden cases show it.
    return replace_once(solution, 'unicodedata.normalize("NFKC", text).lower()', "text.lower()")


def right_strip(solution: str) -> str:
    # Collapses whitespace with a regex and strips only the right end: a leading space stays.
    old = 'return " ".join(unicodedata.normalize("NFKC", text).lower().split())'
    return "import re\n" + replace_once(
        solution, old, 'return re.sub(r"\\s+", " ", unicodedata.normalize("NFKC", text).lower()).rstrip()')


def trusts_its_input(solution: str) -> str:
    # No validation: a missing or mistyped field raises in the replica, which Serve turns into a 500.
    start, end = solution.index("        try:\n            body = await request.json()"), solution.index(
        "        return {\"normalized\"")
    return solution[:start] + "        body = await request.json()\n" + solution[end:]


def one_replica(solution: str) -> str:
    # Serve's default: one replica. It names itself rightly, so only the replica count is wrong.
    return replace_once(solution, "@serve.deployment(num_replicas=2)", "@serve.deployment")


def pid_as_replica(solution: str) -> str:
    # Two replicas, but "which replica" answered with the process id: not Serve's replica id.
    old = "self.replica = serve.get_replica_context().replica_id.unique_id"
    return "import os\n" + replace_once(solution, old, "self.replica = os.getpid()")


MISTAKES = {"no-nfkc": no_nfkc, "right-strip": right_strip, "trusts-input": trusts_its_input,
            "one-replica": one_replica, "pid-as-replica": pid_as_replica}


@pytest.mark.extended
def test_each_mistake_loses_exactly_the_cells_that_check_it():
    solution = grading.solution_answers(LAB)["normalizer"]
    graded = grading.roundtrip(LAB, {name: {"normalizer": variant(solution)} for name, variant in MISTAKES.items()},
                               extremes=False)
    full = {"test_normalize_basic": 2.0, "test_normalize_hidden": 2.0, "test_bad_requests": 2.0,
            "test_two_replicas": 2.0, "test_replicas_answer": 2.0}
    assert graded["no-nfkc"].cells == {**full, "test_normalize_hidden": 0.0}, graded["no-nfkc"]
    assert graded["right-strip"].cells == {**full, "test_normalize_basic": 0.0}, graded["right-strip"]
    assert graded["trusts-input"].cells == {**full, "test_bad_requests": 0.0}, graded["trusts-input"]
    assert graded["one-replica"].cells == {**full, "test_two_replicas": 0.0}, graded["one-replica"]
    assert graded["pid-as-replica"].cells == {**full, "test_replicas_answer": 0.0}, graded["pid-as-replica"]
