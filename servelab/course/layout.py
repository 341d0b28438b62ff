"""Where the course's files are: one object instead of paths computed from the package.

servelab may be installed into site-packages (`pip install .`, Binder, a hub image)
while the course itself (notebooks, grading/source, labs/) is a folder elsewhere. The
course root is, in this order: `$SERVELAB_COURSE`; the current folder or the nearest
parent that holds `grading/nbgrader_config.py`; the source tree of an editable install.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from servelab.errors import ServelabError

ENV = "SERVELAB_COURSE"
MARKER = Path("grading") / "nbgrader_config.py"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def grading(self) -> Path:  # the nbgrader course root: config and source/<lab>/
        return self.root / "grading"

    @property
    def labs(self) -> Path:  # student versions, generated from grading/source
        return self.root / "labs"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def start_page(self) -> Path:
        return self.notebooks / "00-start-here.ipynb"

    @property
    def tests(self) -> Path:
        return self.root / "tests"


def _is_course(path: Path) -> bool:
    return (path / MARKER).is_file()


def layout(start: str | Path | None = None) -> Layout:
    """The course this process works on (see the module docstring for the order)."""
    if os.environ.get(ENV):
        root = Path(os.environ[ENV]).expanduser().resolve()
        if not _is_course(root):
            raise ServelabError(f"${ENV} is {root}, which holds no {MARKER}",
                                hint=f"point {ENV} at the folder of the course (the clone of servelab)")
        return Layout(root)
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if _is_course(folder):
            return Layout(folder)
    source_tree = Path(__file__).resolve().parents[2]
    if _is_course(source_tree):
        return Layout(source_tree)
    raise ServelabError(f"no servelab course here: neither {here} nor its parents hold {MARKER}",
                        hint=f"run from the course folder, or set {ENV} to it")
