"""binder/ for repo2docker, checked as far as this machine can without building an image."""

import json
import os
import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINDER = REPO / "binder"


def pins(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_binder_installs_exactly_the_projects_pins():
    assert pins(BINDER / "requirements.txt") == pins(REPO / "constraints.txt"), "run `make lock`"
    ray_pin = next(p for p in pins(REPO / "constraints.txt") if p.startswith("ray=="))
    assert f'"ray[serve]=={ray_pin.split("==")[1]}"' in (REPO / "pyproject.toml").read_text()


def test_binder_python_is_the_one_the_pins_were_made_with():
    version = (BINDER / "runtime.txt").read_text().strip()
    assert version == f"python-{sys.version_info.major}.{sys.version_info.minor}"


def test_post_build_stops_at_the_first_error_and_names_real_extensions():
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK)
    lines = [ln for ln in script.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0].startswith("set -e")
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "servelab labs generate" in text and "pip install --no-cache-dir --no-deps -e ." in text
    # a learner's environment: the labs are generated, then their sources (solutions, hidden tests) go
    assert text.index("rm -rf grading/source") > text.index("servelab labs generate")


def test_the_learner_config_turns_off_real_instructor_tools_and_keeps_the_learners():
    learner = REPO / "jupyter" / "learner"
    disabled = json.loads((learner / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    # Every lab extension plugin named exists in the installed front ends...
    bundles = [Path(sys.prefix) / "share/jupyter/labextensions/@jupyter/nbgrader/static",
               Path(sys.prefix) / "share/jupyter/lab/static"]
    shipped = " ".join(p.read_text(errors="ignore") for b in bundles for p in b.glob("*.js"))
    assert all(name in shipped for name in disabled), [n for n in disabled if n not in shipped]
    assert {n for n, off in disabled.items() if off} == {
        "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list",
        "@jupyterlab/apputils-extension:announcements"}
    # ...and every server extension is an importable module, the learner's on, the instructor's off.
    server = json.loads((learner / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    for module in server:
        import_module(module)
    assert {m for m, on in server.items() if on} == {"nbgrader.server_extensions.assignment_list",
                                                       "nbgrader.server_extensions.validate_assignment"}


def test_start_sets_the_course_environment_and_runs_the_given_command():
    script = BINDER / "start"
    assert os.access(script, os.X_OK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVELAB_")}
    env.pop("JUPYTER_CONFIG_PATH", None)
    done = subprocess.run([str(script), "sh", "-c",
                           'echo "$SERVELAB_TARGET $SERVELAB_TMPDIR $JUPYTER_CONFIG_PATH"; exit 7'],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 7   # exec: the session's own command and its exit status
    assert done.stdout.split() == ["local", "/tmp/servelab", str(REPO / "jupyter" / "learner")]


def _badge_module():
    sys.path.insert(0, str(BINDER))
    try:
        return import_module("badge")
    finally:
        sys.path.remove(str(BINDER))


def test_the_badge_opens_jupyterlab_on_the_start_page_of_the_github_repository():
    badge = _badge_module()
    expected = ("https://mybinder.org/v2/gh/acme/servelab/main"
                "?urlpath=lab%2Ftree%2Fnotebooks%2F00-start-here.ipynb")
    for remote in ("https://github.com/acme/servelab", "https://github.com/acme/servelab.git",
                   "git@github.com:acme/servelab.git", "ssh://git@github.com/acme/servelab/"):
        assert badge.badge(remote).endswith(f"]({expected})"), remote
    assert (REPO / badge.START_PAGE).exists()
    assert "/v2/gh/acme/servelab/release%2F1.0?" in badge.badge("https://github.com/acme/servelab", "release/1.0")
    for not_github in ("https://gitlab.com/acme/servelab", "/srv/git/servelab", "https://github.com/acme"):
        try:
            badge.badge(not_github)
        except ValueError as error:
            assert "not a GitHub repository URL" in str(error)
        else:
            raise AssertionError(f"{not_github} accepted")


def test_the_readme_has_the_badge_block_and_it_is_what_the_writer_writes(tmp_path):
    badge = _badge_module()
    text = (REPO / "README.md").read_text()
    block = text[text.index(badge.BEGIN) + len(badge.BEGIN):text.index(badge.END)].strip()
    # Either the placeholder of a clone without a GitHub remote, or a badge for some repository.
    assert block == badge.WITHOUT or re.fullmatch(r"\[!\[[^]]+\]\(https://mybinder\.org/badge_logo\.svg\)\]"
                                                  r"\(https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/\S+\)", block)
    written = badge.rewrite(text, badge.badge("https://github.com/acme/servelab"))
    assert written.count("mybinder.org/v2/gh/acme/servelab/main") == 1 and written.startswith(text[:40])
    readme = tmp_path / "README.md"  # the command itself, on a copy
    readme.write_text("# x\n\n" + badge.BEGIN + "\nold\n" + badge.END + "\n")
    out = subprocess.run([sys.executable, str(BINDER / "badge.py"), "--remote", "git@github.com:acme/servelab.git"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "SERVELAB_README": str(readme)})
    assert out.returncode == 0, out.stderr
    assert "mybinder.org/v2/gh/acme/servelab/main" in readme.read_text() and "old" not in readme.read_text()


def test_binder_installs_prometheus_for_the_lesson_that_asks_for_it():
    packages = [line for line in (REPO / "binder" / "apt.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert packages == ["prometheus"]  # lesson 08: start_local(prometheus=True); promtool comes with it
