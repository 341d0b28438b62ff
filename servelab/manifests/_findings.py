"""One finding of the manifest validator: where, what, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Finding:
    severity: str  # "error": will not work as written; "warning": works, but likely not as meant
    path: str  # field path, e.g. spec.rayClusterConfig.workerGroupSpecs[1].maxReplicas
    message: str
    fix: str
    file: str = ""

    def __post_init__(self):
        assert self.severity in SEVERITIES, self.severity

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.severity}: {self.path}: {self.message}\n    fix: {self.fix}"
