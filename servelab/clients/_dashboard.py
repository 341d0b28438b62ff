"""Both REST clients of one Ray dashboard, for classes that know its URL and token."""

from __future__ import annotations

from servelab.clients._serve import ServeAPI
from servelab.clients._state import StateAPI


class DashboardClients:
    """Mixin: `serve_api` and `state_api` from the class's `dashboard_url` and `token`."""

    dashboard_url: str
    token: str | None

    @property
    def serve_api(self) -> ServeAPI:
        return ServeAPI(self.dashboard_url, token=self.token)

    @property
    def state_api(self) -> StateAPI:
        return StateAPI(self.dashboard_url, token=self.token)
