"""Triage after each collect run, and again on demand: relevance first, then stories.

    rules   = load_rules(settings)                  # a broken rules file fails loudly
    rules   = rules.with_model(current model)       # an unusable model: rules alone, a warning
    apply_relevance(only_untriaged)                 # score + reasons; candidate/filtered
    cluster_items(unclustered)                      # group the same story across outlets
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..settings import Settings
from .clusters import cluster_items
from .model import load_current
from .relevance import apply_relevance
from .rules import Rules, load_rules


def with_current_model(db: sqlite_utils.Database, rules: Rules) -> tuple[Rules, str]:
    """`rules` blended with the current learned model, if any; and a warning, or "".

    A damaged model, or one trained by another version, leaves the rules alone: triage never
    fails on it.
    """
    model, warning = load_current(db)
    return rules.with_model(model), warning


def triage_new(db: sqlite_utils.Database, settings: Settings,
               rules: Rules | None = None) -> dict[str, Any]:
    """Score and cluster every item not triaged yet (those a killed run left included).

    `rules`: the rules in force if already loaded, else they are read from `settings`.
    """
    if rules is None:
        rules, _warning = with_current_model(db, load_rules(settings))
    counts = apply_relevance(db, rules, only_untriaged=True)
    stats = cluster_items(db)
    return {**counts, "clustered": stats.items, "in_stories": stats.in_stories,
            "stories": stats.stories}


def rescore(db: sqlite_utils.Database, settings: Settings) -> dict[str, Any]:
    """Re-apply the current rules and model to every stored item; editor decisions stay.

    The counts of `apply_relevance`, plus `model` (its version, or None) and `warning`.
    """
    rules, warning = with_current_model(db, load_rules(settings))
    counts: dict[str, Any] = dict(apply_relevance(db, rules))
    counts["model"] = rules.model.version if rules.model is not None else None
    counts["warning"] = warning
    return counts
