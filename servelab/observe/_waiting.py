"""Waits with progress and a deadline that names the stuck layer.

The course's debugging model walks the layers Kubernetes -> KubeRay -> Ray
runtime -> Serve -> application code. Every wait in servelab ends, when it
runs out of time, with an error that says which of those layers to look at.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TypeVar

from servelab.errors import LAYERS, Failed, Stuck  # noqa: F401  (re-exported: labs import them from here)

T = TypeVar("T")


def _live_display() -> bool:
    """True where a carriage return redraws the line (a terminal or Jupyter)."""
    return sys.stdout.isatty() or "ipykernel" in sys.modules


def _in_kernel_with_widgets() -> bool:
    """A Jupyter kernel whose front end can show ipywidgets (not a plain script or the grader)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        return getattr(get_ipython(), "kernel", None) is not None
    except ImportError:
        return False


class TextProgress:
    """Elapsed seconds on one redrawn line; in CI logs, a line now and then."""

    def __init__(self, what: str, timeout: float):
        self.what, self.every, self.shown = what, (1.0 if _live_display() else 15.0), -1.0

    def update(self, elapsed: float, note: str = "") -> None:
        if elapsed - self.shown < self.every:
            return
        self.shown = elapsed
        note = f" ({note})" if note else ""
        if self.every == 1.0:
            print(f"\r  {self.what}: waiting {elapsed:.0f}s{note}   ", end="", flush=True)
        else:
            print(f"  {self.what}: still waiting after {elapsed:.0f}s{note}", flush=True)

    def finish(self, elapsed: float, ok: bool) -> None:
        print(f"\r  {self.what}: ok ({elapsed:.1f}s)   " if ok else f"\r  {self.what}: gave up after {elapsed:.0f}s",
              flush=True)


class WidgetProgress:
    """A progress bar in the notebook: time used of the wait's budget, green when done,
    red when it gave up. The text line is printed too, so saved outputs and logs keep it."""

    def __init__(self, what: str, timeout: float):
        import ipywidgets
        from IPython.display import display

        self.what, self.timeout = what, timeout
        self.bar = ipywidgets.FloatProgress(value=0, min=0, max=max(timeout, 1e-3), bar_style="info",
                                            layout=ipywidgets.Layout(width="300px"))
        self.label = ipywidgets.Label(f"{what}: starting")
        self.box = ipywidgets.HBox([self.bar, self.label])
        self.box.add_class("servelab-progress")
        display(self.box)

    def update(self, elapsed: float, note: str = "") -> None:
        if elapsed - self.bar.value < 0.5 and elapsed < self.bar.max:
            return  # twice a second is smooth enough
        self.bar.value = min(elapsed, self.bar.max)
        note = f"; {note}" if note else ""
        self.label.value = f"{self.what}: waiting {elapsed:.0f}s of at most {self.timeout:.0f}s{note}"

    def finish(self, elapsed: float, ok: bool) -> None:
        self.bar.bar_style = "success" if ok else "danger"
        self.bar.value = self.bar.max if ok else self.bar.value
        self.label.value = f"{self.what}: ok ({elapsed:.1f}s)" if ok else f"{self.what}: gave up after {elapsed:.0f}s"
        print(f"  {self.label.value}", flush=True)


def progress(what: str, timeout: float):
    """The progress display that suits where this runs."""
    if _in_kernel_with_widgets():
        try:
            return WidgetProgress(what, timeout)
        except Exception:  # no ipywidgets: fall back to text
            pass
    return TextProgress(what, timeout)


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
    """Call check() until it returns something truthy, showing progress (a bar in Jupyter,
    elapsed seconds elsewhere).

    check may raise; the last exception is quoted if the deadline passes.
    A Stuck or a Failed raised by check is final and ends the wait at once.
    """
    start = time.monotonic()
    last_error: Exception | None = None
    shown = progress(what, timeout) if show else None
    while True:
        try:
            result = check()
            if result:
                if shown:
                    shown.finish(time.monotonic() - start, ok=True)
                return result
        except (Stuck, Failed):
            if shown:
                shown.finish(time.monotonic() - start, ok=False)
            raise
        except Exception as exc:  # the thing we wait for is not there yet
            last_error = exc
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            if shown:
                shown.finish(elapsed, ok=False)
            detail = f" Last error: {last_error}." if last_error else ""
            raise Stuck(layer, f"{what} did not happen within {timeout:.0f}s.{detail} {hint}".strip())
        if shown:
            shown.update(elapsed)
        time.sleep(interval)
