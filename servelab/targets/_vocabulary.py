"""RayService vocabulary shared by both targets: conditions, and which layer to look at.

A status report (from any `Target.status`: `local.status`, `KubernetesTarget.status`) is a dict:
    conditions            [{"type": "Ready", "status": "True"|"False", "reason", "message"}, ...]
    activeServiceStatus   {"applicationStatuses": {app: {status, message, serveDeploymentStatuses}}}
    layer                 None when Ready, else where to look first:
                          one of servelab.observe._waiting.LAYERS
"""

from __future__ import annotations


def condition(ok: bool, reason: str, message: str, type_: str = "Ready") -> dict:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason, "message": message}


def ready_condition(report: dict) -> dict:
    """The Ready condition of a report (a not-Ready placeholder if there is none yet). A
    RayCluster has no Ready condition in KubeRay 1.7: its `state` says "ready" once every
    pod ran and was ready (raycluster_controller.go, calculateStatus)."""
    for cond in report.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    if report.get("kind") == "RayCluster" and "desiredWorkerReplicas" in report:
        ready = report.get("state") == "ready"
        failures = [c.get("message", "") for c in report.get("conditions") or []
                    if c.get("type") == "ReplicaFailure" and c.get("status") == "True"]
        message = "" if ready else (failures[0] if failures else
                                    f"{report.get('readyWorkerReplicas', 0)} of "
                                    f"{report.get('desiredWorkerReplicas', 0)} worker pods ready")
        return condition(ready, report.get("state") or "NotReady", message)
    return condition(False, "NoReadyCondition", "no Ready condition reported yet")


def is_ready(report: dict) -> bool:
    return ready_condition(report).get("status") == "True"


def diagnose_applications(statuses: dict) -> tuple[str, str]:
    """(layer, reason) for applications that are not all RUNNING, from Serve's own statuses."""
    if not statuses:
        return "Serve", "NoApplications"
    for app in statuses.values():
        if app.get("status") == "DEPLOY_FAILED":
            return "application code", "DeployFailed"  # import errors, constructor exceptions
    for app in statuses.values():
        for dep in (app.get("serveDeploymentStatuses") or {}).values():
            message = (dep.get("message") or "").lower()
            if "resources" in message or "schedul" in message:
                return "Ray runtime", "ReplicasPending"  # nodes cannot offer what replicas ask for
    for app in statuses.values():
        if app.get("status") == "UNHEALTHY":
            return "application code", "Unhealthy"  # health checks or constructors failing
    return "Serve", "Deploying"
