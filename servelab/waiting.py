"""Waits with progress and a deadline that names the stuck layer.

The course's debugging model walks the layers Kubernetes -> KubeRay -> Ray
runtime -> Serve -> application code. Every wait in servelab ends, when it
runs out of time, with an error that says which of those layers to look at.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TypeVar

T = TypeVar("T")

LAYERS = ("Kubernetes", "KubeRay", "Ray runtime", "Serve", "application code")


class Stuck(TimeoutError):
    """A wait ran out of time; `layer` says where to look first."""

    def __init__(self, layer: str, message: str):
        assert layer in LAYERS, layer
        self.layer = layer
        super().__init__(f"[{layer}] {message}")


def _live_display() -> bool:
    """True where a carriage return redraws the line (a terminal or Jupyter)."""
    return sys.stdout.isatty() or "ipykernel" in sys.modules


def wait_for(
    check: Callable[[], T],
    *,
    what: str,
    layer: str,
    timeout: float,
    hint: str = "",
    interval: float = 0.25,
    show: bool = True,
) -> T:
    """Call check() until it returns something truthy, showing elapsed time.

    check may raise; the last exception is quoted if the deadline passes.
    A Stuck raised by check is final and ends the wait at once.
    """
    start = time.monotonic()
    last_error: Exception | None = None
    shown = -1.0
    every = 1.0 if _live_display() else 15.0  # CI logs get a line now and then
    while True:
        try:
            result = check()
            if result:
                if show:
                    print(f"\r  {what}: ok ({time.monotonic() - start:.1f}s)   ", flush=True)
                return result
        except Stuck:
            if show:
                print(flush=True)
            raise
        except Exception as exc:  # the thing we wait for is not there yet
            last_error = exc
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            if show:
                print(f"\r  {what}: gave up after {elapsed:.0f}s", flush=True)
            detail = f" Last error: {last_error}." if last_error else ""
            raise Stuck(layer, f"{what} did not happen within {timeout:.0f}s.{detail} {hint}".strip())
        if show and elapsed - shown >= every:
            shown = elapsed
            if every == 1.0:
                print(f"\r  {what}: waiting {elapsed:.0f}s", end="", flush=True)
            else:
                print(f"  {what}: still waiting after {elapsed:.0f}s", flush=True)
        time.sleep(interval)
