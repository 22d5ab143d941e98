"""Triage after each collect run, and again on demand: relevance first, then stories.

    rules    = load_rules(settings)                  # a broken rules file fails loudly
    rules    = rules.with_model(current model)      # an unusable model: rules alone, a warning
    apply_relevance(only_untriaged)                  # score + reasons; candidate/filtered
    waiting  = unclustered items, but those set aside after a try    # stories across outlets
    for chunk of waiting (TRIAGE_CHUNK, oldest first), within the run's budget:
        budget spent?  -> the rest is set aside untried (next run takes it as waiting)
        mark(chunk); cluster_waiting(chunk); release(chunk)
        failed?        -> the chunk stays set aside with its error
    retry a few set-aside items (RETRY_CHUNK at a time, < MAX_ATTEMPTS tries each) if time is
    left; what is left after MAX_ATTEMPTS waits for `digest triage retry`

Triage never blocks collect: the items of a chunk that fails or is not reached are stored
and visible either way (a story of their own until clustered), and a chunk is marked set
aside before it runs, so a process that dies while clustering (out of memory) leaves it
aside for the next run instead of in its way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from ..settings import Settings
from ..store import clusters as cluster_store
from ..store import set_aside
from .clusters import CHUNK_ITEMS, cluster_waiting
from .model import with_current_model
from .relevance import apply_relevance
from .rules import Rules, load_rules

#: Waiting items clustered per chunk (one transaction each); the budget is checked between.
TRIAGE_CHUNK = CHUNK_ITEMS
#: Set-aside items are retried in chunks this small, so one bad item holds back few others.
RETRY_CHUNK = 100
#: Later runs retry a set-aside item this many times in all, then leave it to
#: `digest triage retry`.
MAX_ATTEMPTS = 3
#: Set-aside items one run retries at most.
RETRY_PER_RUN = 1_000
#: What a chunk's row says while it is being clustered: still there, the process died.
INTERRUPTED = "interrupted while clustering (the process stopped)"


@dataclass
class _Pass:
    """What the clustering chunks of one triage did."""

    deadline: float
    budget: float | None
    clustered: list[int] = field(default_factory=list)
    set_aside: int = 0
    errors: list[str] = field(default_factory=list)

    def out_of_time(self) -> bool:
        return self.budget is not None and time.monotonic() > self.deadline


def _describe(error: BaseException) -> str:
    kind = type(error)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    text = " ".join(str(error).split())[:300]
    return f"{name}: {text}" if text else name


def _cluster_in_chunks(db: sqlite_utils.Database, ids: Sequence[int], size: int,
                       run: _Pass, *, retrying: bool) -> None:
    """Cluster `ids` chunk by chunk, setting aside what fails or what time does not allow."""
    for start in range(0, len(ids), size):
        chunk = list(ids[start:start + size])
        if run.out_of_time():
            if not retrying:  # new items not reached wait with their attempts at zero
                rest = list(ids[start:])
                set_aside.park(db, rest, f"triage budget of {run.budget:g} s ran out")
                run.set_aside += len(rest)
                run.errors.append(f"triage budget of {run.budget:g} s ran out: "
                                  f"{len(rest)} items set aside")
            return
        set_aside.mark(db, chunk, INTERRUPTED)
        try:
            cluster_waiting(db, chunk)
        except Exception as e:  # MemoryError included: the run goes on, the chunk waits
            set_aside.note_error(db, chunk, _describe(e))
            if not retrying:
                run.set_aside += len(chunk)
            run.errors.append(f"clustering {len(chunk)} items failed ({_describe(e)})")
            continue
        set_aside.release(db, chunk)
        run.clustered += chunk


def cluster_new(db: sqlite_utils.Database, *, budget_seconds: float | None,
                retry_all: bool = False) -> dict[str, Any]:
    """Cluster the waiting items in bounded chunks within the budget, then retry set-aside
    ones (every one, whatever its attempts, with `retry_all`: `digest triage retry`).

    Returns clustered, in_stories, stories, set_aside (this run's), set_aside_total (all now
    waiting), retrying (of those, how many later runs still retry) and triage_error.
    """
    run = _Pass(deadline=time.monotonic() + (budget_seconds or 0.0), budget=budget_seconds)
    waiting = cluster_store.unclustered_ids(db)
    # Items a budget never reached go with the new ones, in large chunks.
    aside = set_aside.tried_ids(db)
    fresh = [i for i in waiting if i not in aside]
    _cluster_in_chunks(db, fresh, TRIAGE_CHUNK, run, retrying=False)
    tried = set(fresh)  # what this run set aside waits for the next one
    retry = [i for i in set_aside.due_for_retry(
        db, max_attempts=None if retry_all else MAX_ATTEMPTS,
        limit=None if retry_all else RETRY_PER_RUN + len(tried)) if i not in tried]
    retry = retry if retry_all else retry[:RETRY_PER_RUN]
    still = set(waiting)
    done = [i for i in retry if i not in still]  # clustered after all (a run that died late)
    set_aside.release(db, done)
    _cluster_in_chunks(db, [i for i in retry if i in still], RETRY_CHUNK, run, retrying=True)
    leads = cluster_store.leads_of(db, run.clustered)
    sizes = cluster_store.story_sizes(db, sorted(set(leads.values())))
    in_stories = [lead for lead in leads.values() if sizes.get(lead, 1) > 1]
    now = set_aside.waiting(db, MAX_ATTEMPTS)
    return {"clustered": len(run.clustered), "in_stories": len(in_stories),
            "stories": len(set(in_stories)), "set_aside": run.set_aside,
            "set_aside_total": now["set_aside"], "retrying": now["retrying"],
            "triage_error": "; ".join(run.errors) or None}


def triage_new(db: sqlite_utils.Database, settings: Settings,
               rules: Rules | None = None) -> dict[str, Any]:
    """Score and cluster every item not triaged yet (those a killed run left included),
    within `[collect] triage_budget_seconds`; what fails or is not reached is set aside.

    `rules`: the rules in force if already loaded, else they are read from `settings`.
    """
    if rules is None:
        rules, _warning = with_current_model(db, load_rules(settings))
    errors: list[str] = []
    try:
        counts = apply_relevance(db, rules, only_untriaged=True)
    except Exception as e:  # the items stay unscored (and visible); the next run scores them
        counts = {"scored": 0, "moved_in": 0, "moved_out": 0, "candidates": 0, "filtered": 0}
        errors.append(f"scoring failed ({_describe(e)})")
    clustered = cluster_new(db, budget_seconds=settings.collect.triage_budget_seconds)
    if clustered["triage_error"]:
        errors.append(clustered["triage_error"])
    return {**counts, **clustered, "triage_error": "; ".join(errors) or None}


def rescore(db: sqlite_utils.Database, settings: Settings) -> dict[str, Any]:
    """Re-apply the current rules and model to every stored item; editor decisions stay.

    The counts of `apply_relevance`, plus `model` (its version, or None) and `warning`.
    """
    rules, warning = with_current_model(db, load_rules(settings))
    counts: dict[str, Any] = dict(apply_relevance(db, rules))
    counts["model"] = rules.model.version if rules.model is not None else None
    counts["warning"] = warning
    return counts
