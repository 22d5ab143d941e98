"""Complete and record in Prefect a collect run that `digest collect` ran outside a flow.

    digest collect (no Dask):
        collect_once(..., finish_later_above=N)   the use case, at once: no server to wait
                                           for; a run that stored more than N items leaves
                                           their search indexing and clustering
        print the summary
        hand_off(settings, summary, ...)   payload file in the data folder, then a detached
                                           `python -m alliance_digest.flows.record FILE`
    the recorder, after the command has returned:
        finish_collect(...) if the run left work: the search backlog, then the stories (under
            the collect lock; a collect started meanwhile waits for it); the summary's triage
            counts are then the whole run's
        the API: PREFECT_API_URL or a running `digest serve`'s server as the command found
            it, else a temporary Prefect server started here (as a flow call would)
        run the `collect` flow's record of the run: the same flow name and parameters, the
        run's summary as its result, the "collect-health" artifact
        stop the temporary server, remove the payload

Why: a temporary Prefect server takes 4-10 s to start on a busy 2-core machine, more than
a whole pass where every source answers 304; waiting for it put Prefect, not the feeds, on
the command's clock; with a server running, the flow run and its task runs cost ~3 s more
than the rest of such a pass (4.99 s against 2.07 s at 1,000 feeds). Indexing and
clustering thirty thousand new items take ~12 s of a 2-core machine, as long again as
fetching them: the editor has the items (scored, listed, each its own story) when the
command returns, and the stories and search seconds later.
A killed command leaves no payload and starts nothing: the database is what the collect run
left, and the `runs` table says what happened (as it always does). A killed recorder leaves
its work to the next collect run, which completes the backlog and the clustering first.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..settings import Settings

#: Where the payloads wait in the data folder (one file per run, removed once recorded).
PAYLOAD_PREFIX = ".prefect-record-"


def hand_off(settings: Settings, summary: dict[str, Any], parameters: dict[str, Any],
             health: str, *, record: bool = True, api_url: str | None = None) -> Path:
    """Write the run's record and start the detached recorder; returns the payload's path.

    The recorder runs in a session of its own (it outlives the command); its output goes to
    Prefect's log in the data folder. With `record=False` it only completes the run (for a
    collect flow, which is its own record in Prefect); with `api_url` it records the run on
    that API (a running `digest serve`'s server, PREFECT_API_URL) instead of a temporary
    server of its own.
    """
    from . import PREFECT_LOG

    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"{PAYLOAD_PREFIX}{summary['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"parameters": parameters, "summary": summary, "health": health,
                               "record": record, "api_url": api_url}, ensure_ascii=False),
                   encoding="utf-8")
    os.replace(tmp, path)
    with (data / PREFECT_LOG).open("ab") as log:
        subprocess.Popen([sys.executable, "-m", "alliance_digest.flows.record", str(path)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
    return path


async def record_run(payload: dict[str, Any]) -> dict[str, Any]:
    """The `collect` flow's run for a run already done (needs a Prefect API configured)."""
    from prefect import flow
    from prefect.artifacts import acreate_markdown_artifact

    summary, health = payload["summary"], payload["health"]

    @flow(name="collect", log_prints=False, validate_parameters=False)
    async def collect(force: bool = False, sources: list[str] | None = None,
                      config: str | None = None) -> dict[str, Any]:
        await acreate_markdown_artifact(key="collect-health", markdown=health,
                                        description="Source health after this collect run")
        return summary

    params = payload["parameters"]
    flow_run_name = f"run-{summary['id']}-{summary['status']}"
    return await collect.with_options(flow_run_name=flow_run_name)(
        force=params.get("force", False), sources=params.get("sources"),
        config=params.get("config"))


def finish(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Complete the run the payload records if it left work; returns the payload as updated
    (and written back), or the same object when there was nothing to do or it failed."""
    from ..pipeline.collect import finish_collect
    from ..settings import load_settings

    summary = payload["summary"]
    triage = summary.get("triage") or {}
    if not triage.get("pending"):
        return payload
    stored = {key: int(triage.get(key) or 0) for key in ("candidates", "filtered")}
    try:
        done = finish_collect(load_settings(payload["parameters"].get("config")),
                              int(summary["id"]), stored)
    except Exception as e:  # still recorded; the next collect run completes what is left
        print(f"collect run {summary['id']}: completing the search index and the stories "
              f"failed ({type(e).__name__}: {e}); the next collect run completes them",
              flush=True)
        return payload
    if done is None:
        print(f"collect run {summary['id']}: another collect holds the lock; it completes the "
              "search index and the stories", flush=True)
        done = {}
    kept = {k: triage[k] for k in ("model", "model_warning") if k in triage}
    payload = {**payload, "summary": {**summary, "triage": {**triage, **done, **kept,
                                                            "pending": 0}}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return payload


def main(payload_path: str) -> int:
    """Complete the payload's run if it left work, then record it: on the payload's API, else
    on a temporary server started here and stopped after."""
    from .serve import EmbeddedServer, prefect_home

    path = Path(payload_path)
    payload = json.loads(path.read_text(encoding="utf-8"))
    finished = finish(path, payload)
    if not finished.get("record", True):  # a collect flow's run: Prefect has it already
        path.unlink(missing_ok=True)
        return 0
    if finished is not payload:
        # Start again as a fresh process to record it: the heap clustering grew (~250 MB at
        # 30,000 items) stays with a process, and Prefect's client would come on top of it;
        # recording alone peaks at ~120 MB.
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "alliance_digest.flows.record",
                                  str(path)])
    if url := payload.get("api_url"):  # a server that runs anyway (digest serve, PREFECT_API_URL)
        _record_on(url, payload)
    else:
        home = prefect_home()
        home.mkdir(parents=True, exist_ok=True)
        # One recorder at a time per PREFECT_HOME: two temporary servers on one SQLite
        # database were seen to fail with "database is locked". The lock goes with the process.
        with (home / "digest-recorder.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            server = EmbeddedServer(home, temporary=True)
            server.start()
            try:
                server.wait_ready()
                _record_on(server.url, payload)
            finally:
                server.stop()
    path.unlink(missing_ok=True)
    return 0


def _record_on(url: str, payload: dict[str, Any]) -> None:
    """Record the payload's run on the Prefect API at `url`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        asyncio.run(record_run(payload))
        # The run's events (state changes, the artifact's) go out in the background: send
        # them before the server goes, not at exit into a closed port.
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=30)


if __name__ == "__main__":
    from . import quiet_prefect

    quiet_prefect()
    sys.exit(main(sys.argv[1]))
