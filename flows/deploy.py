"""`digest deploy --pool NAME`: register the two deployments on a process work pool.

    server   = PREFECT_API_URL (or a running `digest serve`'s server); none is a clear error
    pool     = the named pool, created as a `process` pool when missing
    register = collect/digest and draft/digest, scheduled, with module-path entrypoints,
               DIGEST_CONFIG and the config's folder as the job's env and working directory

A worker (`prefect worker start --pool NAME`) on the machine that holds the database then
runs them: it imports `alliance_digest.flows.collect` from its own environment, so no code
storage, image or `from_source` is needed, only the package installed where the worker runs.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import DigestError
from ..settings import Settings
from .prefect_schedules import DEPLOYMENT_NAME, digest_schedules, runner_deployments
from .serve import use_running_server


def job_variables(settings: Settings) -> dict[str, Any]:
    """What the worker's flow-run process needs to find this installation's files.

    The config path also goes as the `config` parameter; the env variable covers runs started
    by hand from the UI with that parameter cleared. The working directory matters only with
    the packaged default config, whose data paths are relative to it.
    """
    variables: dict[str, Any] = {"working_dir": str(settings.base_dir)}
    if settings.config_path:
        variables["env"] = {"DIGEST_CONFIG": str(settings.config_path)}
    return variables


def deploy(settings: Settings, pool: str) -> dict[str, Any]:
    """Register both deployments on `pool` (created as a process pool if missing).

    Returns {"api_url", "pool", "pool_created", "deployments": {name: id}}.
    """
    schedules = digest_schedules(settings)  # a bad [schedule] key fails before any network
    use_running_server(settings)
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise DigestError(
            "digest deploy needs a Prefect server: set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api) or start `digest serve`"
        )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        created = asyncio.run(_ensure_pool(pool))
        deployments = runner_deployments(settings, schedules, work_pool_name=pool,
                                         job_variables=job_variables(settings))
        ids = asyncio.run(_apply(deployments, pool))
    return {"api_url": url, "pool": pool, "pool_created": created,
            "deployments": {f"{d.flow_name}/{DEPLOYMENT_NAME}": str(i)
                            for d, i in zip(deployments, ids, strict=True)}}


async def _ensure_pool(name: str) -> bool:
    """Create the work pool as type `process` unless it exists; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            await client.read_work_pool(name)
            return False
        except ObjectNotFound:
            pass
        except Exception as e:  # connection refused, wrong URL: one line, not a traceback
            raise DigestError(f"cannot reach the Prefect server: {type(e).__name__}: {e}"
                              ) from None
        try:
            await client.create_work_pool(WorkPoolCreate(
                name=name, type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            ))
        except ObjectAlreadyExists:  # created meanwhile by someone else: fine
            return False
        return True


async def _apply(deployments: list[Any], pool: str) -> list[Any]:
    return [await d.aapply(work_pool_name=pool) for d in deployments]
