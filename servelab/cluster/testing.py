"""pytest plugin: private Ray clusters for tests, and a guard against leaks.

Load it with `pytest_plugins = ["servelab.cluster.testing"]` (the repository's conftest.py does).

- Every cluster started during the run, by the tests or by notebook kernels
  they spawn (nbval, nbgrader), lives under one root made for this run, so
  the run can see exactly what it started and nothing else.
- `local_ray` is a module-scoped cluster, stopped by a finalizer even when
  a test or the start itself fails. Other fixtures that keep a cluster across
  tests declare it with `owned_by_fixture(cluster)`.
- After each Python test, any cluster process under the root that no live
  fixture owns is a leak: it is killed and the test fails. At the end of the
  session the root must be empty (this also covers notebook kernels).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from servelab.cluster import _processes as processes
from servelab.cluster._localray import LocalRay

_fixture_dirs: set[str] = set()


def pytest_configure(config):
    base = Path(f"/tmp/servelab-{os.getuid()}")
    base.mkdir(parents=True, exist_ok=True)
    root = tempfile.mkdtemp(prefix="t", dir=base)  # short: Ray's socket paths are limited
    config._servelab_root = root
    os.environ["SERVELAB_TMPDIR"] = root  # inherited by kernels the tests start
    os.environ.setdefault("SERVELAB_PORTS", "free")  # never compete for 8000/8265


def cluster_root(config) -> str:
    return config._servelab_root


@pytest.fixture(scope="module")
def local_ray(request):
    """A private LocalRay shared by the tests of one module."""
    return start_for_fixture(request)


def start_for_fixture(request, **options) -> LocalRay:
    """Start a LocalRay (options as for LocalRay) that the calling fixture owns;
    its finalizer stops it even if the start fails."""
    cluster = LocalRay(request.module.__name__.rsplit(".", 1)[-1], **options)
    request.addfinalizer(lambda: _stop_fixture_cluster(cluster))
    cluster.start(show=False)
    return owned_by_fixture(cluster)


def owned_by_fixture(cluster: LocalRay) -> LocalRay:
    """Declare a cluster that a fixture keeps alive across tests (and stops itself), with the
    serve Service of its RayService if it has one (servelab.cluster._service)."""
    from servelab.cluster import _service as service

    _fixture_dirs.add(str(cluster.dir))
    folder = service.folder_of(cluster.dir)
    if folder is not None:
        _fixture_dirs.add(str(folder))
    return cluster


def _stop_fixture_cluster(cluster: LocalRay) -> None:
    try:
        cluster.stop(show=False)
    finally:
        _fixture_dirs.discard(str(cluster.dir))


def _unowned(root: str) -> list:
    owned = {p.pid for d in _fixture_dirs for p in processes.processes_under(d)}
    return [p for p in processes.processes_under(root) if p.pid not in owned]


@pytest.fixture(autouse=True)
def _no_leaked_ray(request):
    yield
    if not isinstance(request.node, pytest.Function):
        return  # notebook cells share one kernel; checked at session end
    leaked = _unowned(cluster_root(request.config))
    if leaked:
        survivors = processes.wait_gone_pids(leaked, timeout=10)  # a stop may still be draining
        if survivors:
            listing = processes.describe(survivors)
            processes.kill_all(survivors)
            pytest.fail(f"test left {len(survivors)} Ray processes running (now killed):\n{listing}",
                        pytrace=False)


_worker_leaks: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist (controller side): a worker that found leaks at its end fails the run."""
    leaks = getattr(node, "workeroutput", {}).get("servelab_leaks")
    if leaks:
        _worker_leaks.append(leaks)


def pytest_sessionfinish(session, exitstatus):
    if _worker_leaks:
        session.config.get_terminal_writer().line("\n".join(_worker_leaks), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    root = cluster_root(session.config)
    left = processes.wait_gone(root, timeout=20)
    if left:
        listing = processes.describe(left)
        processes.kill_all(left)
        message = (f"servelab: {len(left)} Ray processes started by this run were still alive "
                   f"at the end (now killed):\n{listing}")
        session.config.get_terminal_writer().line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: tell the controller
            session.config.workeroutput["servelab_leaks"] = message
    if not os.environ.get("SERVELAB_KEEP_LOGS"):
        shutil.rmtree(root, ignore_errors=True)
