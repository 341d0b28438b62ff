"""The learning-outcome map: complete, pointing only at things that exist, and copied
faithfully into README.md and the start page."""

from pathlib import Path

from servelab.course import _outcomes as outcomes
from servelab.course import layout
from servelab.grading._labs import lab_names

REPO = Path(__file__).resolve().parents[2]


def test_every_outcome_and_criterion_of_the_syllabus_is_mapped():
    assert len(outcomes.OUTCOMES) == 5 and len(outcomes.CRITERIA) == 7
    assert outcomes.problems() == []


def test_a_name_that_does_not_exist_is_reported():
    bad = outcomes.Goal("criterion", "made up", ("99-no-such-lesson",),
                        ("lab2-rag-pipeline:test_no_such_cell", "no-such-lab:test_answer"))
    unmapped = outcomes.Goal("outcome", "taught nowhere", (), ())
    found = outcomes.problems((bad, unmapped))
    assert len(found) == 4, found
    assert any("99-no-such-lesson" in p for p in found)
    assert any("test_no_such_cell" in p for p in found)
    assert any("no-such-lab" in p for p in found)
    assert any("needs a lesson and a graded test" in p for p in found)


def test_every_lesson_and_lab_serves_some_goal():
    lessons = {p.stem for p in (REPO / "notebooks").glob("[0-9]*.ipynb")} - {"00-start-here"}
    taught = {name for goal in outcomes.GOALS for name in goal.lessons}
    assert lessons - taught == set()
    assessed = {ref.split(":")[0] for goal in outcomes.GOALS for ref in goal.graded}
    assert set(lab_names()) - assessed == set()


def test_readme_and_start_page_show_the_current_map():
    fix = "run `python -m servelab.course._outcomes`"
    assert outcomes.readme_block() == outcomes.markdown(), fix
    assert outcomes.start_page_cell().source == outcomes.START_PAGE_HEADER + outcomes.markdown().rstrip(), fix


def test_the_start_page_links_every_lesson_and_lab_once_in_course_order_with_a_time():
    import re

    import nbformat

    page = nbformat.read(layout().start_page, as_version=4)
    course_map = next(c.source for c in page.cells if c.source.startswith("## How the course works"))
    items = re.findall(r"^\d+\. \[([\w-]+)\]\(([^)]+)\) — .*\((\d+) minutes\)$", course_map, re.M)
    names = [name for name, _, _ in items]
    lessons = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9]*.ipynb"))
    assert sorted(set(names)) == sorted(lessons + list(lab_names())) and len(names) == len(set(names))
    assert [n for n in names if n in lessons] == lessons, "lessons appear in numeric order"
    for name, target, _ in items:
        assert (layout().start_page.parent / target).resolve().is_file(), target
        assert Path(target).stem == name
