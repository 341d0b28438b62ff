"""The guard itself: a test that leaks a cluster fails, and nothing stays behind."""

import os

import pytest

from servelab.cluster import _processes as processes

pytestmark = pytest.mark.live


def test_a_leaking_test_fails_and_its_cluster_is_killed(pytester, tmp_path):
    pytester.makepyfile(test_inner="""
        from servelab import LocalRay

        def test_forgets_to_stop():
            LocalRay("leaky").start(show=False)

        def test_cleans_up():
            with LocalRay("tidy").start(show=False):
                pass
    """)
    before = {p.pid for p in processes.processes_under(f"/tmp/servelab-{os.getuid()}")}
    result = pytester.runpytest_subprocess("-p", "servelab.cluster.testing", "-p", "no:cacheprovider",
                                           timeout=300)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test left * Ray processes running (now killed)*"])
    # The inner run used its own root under /tmp/servelab-<uid>: nothing new may survive.
    after = {p.pid for p in processes.processes_under(f"/tmp/servelab-{os.getuid()}")}
    assert after <= before
