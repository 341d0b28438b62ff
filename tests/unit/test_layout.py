"""The package's shape: one folder per concern, a public API, old import paths kept for
notebooks learners already have, and a course layout that does not depend on an editable install."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import servelab
from servelab.course import Layout, layout
from servelab.errors import ServelabError

PACKAGE = Path(servelab.__file__).parent
CONCERNS = ["cluster", "targets", "clients", "manifests", "observe", "faults", "grading", "course", "apps", "cli"]


def test_the_top_level_is_a_short_list_of_concerns():
    # (a folder holding nothing but bytecode is what a pull leaves of a module that moved)
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"
                     and not (p.is_dir() and {q.name for q in p.iterdir()} <= {"__pycache__"}))
    assert len(entries) <= 12, entries
    assert entries == sorted(["__init__.py", "errors.py", *CONCERNS])


@pytest.mark.parametrize("concern", CONCERNS)
def test_each_concern_says_what_lives_there_and_exports_what_it_names(concern):
    module = importlib.import_module(f"servelab.{concern}")
    assert (module.__doc__ or "").strip(), f"servelab/{concern}/__init__.py needs a docstring"
    for name in getattr(module, "__all__", []):
        assert getattr(module, name, None) is not None or importlib.import_module(f"servelab.{concern}.{name}"), name


def test_the_top_level_api_resolves():
    for name in servelab.__all__:
        assert getattr(servelab, name) is not None, name


@pytest.mark.parametrize("statement", [
    "from servelab import selfcheck, checks, quiz, production_plan, placement, serve_lint, load, recovery",
    "from servelab import manifests; manifests.validate_file",
    "from servelab import widgets; widgets.Dashboard",
    "import servelab.waiting; servelab.waiting.wait_for",
    "from servelab.waiting import LAYERS",
    "from servelab.targets import local; local.up, local.status, local.wait_ready, local.down",
    "from servelab.observe import ReplicaWatcher",
    "from servelab.faults import LocalFaults",
])
def test_imports_of_notebooks_released_before_the_restructure_still_work(statement):
    # A learner's copy of a lab keeps its imports: run each in a fresh interpreter.
    subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True, text=True)


def test_an_old_name_is_the_same_module_as_its_new_home():
    import servelab.waiting
    from servelab.observe import _waiting

    assert servelab.waiting is _waiting
    assert servelab.selfcheck is importlib.import_module("servelab.grading.selfcheck")


def test_the_course_is_found_from_the_working_folder_and_the_environment(tmp_path, monkeypatch):
    course = tmp_path / "course"
    (course / "grading").mkdir(parents=True)
    (course / "grading" / "nbgrader_config.py").write_text("")
    (course / "labs" / "lab1").mkdir(parents=True)
    monkeypatch.delenv("SERVELAB_COURSE", raising=False)
    assert layout(course / "labs" / "lab1") == Layout(course)  # a kernel runs in a lab's folder
    monkeypatch.setenv("SERVELAB_COURSE", str(course))
    assert layout("/").grading == course / "grading"
    monkeypatch.setenv("SERVELAB_COURSE", str(tmp_path))
    with pytest.raises(ServelabError, match="SERVELAB_COURSE"):
        layout()


def test_this_repository_is_a_course():
    here = layout(Path(__file__).parent)
    assert (here.grading / "source").is_dir() and here.start_page.is_file() and here.readme.is_file()


@pytest.mark.parametrize("statement, heavy", [
    # every Serve replica and node launcher imports servelab
    ("import servelab, servelab.apps.rag, servelab.faults._flags",
     ["ipywidgets", "matplotlib", "nbgrader", "kubernetes", "prometheus_client", "servelab.targets"]),
    # a lab kernel's check helpers and self-check, and the CLI
    ("from servelab.grading import checks, selfcheck; import servelab.cli", ["nbgrader", "ipywidgets"]),
])
def test_entry_modules_import_heavy_dependencies_only_when_used(statement, heavy):
    probe = f"{statement}; import sys; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert loaded == [], f"{statement} loads {loaded}"


def test_from_each_entry_module_import_star_works():
    for concern in CONCERNS:
        subprocess.run([sys.executable, "-c", f"from servelab.{concern} import *"], check=True)
