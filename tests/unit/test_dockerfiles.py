"""The production images, checked as far as this machine can without a Docker engine:
pins, HEALTHCHECKs, and the RAG app imported from the file layout the image would have."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RAG = REPO / "docker" / "rag-app.Dockerfile"
COURSE = REPO / "docker" / "course.Dockerfile"
MANIFEST = REPO / "manifests" / "rayservice-rag.yaml"
# every RayService the course ships runs the app image: it holds the code their import_path names
SERVICES = [MANIFEST, REPO / "manifests" / "rayservice-support-assistant.yaml"]
RAY = metadata.version("ray")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    return out


def args_of(path: Path, word: str) -> list[str]:
    return [a for w, a in instructions(path) if w == word]


def env_of(path: Path) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args_of(path, "ENV"))


def ray_tag() -> str:
    (arg,) = [a for a in args_of(RAG, "ARG") if a.startswith("RAY_TAG=")]
    return arg.split("=", 1)[1]


def healthcheck(path: Path) -> dict:
    (hc,) = args_of(path, "HEALTHCHECK")
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", hc))
    return {**options, "cmd": hc.split(" CMD ", 1)[1]}


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(s|m)", value).groups()
    return int(number) * (60 if unit == "m" else 1)


def test_the_app_image_is_built_on_the_pinned_ray_release():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"ray[serve]=={RAY}"' in pyproject
    assert ray_tag().split("-")[0] == RAY
    (base,) = args_of(RAG, "FROM")
    assert base == "rayproject/ray:${RAY_TAG}"


def test_each_image_has_a_healthcheck_that_waits_for_model_loading():
    app = healthcheck(RAG)
    assert "/-/healthz" in app["cmd"] and ":8000" in app["cmd"]
    assert seconds(app["start-period"]) >= 60, "Ray start-up plus model loading takes longer"
    assert int(app["retries"]) >= 3
    assert seconds(app["timeout"]) < seconds(app["interval"])
    course = healthcheck(COURSE)
    assert ":8888/api" in course["cmd"]


@pytest.mark.parametrize("manifest", SERVICES, ids=lambda p: p.stem)
def test_the_rayservice_runs_the_app_image_with_matching_tags(manifest):
    doc = yaml.safe_load(manifest.read_text())
    cluster = doc["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == RAY
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            gpu = any(k.endswith("gpu") for k in container.get("resources", {}).get("limits", {}))
            assert container["image"] == f"servelab-rag:{ray_tag()}" + ("-gpu" if gpu else ""), container
    header = RAG.read_text()
    assert f"-t servelab-rag:{ray_tag()} ." in header and f"-t servelab-rag:{ray_tag()}-gpu ." in header


def import_paths() -> set[str]:
    doc = yaml.safe_load(MANIFEST.read_text())
    served = yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"]
    alone = yaml.safe_load((REPO / "docker" / "rag-serve.yaml").read_text())["applications"]
    return {app["import_path"] for app in served + alone}


def build_layout(root: Path) -> None:
    """Play the image's COPY and RUN steps into `root` instead of a container's /."""
    for arg in args_of(RAG, "COPY"):
        *sources, dest = [a for a in arg.split() if not a.startswith("--")]
        for src in sources:
            target = root / dest.lstrip("/")
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / src, target)
    for arg in args_of(RAG, "RUN"):
        command = [str(root / a.lstrip("/")) if a.startswith("/home/") else a for a in shlex.split(arg)]
        assert command[0] == "python", f"only python steps can be played here: {arg}"
        if command[1:4] == ["-m", "pip", "install"]:
            continue  # this environment has the same pins (test_the_rag_image_pins_what_the_project_pins)
        subprocess.run([sys.executable, *command[1:]], check=True, cwd=root, env=image_env(root),
                       capture_output=True)


def image_env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SERVELAB_MODEL_DIR")}
    for key, value in env_of(RAG).items():
        env[key] = str(root / value.lstrip("/"))
    return env


def test_the_import_path_resolves_in_the_built_layout_with_the_baked_model(tmp_path):
    build_layout(tmp_path)
    env = image_env(tmp_path)
    assert (Path(env["SERVELAB_MODEL_DIR"]) / "use-m3-table.npy").exists()
    (path,) = import_paths()   # one app, one stable name everywhere
    module, attr = path.split(":")
    probe = f"""
import importlib, servelab
from servelab.apps import bake
app = getattr(importlib.import_module({module!r}), {attr!r})
encoder = bake.reranker_encoder()
print(servelab.__file__, type(app).__name__, encoder.encode(["pods stuck in Pending"]).shape)
"""
    for other in SERVICES[1:]:  # the other RayServices' applications import from the same layout
        for app in yaml.safe_load(yaml.safe_load(other.read_text())["spec"]["serveConfigV2"])["applications"]:
            mod, name = app["import_path"].split(":")
            probe += f"assert getattr(importlib.import_module({mod!r}), {name!r}) is not None\n"
    # Run from the layout's root, not the repository: only the image's files are importable.
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = {[env['PYTHONPATH']]!r}\n" + probe],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    where, kind, shape = done.stdout.split(" ", 2)
    assert where.startswith(str(tmp_path / "home/ray/app/servelab")), where
    assert kind == "Application"
    assert shape.strip() == "(1, 512)"


def test_the_rag_image_pins_what_the_project_pins():
    # The image installs the encoder's package itself (the Ray image does not carry it): the
    # same version as constraints.txt, or replicas would encode differently from the tests.
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    installs = [a for a in args_of(RAG, "RUN") if " pip install " in f" {a} "]
    assert installs, "the RAG image installs no package"
    for arg in installs:
        for spec in (w for w in shlex.split(arg) if "==" in w):
            name, version = spec.split("==")
            assert pins.get(name) == version, f"{spec} in the image, {pins.get(name)} in constraints.txt"


def test_a_baked_image_without_its_model_file_fails_at_replica_start(tmp_path, monkeypatch):
    from servelab.apps import bake

    monkeypatch.setenv(bake.ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="servelab.apps.bake"):
        bake.reranker_encoder()


def test_the_course_image_installs_with_the_projects_pins():
    runs = " ".join(args_of(COURSE, "RUN"))
    assert "make install labs" in runs   # make installs with -c constraints.txt
    # a learner's image holds the student labs, not their sources (solutions, hidden tests)
    assert runs.index("rm -rf grading/source") > runs.index("make install labs")
    assert "-c constraints.txt" in (REPO / "Makefile").read_text()
    (base,) = args_of(COURSE, "FROM")
    py = tuple(int(x) for x in re.search(r"python:(\d+)\.(\d+)", base).groups())
    assert py >= (3, 10)
    assert "8888" in args_of(COURSE, "EXPOSE")
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv/" in ignored and ".git/" in ignored
