"""Triage after each collect run, and again on demand: relevance first, then stories.

    rules   = load_rules(settings)                  # a broken rules file fails loudly
    apply_relevance(only_untriaged)                 # score + reasons; candidate/filtered
    cluster_items(unclustered)                      # group the same story across outlets
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..settings import Settings
from .clusters import cluster_items
from .relevance import apply_relevance
from .rules import Rules, load_rules


def triage_new(db: sqlite_utils.Database, settings: Settings,
               rules: Rules | None = None) -> dict[str, Any]:
    """Score and cluster every item not triaged yet (those a killed run left included).

    `rules`: the rules in force if already loaded, else they are read from `settings`.
    """
    rules = rules or load_rules(settings)
    counts = apply_relevance(db, rules, only_untriaged=True)
    stats = cluster_items(db)
    return {**counts, "clustered": stats.items, "in_stories": stats.in_stories,
            "stories": stats.stories}


def rescore(db: sqlite_utils.Database, settings: Settings) -> dict[str, int]:
    """Re-apply the current rules to every stored item; editor decisions stay as they are."""
    return apply_relevance(db, load_rules(settings))
