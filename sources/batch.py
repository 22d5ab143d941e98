"""Fetching and parsing a batch of sources concurrently; one `Outcome` per source.

    for each request, in a bounded thread pool:
        with the host's slot (at most N requests in flight per host):
            response = http.fetch(request)          # conditional, capped, deadline-bound
        on SourceError: Outcome(failed)             # never raises: failures are data
        on 304: Outcome(not_modified)               # no parsing at all
        else: feed = parse(kind, body)              # in the process pool when one is given
              Outcome(ok, feed)

Parsing is CPU-bound, so with a process pool both cores parse while threads keep fetching.
Nothing here touches the database: outcomes go back to the collect use case
(pipeline/collect.py), which stores them, and a slow consumer holds fetching back (at most
`max_connections` outcomes are in progress or waiting), so parsed feeds never pile up in
memory; bodies over 1 MiB are parsed one at a time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import SourceError, SourceErrorKind, SourceFailure
from ..memory import release_free_memory
from ..settings import HttpSettings
from .http import HostLimiter, cache_hints, fetch, make_session
from .parse import parse
from .types import FetchRequest, Outcome, ParsedFeed

#: Bodies at least this large are parsed one at a time (parsing one takes tens of megabytes
#: at its peak; several at once would add those peaks up).
LARGE_BODY_BYTES = 1024 * 1024
#: After parsing a body at least this large, the worker hands the memory it freed back to the
#: OS (a parse takes several times its body at its peak; trimming costs about a millisecond).
TRIM_AFTER_BYTES = 256 * 1024
_large_parses = threading.Semaphore(1)

#: What a caller does with each parsed feed where it was parsed: (feed, source name) -> feed.
AfterParse = Callable[[ParsedFeed, str], ParsedFeed]
#: The after-parse step of this parse worker process (set by `init_parse_worker`).
_worker_after_parse: AfterParse | None = None


#: How much lower than the collect process the parse workers run (Unix nice increment).
PARSE_WORKER_NICENESS = 5


def init_parse_worker(after_parse: AfterParse | None) -> None:
    """Process pool initializer: run `after_parse` on every feed this worker parses.

    Given once per worker rather than with every job, so what it holds (compiled rules) is
    sent and rebuilt once per process. The worker also lowers its priority: when the cores
    are busy, the process that stores what the workers parse (and the editor desk, on a
    shared server) comes first, so parsed feeds do not pile up waiting for the writer and
    the desk stays responsive during a collect run; the workers still take every idle cycle.
    """
    global _worker_after_parse
    _worker_after_parse = after_parse
    with contextlib.suppress(AttributeError, OSError):  # no os.nice on Windows
        os.nice(PARSE_WORKER_NICENESS)


def parse_job(
    kind: str,
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    language: str | None,
    options: Mapping[str, Any],
    name: str = "",
    after_parse: AfterParse | None = None,
) -> ParsedFeed | SourceFailure:
    """Parse in a worker process; a parse failure comes back as a `SourceFailure`.

    Returning the error as data avoids pickling exception objects across processes. The feed
    goes through `after_parse` (else the worker's, see `init_parse_worker`) with the source's
    name.
    """
    try:
        feed = parse(kind, body, dict(headers), url, language, dict(options))
        after_parse = after_parse or _worker_after_parse
        return after_parse(feed, name) if after_parse is not None else feed
    except SourceError as e:
        return e.failure()
    finally:
        if len(body) >= TRIM_AFTER_BYTES:
            release_free_memory()


def fetch_one(
    session: requests.Session,
    request: FetchRequest,
    http: HttpSettings,
    limiter: HostLimiter,
    parse_pool: Executor | None = None,
    after_parse: AfterParse | None = None,
) -> Outcome:
    """Fetch and parse one source; every failure becomes a `failed` Outcome.

    `after_parse` runs on the parsed feed when it is parsed in this process; a pool's workers
    run their own (`init_parse_worker`).
    """
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with limiter.slot(request.url):
            response = fetch(session, request, http)
    except SourceError as e:
        return Outcome(
            name=request.name,
            status="failed",
            http_status=e.status,
            error=str(e),
            error_kind=e.kind,
            permanent=e.permanent,
            retry_after=e.retry_after,
            duration_ms=elapsed_ms(),
        )
    max_age, retry_after = cache_hints(response.headers)
    common: dict[str, Any] = dict(
        name=request.name,
        http_status=response.status,
        bytes=len(response.body),
        etag=response.headers.get("ETag") or request.etag,
        last_modified=response.headers.get("Last-Modified") or request.last_modified,
        permanent_url=response.permanent_url,
        max_age=max_age,
        retry_after=retry_after,
    )
    if response.not_modified:
        return Outcome(status="not_modified", duration_ms=elapsed_ms(), **common)
    args = (
        request.kind,
        response.body,
        response.headers,
        response.url,
        request.language,
        request.options,
        request.name,
    )
    try:
        with _large_parses if len(response.body) >= LARGE_BODY_BYTES else contextlib.nullcontext():
            result = (
                parse_pool.submit(parse_job, *args).result() if parse_pool
                else parse_job(*args, after_parse=after_parse)
            )
    except Exception as e:  # a crashed worker process must not take the run down
        result = SourceFailure(SourceErrorKind.PARSE, f"parser crashed: {type(e).__name__}: {e}")
    if isinstance(result, SourceFailure) and result.kind is SourceErrorKind.EMPTY:
        # A 200 with nothing in it is not proof of life, but not a failure of ours either
        # (DNN sites answer a wrong feed id this way): a warning on the source.
        return Outcome(
            status="ok",
            feed=ParsedFeed(None, None, ()),
            warnings=(f"empty body: the server answered {response.status} with nothing in it",),
            duration_ms=elapsed_ms(),
            **common,
        )
    if isinstance(result, SourceFailure):
        # A failed parse must not keep the validators: the next fetch would get a 304 and never
        # see the body again.
        common.update(etag=None, last_modified=None)
        return Outcome(status="failed", error=result.message, error_kind=result.kind,
                       duration_ms=elapsed_ms(), **common)
    return Outcome(
        status="ok", feed=result, warnings=result.warnings, duration_ms=elapsed_ms(), **common
    )


def fetch_batch(
    requests_: Sequence[FetchRequest],
    http: HttpSettings,
    *,
    parse_pool: Executor | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    keep_outcomes: bool = True,
    after_parse: AfterParse | None = None,
) -> list[Outcome]:
    """Fetch and parse many sources concurrently; outcomes in completion order.

    With `keep_outcomes=False` each outcome only goes to `on_outcome` (which can store it and
    let it go, rather than hold every parsed feed of the batch in memory) and the list returned
    is empty. A slow `on_outcome` holds the batch back: a fetch starts only while fewer than
    `max_connections` outcomes are in progress or waiting to be handed on.
    """
    if not requests_:
        return []
    limiter = HostLimiter(http.per_host_concurrency)
    outcomes: list[Outcome] = []
    workers = min(http.max_connections, len(requests_))
    slots = threading.Semaphore(workers)

    def job(request: FetchRequest) -> Outcome:
        slots.acquire()
        return fetch_one(session, request, http, limiter, parse_pool, after_parse)

    with (
        make_session(http) as session,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool,
    ):
        futures = {pool.submit(job, r) for r in requests_}
        try:
            for future in as_completed(futures):
                futures.discard(future)  # so a stored feed is not kept alive by its future
                outcome = future.result()
                if keep_outcomes:
                    outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                del outcome
                slots.release()
        finally:
            for future in futures:  # only on an error: drop what has not started...
                future.cancel()
            for _ in range(workers):  # ...and let any job waiting for a slot finish
                slots.release()
    return outcomes


def split_by_host(requests_: Iterable[FetchRequest], batches: int) -> list[list[FetchRequest]]:
    """Group requests into at most `batches` batches, each host wholly inside one batch.

    Keeping a host in one batch lets each batch enforce the per-host limit on its own, even
    when batches run on different machines (Dask workers).
    """
    by_host: dict[str, list[FetchRequest]] = {}
    for r in requests_:
        by_host.setdefault(urlsplit(r.url).netloc.lower(), []).append(r)
    groups = sorted(by_host.values(), key=len, reverse=True)
    out: list[list[FetchRequest]] = [[] for _ in range(max(1, min(batches, len(groups))))]
    for group in groups:  # largest first into the lightest batch: balanced enough
        min(out, key=len).extend(group)
    return [b for b in out if b]


def default_parse_processes(configured: int) -> int:
    """Parser processes to start: the configured number, else one per core."""
    return configured or (os.cpu_count() or 1)
