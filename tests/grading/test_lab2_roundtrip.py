"""Lab 2 through the real nbgrader CLI: the learner's RAG pipeline, graded over HTTP."""

import pytest
from roundtrip import check_extremes, replace_once

from servelab.grading import _course as grading

pytestmark = pytest.mark.live

LAB = "lab2-rag-pipeline"

# Answers right, but validates nothing: bad input reaches the stages and fails there, a 500.
CARELESS_INGRESS = '''
@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class RAG:
    def __init__(self, normalizer, retriever, generator):
        self.normalizer, self.retriever, self.generator = normalizer, retriever, generator

    async def __call__(self, request: Request):
        body = await request.json()
        clean = await self.normalizer.normalize.remote(body["question"])
        contexts = await self.retriever.retrieve.remote(clean, body.get("top_k", 3))
        return {"question": clean, "contexts": contexts,
                "answer": await self.generator.generate.remote(clean, contexts)}
'''


def careless_stages(solution: str) -> str:
    # The Retriever on Serve's defaults and a whole CPU: one replica, and not the shape asked for.
    return replace_once(solution, '@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.5})',
                        '@serve.deployment(ray_actor_options={"num_cpus": 1})')


def shortcut_ingress(solution: str) -> str:
    """The issue's example: an ingress that answers from its own index while the bound
    Retriever sits idle. Its answers are right; only Serve's request counters can tell."""
    own_index = solution.replace(
        "        self.normalizer, self.retriever, self.generator = normalizer, retriever, generator\n",
        "        self.normalizer, self.retriever, self.generator = normalizer, retriever, generator\n"
        "        self.index = BM25([f\"{title} {text}\" for _, title, text in DOCS])\n").replace(
        "        contexts = await self.retriever.retrieve.remote(clean, top_k)\n",
        "        contexts = [{\"id\": DOCS[i][0], \"title\": DOCS[i][1], \"score\": score}\n"
        "                    for i, score in self.index.search(clean, top_k)]\n")
    assert own_index.count("self.index") == 2 and "self.retriever.retrieve" not in own_index
    return own_index


@pytest.fixture(scope="module")
def graded():
    solution = grading.solution_answers(LAB)
    assert careless_stages(solution["stages"]) != solution["stages"]
    return grading.roundtrip(LAB, {"careless": {"ingress": CARELESS_INGRESS,
                                                "stages": careless_stages(solution["stages"])}})


def test_solution_full_marks_untouched_zero(graded):
    check_extremes(graded, 12)


def test_partial_submission_loses_exactly_what_it_broke(graded):
    assert graded["careless"].cells == {
        "test_answer": 2.0,
        "test_hidden_queries": 3.0,
        "test_bad_requests": 0.0,   # a missing field is a 500 here
        "test_resources": 0.0,      # Retriever asks for 1 CPU
        "test_composition": 2.0,
    }, graded["careless"]


def uncited_answer(stages: str) -> str:
    # The template names the note's title and forgets its id, which the answer must cite.
    old = "return f\"{best['title']} ({best['id']}): see this note first.\""
    return replace_once(stages, old, "return f\"{best['title']}: see this note first.\"")


def fixed_top_k(ingress: str) -> str:
    # Validates top_k, then asks the Retriever for 3 notes whatever the client asked.
    old = "self.retriever.retrieve.remote(clean, top_k)"
    return replace_once(ingress, old, "self.retriever.retrieve.remote(clean, 3)")


@pytest.fixture(scope="module")
def wrong():
    solution = grading.solution_answers(LAB)
    return grading.roundtrip(LAB, {"shortcut": {"ingress": shortcut_ingress(solution["ingress"])},
                                   "uncited": {"stages": uncited_answer(solution["stages"])},
                                   "fixed-k": {"ingress": fixed_top_k(solution["ingress"])},
                                   "trusting": {"ingress": CARELESS_INGRESS},
                                   "one-retriever": {"stages": careless_stages(solution["stages"])}},
                             extremes=False)


FULL = {"test_answer": 2.0, "test_hidden_queries": 3.0, "test_bad_requests": 2.0, "test_resources": 3.0,
        "test_composition": 2.0}


@pytest.mark.extended
def test_an_ingress_that_skips_a_stage_loses_exactly_the_composition(wrong):
    assert wrong["shortcut"].cells == {**FULL, "test_composition": 0.0}, wrong["shortcut"]
    assert "['Retriever'] did not serve them" in wrong["shortcut"].errors["test_composition"]


@pytest.mark.extended
def test_an_answer_without_its_note_id_loses_exactly_test_answer(wrong):
    assert wrong["uncited"].cells == {**FULL, "test_answer": 0.0}, wrong["uncited"]


@pytest.mark.extended
def test_an_ignored_top_k_loses_exactly_the_hidden_queries(wrong):
    assert wrong["fixed-k"].cells == {**FULL, "test_hidden_queries": 0.0}, wrong["fixed-k"]


@pytest.mark.extended
def test_the_careless_mistakes_one_at_a_time_lose_exactly_their_cells(wrong):
    assert wrong["trusting"].cells == {**FULL, "test_bad_requests": 0.0}, wrong["trusting"]
    assert wrong["one-retriever"].cells == {**FULL, "test_resources": 0.0}, wrong["one-retriever"]
