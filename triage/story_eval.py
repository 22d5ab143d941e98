"""Measuring story clustering against hand-labelled developments.

The labels file is tab-separated with a header row: a `url` or a `guid` column (or both) and a
`story` column naming the development (any text: items with the same text report the same
development); other columns are ignored. Each label is matched to a stored item by canonical
URL, else by guid. Every pair of matched items counts once: labelled the same development
and in one story (true positive), in one story but labelled apart (false positive), labelled
the same but apart (false negative). Pairs are also counted by language: en-en, ja-ja, ja-en
(any other language pair under its own name).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import ConfigError
from ..sources.normalise import canonical_url
from ..store.scores import items_by_url_or_guid
from .evaluate import precision, recall


@dataclass(frozen=True, slots=True)
class StoryLabel:
    """One row of the labels file."""

    line: int
    url: str | None
    guid: str | None
    story: str


@dataclass
class PairCounts:
    """Pairwise true positives, false positives and false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return precision(self.tp, self.fp)

    @property
    def recall(self) -> float:
        return recall(self.tp, self.fn)

    def __str__(self) -> str:
        return (f"precision {self.precision:.3f}  recall {self.recall:.3f}  "
                f"(tp {self.tp}, fp {self.fp}, fn {self.fn})")


def language_pair(a: str | None, b: str | None) -> str:
    """'en-en', 'ja-ja', 'ja-en' (Japanese first), or the two codes sorted."""
    a, b = (a or "?")[:2].lower(), (b or "?")[:2].lower()
    if a == b:
        return f"{a}-{b}"
    if "ja" in (a, b):
        return f"ja-{b if a == 'ja' else a}"
    return "-".join(sorted((a, b)))


def pair_counts(items: Sequence[tuple[str, Any, str | None]],
                only: set[tuple[int, int]] | None = None) -> dict[str, PairCounts]:
    """{"all", and each language pair: counts} over (true story, predicted story, language).

    `only`: count just these index pairs (i < j).
    """
    counts: dict[str, PairCounts] = {"all": PairCounts()}
    for a, b in itertools.combinations(range(len(items)), 2):
        if only is not None and (a, b) not in only:
            continue
        (story_a, got_a, lang_a), (story_b, got_b, lang_b) = items[a], items[b]
        same, together = story_a == story_b, got_a == got_b
        if not same and not together:
            continue
        for key in ("all", language_pair(lang_a, lang_b)):
            c = counts.setdefault(key, PairCounts())
            if same and together:
                c.tp += 1
            elif together:
                c.fp += 1
            else:
                c.fn += 1
    return counts


def read_story_labels(path: str | Path) -> list[StoryLabel]:
    """The labels file's rows; a malformed file is one ConfigError naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the labels: {e.strerror}") from None
    rows = csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    fields = set(rows.fieldnames or ())
    if "story" not in fields or not fields & {"url", "guid"}:
        raise ConfigError(f"{path}: line 1: the header needs a 'story' column and a 'url' or "
                          "'guid' column (tab-separated)")
    labels = []
    for line, row in enumerate(rows, start=2):
        story = (row.get("story") or "").strip()
        url, guid = (row.get("url") or "").strip(), (row.get("guid") or "").strip()
        if not story or not (url or guid):
            raise ConfigError(f"{path}: line {line}: needs a story and a url or guid")
        labels.append(StoryLabel(line, url or None, guid or None, story))
    return labels


@dataclass(frozen=True)
class StoryReport:
    """Pairwise precision and recall of the stored stories against the labels."""

    counts: dict[str, PairCounts]
    #: (label a, label b, title a, title b, "joined" or "apart") for the pairs it got wrong.
    wrong: list[tuple[StoryLabel, StoryLabel, str, str, str]] = field(default_factory=list)
    unmatched: list[StoryLabel] = field(default_factory=list)


def evaluate_stories(db: sqlite_utils.Database, labels_path: str | Path) -> StoryReport:
    """Compare the stories stored in `db` (items.cluster_id) with the labelled developments."""
    labels = read_story_labels(labels_path)
    urls = {lab.line: canonical_url(lab.url) for lab in labels if lab.url}
    by_url, by_guid = items_by_url_or_guid(
        db, urls=[u for u in urls.values() if u], guids=[lab.guid for lab in labels if lab.guid])
    matched: list[tuple[StoryLabel, dict[str, Any]]] = []
    unmatched: list[StoryLabel] = []
    for label in labels:
        row = by_url.get(urls.get(label.line) or "") or by_guid.get(label.guid or "")
        if row is None:
            unmatched.append(label)
        else:
            matched.append((label, row))
    triples = [(lab.story, row["cluster_id"] if row["cluster_id"] is not None else -row["id"],
                row["language"]) for lab, row in matched]
    wrong = []
    for a, b in itertools.combinations(range(len(matched)), 2):
        same = triples[a][0] == triples[b][0]
        together = triples[a][1] == triples[b][1]
        if same != together:
            wrong.append((matched[a][0], matched[b][0], matched[a][1]["title"],
                          matched[b][1]["title"], "apart" if same else "joined"))
    return StoryReport(pair_counts(triples), wrong, unmatched)


def format_story_report(report: StoryReport, *, show: int = 50) -> str:
    """The report as text: counts per language pair, then up to `show` wrong pairs."""
    lines = [f"{kind:6} {c}" for kind, c in sorted(
        report.counts.items(), key=lambda kv: (kv[0] != "all", kv[0]))]
    if report.unmatched:
        lines.append(f"Labels with no matching item: {len(report.unmatched)} "
                     f"(first on line {report.unmatched[0].line})")
    for kind in ("joined", "apart"):
        pairs = [w for w in report.wrong if w[4] == kind]
        if not pairs:
            continue
        title = ("In one story but labelled apart" if kind == "joined"
                 else "Labelled one development but apart")
        lines.append(f"\n{title}: {len(pairs)} pairs")
        for a, b, title_a, title_b, _ in pairs[:show]:
            lines.append(f"  line {a.line} [{a.story}] {title_a}")
            lines.append(f"  line {b.line} [{b.story}] {title_b}")
    return "\n".join(lines)
