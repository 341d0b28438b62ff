"""servelab installed as a package (not editable, as Binder or a hub image installs it) works
on a course folder elsewhere: it finds the course from its working folder, generates the
student labs and grades a submission against its live service."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servelab.course import layout

pytestmark = [pytest.mark.live, pytest.mark.grading]

LAB = "lab1-serve-basics"


def run(args: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done


def test_an_installed_servelab_generates_and_grades_a_lab_of_a_course_folder(tmp_path):
    here = layout()
    site = tmp_path / "site"  # what `pip install .` puts into site-packages, and nothing else
    run(["-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(here.root)], cwd=tmp_path, env=os.environ)
    course = tmp_path / "course"  # a course folder with one lab, not this repository
    (course / "grading" / "source").mkdir(parents=True)
    shutil.copy(here.grading / "nbgrader_config.py", course / "grading")
    shutil.copytree(here.grading / "source" / LAB, course / "grading" / "source" / LAB)
    env = {**os.environ, "PYTHONPATH": str(site), "SERVELAB_PORTS": "free"}
    env.pop("SERVELAB_COURSE", None)

    found = run(["-c", "import servelab; from servelab.course import layout; print(servelab.__file__); print(layout().root)"],
                cwd=course / "grading", env=env).stdout.split()
    assert found == [str(site / "servelab" / "__init__.py"), str(course)]

    cli = "import sys; from servelab.cli import main; sys.exit(main(sys.argv[1:]))"
    run(["-c", cli, "labs", "generate"], cwd=course, env=env)
    assert (course / "labs" / LAB / f"{LAB}.ipynb").is_file()

    submitted = course / "grading" / "submitted" / "alice" / LAB
    submitted.mkdir(parents=True)
    shutil.copy(here.grading / "source" / LAB / f"{LAB}.ipynb", submitted)  # the solution, as a submission
    run(["-c", cli, "grade", LAB, "--course", str(course / "grading"), "--workers", "1"], cwd=course, env=env)
    with open(course / "grading" / f"summary-{LAB}.csv") as f:
        row = next(csv.DictReader(f))
    assert (row["student"], float(row["score"]), float(row["max_score"])) == ("alice", 10.0, 10.0), row
