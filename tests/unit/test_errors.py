"""One error hierarchy: what servelab raises on purpose is a ServelabError that names a layer;
the CLI prints those in one line and lets anything else (a bug) keep its traceback."""

import ast
import importlib
from pathlib import Path

import nbformat
import pytest

import servelab
from servelab import cli
from servelab.clients._serve import ServeAPIError
from servelab.errors import LAYERS, Failed, ServelabError, Stuck
from servelab.grading import selfcheck
from servelab.observe._waiting import wait_for

PACKAGE = Path(servelab.__file__).parent

# Exception classes servelab defines that are not ServelabErrors, and why.
NOT_SERVELAB_ERRORS = {
    # Graded test cells raise it as the learner's wrong answer: it must stay an AssertionError, and
    # selfcheck reports it under "your answer", which is none of the five layers a ServelabError names.
    ("servelab.course.production_plan", "PlanError"),
    # Never leaves the stand-in agent (a `python -S` script, standard library only, that cannot
    # import servelab): it becomes the FAILED reply the raylet reads.
    ("servelab.cluster._standin_agents", "Refused"),
    # Never leaves the Serve application: its exception handler turns it into an HTTP 503/504 reply.
    ("servelab.apps.rag", "StageFailed"),
}


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def defined_exceptions() -> set[tuple[str, str]]:
    """(module, class) of every exception class in servelab's source, found without importing it."""
    classes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), str(path))
        classes += [(module, node.name, _base_names(node)) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    found: set[tuple[str, str]] = set()
    names = {"Exception", "BaseException"}
    while True:  # to a fixed point: a subclass of a servelab exception is one too
        more = {(m, c) for m, c, bases in classes
                if any(b in names or b.endswith(("Error", "Exception")) for b in bases)}
        if more <= found:
            return found
        found |= more
        names |= {c for _, c in more}


EXCEPTIONS = sorted(defined_exceptions())


def test_the_source_scan_finds_the_known_classes():
    names = {c for _, c in EXCEPTIONS}
    assert {"ServelabError", "Stuck", "Failed", "ServeAPIError", "FaultError", "PortError", "ManifestError",
            "GradingError", "LoadError", "ProfileError"} <= names
    assert NOT_SERVELAB_ERRORS <= set(EXCEPTIONS), "an excused class is gone: drop it from the list"


@pytest.mark.parametrize("module, name", [e for e in EXCEPTIONS if e not in NOT_SERVELAB_ERRORS])
def test_every_exception_servelab_defines_is_a_servelab_error_with_a_layer(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, ServelabError), f"{module}.{name} is not a ServelabError"
    assert cls.layer in LAYERS


def test_plan_error_stays_an_assertion_error():
    from servelab.course.production_plan import PlanError

    assert issubclass(PlanError, AssertionError)


@pytest.mark.parametrize("module, name, builtin, layer", [
    ("servelab.clients._serve", "ServeAPIError", RuntimeError, "Serve"),
    ("servelab.faults._verbs", "FaultError", RuntimeError, "Serve"),
    ("servelab.cluster._ports", "PortError", RuntimeError, "Ray runtime"),
    ("servelab.targets._manifest", "ManifestError", ValueError, "KubeRay"),
    ("servelab.faults.load", "LoadError", ValueError, "Serve"),
    ("servelab.cluster._profiles", "ProfileError", ValueError, "Ray runtime"),
])
def test_classes_keep_the_builtin_base_callers_catch(module, name, builtin, layer):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, builtin) and cls.layer == layer
    error = cls("something is off")
    assert error.layer == layer and str(error).endswith("something is off")


def test_stuck_is_a_timeout_and_failed_is_not():
    stuck, failed = Stuck("KubeRay", "not Ready after 5s"), Failed("Kubernetes", "kubectl is not installed")
    assert isinstance(stuck, TimeoutError) and isinstance(stuck, ServelabError)
    assert isinstance(failed, ServelabError) and not isinstance(failed, TimeoutError)
    assert (stuck.layer, str(stuck)) == ("KubeRay", "[KubeRay] not Ready after 5s")
    assert (failed.layer, str(failed)) == ("Kubernetes", "[Kubernetes] kubectl is not installed")


def test_a_failed_ends_a_wait_at_once_and_a_serve_api_error_is_waited_out():
    calls = []

    def exited():
        calls.append(1)
        raise Failed("Ray runtime", "the head node exited while starting")

    with pytest.raises(Failed):
        wait_for(exited, what="head", layer="Ray runtime", timeout=30, interval=0.01, show=False)
    assert len(calls) == 1

    def not_yet():
        raise ServeAPIError("nothing answers yet", layer="Ray runtime")

    with pytest.raises(Stuck, match="nothing answers yet"):  # the last error is quoted
        wait_for(not_yet, what="Serve", layer="Serve", timeout=0.1, interval=0.01, show=False)


def test_serve_api_error_carries_its_layer_and_tags_its_message():
    assert ServeAPIError("no application named 'x'").layer == "Serve"
    refused = ServeAPIError("nothing answers at http://127.0.0.1:1/", layer="Ray runtime")
    assert refused.layer == "Ray runtime"
    assert str(refused) == "[Ray runtime] nothing answers at http://127.0.0.1:1/"


# -- the CLI -------------------------------------------------------------------------------
def test_cli_prints_a_servelab_error_in_one_line_and_exits_1(monkeypatch, capsys):
    def refuses(args):
        raise ServelabError("nothing to validate", layer="KubeRay")

    monkeypatch.setattr(cli._main, "cmd_validate", refuses)
    assert cli.main(["validate", "x.yaml"]) == 1
    assert capsys.readouterr().err == "servelab: nothing to validate\n"


def test_cli_prints_the_hint_after_the_message(monkeypatch, capsys):
    def refuses(args):
        raise Failed("Kubernetes", "helm is not installed", hint="install helm")

    monkeypatch.setattr(cli._main, "cmd_validate", refuses)
    assert cli.main(["validate", "x.yaml"]) == 1
    assert capsys.readouterr().err == "servelab: [Kubernetes] helm is not installed\n  hint: install helm\n"


@pytest.mark.parametrize("argv, message", [
    (["load", "http://example.com/"], "servelab: load is only sent to this machine"),
    (["load", "http://127.0.0.1:9/", "--json", "{not json"], "servelab: --json is not JSON"),
    (["load", "http://127.0.0.1:9/", "--count", "0"], "servelab: count must be between 1"),
])
def test_cli_bad_input_is_a_one_line_error(argv, message, capsys):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


@pytest.mark.parametrize("bug", [ZeroDivisionError, ValueError, RuntimeError, KeyError])
def test_cli_lets_anything_else_raise_with_its_traceback(monkeypatch, bug):
    def broken(args):
        raise bug("a bug in servelab")

    monkeypatch.setattr(cli._main, "cmd_validate", broken)
    with pytest.raises(bug):
        cli.main(["validate", "x.yaml"])


# -- the self-check --------------------------------------------------------------------------
def test_classify_reads_the_layer_an_exception_carries_and_strips_its_tag():
    assert selfcheck.classify("ServeAPIError", "[Ray runtime] nothing answers", "Ray runtime") == (
        "Ray runtime", "nothing answers")
    assert selfcheck.classify("ServelabError", "no tag here", "Kubernetes") == ("Kubernetes", "no tag here")


def test_classify_reads_text_by_its_tag_when_only_text_came_back():
    assert selfcheck.classify("ServeAPIError", "[Serve] no application named 'rag'") == (
        "Serve", "no application named 'rag'")
    assert selfcheck.classify("AssertionError", "expected 2 replicas") == ("your answer", "expected 2 replicas")
    assert selfcheck.classify("KeyError", "'answer'") == ("application code", "KeyError: 'answer'")


def test_selfcheck_run_classifies_a_servelab_error_by_its_layer(tmp_path, monkeypatch):
    monkeypatch.delenv(selfcheck.SKIP_ENV, raising=False)
    nb = nbformat.v4.new_notebook()
    cells = [("serve", "# replicas are up\nraise ServeAPIError('no application named \\'rag\\'')"),
             ("untagged", "# the cluster answers\nraise ServelabError('nothing answers', layer='Ray runtime')"),
             ("passes", "# fine\nassert True")]
    for grade_id, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": grade_id, "points": 1}
        nb.cells.append(cell)
    path = tmp_path / "lab.ipynb"
    nbformat.write(nb, path)
    namespace = {"ServeAPIError": ServeAPIError, "ServelabError": ServelabError}
    outcomes = {o.grade_id: o for o in selfcheck.run("lab", namespace, notebook=path, show=False)}
    assert (outcomes["serve"].layer, outcomes["serve"].message) == ("Serve", "no application named 'rag'")
    assert (outcomes["untagged"].layer, outcomes["untagged"].message) == ("Ray runtime", "nothing answers")
    assert outcomes["passes"].passed
