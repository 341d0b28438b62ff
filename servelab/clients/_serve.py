"""Serve's REST API on the dashboard port: the one view both targets share.

KubeRay deploys `serveConfigV2` with `PUT /api/serve/applications/` and reads
status with `GET`; graded checks read replica counts and states the same way,
so a check works whether Serve runs on this laptop or in a Kubernetes pod.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from servelab.errors import Failed, ServelabError
from servelab.observe._waiting import wait_for


class ServeAPIError(ServelabError, RuntimeError):
    """The Serve REST API refused a call or could not be reached.

    `.layer` is "Serve" unless the call never got to Serve ("Ray runtime": nothing answers,
    or the dashboard refused the token); the message starts with "[layer] " as well, for
    readers that only have the text (an executed notebook's error output).
    """

    layer = "Serve"

    def __init__(self, message: str, *, layer: str | None = None, hint: str = ""):
        super().__init__(f"[{layer or self.layer}] {message}", layer=layer, hint=hint)


@dataclass(frozen=True)
class Replica:
    replica_id: str
    state: str
    node_id: str | None
    pid: int | None


def replicas_in(deployment: dict, state: str | None = "RUNNING") -> list[dict]:
    """The replicas of one deployment as Serve's REST API lists them, by default the RUNNING ones."""
    return [r for r in deployment.get("replicas") or [] if state is None or r.get("state") == state]


def count_running(deployment: dict) -> int:
    """How many of a deployment's replicas are RUNNING."""
    return len(replicas_in(deployment))


def running_by_group(deployment: dict, group_of: dict[str, str]) -> dict[str, int]:
    """RUNNING replicas of one deployment per node group (`group_of`: node id -> group)."""
    out: dict[str, int] = {}
    for r in replicas_in(deployment):
        group = group_of.get(r.get("node_id"), "?")
        out[group] = out.get(group, 0) + 1
    return out


class ServeAPI:
    def __init__(self, dashboard_url: str, token: str | None = None, timeout: float = 10):
        self.base = dashboard_url.rstrip("/") + "/api/serve/applications/"
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, body: dict | None = None,
              timeout: float | None = None) -> requests.Response:
        try:
            r = requests.request(method, self.base, json=body, headers=self.headers,
                                 timeout=timeout or self.timeout)
        except requests.Timeout:
            raise ServeAPIError(f"{method} {self.base} did not answer in time") from None
        except requests.ConnectionError as exc:
            raise ServeAPIError(
                f"nothing answers at {self.base} — is the cluster running? ({exc})", layer="Ray runtime"
            ) from None
        if r.status_code in (401, 403):
            problem = "wants a token" if r.status_code == 401 else "refused this token"
            raise ServeAPIError(
                f"{self.base} {problem} (Ray token auth): "
                "pass this cluster's token, e.g. ServeAPI(url, token=cluster.token)", layer="Ray runtime"
            )
        if r.status_code >= 400:
            raise ServeAPIError(f"{method} {self.base} -> HTTP {r.status_code}: {r.text[:2000]}")
        return r

    def details(self) -> dict:
        """The whole Serve status document (controller, proxies, applications)."""
        return self._call("GET").json()

    def applications(self) -> dict:
        return self.details().get("applications") or {}

    def application(self, app: str) -> dict:
        apps = self.applications()
        if app not in apps:
            known = ", ".join(sorted(apps)) or "none"
            raise ServeAPIError(f"no application named {app!r} (running: {known})")
        return apps[app]

    def deployment(self, app: str, deployment: str) -> dict:
        deps = self.application(app).get("deployments") or {}
        if deployment not in deps:
            known = ", ".join(sorted(deps)) or "none"
            raise ServeAPIError(
                f"application {app!r} has no deployment {deployment!r} (it has: {known})"
            )
        return deps[deployment]

    def replicas(self, app: str, deployment: str, state: str | None = "RUNNING") -> list[Replica]:
        """Replicas of one deployment, by default only those in state RUNNING."""
        return [Replica(r.get("replica_id", ""), r.get("state", ""), r.get("node_id"), r.get("pid"))
                for r in replicas_in(self.deployment(app, deployment), state)]

    def deploy(self, config: dict, timeout: float = 120) -> None:
        """Declaratively deploy a multi-application Serve config (ServeDeploySchema).

        The first deploy waits for Serve's controller to start, hence the long timeout.
        """
        self._call("PUT", config, timeout)

    def wait_running(self, names: list[str], timeout: float = 180, show: bool = True) -> dict:
        """Wait until every named application is RUNNING; a DEPLOY_FAILED ends the wait at once."""
        def running():
            apps = self.applications()
            for name in names:
                status = apps.get(name, {}).get("status")
                if status == "DEPLOY_FAILED":
                    raise Failed("application code", f"application {name!r} failed to deploy: "
                                f"{apps[name].get('message', '')[-1500:]}")
            waiting = {n: apps.get(n, {}).get("status", "absent") for n in names
                       if apps.get(n, {}).get("status") != "RUNNING"}
            if not waiting:
                return apps
            detail = "; ".join(f"{n} {st}: " + ", ".join(
                f"{d} {info.get('status')}" for d, info in apps.get(n, {}).get("deployments", {}).items()
                if info.get("status") != "HEALTHY") for n, st in waiting.items())
            raise RuntimeError(f"not RUNNING yet: {detail}")

        return wait_for(running, what=f"Serve applications {', '.join(names)} RUNNING", layer="Serve",
                        timeout=timeout, show=show,
                        hint="Replicas that stay PENDING mean no node offers the resources they ask for.")

    def delete_all(self) -> None:
        self._call("DELETE")
