"""Helpers that graded test cells and learners' own checks call.

They fail with an AssertionError whose message names the layer to look at,
so a failing test tells the learner where to start debugging.
"""

from __future__ import annotations

import time

import requests

from .serve_api import Replica, ServeAPIError


def post(url: str, payload=None, *, data: bytes | None = None, timeout: float = 10) -> requests.Response:
    """POST JSON (or raw bytes) to a Serve route; a dead endpoint is a clear failure."""
    try:
        if data is not None:
            return requests.post(url, data=data, timeout=timeout,
                                 headers={"Content-Type": "application/json"})
        return requests.post(url, json=payload, timeout=timeout)
    except requests.ConnectionError:
        raise AssertionError(f"[Serve] nothing answers at {url}: is the cluster running?") from None
    except requests.Timeout:
        raise AssertionError(f"[application code] {url} did not answer within {timeout}s") from None


def running_replicas(cluster, app: str, deployment: str, expect: int | None = None,
                     timeout: float = 60) -> list[Replica]:
    """RUNNING replicas of a deployment, read from Serve's REST API.

    With `expect`, waits (up to `timeout`) until exactly that many run, since
    replicas start and stop asynchronously after serve.run() returns.
    """
    api = cluster.serve_api
    deadline = time.monotonic() + timeout
    while True:
        try:
            replicas = api.replicas(app, deployment)
        except ServeAPIError as exc:
            raise AssertionError(str(exc)) from None
        if expect is None or len(replicas) == expect or time.monotonic() > deadline:
            return replicas
        time.sleep(0.5)
