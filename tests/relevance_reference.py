"""The straightforward relevance scorer, kept as the reference the fast one must equal.

This is `triage.relevance.score_text` and `triage.model.LinearModel.part` as they were before
they were tuned for speed (issue 12: ~50 µs an item in the parse workers). It reads the same
compiled rules and model; tests/test_relevance_fast.py checks that the fast scorer gives the
same scores, reasons and flags on the labelled corpus items.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping
from itertools import repeat
from typing import Any

from alliance_digest.triage.model import _CJK, _WORD, CJK_CHARS, MODEL_CHARS, SHOWN_TERMS
from alliance_digest.triage.relevance import RULES_BAND, Scored
from alliance_digest.triage.rules import _JAPANESE, FALSE_FRIEND, Rules, normalise
from alliance_digest.triage.rules import _WORD as _WORD_CHAR


@functools.lru_cache(maxsize=8)
def _lookaheads(latin_terms: str | None, japanese_terms: str | None
                ) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """The zero-width patterns the matcher scanned with before: tried at every position."""
    latin = (re.compile(f"(?<!{_WORD_CHAR})(?=({latin_terms})(?!{_WORD_CHAR}))")
             if latin_terms is not None else None)
    japanese = re.compile(f"(?=({japanese_terms}))") if japanese_terms is not None else None
    return latin, japanese


def find(matcher: Any, text: str) -> Iterator[tuple[int, int, tuple[Any, ...]]]:
    """Every term in `text` with its hits, looked up afresh each time (no cache)."""
    latin, japanese = _lookaheads(matcher.latin_terms, matcher.japanese_terms)
    if latin is not None:
        for m in latin.finditer(text):
            yield m.start(), m.end(1), matcher._lookup(m.group(1))
    if japanese is not None and _JAPANESE.search(text):
        for m in japanese.finditer(text):
            yield m.start(), m.end(1), matcher._lookup(m.group(1))


def features(title_n: str, summary_n: str, source: Mapping[str, Any] | None) -> list[str]:
    text = f"{title_n[:MODEL_CHARS]} \n {summary_n[:MODEL_CHARS]}"
    found = _WORD.findall(text)
    budget = CJK_CHARS
    for run in _CJK.findall(text):
        run = run[:budget]
        budget -= len(run)
        if len(run) == 1:
            found.append(run)
        else:
            found += map(str.__add__, run, run[1:])
        if budget <= 0:
            break
    if source:
        for key in ("category", "country"):
            value = source.get(key)
            if value:
                found.append(f"@{key}={str(value).casefold()}")
    return found


def model_part(
    model: Any, title_n: str, summary_n: str, source: Mapping[str, Any] | None
) -> tuple[float, dict[str, Any]]:
    feats = features(title_n, summary_n, source)
    values = list(map(model.weights.get, feats, repeat(0.0)))
    norm = 1.0 / math.sqrt(len(feats)) if feats else 0.0
    margin = model.intercept + norm * sum(values)
    points = model.scale * margin + model.offset
    shown: dict[str, float] = {}
    if feats:
        unit = model.scale / math.sqrt(len(feats))
        # Each weight of a text feature, with the first term in the text that has it; then the
        # two heaviest up and the heaviest down, shown heaviest first.
        first: dict[float, str] = {}
        for f, v in zip(feats, values, strict=True):
            if not f.startswith("@"):
                first.setdefault(v, f)
        ups = sorted((v for v in first if v > 0), reverse=True)[:2]
        downs = sorted(v for v in first if v < 0)[:1]
        for v in sorted(ups + downs, key=lambda v: -abs(v))[:SHOWN_TERMS]:
            shown[first[v]] = unit * v
    terms = ", ".join(f'"{f}" {x:+.1f}' for f, x in shown.items()) or "no known term"
    return points, {"rule": "model", "match": terms, "weight": round(points, 2)}


def score_text(
    title: str | None, summary: str | None, source: Mapping[str, Any] | None, rules: Rules
) -> Scored:
    title_n = normalise(title or "")
    summary_n = normalise((summary or "")[: rules.summary_chars])
    text = f"{title_n}\x00{summary_n}"
    title_end = len(title_n)
    reasons: list[dict[str, Any]] = []
    matches = list(find(rules.matcher, text))
    friends: list[tuple[int, int]] = []
    for start, end, hits in matches:
        if hits and hits[0][0] == FALSE_FRIEND:
            friends.append((start, end))
            reason = {"rule": "false friend", "match": hits[0][1], "weight": 0.0}
            if reason not in reasons:
                reasons.append(reason)
    per_group: dict[int, dict[str, float]] = {}
    for start, end, hits in matches:
        if friends and any(fs <= start and end <= fe for fs, fe in friends):
            continue
        factor = rules.title_factor if start < title_end else 1.0
        for index, term, weight in hits:
            terms = per_group.setdefault(index, {})
            w = weight * factor
            if term not in terms or abs(w) > abs(terms[term]):
                terms[term] = w
    total = 0.0
    found: dict[str, str] = {}
    for index, group in enumerate(rules.groups):
        terms = per_group.get(index)
        if not terms:
            continue
        found[group.name] = next(iter(terms))
        room = group.max
        for term, w in sorted(terms.items(), key=lambda kv: -abs(kv[1])):
            if room <= 0 or w == 0:
                break
            add = max(-room, min(room, w))
            room -= abs(add)
            total += add
            reasons.append({"rule": f"group:{group.name}", "match": term, "weight": round(add, 2)})
    implied: dict[str, str] = {}
    for prior in rules.priors:
        if not prior.applies(source):
            continue
        name = str((source or {}).get("name") or "")
        for g in prior.implies:
            implied.setdefault(g, f"source {name}".strip())
        if prior.weight:
            total += prior.weight
            reasons.append(
                {"rule": f"prior:{prior.name}", "match": name, "weight": round(prior.weight, 2)}
            )
    present = {**implied, **found}
    for combo in rules.combos:
        if combo.none & found.keys():
            continue
        parts = []
        for alternatives in combo.all:
            if alternatives.isdisjoint(present):
                break
            parts.append(present[min(g for g in alternatives if g in present)])
        else:
            total += combo.weight
            reasons.append(
                {
                    "rule": f"combo:{combo.name}",
                    "match": " + ".join(parts),
                    "weight": round(combo.weight, 2),
                }
            )
    band = RULES_BAND
    if rules.model is not None:
        points, reason = model_part(rules.model, title_n, summary_n, source)
        total += points
        reasons.append(reason)
        band = rules.model.band
    score = round(total, 2)
    return Scored(
        score=score,
        reasons=reasons,
        relevant=score >= rules.threshold,
        borderline=abs(total - rules.threshold) < band,
    )
