"""Relevance: a score for every item, and candidate or filtered by a threshold.

The scoring model (rules in relevance.toml; see `triage.rules` for matching)::

    text      = normalise(title), normalise(first summary_chars of the summary)
    find every term at once; drop those inside false friends ("alliance" in "Star Alliance")
    for each group of terms:
        each distinct term found adds its weight (× title_factor when found in the title);
        the group's total is capped at its `max` (negative groups: exclusions, capped likewise)
    for each prior whose source fields match: add its weight; its `implies` groups count as found
    for each combination whose `all` groups were all found (and no `none` group): add its weight
    with a learned model (triage/model.py): add the model's points (a reason "model")
    score = the sum; candidate when score >= threshold, else filtered; borderline when near it

Every addition is kept as a reason {"rule", "match", "weight"}, so an editor sees why.

`score_text` is pure. `apply_relevance` reads items in batches, scores them and writes scores,
reasons and statuses through `store.scores`, never touching a status an editor set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..texts import ascii_but_quotes
from ..timestamps import utcnow
from .rules import FALSE_FRIEND, Combo, Rules, normalise

#: Borderline band around the threshold with the rules alone, in points.
RULES_BAND = 1.0

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["Scored", "apply_relevance", "score_item", "score_text"]


class Scored(NamedTuple):
    """One item's relevance (a named tuple: made for every item a parse worker reads)."""

    score: float
    #: Why: [{"rule": "group:japan", "match": "Kishida", "weight": 3.0}, …], JSON-ready.
    reasons: list[dict[str, Any]]
    #: score >= the rules' threshold.
    relevant: bool
    #: Near the threshold (the model's band, or RULES_BAND with the rules alone): an editor's
    #: decision on it teaches the next model most.
    borderline: bool = False


def score_text(title: str | None, summary: str | None, source: Mapping[str, Any] | None,
               rules: Rules) -> Scored:
    """Score an item's title and plain-text summary, given its source's fields (or None).

    `source` holds any of name, category, owner, country (as in the sources table).
    """
    # One text, one scan: the title, a separator no term can cross, then the summary.
    title_n = normalise(title or "")
    summary_n = normalise((summary or "")[: rules.summary_chars])
    title_end = len(title_n)
    reasons: list[dict[str, Any]] = []
    total = 0.0
    found: dict[str, str] = {}  # group name → first term found (for combination reasons)

    text = f"{title_n}\x00{summary_n}"
    plain = ascii_but_quotes(text)  # once, for the scan and the model
    matches = rules.matcher.scan(text, plain)
    if matches:
        # False friends ("Star Alliance") hide every term inside them ("alliance").
        friends: list[tuple[int, int]] = []
        for start, end, hits in matches:
            if hits and hits[0][0] == FALSE_FRIEND:
                friends.append((start, end))
                reason = {"rule": "false friend", "match": hits[0][1], "weight": 0.0}
                if reason not in reasons:
                    reasons.append(reason)

        # Per group: term → its weight, the title's when found there.
        per_group: dict[int, dict[str, float]] = {}
        title_factor = rules.title_factor
        for start, end, hits in matches:
            if friends and any(fs <= start and end <= fe for fs, fe in friends):
                continue
            factor = title_factor if start < title_end else 1.0
            for index, term, weight in hits:
                terms = per_group.get(index)
                if terms is None:
                    per_group[index] = {term: weight * factor}
                    continue
                w = weight * factor
                known = terms.get(term)
                if known is None or abs(w) > abs(known):
                    terms[term] = w

        groups = rules.groups
        # Groups in their order (the reasons' order); a false friend's own index (-1) is no
        # group.
        for index in sorted(per_group) if len(per_group) > 1 else per_group:
            if index < 0:
                continue
            terms = per_group[index]
            group = groups[index]
            rule = group.rule
            if len(terms) == 1:  # most groups: one term, no sort, one reason
                [(term, w)] = terms.items()
                found[group.name] = term
                if w == 0 or group.max <= 0:
                    continue
                add = max(-group.max, min(group.max, w))
                total += add
                reasons.append({"rule": rule, "match": term, "weight": round(add, 2)})
                continue
            found[group.name] = next(iter(terms))
            room = group.max
            for term, w in sorted(terms.items(), key=_heaviest):
                if room <= 0 or w == 0:
                    break
                add = max(-room, min(room, w))
                room -= abs(add)
                total += add
                reasons.append({"rule": rule, "match": term, "weight": round(add, 2)})

    implied: dict[str, str] = {}
    if rules.priors:
        weights, prior_reasons, implied = _priors(rules, source)
        for w in weights:  # one by one, as the sum always was (float addition is not exact)
            total += w
        reasons += [dict(r) for r in prior_reasons]

    present = {**implied, **found} if implied else found
    if present and rules.combos:  # every combination needs a group
        for rule, weight, chosen in _combos(rules.combos, found, present, implied):
            total += weight
            reasons.append({"rule": rule, "match": " + ".join([present[g] for g in chosen]),
                            "weight": round(weight, 2)})

    band = RULES_BAND
    if rules.model is not None:
        points, reason = rules.model.part(title_n, summary_n, source, plain)
        total += points
        reasons.append(reason)
        band = rules.model.band
    score = round(total, 2)
    return Scored(score, reasons, score >= rules.threshold, abs(total - rules.threshold) < band)


def score_item(row: Mapping[str, Any], rules: Rules) -> Scored:
    """Score a row from `store.scores` (title, summary_text and source_* columns)."""
    source = {
        "name": row.get("source_name"),
        "category": row.get("source_category"),
        "owner": row.get("source_owner"),
        "country": row.get("source_country"),
    }
    return score_text(row.get("title"), row.get("summary_text"), source, rules)


def apply_relevance(db: sqlite_utils.Database, rules: Rules, *, only_untriaged: bool = False,
                    item_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Score items and set candidate/filtered where triage owns the status; returns counts.

    Every selected item gets its score and reasons; the status changes only for rows that are
    candidate or filtered and were not set by an editor. Counts: `scored`; `moved_in` and
    `moved_out` (items scored before whose status changed to candidate or to filtered); and
    `candidates` and `filtered` among the items scored for the first time.
    """
    # The store is imported here, not at the top: the collect flow's parse workers run
    # score_text and have no use for sqlite-utils (or the numpy it loads).
    from ..store.scores import ScoreUpdate, is_triage_owned, items_to_score, write_scores

    counts = {"scored": 0, "moved_in": 0, "moved_out": 0, "candidates": 0, "filtered": 0}
    for batch in items_to_score(db, only_untriaged=only_untriaged, item_ids=item_ids):
        now = utcnow()
        updates = []
        for row in batch:
            scored = score_item(row, rules)
            status = "candidate" if scored.relevant else "filtered"
            updates.append(ScoreUpdate(
                item_id=row["id"], score=scored.score,
                reasons=json.dumps(scored.reasons, ensure_ascii=False),
                status=status, triaged_at=now, borderline=scored.borderline,
            ))
            counts["scored"] += 1
            if not is_triage_owned(row):
                continue
            if row["triaged_at"] is None:
                counts["candidates" if scored.relevant else "filtered"] += 1
            elif status != row["status"]:
                counts["moved_in" if scored.relevant else "moved_out"] += 1
        write_scores(db, updates)
    return counts


def _heaviest(kv: tuple[str, float]) -> float:
    return -abs(kv[1])


#: (rules' priors, the source's fields) → (points, reasons, implied groups): the priors
#: depend on the source only, and a feed's items all share theirs.
_PRIORS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _priors(rules: Rules, source: Mapping[str, Any] | None
            ) -> tuple[tuple[float, ...], tuple[dict[str, Any], ...], dict[str, str]]:
    """The priors' weights, reasons (to be copied) and implied groups (not to be changed)."""
    fields = ((source.get("name"), source.get("category"), source.get("owner"),
               source.get("country")) if source else None)
    try:
        key = (id(rules.priors), fields)
        known = _PRIORS.get(key)
    except TypeError:  # a field of an unhashable type: no memo
        key, known = None, None
    if known is not None and known[3] is rules.priors:
        return known[:3]
    weights: list[float] = []
    reasons: list[dict[str, Any]] = []
    implied: dict[str, str] = {}
    for prior in rules.priors:
        if not prior.applies(source):
            continue
        name = str((source or {}).get("name") or "")
        for g in prior.implies:
            implied.setdefault(g, f"source {name}".strip())
        if prior.weight:
            weights.append(prior.weight)
            reasons.append({"rule": f"prior:{prior.name}", "match": name,
                            "weight": _r(prior.weight)})
    if key is not None:
        if len(_PRIORS) >= 1024:
            _PRIORS.clear()
        _PRIORS[key] = (tuple(weights), tuple(reasons), implied, rules.priors)
    return tuple(weights), tuple(reasons), implied


#: (combinations, groups found, the priors' implied groups) → the combinations that hold: a
#: few sets of groups recur across thousands of items, and testing ten combinations was a
#: tenth of the rules' cost.
_COMBOS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _combos(combos: tuple[Combo, ...], found: Mapping[str, str], present: Mapping[str, str],
            implied: Mapping[str, str]) -> tuple[tuple[str, float, tuple[str, ...]], ...]:
    """(reason's rule, weight, group chosen for each `all` element) of each combination that
    holds: every element has a group present and no `none` group was found. The group shown
    for an element is the first of its alternatives present, by name.

    `present` is `implied` (the priors' groups) with `found`. The memo's key is the groups
    found, in the order `score_text` finds them (the groups' order, so one set of groups is
    one tuple), and the implied groups' dict itself: `_priors` hands out one dict per source,
    and the memo keeps it (an `is` check), so its id cannot stand for another dict.
    """
    own = implied or None
    key = (id(combos), tuple(found), id(own))
    known = _COMBOS.get(key)
    if known is not None and known[1] is combos and known[2] is own:
        return known[0]  # type: ignore[no-any-return]
    held: list[tuple[str, float, tuple[str, ...]]] = []
    for combo in combos:
        if combo.none and not combo.none.isdisjoint(found):
            continue
        chosen = []
        for alternatives in combo.all:
            if alternatives.isdisjoint(present):
                break
            chosen.append(min(g for g in alternatives if g in present))
        else:
            held.append((f"combo:{combo.name}", combo.weight, tuple(chosen)))
    if len(_COMBOS) >= 4096:  # bounded, whatever the items
        _COMBOS.clear()
    _COMBOS[key] = (tuple(held), combos, own)
    return tuple(held)


def _r(x: float) -> float:
    return round(x, 2)
