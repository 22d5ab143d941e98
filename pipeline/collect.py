"""Collect once: the due sources fetched, parsed, stored already triaged, health recorded.

    rules             = load_rules(settings)             (a broken rules file fails first)
    collect lock      = <db>.collect-lock (store/lock.py: another collect running ->
                        CollectRunning at once, nothing written)
    db, registry, due = prepare(settings, force, names)  (sync the sources table, pick the due)
    rules             = rules + the current learned model (an unusable one: rules alone, and
                        the summary's triage.model_warning says why)
    run_id            = start_run(); counters at zero
    progress.started(len(due))
    parse pool        = parser processes for a large local run, started by the first feed
                        that needs parsing (none on an all-304 pass; at once when some source
                        cannot answer 304); they also score each entry and make its story
                        tokens (triage/annotate) as they parse
    for batch in split_by_host(requests, MAX_BATCHES):
        future = submit_batch(BatchJob(batch, ...))     (plain threads by default; the collect
                                                         flow submits Prefect tasks, or Dask's)
    as each outcome is ready: progress.done(outcome); writer.put(outcome)
    writer (this thread): store what waits in groups, one transaction a group, each source in
        its own savepoint (items, health, fetch record), the new items left for the search
        index to take in bulk (store.items.defer_search_index); so storing overlaps fetching
        and parsing and parsed feeds never pile up in memory
    for future in futures: store its outcomes (a remote batch's) or raise its error
    index_backlog(db)                                   (the run's new items into the search
                                                         index in bulk, with any a killed run
                                                         left out)
    triaged = triage(db, settings, rules, stored)       (cluster the new items into stories;
                                                         score any a killed run left unscored;
                                                         what fails or outruns the budget is
                                                         set aside, noted on the run; skipped
                                                         when nothing waits)
        or, with finish_later_above and more items than that waiting to be indexed: neither,
        the caller hands both to finish_collect in a process of its own after the command
    finish the run row -> CollectSummary
on any error: the writer stops, the run row records the error, the error is raised.

A failing source never fails the run: it is recorded on the source and in `fetches`. Nothing
here knows Prefect: `flows/collect.py` passes its tasks in (`submit_batch`, `triage`), the CLI
its progress bar (`progress`), and tests call `collect_once` as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from ..errors import CollectRunning, DigestError
from ..memory import limit_malloc_arenas, release_free_memory
from ..settings import CollectSettings, HttpSettings, Settings
from ..sources.batch import (
    AfterParse,
    default_parse_processes,
    fetch_batch,
    init_parse_worker,
    split_by_host,
)
from ..sources.next_fetch import next_fetch_at
from ..sources.registry import load_registry
from ..sources.types import Entry, FetchRequest, Outcome, SourceConfig
from ..store import set_aside
from ..store.db import open_db, write_transaction
from ..store.items import (
    defer_search_index,
    index_backlog,
    newest_published,
    search_backlog,
    store_entries,
)
from ..store.lock import FINISH, collect_lock
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
from ..timestamps import utc_timestamp, utcnow
from ..triage.annotate import Annotator, source_fields
from ..triage.model import with_current_model
from ..triage.rules import Rules, load_rules

#: A run that leaves more new items than this to index and cluster can leave them to a process
#: of its own (collect_once's `finish_later_above`, what `digest collect` passes): fewer take
#: under a second, less than starting that process.
FINISH_LATER_ABOVE = 2_000
#: Fewer due sources than this are parsed in-process: a pool costs more than it saves.
POOL_THRESHOLD = 8
#: Batches per collect run: enough to keep both cores busy, few enough to be cheap (each is a
#: task run in Prefect).
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
#: room, a batch has ended or the oldest outcome has waited GROUP_WAIT seconds: fewer, larger
#: transactions (when the search index was written a segment per group, ~1,500 entries
#: instead of the ~260 the writer took as they came cut its CPU by a sixth; it is written in
#: bulk at the end of the run now). Each stored source leaves memory (and QUEUE_ENTRIES) at
#: once, so a larger group does not hold more in memory.
GROUP_ENTRIES = 1_500
GROUP_WAIT = 1.0
#: The writer gives freed memory back to the OS after storing this many sources.
TRIM_EVERY = 50

_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


# --- what callers pass in, and what they get back -----------------------------------------------


class Progress(Protocol):
    """A progress report (the CLI's bar): told how many sources are due, then each outcome."""

    def started(self, total: int) -> None: ...

    def done(self, outcome: Outcome) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchJob:
    """One batch of sources to fetch and parse (a host's sources are never split across
    batches), and where its outcomes go when it runs in this process (`run_batch`)."""

    #: The batch's fetch requests.
    requests: tuple[FetchRequest, ...]
    #: HTTP settings, with this batch's share of `max_connections` (which caps the whole run).
    http: HttpSettings
    #: The run's parser processes; None: parse in the fetch threads.
    parse_pool: Executor | None
    #: What runs on each feed parsed in the fetch threads (the pool's workers have their own).
    after_parse: AfterParse | None
    #: Where each outcome goes as soon as it is ready: the progress report, then the writer.
    on_outcome: Callable[[Outcome], None]


class BatchFuture(Protocol):
    """A submitted batch: a concurrent.futures.Future, or a Prefect task run's future."""

    def result(self) -> list[Outcome]: ...

    def add_done_callback(self, fn: Callable[[Any], object]) -> None: ...


#: Starts one batch somewhere and returns its future. The future's result is the outcomes the
#: batch did not hand to `on_outcome` (a batch run elsewhere, e.g. on Dask, returns them all).
SubmitBatch = Callable[[BatchJob], BatchFuture]
#: The last step: cluster what the run stored (db, settings, rules, items stored triaged).
TriageStep = Callable[[sqlite_utils.Database, Settings, Rules, Mapping[str, int]],
                      dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CollectSummary:
    """What one collect run did."""

    #: The run's row in `runs`, finished: id, started_at, finished_at, status, forced,
    #: source_filter, error and the counters (sources_due, sources_ok, sources_not_modified,
    #: sources_failed, items_new, items_updated).
    run: Mapping[str, Any]
    #: (source name, error) for each source that failed, in the order they were stored.
    failures: tuple[tuple[str, str], ...]
    #: The database the run wrote to.
    store_path: Path
    #: What triage did: scored, candidates, filtered, clustered, in_stories, stories.
    triage: Mapping[str, Any]

    @property
    def run_id(self) -> int:
        return int(self.run["id"])

    def as_dict(self) -> dict[str, Any]:
        """The run row, plus failures, store_path and triage: what the collect flow returns."""
        return {**self.run, "failures": list(self.failures), "store_path": str(self.store_path),
                "triage": dict(self.triage)}


# --- the use case -------------------------------------------------------------------------------


def collect_once(settings: Settings, *, force: bool = False, names: Sequence[str] | None = None,
                 progress: Progress | None = None, submit_batch: SubmitBatch | None = None,
                 triage: TriageStep | None = None,
                 stop: threading.Event | None = None,
                 finish_later_above: int | None = None) -> CollectSummary:
    """Collect every due source (every one with `force`, exactly `names` when given).

    `submit_batch` runs each batch (default: a thread each); `triage` is the last step
    (default `triage_collected`); setting `stop` ends the run early (it is recorded as failed
    and this raises DigestError). Raises CollectRunning at once while another collect holds
    the database's collect lock (after waiting, while a process finishing a run holds it).

    With `finish_later_above`, a run that leaves more items than that to add to the search
    index skips that and the clustering: the caller hands them to `finish_collect` in a
    process of its own (the summary's `triage["pending"]` says how many items wait; they
    are stored, scored and listed already, each its own story until clustered).
    """
    limit_malloc_arenas()  # before the fetch threads start
    rules = load_rules(settings)  # a broken rules file fails the run before anything is fetched
    with collect_lock(settings.store_path):  # one writer: CollectRunning if another runs
        return _collect_locked(settings, rules, force=force, names=names, progress=progress,
                               submit_batch=submit_batch, triage=triage, stop=stop,
                               finish_later_above=finish_later_above)


def _collect_locked(settings: Settings, rules: Rules, *, force: bool,
                    names: Sequence[str] | None, progress: Progress | None,
                    submit_batch: SubmitBatch | None, triage: TriageStep | None,
                    stop: threading.Event | None,
                    finish_later_above: int | None) -> CollectSummary:
    """`collect_once` with the collect lock held."""
    db, registry, due = prepare(settings, force=force, names=names)
    try:
        rules, model_warning = with_current_model(db, rules)
        run_id = start_run(db, forced=force, source_filter=",".join(names or []) or None)
        tally = RunTally(new_counts(len(due)))
        try:
            requests_ = [request_for(r, registry.get(r["name"])) for r in due]
            _fetch_and_store(db, run_id, settings, rules, {r["name"]: r for r in due},
                             requests_, tally, progress=progress, submit_batch=submit_batch,
                             stop=stop or threading.Event())
            pending = search_backlog(db)
            if finish_later_above is not None and pending > finish_later_above:
                triaged = {**untriaged(), **tally.triaged, "pending": pending,
                           "scored": sum(tally.triaged.values())}
            else:
                index_backlog(db)  # this run's items, and any a killed run left unindexed
                triaged = (triage or triage_collected)(db, settings, rules, tally.triaged)
                note_set_aside(db, run_id, triaged)
            triaged = {**triaged, "model": rules.model.version if rules.model else None,
                       "model_warning": model_warning}
        except BaseException as e:
            finish_run(db, run_id, tally.counts, error=f"{type(e).__name__}: {e}")
            raise
        run = finish_run(db, run_id, tally.counts)
    finally:
        db.close()
    return CollectSummary(run=run, failures=tuple(tally.failures),
                          store_path=settings.store_path, triage=triaged)


async def collect_in_thread(settings: Settings, **options: Any) -> CollectSummary:
    """`collect_once` in a worker thread, for async callers (the collect flow).

    Cancelling the caller stops the run: the writer stops storing, the run row records it, and
    the thread ends without waiting for the batches still fetching.
    """
    stop = threading.Event()
    try:
        return await asyncio.to_thread(collect_once, settings, stop=stop, **options)
    except BaseException:
        stop.set()
        raise


def _fetch_and_store(db: sqlite_utils.Database, run_id: int, settings: Settings, rules: Rules,
                     rows: Mapping[str, Mapping[str, Any]], requests_: Sequence[FetchRequest],
                     tally: RunTally, *, progress: Progress | None,
                     submit_batch: SubmitBatch | None, stop: threading.Event) -> None:
    """Fetch and parse every request in batches, storing outcomes as they come (module doc)."""
    if progress is not None:
        progress.started(len(requests_))
    annotator = Annotator(rules, {name: source_fields(r) for name, r in rows.items()})
    writer = OutcomeWriter(
        lambda group: store_outcomes(db, run_id, rows, group, settings.collect, tally), stop=stop)

    def on_outcome(outcome: Outcome) -> None:
        if progress is not None:
            progress.done(outcome)
        writer.put(outcome)

    with contextlib.ExitStack() as cleanup:
        pool = None
        # On Dask the batches parse where they run; only this process writes SQLite.
        if len(requests_) >= POOL_THRESHOLD and not settings.scale.dask_address:
            pool = LazyParsePool(lambda: start_parse_pool(settings, annotator))
            cleanup.callback(pool.shutdown, wait=False, cancel_futures=True)
            if bodies_expected(rows, requests_):
                pool.warm(default_parse_processes(settings.collect.parse_processes))
        if submit_batch is None:
            threads = ThreadPoolExecutor(MAX_BATCHES, thread_name_prefix="batch")
            cleanup.callback(threads.shutdown, wait=False, cancel_futures=True)
            submit_batch = _submitter(threads)
        cleanup.callback(writer.stop)  # first on the way out: the batches' outcomes are dropped
        futures = [submit_batch(job) for job in batch_jobs(requests_, settings.http, pool,
                                                           annotator, on_outcome)]
        for future in futures:
            future.add_done_callback(writer.batch_done)
        writer.run(len(futures))
        if stop.is_set():
            raise DigestError(f"collect run {run_id} was stopped before it finished")
        for future in futures:  # raises a failed batch's error; stores a remote batch's outcomes
            if outcomes := future.result():
                store_outcomes(db, run_id, rows, outcomes, settings.collect, tally)
        if pool is not None:
            pool.shutdown()  # the parser processes' memory is not needed for triage
    release_free_memory()


def _submitter(threads: Executor) -> SubmitBatch:
    return lambda job: threads.submit(run_batch, job)


def batch_jobs(requests_: Sequence[FetchRequest], http: HttpSettings,
               parse_pool: Executor | None, after_parse: AfterParse | None,
               on_outcome: Callable[[Outcome], None]) -> list[BatchJob]:
    """Split requests into at most MAX_BATCHES batches by host, sharing out max_connections."""
    batches = split_by_host(requests_, MAX_BATCHES)
    if batches:
        http = replace(http, max_connections=max(
            http.per_host_concurrency, http.max_connections // len(batches)))
    return [BatchJob(tuple(b), http, parse_pool, after_parse, on_outcome) for b in batches]


def run_batch(job: BatchJob) -> list[Outcome]:
    """Fetch and parse a batch in this process, each outcome to `job.on_outcome`; returns []."""
    return fetch_batch(job.requests, job.http, parse_pool=job.parse_pool,
                       on_outcome=job.on_outcome, keep_outcomes=False,
                       after_parse=job.after_parse)


def fetch_and_parse_remote(batch: Sequence[FetchRequest], http: HttpSettings) -> list[Outcome]:
    """Fetch and parse a batch where it runs (a Dask worker): the outcomes are the result.

    Module-level and given only plain data, so it travels to a worker by reference.
    """
    return fetch_batch(batch, http)


def triage_collected(db: sqlite_utils.Database, settings: Settings, rules: Rules,
                     stored: Mapping[str, int]) -> dict[str, Any]:
    """Cluster the items this run stored, scoring any stored unscored (an interrupted run's).

    `stored`: how many items the run stored already triaged, as candidates and filtered.
    A run that stored nothing, on a store with nothing waiting, skips triage and its imports
    (the clustering's scipy: a tenth of a second of an all-304 pass).
    """
    if not any(stored.values()) and nothing_to_triage(db):
        return untriaged()
    from ..triage.run import triage_new

    counts = triage_new(db, settings, rules)
    for key in ("candidates", "filtered"):
        counts[key] += stored.get(key, 0)
        counts["scored"] += stored.get(key, 0)
    return counts


def untriaged() -> dict[str, Any]:
    """The triage counts of a run that triaged nothing."""
    return {**dict.fromkeys(("scored", "moved_in", "moved_out", "candidates", "filtered",
                             "clustered", "in_stories", "stories", "set_aside",
                             "set_aside_total", "retrying"), 0), "triage_error": None}


def finish_collect(settings: Settings, run_id: int,
                   stored: Mapping[str, int]) -> dict[str, Any] | None:
    """Complete what collect run `run_id` left (`collect_once`'s `finish_later_above`).

    Adds the search backlog to the index, then clusters the waiting items (scoring any a
    killed run left unscored), under the collect lock as a run would; returns the run's triage
    counts (`stored`: the run's own, as collect_once's summary had them). None when a collect
    holds the lock: that run completes the backlog and the clustering itself, or leaves them
    to a finishing process of its own. Killed half-way, the next run goes on from where this
    stopped (the backlog keeps its place a chunk at a time; triage sets aside what it was
    clustering, as in a run).
    """
    try:
        with collect_lock(settings.store_path, purpose=FINISH, wait_for_finish=0):
            db = open_db(settings.store_path)
            try:
                index_backlog(db)
                rules, _warning = with_current_model(db, load_rules(settings))
                triaged = triage_collected(db, settings, rules, stored)
                note_set_aside(db, run_id, triaged)
            finally:
                db.close()
    except CollectRunning:
        return None
    return triaged


def note_set_aside(db: sqlite_utils.Database, run_id: int, triaged: Mapping[str, Any]) -> None:
    """Record on the run what its triage set aside (items that wait; collect went on)."""
    if triaged.get("set_aside") or triaged.get("triage_error"):
        set_aside.note_run(db, run_id, int(triaged.get("set_aside") or 0),
                           triaged.get("triage_error"))


def nothing_to_triage(db: sqlite_utils.Database) -> bool:
    """No item waits to be scored or clustered (both checks use an index)."""
    return not db.execute(
        "SELECT EXISTS (SELECT 1 FROM items WHERE triaged_at IS NULL) "
        "OR EXISTS (SELECT 1 FROM items WHERE cluster_id IS NULL) "
        "OR EXISTS (SELECT 1 FROM item_tokens_new)").fetchone()[0]


# --- the steps ----------------------------------------------------------------------------------


def prepare(settings: Settings, *, force: bool, names: Sequence[str] | None,
            ) -> tuple[sqlite_utils.Database, dict[str, SourceConfig], list[dict[str, Any]]]:
    """Open the store, sync it with the registry and pick the sources to fetch."""
    registry = load_registry(settings.sources_file)
    db = open_db(settings.store_path)
    close_abandoned_runs(db)
    sync_sources(db, [asdict(c) for c in registry])
    due = due_sources(db, force=force, names=names or None)
    return db, {c.name: c for c in registry}, due


def request_for(row: Mapping[str, Any] | None, cfg: SourceConfig | None) -> FetchRequest:
    """The fetch request for a source: its stored row's URL and caching info, plus its config.

    Without a row (`digest sources check`), the registry's URL with no caching info: the
    fetch is unconditional.
    """
    if row is None:
        if cfg is None:
            raise TypeError("request_for needs a sources row or a SourceConfig")
        row = {"name": cfg.name, "url": cfg.url, "kind": cfg.kind, "language": cfg.language}
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


def bodies_expected(rows: Mapping[str, Mapping[str, Any]],
                    requests_: Sequence[FetchRequest]) -> bool:
    """Whether some source will surely send a body: one that never answered, or last answered
    with a body, and has no validators to send cannot answer 304 (a source that failed last
    time is likely to fail again: it does not count)."""
    return any(r.etag is None and r.last_modified is None
               and (rows.get(r.name) or {}).get("last_outcome") != "failed" for r in requests_)


class LazyParsePool(Executor):
    """The run's parser processes, started by the first feed that needs parsing.

    A pass where every source answers 304 (or fails) parses nothing: it then starts no
    processes at all (measured: about a second of CPU and 100 MB for two idle workers).
    """

    def __init__(self, start: Callable[[], Executor]) -> None:
        self._start = start
        self._pool: Executor | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        return self._pool is not None

    def warm(self, processes: int) -> None:
        """Start the processes now (they start while the first requests are in flight)."""
        for _ in range(processes):
            self.submit(os.getpid)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._pool is None:
                self._pool = self._start()
            pool = self._pool
        return pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def health_values(row: Mapping[str, Any], outcome: Outcome, collect: CollectSettings,
                  now: datetime, newest: str | None) -> SourceHealth:
    """What a fetch outcome changes on its source row (pure: no I/O)."""
    stamp = utc_timestamp(now)
    ok = outcome.status != "failed"
    failures = 0 if ok else int(row.get("consecutive_failures") or 0) + 1
    every_fetch: dict[str, Any] = dict(
        last_status=outcome.http_status,
        last_outcome=outcome.status,
        last_fetched_at=stamp,
        consecutive_failures=failures,
        next_fetch_at=utc_timestamp(next_fetch_at(
            now, ok=ok, interval_minutes=row.get("interval_minutes") or collect.interval_minutes,
            consecutive_failures=failures, retry_after=outcome.retry_after,
            max_age=outcome.max_age, max_backoff_minutes=collect.max_backoff_minutes,
        )),
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
                  triaged: dict[str, int] | None = None) -> tuple[int, int]:
    """Write one source's items, health and fetch record in one transaction; (new, updated).

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
    return new, updated


def new_counts(due: int) -> dict[str, int]:
    """Zeroed run counters."""
    return {"sources_due": due, "sources_ok": 0, "sources_not_modified": 0, "sources_failed": 0,
            "items_new": 0, "items_updated": 0}


@dataclass
class RunTally:
    """What a run has stored so far (the writer adds to it as it stores)."""

    #: The counters of the run's row (`new_counts`).
    counts: dict[str, int]
    #: (source name, error) of each failed source.
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Items stored already triaged, as "candidates" and "filtered".
    triaged: dict[str, int] = field(default_factory=dict)


def store_outcomes(db: sqlite_utils.Database, run_id: int, rows: Mapping[str, Mapping[str, Any]],
                   outcomes: Iterable[Outcome], collect: CollectSettings,
                   tally: RunTally) -> None:
    """Store a group of outcomes in one transaction, adding to the tally.

    Each source is written in its own savepoint: one whose write fails leaves nothing behind,
    the sources before it are committed, and the error is raised. The new items wait to be
    indexed for search in bulk at the end of the run (`defer_search_index`).
    """
    error: Exception | None = None
    with write_transaction(db):
        defer_search_index(db)
        for outcome in outcomes:
            try:
                new, updated = store_outcome(db, run_id, rows[outcome.name], outcome, collect,
                                             triaged=tally.triaged)
            except Exception as e:
                error = e
                break
            tally.counts[f"sources_{outcome.status}"] += 1
            tally.counts["items_new"] += new
            tally.counts["items_updated"] += updated
            if outcome.status == "failed":
                tally.failures.append((outcome.name, outcome.error or ""))
    if error is not None:
        raise error


class OutcomeWriter:
    """Stores outcomes in this process while the batches are still producing them.

    Fetch threads `put` each outcome in a bounded queue (waiting when the writer falls behind:
    at most QUEUE_SIZE sources and QUEUE_ENTRIES entries wait, though one always may);
    `run` stores what is waiting in groups of up to GROUP_SIZE sources, one transaction each,
    once a group is worth writing (see GROUP_ENTRIES), until every batch has reported
    `batch_done`. If storing fails, `put` drops outcomes from then on, so the batches can
    finish, and `run` raises. `stop` (or setting the `stop` event given) ends a run early;
    `stop` also waits until the writer has let go of the database.
    """

    def __init__(self, store: Callable[[Iterable[Outcome]], None],
                 stop: threading.Event | None = None) -> None:
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
        self._stopped = stop or threading.Event()
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


# --- the run's health, for people ---------------------------------------------------------------


def health_markdown(db: sqlite_utils.Database, run_id: int, stale_days: int) -> str:
    """A markdown table of a run's fetches, worst first (the collect flow's artifact)."""
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


def health_report(settings: Settings, run_id: int) -> str:
    """A run's source health as markdown, with its title, read from the store."""
    db = open_db(settings.store_path)
    try:
        return (f"# Collect run {run_id}\n\n"
                + health_markdown(db, run_id, settings.collect.stale_days))
    finally:
        db.close()
