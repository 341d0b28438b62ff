"""The REST clients of one Ray dashboard, for classes that know its URL and token."""

from __future__ import annotations

import logging

from servelab.clients._serve import ServeAPI
from servelab.clients._state import StateAPI
from servelab.errors import Failed


class DashboardClients:
    """Mixin: `serve_api`, `state_api` and `jobs` from the class's `dashboard_url` and `token`."""

    dashboard_url: str
    token: str | None

    @property
    def serve_api(self) -> ServeAPI:
        return ServeAPI(self.dashboard_url, token=self.token)

    @property
    def state_api(self) -> StateAPI:
        return StateAPI(self.dashboard_url, token=self.token)

    @property
    def jobs(self):
        """Ray's own JobSubmissionClient for this dashboard: what `ray job submit` talks to."""
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard_url,
                                   headers={"Authorization": f"Bearer {self.token}"} if self.token else None)

    def run_job(self, entrypoint: str, *, working_dir: str | None = None, timeout: float = 300,
                show: bool = True) -> str:
        """Run `entrypoint` as a Ray job and return its logs once it SUCCEEDED, as
        `ray job submit --working-dir DIR -- ENTRYPOINT` does. The working directory is uploaded
        through the dashboard, so code written here runs on a cluster that has never seen it,
        and what the job deploys with `serve.run` keeps that code (Serve gives its replicas the
        job's runtime_env). A job that fails raises a `Failed` with the end of its logs."""
        from ray.job_submission import JobStatus

        from servelab.observe import wait_for

        jobs = self.jobs
        runtime_env = {"working_dir": working_dir, "excludes": [".ipynb_checkpoints"]} if working_dir else None
        # Ray's SDK logs "Creating a file package...", "Uploading package..." at INFO on stderr
        quiet = [logging.getLogger(name) for name in ("ray.dashboard.modules.dashboard_sdk",
                                                     "ray._private.runtime_env.packaging")]
        levels = [log.level for log in quiet]
        for log in quiet:
            log.setLevel(logging.WARNING)
        try:
            job_id = jobs.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        finally:
            for log, level in zip(quiet, levels):
                log.setLevel(level)

        def ended():
            status = jobs.get_job_status(job_id)
            return status if status.is_terminal() else None

        try:
            status = wait_for(ended, what=f"Ray job `{entrypoint}`", layer="Ray runtime", timeout=timeout,
                              interval=1, show=show, hint=f"`ray job logs {job_id}` shows what it printed so far")
        except BaseException:  # out of time, or interrupted: a job left running would hold the cluster
            try:
                jobs.stop_job(job_id)
            except Exception:  # the original error is the one to report
                pass
            raise
        logs = jobs.get_job_logs(job_id)
        if status != JobStatus.SUCCEEDED:
            raise Failed("application code", f"Ray job `{entrypoint}` {status.value}: "
                                             f"{jobs.get_job_info(job_id).message or ''}\n{logs[-1500:]}")
        return logs
