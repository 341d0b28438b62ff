"""What the grader sets for a submission's kernel: no Prometheus beside the learner's cluster for a
lab whose checks never query one, and one (as the profile says) for each lab whose checks do."""

import re

import nbformat
import pytest

from servelab.course.layout import layout
from servelab.grading import _autograde as autograde
from servelab.grading._labs import lab_names

# The graded helpers that read the Prometheus beside the cluster (servelab/grading/checks.py),
# and the cluster's own Prometheus attributes.
USES_PROMETHEUS = re.compile(r"\b(alert_rule|alert_stays_silent|alert_fires|query_value|query_tracks)\(|"
                             r"\.prometheus(_url|_rules)?\b|add_prometheus_rules")


def _code(lab: str) -> str:
    nb = nbformat.read(layout().grading / "source" / lab / f"{lab}.ipynb", as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("lab", lab_names())
def test_prometheus_runs_for_exactly_the_labs_that_query_it(lab):
    assert bool(USES_PROMETHEUS.search(_code(lab))) == (lab in autograde.PROMETHEUS_LABS)


@pytest.mark.parametrize("lab, setting", [("lab2-rag-pipeline", "off"), ("lab6-fault-injection", None)])
def test_the_kernel_is_told(lab, setting, tmp_path, monkeypatch):
    monkeypatch.delenv("SERVELAB_PROMETHEUS", raising=False)
    run = autograde.GradingRun(tmp_path, use_sandbox=False, lab=lab)
    try:
        env, _ = run.env("s")
        assert env.get("SERVELAB_PROMETHEUS") == setting
    finally:
        run.close()


def test_without_cross_check_nbgrader_runs_with_the_courses_own_config(tmp_path, monkeypatch):
    # The lab round trips grade several submissions at once this way (grading._course.Course):
    # nbgrader as it comes, but each submission on ports and in a cluster folder of its own.
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    checked, plain = (autograde.GradingRun(tmp_path, use_sandbox=False, lab="lab1-serve-basics", crosscheck=c)
                      for c in (True, False))
    try:
        assert "CrossCheckedExecute" in (checked.config / "nbgrader_config.py").read_text()
        assert checked.env("a")[0]["JUPYTER_CONFIG_PATH"] == str(checked.config)
        assert plain.config is None and not (plain.root / "config").exists()
        (a, scratch_a), (b, scratch_b) = plain.env("a"), plain.env("b")
        assert not a["JUPYTER_CONFIG_PATH"]
        ports = [env[f"SERVELAB_{name}_PORT"] for env in (a, b) for name in ("SERVE", "DASHBOARD", "METRICS")]
        assert len(set(ports)) == 6, ports
        # Not in the kernel's ephemeral range (32768 and up), where a neighbour's outgoing
        # connection can take a port before this submission's cluster binds it (_ports.held_port).
        assert all(10000 <= int(p) < 20000 for p in ports), ports
        assert scratch_a != scratch_b and (a["SERVELAB_TMPDIR"], b["SERVELAB_TMPDIR"]) == (str(scratch_a), str(scratch_b))
    finally:
        checked.close()
        plain.close()
