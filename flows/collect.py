"""The `collect` flow: registry -> due sources -> fetch and parse in batches -> store -> health.

    settings, registry  = load config and sources.toml      (a broken one fails the flow)
    sync the sources table with the registry; pick the due sources
    split them into batches by host; submit fetch_and_parse(batch) to the task runner
        (the parse workers also score each entry and make its story tokens: triage/annotate)
    as each source is parsed: store its items, already triaged, and its health (the writer
        groups the sources waiting into one transaction, each source in its own savepoint,
        and indexes the group's new items for search in one statement), so storing overlaps
        fetching and parsing and parsed feeds never pile up in memory
    triage: cluster the new items into stories (and score any a killed run left unscored)
    finish the run row; publish a markdown artifact of source health

A failing source never fails the flow: it is recorded on the source and in `fetches`.
The steps below are plain functions (tests call them without Prefect); the tasks and the flow
only wire them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlite_utils
from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from ..errors import ConfigError, DigestError
from ..memory import limit_malloc_arenas, release_free_memory
from ..settings import CollectSettings, HttpSettings, Settings, load_settings
from ..sources.batch import (
    AfterParse,
    default_parse_processes,
    fetch_batch,
    init_parse_worker,
    split_by_host,
)
from ..sources.registry import load_registry
from ..sources.schedule import next_fetch_at
from ..sources.types import Entry, FetchRequest, Outcome, SourceConfig
from ..store.db import open_db, utcnow, write_transaction
from ..store.items import index_in_bulk, newest_published, store_entries
from ..store.runs import (
    FetchRecord,
    close_abandoned_runs,
    finish_run,
    record_fetch,
    run_fetches,
    start_run,
)
from ..store.sources import (
    KEEP,
    SourceHealth,
    due_sources,
    is_stale,
    record_health,
    sync_sources,
)
from ..triage.annotate import Annotator, source_fields
from ..triage.rules import Rules, load_rules
from ..triage.run import triage_new


class Progress(Protocol):
    """What the CLI's progress bar implements; the flow reports to it when one is set."""

    def started(self, total: int) -> None: ...

    def done(self, outcome: Outcome) -> None: ...


#: The progress reporter of the process that runs the flow (the CLI sets it), else None.
progress: Progress | None = None
#: Fewer due sources than this are parsed in-process: a pool costs more than it saves.
POOL_THRESHOLD = 8
#: Batches (task runs) per collect run: enough to keep both cores busy, few enough to be cheap.
MAX_BATCHES = 4

#: Sources stored in one transaction at most (each in its own savepoint): fewer commits, and
#: a crash loses at most this many sources' writes (they are fetched again next run).
GROUP_SIZE = 100
#: Parsed sources waiting for the writer at most, and entries waiting or being written not yet
#: stored; beyond this the fetch threads wait. Entries bound memory when large feeds
#: (hundreds of long entries) come together.
QUEUE_SIZE = GROUP_SIZE
QUEUE_ENTRIES = 3_000
#: Entries the writer lets gather before it writes a group, unless a fetch thread waits for
#: room, a batch has ended or the oldest outcome has waited GROUP_WAIT seconds. The search
#: index writes a segment per group and merges small segments again and again: groups of
#: ~2,000 entries instead of the ~260 the writer took as they came cut the index's CPU by a
#: sixth (measured on the benchmark's 40,000 items). Each stored source leaves memory (and
#: QUEUE_ENTRIES) at once, so a larger group does not hold more in memory.
GROUP_ENTRIES = 1_500
GROUP_WAIT = 1.0
#: The writer gives freed memory back to the OS after storing this many sources.
TRIM_EVERY = 50

_parse_pool: Executor | None = None
#: What the fetch task runs on each feed it parses in-process (the pool's workers have theirs).
_after_parse: AfterParse | None = None
#: Where the fetch task hands each outcome when the flow stores them as they come (in-process).
_sink: Callable[[Outcome], None] | None = None
_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def request_for(row: Mapping[str, Any], cfg: SourceConfig | None) -> FetchRequest:
    """The fetch request for a sources row: its current URL and caching info, plus config."""
    return FetchRequest(
        name=row["name"],
        url=row["url"],
        kind=row.get("kind") or "feed",
        headers=dict(cfg.headers) if cfg else {},
        etag=row.get("etag"),
        last_modified=row.get("last_modified"),
        language=row.get("language") or None,
        options=dict(cfg.options) if cfg else {},
    )


def health_values(row: Mapping[str, Any], outcome: Outcome, collect: CollectSettings,
                  now: datetime, newest: str | None) -> SourceHealth:
    """What a fetch outcome changes on its source row (pure: no I/O)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = outcome.status != "failed"
    failures = 0 if ok else int(row.get("consecutive_failures") or 0) + 1
    every_fetch: dict[str, Any] = dict(
        last_status=outcome.http_status,
        last_outcome=outcome.status,
        last_fetched_at=stamp,
        consecutive_failures=failures,
        next_fetch_at=next_fetch_at(
            now, ok=ok, interval_minutes=row.get("interval_minutes") or collect.interval_minutes,
            consecutive_failures=failures, retry_after=outcome.retry_after,
            max_age=outcome.max_age, max_backoff_minutes=collect.max_backoff_minutes,
        ).strftime("%Y-%m-%dT%H:%M:%SZ"),
        url=outcome.permanent_url or KEEP,
        newest_item_at=newest if newest and newest > (row.get("newest_item_at") or "") else KEEP,
    )
    if ok:
        return SourceHealth(
            **every_fetch, last_error=None, last_error_kind=None, last_success_at=stamp,
            etag=outcome.etag, last_modified=outcome.last_modified,
            # A 304 says nothing about the body: the last one's warning stays.
            warning=("; ".join(outcome.warnings) or None) if outcome.status == "ok" else KEEP,
        )
    # A body that arrived and did not parse forgets its validators (the fetch step cleared
    # them), so the next fetch gets the body again rather than a 304; any other failure
    # keeps them.
    parse_failure = (outcome.http_status is not None and outcome.error_kind is not None
                     and outcome.error_kind.is_parse)
    return SourceHealth(
        **every_fetch, last_error=outcome.error, last_error_kind=outcome.error_kind,
        etag=outcome.etag if parse_failure else KEEP,
        last_modified=outcome.last_modified if parse_failure else KEEP,
        disabled_reason=f"{outcome.error} (at {stamp})" if outcome.permanent else KEEP,
    )


def store_outcome(db: sqlite_utils.Database, run_id: int, row: Mapping[str, Any],
                  outcome: Outcome, collect: CollectSettings,
                  now: datetime | None = None,
                  triaged: dict[str, int] | None = None) -> dict[str, int]:
    """Write one source's items, health and fetch record in one transaction.

    Entries the parse step annotated (`ParsedFeed.extras`) are stored already triaged, and
    counted into `triaged` ("candidates", "filtered") when given.
    """
    now = now or datetime.now(UTC)
    # Entry holds only strings and None: a flat dict is what asdict() would build, minus its
    # recursive deep copy.
    entries = ([{f: getattr(e, f) for f in _ENTRY_FIELDS} for e in outcome.feed.entries]
               if outcome.feed else [])
    if outcome.feed and len(outcome.feed.extras) == len(entries):
        for entry, extra in zip(entries, outcome.feed.extras, strict=True):
            entry.update(extra)
    with db.atomic():
        new, updated = store_entries(db, row["id"], entries, now=utcnow(), triaged=triaged)
        record_health(db, row["id"], health_values(row, outcome, collect, now,
                                                   newest_published(entries)))
        record_fetch(db, run_id, row["id"], FetchRecord(
            outcome=outcome.status, http_status=outcome.http_status, bytes=outcome.bytes,
            duration_ms=outcome.duration_ms, error=outcome.error, error_kind=outcome.error_kind,
            warning="; ".join(outcome.warnings) or None, items_seen=len(entries),
            items_new=new, items_updated=updated,
        ))
    return {"items_new": new, "items_updated": updated}


def new_counts(due: int) -> dict[str, int]:
    """Zeroed run counters."""
    return {"sources_due": due, "sources_ok": 0, "sources_not_modified": 0, "sources_failed": 0,
            "items_new": 0, "items_updated": 0}


def store_outcomes(db: sqlite_utils.Database, run_id: int, rows: Mapping[str, Mapping[str, Any]],
                   outcomes: Iterable[Outcome], collect: CollectSettings,
                   counts: dict[str, int], failures: list[tuple[str, str]],
                   triaged: dict[str, int] | None = None) -> None:
    """Store a batch of outcomes in one transaction, adding to the counters.

    Each source is written in its own savepoint: one whose write fails leaves nothing behind,
    the sources before it are committed, and the error is raised. The new items of the whole
    batch are indexed for search in one statement (`index_in_bulk`).
    """
    error: Exception | None = None
    with write_transaction(db), index_in_bulk(db):
        for outcome in outcomes:
            try:
                written = store_outcome(db, run_id, rows[outcome.name], outcome, collect,
                                        triaged=triaged)
            except Exception as e:
                error = e
                break
            counts[f"sources_{outcome.status}"] += 1
            counts["items_new"] += written["items_new"]
            counts["items_updated"] += written["items_updated"]
            if outcome.status == "failed":
                failures.append((outcome.name, outcome.error or ""))
    if error is not None:
        raise error


class OutcomeWriter:
    """Stores outcomes in the flow's process while the fetch tasks are still producing them.

    Fetch threads `put` each outcome in a bounded queue (waiting when the writer falls behind:
    at most QUEUE_SIZE sources and QUEUE_ENTRIES entries wait, though one always may);
    `run` stores what is waiting in groups of up to GROUP_SIZE sources, one transaction each,
    once a group is worth writing (see GROUP_ENTRIES), until every batch has reported
    `batch_done`. If storing fails, `put` drops outcomes from then on, so the fetch tasks can
    finish, and `run` raises. `stop` ends a run early and waits until the writer has let go
    of the database.
    """

    def __init__(self, store: Callable[[Iterable[Outcome]], None]) -> None:
        self._store = store
        self._waiting: deque[Outcome | None] = deque()
        self._entries = 0
        #: Entries of the group being written that are not stored yet.
        self._held = 0
        #: Batch ends waiting; fetch threads waiting for room; when the oldest outcome came.
        self._ends = 0
        self._blocked = 0
        self._since = 0.0
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    def put(self, outcome: Outcome | None) -> None:
        """Queue an outcome (None: a batch is done); waits while the queue is full."""
        weight = _entries_of(outcome)
        with self._changed:
            self._blocked += 1
            while not self._stopped.is_set() and self._waiting and (
                len(self._waiting) >= QUEUE_SIZE
                or self._entries + self._held + weight > QUEUE_ENTRIES
            ):
                self._changed.notify_all()  # the writer stops gathering: someone waits
                self._changed.wait(0.2)
            self._blocked -= 1
            if self._stopped.is_set():
                return
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting.append(outcome)
            self._entries += weight
            self._ends += outcome is None
            self._changed.notify_all()

    def batch_done(self, _future: object = None) -> None:
        self.put(None)

    def stop(self, timeout: float = 60.0) -> None:
        """Drop outcomes from now on, end `run`, and wait for a write in progress to finish."""
        self._stopped.set()
        self._idle.wait(timeout)

    def _ready(self) -> bool:
        """True when what is waiting should be written now rather than gather more."""
        return (self._entries >= GROUP_ENTRIES or len(self._waiting) >= GROUP_SIZE
                or self._ends > 0 or self._blocked > 0 or self._stopped.is_set()
                or time.monotonic() - self._since >= GROUP_WAIT)

    def _take(self) -> list[Outcome | None]:
        """Up to GROUP_SIZE sources' outcomes (and batch ends) once ready; [] after a short wait."""
        with self._changed:
            if not self._waiting:
                self._changed.wait(0.2)
            while self._waiting and not self._ready():
                self._changed.wait(max(0.01, min(0.2, self._since + GROUP_WAIT
                                                 - time.monotonic())))
            taken: list[Outcome | None] = []
            sources = 0
            while self._waiting and sources < GROUP_SIZE:
                item = self._waiting.popleft()
                self._entries -= _entries_of(item)
                self._held += _entries_of(item)
                self._ends -= item is None
                sources += item is not None
                taken.append(item)
            if self._waiting:
                self._since = time.monotonic()
            if taken:
                self._changed.notify_all()
            return taken

    def _handed_over(self, group: list[Outcome]) -> Iterator[Outcome]:
        """The group's outcomes in order, each let go of (and out of the budget) once stored."""
        group.reverse()
        try:
            while group:
                outcome = group.pop()
                yield outcome  # the store asks for the next one when this one is written
                with self._changed:
                    self._held -= _entries_of(outcome)
                    self._changed.notify_all()
                del outcome
        finally:  # also when the store stops early (it then raises): nothing is held
            with self._changed:
                self._held = 0
                self._changed.notify_all()

    def run(self, batches: int) -> None:
        """Store outcomes until `batches` batches have reported done (or `stop`)."""
        done = stored = 0
        self._idle.clear()
        try:
            while done < batches and not self._stopped.is_set():
                taken = self._take()
                group = [item for item in taken if item is not None]
                done += len(taken) - len(group)
                del taken
                if group:
                    stored += len(group)
                    self._store(self._handed_over(group))
                    if stored >= TRIM_EVERY:
                        # Each parsed feed passes through this process once; without this its
                        # freed memory stays resident and the process only grows.
                        release_free_memory()
                        stored = 0
        except BaseException:
            self._stopped.set()
            raise
        finally:
            self._idle.set()


def _entries_of(outcome: Outcome | None) -> int:
    return len(outcome.feed.entries) if outcome is not None and outcome.feed else 0


def health_markdown(db: sqlite_utils.Database, run_id: int, stale_days: int) -> str:
    """A markdown table of this run's fetches, worst first, for the Prefect UI."""
    now = datetime.now(UTC)
    rows = run_fetches(db, run_id)
    lines = ["| source | outcome | HTTP | new | updated | ms | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        note = r["error"] or r["warning"] or ""
        if is_stale(r, now, stale_days):
            note = f"stale: newest item {r['newest_item_at'] or 'never'}; {note}".rstrip("; ")
        cells = [r["name"], r["outcome"], r["http_status"] or "", r["items_new"],
                 r["items_updated"], r["duration_ms"], note]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


@task(name="fetch-and-parse", cache_policy=NO_CACHE, retries=0)
def fetch_and_parse(batch: Sequence[FetchRequest], http: HttpSettings) -> list[Outcome]:
    """Fetch and parse one batch of sources (hosts never split across batches).

    Run by the flow's own process, it hands each outcome to the flow's writer as soon as it is
    ready and returns nothing; elsewhere (a Dask worker) the outcomes are its result.
    """
    sink, bar, after_parse = _sink, progress, _after_parse

    def done(outcome: Outcome) -> None:
        if bar is not None:
            bar.done(outcome)
        if sink is not None:
            sink(outcome)

    return fetch_batch(batch, http, parse_pool=_parse_pool, on_outcome=done,
                       keep_outcomes=sink is None, after_parse=after_parse)


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
    runner = DaskTaskRunner(address=address).__enter__()
    try:
        runner.client  # noqa: B018 (connects)
    except Exception as e:
        runner.__exit__(None, None, None)
        raise DigestError(f"[scale] dask_address: cannot reach the Dask scheduler at "
                          f"{address}: {type(e).__name__}: {e}") from None
    return runner


def submit_batches(batches: Sequence[Sequence[FetchRequest]], http: HttpSettings,
                   remote: TaskRunner[Any] | None = None) -> list[PrefectFuture[list[Outcome]]]:
    """Submit fetch_and_parse per batch: to the flow's task runner, or to `remote` (Dask).

    On Dask each batch fetches and parses on a worker (no process pool there) and its
    outcomes come back as the task's result; only the flow's process writes SQLite.
    `[http] max_connections` is shared out between the batches: it caps the whole run.
    """
    if batches:
        http = replace(http, max_connections=max(
            http.per_host_concurrency, http.max_connections // len(batches)))
    if remote is None:
        return [fetch_and_parse.submit(b, http) for b in batches]
    return [remote.submit(remote_fetch_and_parse, {"batch": b, "http": http}) for b in batches]


def fetch_and_parse_remote(batch: Sequence[FetchRequest], http: HttpSettings) -> list[Outcome]:
    """Fetch and parse one batch where it runs (a Dask worker): the outcomes are the result."""
    return fetch_batch(batch, http)


#: The fetch task as Dask runs it. Its function is importable under its own name, so it is
#: pickled by reference; fetch_and_parse's function is not (the module name holds the task),
#: so it would travel by value with its globals: the flow's writer (an SQLite connection) and
#: the progress bar, which cannot be pickled.
remote_fetch_and_parse = task(fetch_and_parse_remote, name="fetch-and-parse",
                              cache_policy=NO_CACHE, retries=0)


@task(name="triage", cache_policy=NO_CACHE)
def triage(db: sqlite_utils.Database, settings: Settings, rules: Rules,
           stored: Mapping[str, int]) -> dict[str, Any]:
    """Cluster the items this run stored, scoring any stored unscored (an interrupted run's).

    `stored`: how many items the run stored already triaged, as candidates and filtered.
    """
    counts = triage_new(db, settings, rules)
    for key in ("candidates", "filtered"):
        counts[key] += stored.get(key, 0)
        counts["scored"] += stored.get(key, 0)
    return counts


def start_parse_pool(settings: Settings, annotator: Annotator) -> ProcessPoolExecutor:
    """Parser processes for a large run; each also triages what it parses (`annotator`)."""
    ctx = multiprocessing.get_context("forkserver")
    # Preloaded in the fork server, so each worker starts with them imported (and shared).
    ctx.set_forkserver_preload(["alliance_digest.sources.parse",
                                "alliance_digest.triage.annotate"])
    return ProcessPoolExecutor(
        max_workers=default_parse_processes(settings.collect.parse_processes), mp_context=ctx,
        initializer=init_parse_worker, initargs=(annotator,),
    )


def prepare(settings: Settings, *, force: bool, names: Sequence[str] | None,
            ) -> tuple[sqlite_utils.Database, dict[str, SourceConfig], list[dict[str, Any]]]:
    """Open the store, sync it with the registry and pick the sources to fetch."""
    registry = load_registry(settings.sources_file)
    db = open_db(settings.store_path)
    close_abandoned_runs(db)
    sync_sources(db, [asdict(c) for c in registry])
    due = due_sources(db, force=force, names=names or None)
    return db, {c.name: c for c in registry}, due


@flow(name="collect", log_prints=False, validate_parameters=False)
async def collect(force: bool = False, sources: list[str] | None = None,
                  config: str | None = None) -> dict[str, Any]:
    """Collect every due source (all with `force`, or the named `sources`) into the store."""
    global _parse_pool, _sink, _after_parse
    limit_malloc_arenas()  # before the fetch threads start
    settings = load_settings(config)
    rules = load_rules(settings)  # a broken rules file fails the run before anything is fetched
    db, registry, due = prepare(settings, force=force, names=sources)
    run_id = start_run(db, forced=force, source_filter=",".join(sources or []) or None)
    counts = new_counts(len(due))
    failures: list[tuple[str, str]] = []
    rows = {r["name"]: r for r in due}
    requests_ = [request_for(r, registry.get(r["name"])) for r in due]
    if progress is not None:
        progress.started(len(requests_))
    annotator = Annotator(rules, {r["name"]: source_fields(r) for r in due})
    stored: dict[str, int] = {}
    pool = None
    if len(requests_) >= POOL_THRESHOLD and not settings.scale.dask_address:
        pool = start_parse_pool(settings, annotator)
    _parse_pool, _after_parse = pool, annotator
    writer = OutcomeWriter(lambda group: store_outcomes(db, run_id, rows, group, settings.collect,
                                                        counts, failures, stored))
    _sink = writer.put
    remote: TaskRunner[Any] | None = None
    try:
        if settings.scale.dask_address:
            remote = dask_task_runner(settings.scale.dask_address)
        futures = submit_batches(split_by_host(requests_, MAX_BATCHES), settings.http, remote)
        for future in futures:
            future.add_done_callback(writer.batch_done)
        await asyncio.to_thread(writer.run, len(futures))
        for future in futures:  # raises a failed batch's error; stores a remote batch's outcomes
            store_outcomes(db, run_id, rows, future.result(), settings.collect, counts, failures,
                           stored)
        if pool is not None:
            pool.shutdown()  # the parser processes' memory is not needed for triage
        release_free_memory()
        triaged = triage(db, settings, rules, stored)
    except BaseException as e:
        writer.stop()  # the writer's thread must be done with the database first
        finish_run(db, run_id, counts, error=f"{type(e).__name__}: {e}")
        raise
    finally:
        writer.stop()
        _parse_pool = _sink = _after_parse = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if remote is not None:
            remote.__exit__(None, None, None)
    run = finish_run(db, run_id, counts)
    await acreate_markdown_artifact(
        key="collect-health",
        markdown=f"# Collect run {run_id}\n\n"
        + health_markdown(db, run_id, settings.collect.stale_days),
        description="Source health after this collect run",
    )
    summary = {**run, "failures": failures, "store_path": str(settings.store_path),
               "triage": triaged}
    db.close()
    return summary


#: With [scale] dask_address, Prefect sends the flow (in the run's context) with every task
#: to Dask. Under its own name the module holds the Flow, so the flow's function would be
#: pickled by value, globals included (the writer's SQLite connection, the CLI's progress
#: bar: neither can be pickled); under this importable name it is pickled by reference.
_collect_fn = collect.fn
_collect_fn.__qualname__ = "_collect_fn"


def collect_with_runner(max_workers: int = MAX_BATCHES) -> Any:
    """The collect flow with the default local task runner."""
    return collect.with_options(task_runner=ThreadPoolTaskRunner(max_workers=max_workers))
