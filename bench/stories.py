"""Story clustering on a labelled set: fit the pair model, or measure the clustering.

    python bench/stories.py tests/data/stories/dev --fit      # print WEIGHTS/BIAS to paste
    python bench/stories.py tests/data/stories/dev            # pairwise P/R, per language pair
    python bench/stories.py tests/data/stories/heldout        # the same, on the held-out half

A labelled folder holds one RSS feed per outlet (`<outlet>.xml`) and `labels.tsv` (`url`,
`story`, …). `--fit` scores every pair of items published within the window, fits a logistic
regression on the development half (scikit-learn, from the `bench` extra) and shows what
cross-validation by ISO week (hard negatives share a week, so they stay in one fold) gives
with those weights before printing them. Without `--fit` it runs triage.clusters.link, the
code `digest collect` runs, with the weights in triage/clusters.py.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import numpy as np
from alliance_digest.triage import clusters
from alliance_digest.triage.story_eval import PairCounts, pair_counts
from alliance_digest.triage.tokens import story_keys

#: Inverse L2 strength of the fit: chosen by the week-fold cross-validation (1, 3, 10, 30,
#: 100 tried; 30 gave the best en-en precision at equal recall).
REGULARISATION = 30.0
#: Outlets whose items lead a story (the government's own account).
PRIMARY = {"state", "dod", "defense", "whitehouse", "mofa-en", "mofa-ja", "mod-ja", "kantei-ja",
           "usfj", "indopacom"}


def load(folder: Path) -> list[dict]:
    """Every item of the folder's feeds with its label, language, outlet and day."""
    with (folder / "labels.tsv").open(encoding="utf-8") as f:
        labels = {r["url"]: r for r in csv.DictReader(f, delimiter="\t",
                                                      quoting=csv.QUOTE_NONE)}
    items = []
    for path in sorted(folder.glob("*.xml")):
        for e in feedparser.parse(path.read_bytes()).entries:
            label = labels[e.link]
            published = datetime(*e.published_parsed[:6], tzinfo=UTC)
            items.append({"url": e.link, "title": e.title, "summary": e.get("summary", ""),
                          "lang": label["lang"], "outlet": path.stem, "story": label["story"],
                          "published": published, "day": published.timestamp() / 86400})
    return items


def build(items: list[dict]) -> tuple[clusters.Pool, list[tuple[int, float, int]]]:
    keys = [story_keys(it["title"], it["summary"]) for it in items]
    outlets = sorted({it["outlet"] for it in items})
    pool = clusters.Pool.build(keys, [it["day"] for it in items],
                               [outlets.index(it["outlet"]) for it in items])
    lead_keys = [(0 if it["outlet"] in PRIMARY else 1, it["day"], k)
                 for k, it in enumerate(items)]
    return pool, lead_keys


def report(items: list[dict], leads: list[int], only: set[tuple[int, int]] | None = None) -> str:
    counts: dict[str, PairCounts] = pair_counts(
        [(it["story"], lead, it["lang"]) for it, lead in zip(items, leads, strict=True)],
        only=only)
    return "\n".join(f"  {kind}: {c}" for kind, c in counts.items())


def fit(items: list[dict], window: float, folds: int = 5) -> None:
    from sklearn.linear_model import LogisticRegression

    pool, _ = build(items)
    pairs = [(a, b) for a, b in itertools.combinations(range(len(items)), 2)
             if abs(items[a]["day"] - items[b]["day"]) <= window]
    i = np.array([p[0] for p in pairs])
    j = np.array([p[1] for p in pairs])
    x = clusters.pair_features(pool, i, j)
    y = np.array([items[a]["story"] == items[b]["story"] for a, b in pairs])
    week = [int(hashlib.md5(it["published"].strftime("%G-%V").encode()).hexdigest(), 16) % folds
            for it in items]
    fold = np.array([week[a] if week[a] == week[b] else -1 for a, b in pairs])
    print(f"{len(pairs)} pairs within {window} days, {int(y.sum())} of one development")
    # Cross-validated: weights fitted without a week's pairs, the week clustered with them.
    saved = clusters.WEIGHTS.copy(), clusters.BIAS
    leads = list(range(len(items)))
    for k in range(folds):
        train = (fold != k) & (fold != -1)
        model = LogisticRegression(C=REGULARISATION, max_iter=5000).fit(x[train], y[train])
        clusters.WEIGHTS, clusters.BIAS = model.coef_[0], float(model.intercept_[0])
        clusters._WEIGHT_LIST = clusters.WEIGHTS.tolist()
        members = [n for n in range(len(items)) if week[n] == k]
        sub_pool, sub_leads = build([items[n] for n in members])
        sub, _, _ = clusters.link(sub_pool, sub_leads)
        for n, lead in zip(members, sub, strict=True):
            leads[n] = members[lead]
    clusters.WEIGHTS, clusters.BIAS = saved
    clusters._WEIGHT_LIST = clusters.WEIGHTS.tolist()
    same_week = {(a, b) for a, b in itertools.combinations(range(len(items)), 2)
                 if week[a] == week[b]}
    print("cross-validated by week (pairs within one week):")
    print(report(items, leads, same_week))
    model = LogisticRegression(C=REGULARISATION, max_iter=5000).fit(x[fold != -1], y[fold != -1])
    print("WEIGHTS = np.array([" + ", ".join(f"{w:.2f}" for w in model.coef_[0]) + "])")
    print(f"BIAS = {model.intercept_[0]:.2f}")
    for name, w in zip(clusters.FEATURES, model.coef_[0], strict=True):
        print(f"  {name:24} {w:+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--window", type=float, default=clusters.DEFAULT_WINDOW_DAYS)
    args = parser.parse_args()
    items = load(args.folder)
    print(f"{args.folder}: {len(items)} items, {len({it['story'] for it in items})} stories")
    if args.fit:
        fit(items, args.window)
        return
    pool, lead_keys = build(items)
    leads, candidates, links = clusters.link(pool, lead_keys, window_days=args.window)
    print(f"{candidates} candidate pairs, {links} likely")
    print(report(items, leads))
    wrong = defaultdict(list)
    for a, b in itertools.combinations(range(len(items)), 2):
        same, together = items[a]["story"] == items[b]["story"], leads[a] == leads[b]
        if same != together:
            wrong["apart" if same else "joined"].append((a, b))
    for kind, found in wrong.items():
        print(f"{kind} ({len(found)} pairs):")
        for a, b in found[:40]:
            print(f"  {items[a]['story'][:38]:38} {items[a]['outlet']:11} {items[a]['title'][:60]}")
            print(f"  {items[b]['story'][:38]:38} {items[b]['outlet']:11} {items[b]['title'][:60]}")
            print()


if __name__ == "__main__":
    sys.exit(main())
