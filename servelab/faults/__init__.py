"""Breaking a cluster on purpose, under load, and measuring the recovery.

Public: `LocalFaults` and `KubernetesFaults` (the same verbs on both targets),
`Fault`, `FaultError`, `VERBS`, and the modules `load` (bounded load, loopback
only: `load.run`) and `recovery` (`recovery.measure`: a fault injected under load).
All are imported on first use: every Serve replica imports this package's flags.
"""

from servelab import _lazy

_VERBS = "servelab.faults._verbs"
__all__ = ["VERBS", "Fault", "FaultError", "Faults", "KubernetesFaults", "LocalFaults", "load", "recovery"]
__getattr__ = _lazy(__name__, {**{name: f"{_VERBS}:{name}" for name in __all__[:6]},
                               "load": "servelab.faults.load", "recovery": "servelab.faults.recovery"})
