"""Student versions of the graded labs, generated from the nbgrader sources.

grading/source/<lab>/ is the single source of truth. `generate` runs nbgrader's
own generate_assignment in a scratch copy of the course (so the repository
never holds a gradebook) and copies the released files to labs/<lab>/. Each
student notebook records a hash of what it was generated from, so only labs
whose source changed are generated again (nbgrader takes seconds per lab).
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from servelab.course.layout import layout
from servelab.errors import ServelabError


def lab_names(grading: Path | None = None) -> list[str]:
    grading = grading or layout().grading
    return sorted(p.name for p in (grading / "source").iterdir() if p.is_dir())


# `python -m nbgrader`, minus one import. nbgrader loads jsonschema, which imports a checker for
# every format it finds installed; Jupyter installs rfc3987-syntax for the "iri" format, and it
# builds a grammar when imported: 1.5 to 2 s of each nbgrader start, and nbgrader validates no IRI.
# Marked absent in this process only (cluster/ray_site does the same for Ray's processes); the
# kernels nbgrader starts import what a learner's kernel imports.
NBGRADER_CLI = [sys.executable, "-c", "import runpy, sys; sys.modules.setdefault('rfc3987_syntax', None); "
                "runpy.run_module('nbgrader', run_name='__main__', alter_sys=True)"]


def nbgrader(args: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real nbgrader CLI of this environment in a course directory. It goes when the
    thread that started it ends: an autograde killed with its caller takes its kernels and their
    clusters along, instead of grading on with no one to read the result."""
    from servelab.cluster._processes import die_with_parent

    return subprocess.run([*NBGRADER_CLI, *args], cwd=cwd, check=check,
                          capture_output=True, text=True, env=venv_env(env), preexec_fn=die_with_parent)


def venv_env(extra: dict | None = None) -> dict:
    """os.environ with this interpreter's bin dir first on PATH (nbgrader runs `alembic`)."""
    bindir = str(Path(sys.executable).parent)
    # Kernels started by nbgrader grade the test cells themselves: a lab's own
    # self-check cell (servelab.grading.selfcheck) stands aside.
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "SERVELAB_NO_SELF_CHECK": "1", **(extra or {})}


def graded_cells(notebook: Path, manual: bool = False) -> list[tuple[str, float, str]]:
    """(grade_id, points, source) of a notebook's autograded test cells, in order; with
    manual=True, of its answers a grader scores by hand (graded cells that are answers)."""
    import nbformat

    return [(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"].get("points") or 0), c.source)
            for c in nbformat.read(notebook, as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("grade")
            and bool(c.metadata["nbgrader"].get("solution")) == manual]


def scratch_course(grading: Path | None = None) -> Path:
    """A throwaway copy of the course root (config and sources only)."""
    grading = grading or layout().grading
    course = Path(tempfile.mkdtemp(prefix="servelab-course-"))
    shutil.copy(grading / "nbgrader_config.py", course)
    shutil.copytree(grading / "source", course / "source")
    return course


def _release(course: Path, lab: str) -> Path:
    done = nbgrader(["generate_assignment", lab, "--force"], cwd=course, check=False)
    if done.returncode != 0:
        raise ServelabError(f"nbgrader generate_assignment {lab} failed:\n{done.stdout}\n{done.stderr}")
    return course / "release" / lab


SOURCE_HASH = "servelab_source_sha256"  # in each student notebook's metadata


def source_hash(lab: str, grading: Path | None = None) -> str:
    """What a student lab is generated from: its source folder and the nbgrader config."""
    grading = grading or layout().grading
    digest = hashlib.sha256((grading / "nbgrader_config.py").read_bytes())
    for path in sorted(p for p in (grading / "source" / lab).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(grading)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _generated_from(out: Path, lab: str) -> str | None:
    try:
        return json.loads((out / lab / f"{lab}.ipynb").read_text())["metadata"].get(SOURCE_HASH)
    except (OSError, ValueError, KeyError):
        return None


def generate(out: Path | None = None, grading: Path | None = None, everything: bool = False) -> list[Path]:
    """Regenerate into out/<lab>/ (default: the course's labs/) the labs whose source changed
    since they were generated (all of them with everything=True); returns the files written."""
    out, grading = out or layout().labs, grading or layout().grading
    import nbformat

    todo = [lab for lab in lab_names(grading)
            if everything or _generated_from(out, lab) != source_hash(lab, grading)]
    if not todo:
        return []
    course = scratch_course(grading)
    written = []
    try:
        for lab in todo:
            release = _release(course, lab)
            notebook = release / f"{lab}.ipynb"
            nb = nbformat.read(notebook, as_version=4)
            nb.metadata[SOURCE_HASH] = source_hash(lab, grading)
            nbformat.write(nb, notebook)
            target = out / lab
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(release, target)
            written += sorted(p for p in target.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(course, ignore_errors=True)
    return written


def stale(out: Path | None = None, grading: Path | None = None) -> list[str]:
    """Files of labs/ that differ from a fresh generation (empty when up to date)."""
    out = out or layout().labs
    fresh = Path(tempfile.mkdtemp(prefix="servelab-labs-"))
    try:
        generate(fresh, grading, everything=True)
        return _differences(fresh, out)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _differences(fresh: Path, committed: Path) -> list[str]:
    names = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    names |= {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()} if committed.exists() else set()
    out = []
    for rel in sorted(names):
        a, b = fresh / rel, committed / rel
        if not (a.exists() and b.exists()):
            out.append(f"{rel}: {'missing from labs/' if a.exists() else 'not generated from grading/source'}")
        elif rel.suffix == ".ipynb":
            if json.loads(a.read_text()) != json.loads(b.read_text()):
                out.append(f"{rel}: differs from grading/source")
        elif not filecmp.cmp(a, b, shallow=False):
            out.append(f"{rel}: differs from grading/source")
    return out
