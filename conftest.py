"""Loaded for every pytest run in this repository (tests/ and the nbval notebooks)."""

import pytest

pytest_plugins = ["servelab.cluster.testing", "pytester"]


def pytest_collection_modifyitems(config, items):
    # Lesson notebooks (nbval) start clusters: they are live tests.
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.live)
