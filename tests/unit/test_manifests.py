"""The manifest validator: each mistake in the broken corpus is found at its field path."""

from pathlib import Path

import pytest
import yaml

from servelab.cli import main as servelab_main
from servelab.manifests import _kuberay as manifests
from servelab.manifests import serve_lint

HERE = Path(__file__).parents[1] / "support" / "manifests"
REPO = HERE.parents[2]
BROKEN = sorted((HERE / "broken").glob("*.yaml"))
UPSTREAM = sorted((HERE / "upstream").glob("*.yaml"))
VALID = sorted((HERE / "valid").glob("*.yaml")) + sorted((REPO / "manifests").glob("*.yaml"))


def expectation(path: Path) -> tuple[str, str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must say what it expects"
    severity, field = first.removeprefix("# expect: ").split(" ", 1)
    return severity, field


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_each_mistake_is_reported_at_its_field_path(path):
    severity, field = expectation(path)
    findings = manifests.validate_file(path)
    hits = [f for f in findings if f.path == field and f.severity == severity]
    assert hits, f"expected {severity} at {field}; got:\n" + "\n".join(map(str, findings))
    assert all(f.fix for f in hits)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_each_broken_file_has_exactly_one_mistake(path):
    """Every other finding would be noise: the corpus isolates one mistake per file."""
    severity, field = expectation(path)
    others = [f for f in manifests.validate_file(path) if f.path != field]
    assert others == [], "\n".join(map(str, others))


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_well_formed_manifests_have_no_findings(path):
    assert [str(f) for f in manifests.validate_file(path)] == []


@pytest.mark.parametrize("path", UPSTREAM, ids=lambda p: p.stem)
def test_kuberays_own_samples_have_no_errors(path):
    """KubeRay's own samples get no error (older rayVersions and ray-ml images only warn)."""
    errors = [str(f) for f in manifests.validate_file(path) if f.severity == "error"]
    assert errors == []


def test_ray_ml_warning_says_when_publishing_stopped_and_what_to_use():
    [finding, *_] = [f for f in manifests.validate_file(HERE / "upstream" / "ray-service.text-summarizer.yaml")
                     if "ray-ml" in f.message]
    assert finding.severity == "warning" and "Ray 2.50" in finding.message
    assert finding.fix.startswith("use rayproject/ray:2.49.2-py311-gpu")


@pytest.mark.parametrize("import_path", [
    "fruit.deployment_graph",  # module.attr, as KubeRay's samples write it
    "ray-operator.config.samples.ray-serve.single_deployment_dag:DagNode",  # folders with hyphens
    "servelab.apps.rag:app",
])
def test_import_paths_ray_can_import_are_accepted(import_path):
    _, findings = serve_lint.check(yaml.safe_dump({"applications": [{"import_path": import_path}]}))
    assert findings == []


@pytest.mark.parametrize("import_path", ["/tmp/rag_app.py", "rag_app.py", "app", "a:b:c", "mod:a.b"])
def test_import_paths_ray_cannot_import_are_errors(import_path):
    _, findings = serve_lint.check(yaml.safe_dump({"applications": [{"import_path": import_path}]}))
    assert [f.path for f in findings if f.severity == "error"] == ["spec.serveConfigV2.applications[0].import_path"]


def _with_app(path: Path, **app) -> dict:
    """The manifest at path with its first application changed (e.g. another import_path)."""
    doc = yaml.safe_load(path.read_text())
    config = yaml.safe_load(doc["spec"]["serveConfigV2"])
    config["applications"][0].update(app)
    doc["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    return doc


def _code_warnings(doc: dict) -> list:
    return [f for f in manifests.validate(doc) if "ModuleNotFoundError" in f.message]


def test_code_not_in_a_stock_image_names_the_module_and_both_fixes():
    [finding] = _code_warnings(_with_app(HERE / "broken" / "code-not-in-stock-image.yaml"))
    assert finding.severity == "warning" and "'servelab'" in finding.message
    assert "rag-app.Dockerfile" in finding.fix and "working_dir" in finding.fix and "py_modules" in finding.fix


@pytest.mark.parametrize("app", [
    {"import_path": "ray.serve.llm:build_openai_app"},  # Ray's own builder ships with the image
    {"import_path": "json:loads"},  # the standard library too
    {"runtime_env": {"py_modules": ["https://example.com/servelab.zip"]}},
    {"runtime_env": {"pip": ["servelab==1.0"]}},
], ids=["ray", "stdlib", "py_modules", "pip"])
def test_code_that_ships_with_the_image_or_runtime_env_is_not_reported(app):
    assert _code_warnings(_with_app(HERE / "broken" / "code-not-in-stock-image.yaml", **app)) == []


def test_code_is_reported_when_any_group_runs_a_stock_image():
    doc = yaml.safe_load((HERE / "valid" / "code-in-custom-image.yaml").read_text())
    worker = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["image"] = "rayproject/ray:2.60.0-py311-gpu"
    [finding] = _code_warnings(doc)
    assert "workerGroupSpecs[0]" in finding.message


def test_ray_itself_accepts_the_removed_names_which_is_why_we_lint():
    from ray.serve.schema import ServeDeploySchema

    config = {"applications": [{"import_path": "m:app", "deployments": [
        {"name": "D", "max_concurrent_queries": 3,
         "autoscaling_config": {"target_num_ongoing_requests_per_replica": 9}}]}]}
    ServeDeploySchema.model_validate(config)  # no error from Ray...
    _, findings = serve_lint.check(yaml.safe_dump(config))
    assert {f.fix for f in findings} == {"rename it to 'max_ongoing_requests'",
                                         "rename it to 'target_ongoing_requests'"}


def test_unreadable_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  headGroupSpec: [\n")
    [finding] = manifests.validate_file(bad)
    assert finding.severity == "error" and finding.path.startswith("line ")


def test_cli_exit_code_is_1_on_errors_and_0_on_warnings_only(capsys):
    assert servelab_main(["validate", str(HERE / "broken" / "gpu-never-placed.yaml")]) == 1
    assert "can never be placed" in capsys.readouterr().out
    assert servelab_main(["validate", str(HERE / "broken" / "deprecated-threshold.yaml")]) == 0
    assert servelab_main(["validate", *map(str, sorted((REPO / "manifests").glob("*.yaml")))]) == 0
