"""Measuring relevance rules against hand-labelled items.

The labels file is tab-separated with a header row: a `url` or a `guid` column (or both), and a
`label` column holding 1 (an editor wants it) or 0; other columns are ignored. Each label is
matched to a stored item by canonical URL, else by guid. Matched items are scored afresh with
the given rules (nothing is written), so a rules file can be measured before `rescore` applies
it. Labels that match no stored item are reported apart, not counted.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import ConfigError
from ..sources.normalise import canonical_url
from ..store.scores import items_by_url_or_guid
from .model import LinearModel, features
from .relevance import Scored, score_item
from .rules import Rules, normalise


@dataclass(frozen=True, slots=True)
class Label:
    """One row of the labels file."""

    #: Line number in the file (the header is line 1).
    line: int
    url: str | None
    guid: str | None
    label: int


@dataclass(frozen=True, slots=True)
class Miss:
    """An item the rules got wrong."""

    item_id: int
    title: str
    url: str | None
    score: float
    reasons: list[dict[str, Any]]
    #: The hand label: 1 = a false negative (missed), 0 = a false positive.
    label: int


def precision(tp: int, fp: int) -> float:
    """Share of predicted positives that are right (1.0 when nothing was predicted)."""
    return tp / (tp + fp) if tp + fp else 1.0


def recall(tp: int, fn: int) -> float:
    """Share of real positives that were predicted (1.0 when there are none)."""
    return tp / (tp + fn) if tp + fn else 1.0


@dataclass(frozen=True, slots=True)
class Report:
    """Precision, recall and F1 over the labelled items found in the database."""

    tp: int
    fp: int
    fn: int
    tn: int
    threshold: float
    wrong: list[Miss] = field(default_factory=list)
    #: Labels with no matching item in the database.
    unmatched: list[Label] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        """Share of predicted candidates that are labelled 1 (1.0 when nothing was predicted)."""
        return precision(self.tp, self.fp)

    @property
    def recall(self) -> float:
        """Share of items labelled 1 that were predicted (1.0 when none are labelled 1)."""
        return recall(self.tp, self.fn)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_labels(path: str | Path) -> list[Label]:
    """Parse a labels TSV; every problem is one ConfigError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    rows = csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = [h.strip().lower() for h in next(rows, [])]
    if "label" not in header or not {"url", "guid"} & set(header):
        raise ConfigError(f"{path}: line 1: the header needs a 'label' column and a 'url' or "
                          f"'guid' column")
    col = {name: header.index(name) for name in ("url", "guid", "label") if name in header}
    labels = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue

        def cell(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        value = cell("label")
        if value not in ("0", "1"):
            raise ConfigError(f"{path}: line {line}: 'label' must be 0 or 1, got {value!r}")
        url, guid = cell("url") or None, cell("guid") or None
        if not url and not guid:
            raise ConfigError(f"{path}: line {line}: no url and no guid")
        labels.append(Label(line=line, url=url, guid=guid, label=int(value)))
    return labels


def evaluate(db: sqlite_utils.Database, labels_path: str | Path, rules: Rules) -> Report:
    """Score the labelled items found in `db` with `rules` and compare with the labels.

    `rules` blended with a model (`Rules.with_model`) are measured as the blend.
    """
    return _evaluate(db, read_labels(labels_path), lambda row: score_item(row, rules),
                     rules.threshold)


def evaluate_three(db: sqlite_utils.Database, labels_path: str | Path, rules: Rules,
                   model: LinearModel | None) -> list[tuple[str, Report | None]]:
    """Rules alone, the model alone and the blend (None for the two without a model).

    The model alone calls an item relevant when its log-odds are at least 0 (its own
    decision, classes balanced); its report's scores are those log-odds.
    """
    labels = read_labels(labels_path)
    rules = rules.with_model(None)
    out: list[tuple[str, Report | None]] = [
        ("rules alone", _evaluate(db, labels, lambda row: score_item(row, rules),
                                  rules.threshold))]
    if model is None:
        return [*out, ("model alone", None), ("blend", None)]

    def alone(row: dict[str, Any]) -> Scored:
        title_n = normalise(row.get("title") or "")
        summary_n = normalise((row.get("summary_text") or "")[: rules.summary_chars])
        margin, _ = model.margin(features(title_n, summary_n, _source(row)))
        _points, reason = model.part(title_n, summary_n, _source(row))
        reason = {**reason, "weight": round(margin, 2)}
        return Scored(score=round(margin, 2), reasons=[reason], relevant=margin >= 0)

    blend = rules.with_model(model)
    out.append(("model alone", _evaluate(db, labels, alone, 0.0)))
    out.append(("blend", _evaluate(db, labels, lambda row: score_item(row, blend),
                                   blend.threshold)))
    return out


def _source(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row.get("source_name"), "category": row.get("source_category"),
            "owner": row.get("source_owner"), "country": row.get("source_country")}


def _evaluate(db: sqlite_utils.Database, labels: list[Label],
              score: Callable[[dict[str, Any]], Scored], threshold: float) -> Report:
    canon = {lab.line: canonical_url(lab.url) for lab in labels if lab.url}
    by_url, by_guid = items_by_url_or_guid(
        db, urls=[u for u in canon.values() if u], guids=[lab.guid for lab in labels if lab.guid]
    )
    tp = fp = fn = tn = 0
    wrong: list[Miss] = []
    unmatched: list[Label] = []
    for lab in labels:
        url = canon.get(lab.line)
        row = (by_url.get(url) if url else None) or (by_guid.get(lab.guid) if lab.guid else None)
        if row is None:
            unmatched.append(lab)
            continue
        scored = score(row)
        if scored.relevant and lab.label:
            tp += 1
        elif scored.relevant:
            fp += 1
        elif lab.label:
            fn += 1
        else:
            tn += 1
        if scored.relevant != bool(lab.label):
            wrong.append(Miss(item_id=row["id"], title=row["title"], url=row["url"],
                              score=scored.score, reasons=scored.reasons, label=lab.label))
    # Misses nearest the threshold first: those are what a rule change would flip.
    wrong.sort(key=lambda m: (m.label, abs(m.score - threshold)))
    return Report(tp=tp, fp=fp, fn=fn, tn=tn, threshold=threshold, wrong=wrong,
                  unmatched=unmatched)


def format_three(reports: list[tuple[str, Report | None]], *, show: int = 20) -> str:
    """The three rows (rules alone, model alone, blend), then the items each got wrong."""
    lines = [f"{'':<12} {'precision':>9} {'recall':>7} {'F1':>6} {'tp':>5} {'fp':>5} "
             f"{'fn':>5} {'tn':>5}"]
    for name, r in reports:
        if r is None:
            lines.append(f"{name:<12} no model: run `digest triage train`")
            continue
        lines.append(f"{name:<12} {r.precision:>9.3f} {r.recall:>7.3f} {r.f1:>6.3f} "
                     f"{r.tp:>5} {r.fp:>5} {r.fn:>5} {r.tn:>5}")
    first = next((r for _, r in reports if r is not None), None)
    if first is not None:
        lines.append(f"{first.matched} labelled items matched")
    for name, r in reports:
        if r is None or not r.wrong:
            continue
        lines += ["", f"{name}: {len(r.wrong)} wrong"]
        for heading, label in (("false positives (labelled 0)", 0),
                               ("false negatives (labelled 1)", 1)):
            misses = [m for m in r.wrong if m.label == label]
            if not misses:
                continue
            lines.append(f"  {heading}: {len(misses)}")
            for m in misses[:show]:
                lines.append(f"    {m.score:>6.2f}  {m.title}")
                if m.url:
                    lines.append(f"            {m.url}")
            if len(misses) > show:
                lines.append(f"    … and {len(misses) - show} more")
    if first is not None and first.unmatched:
        lines += ["", f"Labels with no matching item: {len(first.unmatched)}"]
        for lab in first.unmatched:
            lines.append(f"  line {lab.line}: {lab.url or lab.guid}")
    return "\n".join(lines)


def format_report(report: Report) -> str:
    """The report as plain text for the terminal."""
    lines = [
        f"{report.matched} labelled items matched (threshold {report.threshold:g})",
        f"precision {report.precision:.3f}  recall {report.recall:.3f}  F1 {report.f1:.3f}",
        f"tp {report.tp}  fp {report.fp}  fn {report.fn}  tn {report.tn}",
    ]
    false_pos = [m for m in report.wrong if m.label == 0]
    false_neg = [m for m in report.wrong if m.label == 1]
    for heading, misses in (("False positives (candidate, labelled 0)", false_pos),
                            ("False negatives (filtered, labelled 1)", false_neg)):
        if not misses:
            continue
        lines += ["", f"{heading}: {len(misses)}"]
        for m in misses:
            lines.append(f"  {m.score:>6.2f}  {m.title}")
            if m.url:
                lines.append(f"          {m.url}")
            why = ", ".join(f"{r['rule']} {r['match']!s} {r['weight']:+g}" for r in m.reasons)
            lines.append(f"          {why or 'no rule matched'}")
    if report.unmatched:
        lines += ["", f"Labels with no matching item: {len(report.unmatched)}"]
        for lab in report.unmatched:
            lines.append(f"  line {lab.line}: {lab.url or lab.guid}")
    return "\n".join(lines)
