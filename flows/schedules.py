"""Old name of flows/prefect_schedules.py, kept only for flows/serve.py until it imports that.

Remove when merging issue 10: flows/serve.py should import from `.prefect_schedules`.
"""

from .prefect_schedules import (
    DEPLOYMENT_NAME,
    DigestSchedules,
    digest_schedules,
    next_runs,
    runner_deployments,
)

__all__ = ["DEPLOYMENT_NAME", "DigestSchedules", "digest_schedules", "next_runs",
           "runner_deployments"]
