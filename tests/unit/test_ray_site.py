"""servelab/cluster/ray_site: what every Ray process of a servelab cluster runs at start-up."""

import subprocess
import sys

import pytest

from servelab.cluster._localray import RAY_SITE

PROBE = ("import sys, jsonschema; "
         "print('lark' in sys.modules, 'rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is not None)")


def _run(code: str, pythonpath: str | None) -> str:
    env = {"PATH": "/usr/bin:/bin"} | ({"PYTHONPATH": pythonpath} if pythonpath else {})
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip()


def test_jsonschema_skips_the_iri_checker_and_its_grammar():
    pytest.importorskip("rfc3987_syntax", reason="nothing to skip where rfc3987-syntax is not installed")
    assert _run(PROBE, None) == "True True"  # what a Ray process pays without ray_site
    assert _run(PROBE, RAY_SITE) == "False False"
    # jsonschema itself still works, formats included
    check = ("import jsonschema; v = jsonschema.Draft202012Validator({'format': 'ipv4'}, "
             "format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER); print(v.is_valid('1.2.3'))")
    assert _run(check, RAY_SITE) == "False"


def test_a_sitecustomize_it_shadows_still_runs(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import builtins; builtins.SHADOWED_RAN = True\n")
    out = _run("import builtins; print(getattr(builtins, 'SHADOWED_RAN', False))", f"{RAY_SITE}:{tmp_path}")
    assert out == "True"
