"""The `collect` flow: Prefect around the collect use case (`pipeline.collect.collect_once`).

    settings = load_settings(config)                  (a broken config fails the flow)
    batches  = fetch-and-parse task runs on the flow's task runner, or on the Dask cluster at
               [scale] dask_address (its outcomes come back as results; only this process
               writes SQLite)
    summary  = collect_once(settings, force, sources, the caller's progress, batches,
                            triage as a task run)
               a run of more than FINISH_LATER_ABOVE new items skips the triage task: a
               detached process (flows/record.py, recording nothing) indexes and clusters
               them, so the flow's process never holds clustering's memory on top of
               Prefect's (351 MB measured at 40,000 items) and the run ends when it is stored
    artifact = "collect-health": this run's source health, worst first
    retrain  = pipeline.relevance_model.retrain_if_due(settings): once [triage] retrain_after
               editors' decisions accumulated (or an issue was finalised) since the relevance
               model was trained, train it and rescore; a failure is reported, never raised
    return summary.as_dict() (+ "relevance_model" when it trained)

Everything else (storing, health, counters, triage) is plain code in `pipeline/collect.py`,
which tests call without Prefect.

With [scale] dask_address Prefect sends the flow (in the run's context) with every task to
Dask, its function by value: the functions here refer only to importable functions and
tasks, never to a module-level object that cannot be pickled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from ..errors import CollectRunning, ConfigError, DigestError
from ..pipeline.collect import (
    FINISH_LATER_ABOVE,
    MAX_BATCHES,
    BatchFuture,
    BatchJob,
    Progress,
    SubmitBatch,
    collect_in_thread,
    fetch_and_parse_remote,
    health_report,
    run_batch,
    triage_collected,
)
from ..pipeline.relevance_model import retrain_if_due
from ..pipeline.scale_check import CONNECT_TIMEOUT
from ..settings import ScaleSettings, load_settings
from .record import hand_off

#: One batch fetched and parsed in the flow's process, each outcome handed to the run's
#: writer as soon as it is ready.
fetch_and_parse = task(run_batch, name="fetch-and-parse", cache_policy=NO_CACHE, retries=0)
#: One batch fetched and parsed on a Dask worker; its outcomes are the task's result.
remote_fetch_and_parse = task(fetch_and_parse_remote, name="fetch-and-parse",
                              cache_policy=NO_CACHE, retries=0)
#: Cluster the items the run stored into stories (and score any a killed run left unscored).
triage = task(triage_collected, name="triage", cache_policy=NO_CACHE)
#: Train the relevance model again when editors' decisions have accumulated.
retrain_relevance = task(retrain_if_due, name="retrain-relevance", cache_policy=NO_CACHE)

#: The progress report of the code that runs the flow in this context (`reporting_to`).
_progress: ContextVar[Progress | None] = ContextVar("collect_progress", default=None)


@contextmanager
def reporting_to(progress: Progress) -> Iterator[None]:
    """Collect flows run inside the block report their progress to `progress` (the CLI's bar).

    A flow's parameters are what a deployment can send, so a progress bar cannot be one; it
    travels in the caller's context (as Prefect's settings do), not in a module global.
    """
    token = _progress.set(progress)
    try:
        yield
    finally:
        _progress.reset(token)


def caller_progress() -> Progress | None:
    """The progress report `reporting_to` set for this context, if any."""
    return _progress.get()


@flow(name="collect", log_prints=False, validate_parameters=False)
async def collect(force: bool = False, sources: list[str] | None = None,
                  config: str | None = None) -> dict[str, Any]:
    """Collect every due source (all with `force`, or the named `sources`) into the store."""
    settings = load_settings(config)
    try:
        with batch_runner(settings.scale) as submit_batch:
            summary = await collect_in_thread(settings, force=force, names=sources,
                                              progress=caller_progress(),
                                              submit_batch=submit_batch, triage=triage,
                                              finish_later_above=FINISH_LATER_ABOVE)
    except CollectRunning as e:
        # A scheduled run that finds another collect running is skipped, one line in the
        # log and no traceback; `digest collect` turns the result back into that line.
        get_run_logger().warning(str(e))
        return {"skipped": str(e), "pid": e.pid, "since": e.since}
    health = health_report(settings, summary.run_id)
    await acreate_markdown_artifact(key="collect-health", markdown=health,
                                    description="Source health after this collect run")
    result = summary.as_dict()
    if result["triage"].get("pending"):
        try:
            hand_off(settings, result, {"force": force, "sources": sources, "config": config},
                     health, record=False)
        except OSError as e:  # stored; the next collect run indexes and clusters them
            get_run_logger().warning(f"collect run {summary.run_id}: cannot start the process "
                                     f"that indexes and clusters its new items ({e}); the "
                                     "next collect run does it")
    try:
        training = retrain_relevance(settings)
    except Exception as e:  # the run is stored: a failed training only reports itself
        result["relevance_model"] = {"error": f"{type(e).__name__}: {e}"}
    else:
        if training is not None:
            result["relevance_model"] = training.as_dict()
    return result


@contextmanager
def batch_runner(scale: ScaleSettings) -> Iterator[SubmitBatch]:
    """How the run's batches run: fetch-and-parse task runs on the flow's task runner, or on
    the Dask cluster at `scale.dask_address` (connected at the first batch, left at the end)."""
    if not scale.dask_address:
        yield fetch_and_parse.submit
        return
    address = scale.dask_address
    remote: TaskRunner[Any] | None = None

    def submit(job: BatchJob) -> BatchFuture:
        nonlocal remote
        if remote is None:
            remote = dask_task_runner(address)
        # Plain data only: the outcomes come back as the result, and this process stores them.
        return remote.submit(remote_fetch_and_parse, {"batch": job.requests, "http": job.http})

    try:
        yield submit
    finally:
        if remote is not None:
            remote.__exit__(None, None, None)


def dask_task_runner(address: str) -> TaskRunner[Any]:
    """A started prefect-dask runner connected to the scheduler at `address` ([scale]).

    Connecting here, not at the first submit, turns an unreachable scheduler into one clear
    line. prefect-dask is an optional extra, imported only when configured.
    """
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(
            f"[scale] dask_address is set ({address}) but prefect-dask is not installed: "
            "pip install 'alliance-digest[scale]'") from None
    # A short connect timeout (distributed's default is 30 s); the CLI checked it already.
    runner = DaskTaskRunner(address=address,
                            client_kwargs={"timeout": f"{CONNECT_TIMEOUT:g}s"}).__enter__()
    try:
        runner.client  # noqa: B018 (connects)
    except Exception as e:
        runner.__exit__(None, None, None)
        raise DigestError(f"[scale] dask_address: cannot reach the Dask scheduler at "
                          f"{address}: {type(e).__name__}: {e}") from None
    return runner


def collect_with_runner(max_workers: int = MAX_BATCHES) -> Any:
    """The collect flow with the default local task runner."""
    return collect.with_options(task_runner=ThreadPoolTaskRunner(max_workers=max_workers))
