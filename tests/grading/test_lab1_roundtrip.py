"""Lab 1 through the real nbgrader CLI: generate, autograde (live endpoints), export."""

import pytest

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
