"""One error hierarchy: every error servelab raises on purpose says which layer to look at.

The course's debugging model walks five layers, outside in. A `ServelabError`
carries one of them as `.layer`, and a `.hint` (what to do next); the CLI and a
lab's self-check read those attributes instead of parsing messages. A wait
that runs out of time is a `Stuck`, which is also a `TimeoutError`; something that
failed outright (a process exited, a tool is missing, a request was refused) is a `Failed`.
"""

from __future__ import annotations

LAYERS = ("Kubernetes", "KubeRay", "Ray runtime", "Serve", "application code")


class ServelabError(Exception):
    """Something the user can fix: `.layer` says where to look, `.hint` what to try."""

    layer: str = "application code"

    def __init__(self, message: str, *, layer: str | None = None, hint: str = ""):
        if layer is not None:
            self.layer = layer
        if self.layer not in LAYERS:
            raise AssertionError(f"unknown layer {self.layer!r}: one of {', '.join(LAYERS)}")  # a bug in servelab
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class Stuck(ServelabError, TimeoutError):
    """A wait ran out of time; `layer` says where to look first."""

    def __init__(self, layer: str, message: str, *, hint: str = ""):
        super().__init__(f"[{layer}] {message}", layer=layer, hint=hint)


class Failed(ServelabError, RuntimeError):
    """Something failed outright (exited, refused, not installed): not a wait that ran out.

    Its message starts with "[layer] " as a Stuck's does, and a wait whose check raises one
    ends at once (`servelab.observe.wait_for`).
    """

    def __init__(self, layer: str, message: str, *, hint: str = ""):
        super().__init__(f"[{layer}] {message}", layer=layer, hint=hint)
