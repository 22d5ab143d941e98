"""Triage's per-item work, done where a feed is parsed: relevance and story tokens.

Scoring an item and tokenising it for story clustering depend only on the item's text and its
source, so the collect flow has its parse workers do both right after parsing (both cores,
while the flow's process fetches and stores) instead of reading every new item back once the
run has stored it. The store inserts the items already triaged (`store.items.store_entries`);
what is left for the end of the run is grouping them into stories.

    annotator = Annotator(rules, {source name: {name, category, owner, country}})
    feed = annotator(feed, source name)     # feed.extras[i] = {score, reasons, relevant,
                                            #                  borderline, tokens}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..sources.types import ParsedFeed
from .relevance import score_text
from .rules import PRIOR_FIELDS, Rules
from .tokens import token_set

__all__ = ["Annotator", "source_fields"]


def source_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a sources row that relevance priors can match on."""
    return {f: row.get(f) for f in PRIOR_FIELDS}


@dataclass(frozen=True)
class Annotator:
    """Adds relevance and story tokens to every entry of a parsed feed (`ParsedFeed.extras`).

    Picklable (a process pool's initializer sends it to each worker once).
    """

    rules: Rules
    #: Source name -> source_fields(row); a source not listed is scored without priors.
    sources: Mapping[str, Mapping[str, Any]]

    def __call__(self, feed: ParsedFeed, source: str) -> ParsedFeed:
        fields = self.sources.get(source)
        extras = []
        for entry in feed.entries:
            scored = score_text(entry.title, entry.summary_text, fields, self.rules)
            extras.append({
                "score": scored.score,
                "reasons": json.dumps(scored.reasons, ensure_ascii=False),
                "relevant": scored.relevant,
                "borderline": scored.borderline,
                "tokens": token_set(entry.title, entry.summary_text),
            })
        return replace(feed, extras=tuple(extras))
