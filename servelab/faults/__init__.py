"""Breaking a cluster on purpose, under load, and measuring the recovery.

Public: `LocalFaults` and `KubernetesFaults` (the same verbs on both targets),
`Fault`, `FaultError`, `VERBS`, and the modules `load` (bounded load, loopback
only: `load.run`) and `recovery` (`recovery.measure`: a fault injected under load).
"""

from servelab.faults import load, recovery
from servelab.faults._verbs import VERBS, Fault, FaultError, Faults, KubernetesFaults, LocalFaults

__all__ = ["VERBS", "Fault", "FaultError", "Faults", "KubernetesFaults", "LocalFaults", "load", "recovery"]
