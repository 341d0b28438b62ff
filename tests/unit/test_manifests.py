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
