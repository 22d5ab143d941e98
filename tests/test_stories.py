"""Stories measured on the hand-labelled developments (tests/data/stories, README there).

Each labelled folder is stored as it would be collected — one source per outlet, its entries
parsed by the feed parser — then clustered by the code a collect run uses, and the stored
stories are compared pair by pair with the labels (`digest triage evaluate-stories`).
The development half tuned the pair model; the held-out half was written by someone else
and never looked at while tuning: its figures are the ones the README reports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from alliance_digest.sources.feeds import parse_feed
from alliance_digest.store import items, sources
from alliance_digest.store.db import open_db
from alliance_digest.triage import tokens
from alliance_digest.triage.clusters import cluster_items
from alliance_digest.triage.story_eval import (
    evaluate_stories,
    format_story_report,
    read_story_labels,
)

STORIES = Path(__file__).parent / "data" / "stories"
#: Outlets whose releases are the government's own account (they lead their stories).
GOVERNMENT = {"state", "dod", "defense", "whitehouse", "mofa-en", "mofa-ja", "mod-ja",
              "kantei-ja", "usfj", "indopacom"}


def stored(folder: Path, db_path: Path):
    db = open_db(db_path)
    feeds = sorted(folder.glob("*.xml"))
    sources.sync_sources(db, [{
        "name": f.stem, "url": f"https://stories.test/{f.stem}", "kind": "feed",
        "category": "government" if f.stem in GOVERNMENT else "news"} for f in feeds])
    with db.atomic():
        for f in feeds:
            src = sources.get_source(db, f.stem)
            feed = parse_feed(f.read_bytes(), {}, src["url"])
            items.store_entries(db, src["id"], [dataclasses.asdict(e) for e in feed.entries])
    cluster_items(db)
    return db


@pytest.fixture(scope="module", params=["dev", "heldout"])
def labelled(request, tmp_path_factory):
    folder = STORIES / request.param
    db = stored(folder, tmp_path_factory.mktemp(request.param) / "stories.db")
    yield request.param, folder / "labels.tsv", db
    db.close()


#: The issue's targets, which both halves reach (README, "Stories"): en-en recall >= 0.85 at
#: precision >= 0.95, ja-en recall >= 0.6 (dev, which the model was fitted on, holds more).
FLOORS = {"dev": {"en-en": (0.95, 0.85), "ja-en": (0.95, 0.85)},
          "heldout": {"en-en": (0.95, 0.85), "ja-en": (0.95, 0.60)}}


def test_stories_on_both_halves(labelled):
    name, labels, db = labelled
    report = evaluate_stories(db, labels)
    print(name, format_story_report(report, show=20), sep="\n")
    assert report.unmatched == []
    for pair, (precision, recall) in FLOORS[name].items():
        counts = report.counts[pair]
        assert counts.tp + counts.fn >= 50, pair
        assert counts.precision >= precision and counts.recall >= recall, (pair, str(counts))


def test_every_labelled_item_is_stored_in_its_language():
    for half in ("dev", "heldout"):
        labels = read_story_labels(STORIES / half / "labels.tsv")
        assert len(labels) >= 100
        assert len({lab.story for lab in labels}) >= 25


def test_one_pair_probability_equals_the_vectorised_model():
    """The linkage check's plain-Python pair model agrees with the batch one on real pairs
    (same language, across languages, unrelated), so a check never decides differently."""
    import numpy as np
    from alliance_digest.sources.feeds import parse_feed as parse
    from alliance_digest.triage.clusters import Pool, pair_probability, pair_probability_one
    from alliance_digest.triage.tokens import story_keys

    keys, days = [], []
    for f in sorted((STORIES / "dev").glob("*.xml")):
        for e in parse(f.read_bytes(), {}, f"https://stories.test/{f.stem}").entries:
            keys.append(story_keys(e.title, e.summary))
            days.append(float(len(days) % 9))
    pool = Pool.build(keys, days, list(range(len(keys))))
    rng = np.random.default_rng(7)
    i = rng.integers(0, len(keys), 3000)
    j = rng.integers(0, len(keys), 3000)
    batch = pair_probability(pool, i, j)
    one = np.array([pair_probability_one(pool, int(a), int(b)) for a, b in zip(i, j, strict=True)])
    assert len({bool(pool.facts[a] & 1) for a in i}) == 2  # both languages drawn
    assert (batch > 0.6).sum() >= 5  # some likely pairs among them
    np.testing.assert_allclose(one, batch, rtol=0, atol=1e-9)


def test_story_key_memos_are_bounded_and_give_the_function_s_results() -> None:
    # A hostile feed of ever new words costs one computation a word; the memo never grows
    # past its size, and a word looked up after it started again gets the same keys.
    memo = tokens._Memo(tokens._name_keys, 50)
    words = [f"name{i}x" for i in range(400)]
    for word in words:
        assert memo[word] == tokens._name_keys(word)
        assert len(memo) <= 50
    assert memo[words[0]] == tokens._name_keys(words[0])
    assert len(tokens._WORD_KEYS) <= tokens._WORD_KEYS.size
    assert tokens._WORD_KEYS["ministers"] == tokens._word_key("minister")
