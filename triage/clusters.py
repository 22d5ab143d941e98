"""Stories: the same development reported by several outlets, in English or Japanese, is one.

The pipeline, per time-ordered chunk of the batch:

    keys      = story_keys(title, summary) of each batch item        # triage/tokens.py: made
                                                                     # at parse time for new
                                                                     # items, else from text
    history   = (id, day, keys, story) of items clustered earlier     # item_tokens.day index:
                within ±window of the chunk                           # never re-tokenised
    pool      = batch + history as sparse key matrices, each key weighted by its rarity in
                the pool (idf): a name three items share says more than "meeting"
    candidates= for each batch item, the items nearest in time among those sharing one of its
                rarest keys (RAREST_KEYS words or names, RAREST_CROSS names/concepts/codes,
                NEAREST of each key's items): at most a fixed number per item, however
                repetitive the text, so a batch costs time and memory linear in its size
    p(same)   = the pair model on each candidate pair: weighted overlap of the keys (all keys
                within a language, only names/concepts/codes across languages), of the titles',
                of names, concepts and codes, conflicts between the titles' facts (a third
                country, the officials' level, a call vs. a meeting, the day named, a preview),
                days apart, one outlet twice
    stories   = pairs with p >= LINK_PROBABILITY, most likely first, join two stories only if
                the stories agree as wholes (every sampled cross pair p >= MIN_LINK and on
                average >= AVERAGE_LINK), the story stays within window_days and at most
                MAX_STORY items, and no editor's correction says otherwise (store.clusters pins)
    lead      = government/military source first, then earliest published, then lowest id
    write     cluster_id = lead id for the batch, move re-led stories, store batch keys

Why a pair model and not one similarity: reports of one development share a third of their
words, a different meeting of the same ministers in the same week a quarter; what separates
them is what the titles say (a foreign ministers' call vs. the leaders' call of the same
evening, a bilateral vs. a trilateral meeting) and time. The model's weights were fitted once
on the development half of the labelled stories (tests/data/stories/dev; `bench/stories.py
--fit` prints them again) and are constants here; the held-out half measures them.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlite_utils
from scipy import sparse

from ..store import clusters as store
from ..store.clusters import ClusterRow
from .tokens import (
    CODE,
    CONCEPT,
    EVENTS,
    LEVELS,
    NAME,
    PARTIES,
    StoryKeys,
    pack,
    story_keys,
    unpack,
)

DEFAULT_WINDOW_DAYS = 3.0
#: Pairs at least this likely to report the same development start a story's join.
LINK_PROBABILITY = 0.6
#: Two stories join only if no sampled cross pair is less likely than MIN_LINK and the cross
#: pairs average AVERAGE_LINK: a chain of look-alikes (A like B, B like C) does not join A to C.
MIN_LINK = 0.3
AVERAGE_LINK = 0.4
#: Members of each story sampled for that check (its lead and newest first): bounded cost.
LINK_SAMPLE = 4
#: Likely pairs tried per item at most (its most likely ones).
LINKS_PER_ITEM = 8
#: A story stops growing here (a templated daily series could otherwise chain without end).
MAX_STORY = 60
#: Candidate search per batch item: its rarest keys of any class, its rarest keys that cross
#: languages, and for each key the items nearest in time that have it.
#: Cross-language keys (names, concepts, codes) are searched deeper: a name or programme two
#: reports share is what finds a follow-up whose words differ (a reaction, an analysis), and
#: MAX_CANDIDATES still bounds the cost per item (the templated bench did not move).
RAREST_KEYS = 4
RAREST_CROSS = 8
NEAREST = 12
#: Candidates scored per batch item at most (those sharing most searched keys first).
MAX_CANDIDATES = 24
#: Batch items handled per chunk (and per transaction): bounds memory on a first run over a
#: large backlog while keeping a normal collect batch in one chunk. Each chunk rebuilds its
#: window's history, so larger chunks cost less time: 6,000 clusters the templated bench
#: (18,000 series items among 40,000) in 9.7 s and +200 MB where 2,000 took 15.9 s and +147 MB.
CHUNK_ITEMS = 6_000
#: Pairs scored per block of sparse products at most, and the keys their rows hold at most
#: (both bound the products' memory: rows gathered for 100,000 pairs of long items, ~150
#: keys each, took 250 MB; 2,000,000 keys are ~50 MB whatever the items' length).
_PAIR_BLOCK = 100_000
_PAIR_KEYS = 2_000_000
#: Tolerance on day comparisons (julianday doubles carry ~50 µs of rounding).
_EPS_DAYS = 1e-6

#: The pair model's features, in order (see pair_features), and its weights: logistic
#: regression fitted on tests/data/stories/dev (bench/stories.py --fit).
FEATURES = ("cosine", "overlap", "title_cosine", "title_overlap", "names", "concepts",
            "codes", "party_conflict", "level_conflict", "meeting_conflict", "day_conflict",
            "preview_conflict", "days_apart", "same_source", "cross_language",
            "cross_language_cosine", "event_conflict")
WEIGHTS = np.array([6.95, 10.73, 2.22, 2.91, -0.69, -0.29, -1.66, -5.03, -4.73, 1.16, -1.47,
                    0.86, -4.41, -7.25, -0.19, -2.33, -0.28])
BIAS = -2.61
#: WEIGHTS as Python floats, for pair_probability_one.
_WEIGHT_LIST: list[float] = WEIGHTS.tolist()


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """What one clustering run did."""

    #: Batch items clustered.
    items: int
    #: Of those, how many share a story with at least one other item.
    in_stories: int
    #: Distinct stories of two or more items the batch items belong to.
    stories: int
    #: History items (clustered earlier) the batch was compared against.
    window_items: int
    #: Candidate pairs scored, and pairs found likely enough to link.
    pairs: int
    candidates: int = 0


# --- the pool: keys as sparse matrices ------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """Items' keys as sparse 0/1 matrices over one vocabulary, with each key's weight."""

    #: items × keys, all keys / title keys only; CSR.
    keys: sparse.csr_matrix
    title: sparse.csr_matrix
    #: Per key: its idf weight in this pool, its class (tokens.WORD…CODE).
    weight: np.ndarray
    kind: np.ndarray
    #: Per item: publication day, source id (-1 unknown), packed Facts.
    days: np.ndarray
    sources: np.ndarray
    facts: np.ndarray
    _derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, items: Sequence[StoryKeys], days: Sequence[float],
              sources: Sequence[int]) -> Pool:
        n = len(items)
        all_keys = [np.asarray(k.keys, dtype=np.uint32) for k in items]
        title_keys = [np.asarray(k.title_keys, dtype=np.uint32) for k in items]
        flat = np.concatenate(all_keys) if n else np.zeros(0, np.uint32)
        vocabulary, counts = np.unique(flat, return_counts=True)
        weight = np.log((n + 1) / (counts + 1)) + 1.0

        def matrix(lists: list[np.ndarray]) -> sparse.csr_matrix:
            sizes = np.fromiter((len(x) for x in lists), dtype=np.int64, count=n)
            indptr = np.concatenate([[0], np.cumsum(sizes)])
            cat = np.concatenate(lists) if n else np.zeros(0, np.uint32)
            cols = np.searchsorted(vocabulary, cat)
            return sparse.csr_matrix((np.ones(len(cols), dtype=np.float64), cols, indptr),
                                     shape=(n, len(vocabulary)))

        return cls(matrix(all_keys), matrix(title_keys), weight,
                   (vocabulary >> 30).astype(np.int8), np.asarray(days, dtype=np.float64),
                   np.asarray(sources, dtype=np.int64),
                   np.fromiter((k.facts.pack() for k in items), dtype=np.int64, count=n))

    def _cached(self, name: str, make: Any) -> Any:
        if name not in self._derived:
            self._derived[name] = make()
        return self._derived[name]

    def column_weights(self) -> np.ndarray:
        """Per key, the weights summed over shared keys: idf (all), idf of keys that cross
        languages, idf of names, 1 for concepts, 1 for codes (columns of pair_features)."""
        def make() -> np.ndarray:
            crossing = self.kind != 0
            return np.stack([self.weight, self.weight * crossing,
                             self.weight * (self.kind == NAME), (self.kind == CONCEPT) * 1.0,
                             (self.kind == CODE) * 1.0])
        return self._cached("columns", make)

    def key_sets(self, k: int) -> tuple[frozenset[int], frozenset[int]]:
        """Item k's key columns, all and title, as sets (for pair_probability_one)."""
        sets = self._cached("sets", dict)
        if k not in sets:
            sets[k] = tuple(frozenset(m.indices[m.indptr[k]:m.indptr[k + 1]].tolist())
                            for m in (self.keys, self.title))
        return sets[k]

    def python_columns(self) -> tuple[list[float], list[float], list[int]]:
        """Per key as Python lists: idf weight, idf if it crosses languages else 0, class."""
        def make() -> tuple[list[float], list[float], list[int]]:
            w = self.column_weights()
            return w[0].tolist(), w[1].tolist(), self.kind.tolist()
        return self._cached("python", make)

    def python_items(self) -> tuple[list[list[float]], list[int], list[float], list[int]]:
        """Per item as Python lists: the totals of pair_features (all within a language, all
        across, title within, title across), packed facts, day, source."""
        def make() -> tuple[list[list[float]], list[int], list[float], list[int]]:
            totals = np.concatenate([self.totals("all"), self.totals("title")])
            return (totals.T.tolist(), self.facts.tolist(), self.days.tolist(),
                    self.sources.tolist())
        return self._cached("python-items", make)

    def totals(self, which: str) -> np.ndarray:
        """Per item, (idf sum of its keys, of its keys that cross languages): rows 0 and 1."""
        def make() -> np.ndarray:
            m = self.keys if which == "all" else self.title
            w = self.column_weights()[:2]
            return np.stack([np.asarray(m @ w[0]).ravel(), np.asarray(m @ w[1]).ravel()])
        return self._cached(f"totals-{which}", make)


def _shared(m: sparse.csr_matrix, weights: np.ndarray, i: np.ndarray,
            j: np.ndarray) -> np.ndarray:
    """Sums of `weights` rows over the keys rows i[k] and j[k] of m share: (len(weights), k).

    One elementwise product of the gathered rows (scipy merges each pair's sorted key
    columns in C, linear in their length), then one product with the weights: measured 9x
    cheaper than sorting the pairs' keys to intersect them.
    """
    both = m[i].multiply(m[j])
    return np.asarray(both @ np.ascontiguousarray(weights.T)).T


def pair_features(pool: Pool, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The pair model's FEATURES for pairs (i[k], j[k]) of pool items, one row per pair."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    fi, fj = pool.facts[i], pool.facts[j]
    cross = ((fi & 1) != (fj & 1)).astype(np.int64)  # one Japanese, one not
    weights = pool.column_weights()
    columns: list[np.ndarray] = []
    for which, m in (("all", pool.keys), ("title", pool.title)):
        shared = _shared(m, weights[:2] if which == "title" else weights, i, j)
        totals = pool.totals(which)
        # Within a language every key counts; across languages only those that cross.
        both = shared[cross, np.arange(len(i))]
        ta, tb = totals[cross, i], totals[cross, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            columns.append(np.where(ta * tb > 0, both / np.sqrt(ta * tb), 0.0))
            columns.append(np.where(np.minimum(ta, tb) > 0, both / np.minimum(ta, tb), 0.0))
        if which == "all":
            names, concepts, codes = shared[2], shared[3], shared[4]
    columns += [np.minimum(names, 20.0) / 10.0, concepts / 5.0, codes]

    def bits(packed: np.ndarray, shift: int, width: int) -> np.ndarray:
        return packed >> shift & ((1 << width) - 1)

    n_parties = len(PARTIES)
    parties_title_i, parties_text_i = bits(fi, 1, n_parties), bits(fi, 5, n_parties)
    parties_title_j, parties_text_j = bits(fj, 1, n_parties), bits(fj, 5, n_parties)
    party = ((parties_title_i & ~parties_text_j) | (parties_title_j & ~parties_text_i)) != 0
    level_i, level_j = bits(fi, 9, len(LEVELS)), bits(fj, 9, len(LEVELS))
    level = (level_i != 0) & (level_j != 0) & ((level_i & level_j) == 0)
    meet_i, meet_j = bits(fi, 14, 2), bits(fj, 14, 2)
    meeting = (meet_i != 0) & (meet_j != 0) & (meet_i != meet_j)
    day_i, day_j = bits(fi, 16, 5), bits(fj, 16, 5)
    day = (day_i != 0) & (day_j != 0) & (day_i != day_j)
    preview = bits(fi, 21, 1) != bits(fj, 21, 1)
    event_i, event_j = bits(fi, 22, len(EVENTS)), bits(fj, 22, len(EVENTS))
    event = (event_i != 0) & (event_j != 0) & ((event_i & event_j) == 0)
    apart = np.abs(pool.days[i] - pool.days[j])
    same_source = (pool.sources[i] == pool.sources[j]) & (pool.sources[i] >= 0)
    columns += [party, level, meeting, day, preview, apart, same_source, cross,
                cross * columns[0], event]
    return np.column_stack([c.astype(np.float64) for c in columns])


def probability(features: np.ndarray) -> np.ndarray:
    """P(same development) for rows of pair_features."""
    return 1.0 / (1.0 + np.exp(-np.clip(features @ WEIGHTS + BIAS, -50.0, 50.0)))


def pair_probability(pool: Pool, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The pair model on pairs of pool items, in blocks (bounded memory)."""
    out = np.empty(len(i))
    for start, stop in _pair_blocks(pool, i, j):
        out[start:stop] = probability(pair_features(pool, i[start:stop], j[start:stop]))
    return out


def _pair_blocks(pool: Pool, i: np.ndarray, j: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive pairs whose rows hold at most _PAIR_KEYS keys together
    (at least one pair, at most _PAIR_BLOCK pairs a block)."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    per_item = np.diff(pool.keys.indptr)
    spent = np.cumsum(per_item[i] + per_item[j])
    start = 0
    while start < len(i):
        before = int(spent[start - 1]) if start else 0
        stop = int(np.searchsorted(spent, before + _PAIR_KEYS, side="right"))
        stop = min(max(stop, start + 1), start + _PAIR_BLOCK)
        yield start, stop
        start = stop


def pair_probability_one(pool: Pool, a: int, b: int) -> float:
    """pair_probability for one pair, in plain Python: what a linkage check asks for.

    The same features as pair_features (tests assert they agree), computed on Python sets:
    numpy's per-call overhead made a check of a few pairs cost half a millisecond, and a
    batch of templated items asks for tens of thousands of them.
    """
    keys_a, title_a = pool.key_sets(a)
    keys_b, title_b = pool.key_sets(b)
    weight, crossing, kind = pool.python_columns()
    totals, facts, days, sources = pool.python_items()
    fa, fb = facts[a], facts[b]
    cross = (fa & 1) != (fb & 1)
    counted = crossing if cross else weight
    features: list[float] = []
    names = concepts = codes = 0.0
    for mine, theirs, row in ((keys_a, keys_b, int(cross)), (title_a, title_b, 2 + int(cross))):
        common = mine & theirs
        both = 0.0
        for c in common:
            both += counted[c]
            if row < 2:
                k = kind[c]
                if k == NAME:
                    names += weight[c]
                elif k == CONCEPT:
                    concepts += 1
                elif k == CODE:
                    codes += 1
        ta, tb = totals[a][row], totals[b][row]
        features.append(both / math.sqrt(ta * tb) if ta * tb > 0 else 0.0)
        features.append(both / min(ta, tb) if min(ta, tb) > 0 else 0.0)
    features += [min(names, 20.0) / 10.0, concepts / 5.0, codes]

    def bits(packed: int, shift: int, width: int) -> int:
        return packed >> shift & ((1 << width) - 1)

    n_parties = len(PARTIES)
    party = bool((bits(fa, 1, n_parties) & ~bits(fb, 5, n_parties))
                 | (bits(fb, 1, n_parties) & ~bits(fa, 5, n_parties)))
    level_a, level_b = bits(fa, 9, len(LEVELS)), bits(fb, 9, len(LEVELS))
    meet_a, meet_b = bits(fa, 14, 2), bits(fb, 14, 2)
    day_a, day_b = bits(fa, 16, 5), bits(fb, 16, 5)
    event_a, event_b = bits(fa, 22, len(EVENTS)), bits(fb, 22, len(EVENTS))
    features += [
        party, bool(level_a and level_b and not level_a & level_b),
        bool(meet_a and meet_b and meet_a != meet_b), bool(day_a and day_b and day_a != day_b),
        bits(fa, 21, 1) != bits(fb, 21, 1), abs(days[a] - days[b]),
        sources[a] == sources[b] and sources[a] >= 0, cross,
        cross * features[0], bool(event_a and event_b and not event_a & event_b)]
    logit = sum(w * f for w, f in zip(_WEIGHT_LIST, features, strict=True)) + BIAS
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))


# --- candidates -----------------------------------------------------------------------------------


def candidate_pairs(pool: Pool, n_batch: int, window_days: float) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """(i, j), i a batch item (the first n_batch of the pool), j any other item, i != j.

    Each batch item searches its RAREST_KEYS rarest keys and RAREST_CROSS rarest keys that
    cross languages (keys no other item has are skipped: they pair nothing); for each, the
    NEAREST items in time among those having it; at most MAX_CANDIDATES of them, those
    sharing the most searched keys first. So the cost per item is fixed, whatever the text:
    a templated series whose every item shares every word costs what ordinary news costs.
    """
    keys = pool.keys
    if n_batch == 0 or keys.nnz == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    df = np.asarray(keys.sum(axis=0)).ravel()
    batch = keys[:n_batch].tocoo()
    rows, cols = batch.row.astype(np.int64), batch.col.astype(np.int64)
    shared = df[cols] > 1
    rows, cols = rows[shared], cols[shared]
    crossing = pool.kind[cols] != 0
    # Rarest first within each row: one sort on (row, df, col).
    order = np.lexsort((cols, df[cols], rows))
    rows, cols, crossing = rows[order], cols[order], crossing[order]
    starts = np.searchsorted(rows, rows, side="left")
    rank_any = np.arange(len(rows)) - starts
    crossing_before = np.cumsum(crossing) - crossing
    rank_cross = crossing_before - crossing_before[starts]
    keep = (rank_any < RAREST_KEYS) | (crossing & (rank_cross < RAREST_CROSS))
    rows, cols = rows[keep], cols[keep]
    if not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    # Posting lists of the searched keys over the whole pool, by (key, day).
    searched = np.unique(cols)
    csc = keys.tocsc()
    sub = csc[:, searched].tocoo()
    post_key, post_item = sub.col.astype(np.int64), sub.row.astype(np.int64)
    order = np.lexsort((post_item, pool.days[post_item], post_key))
    post_key, post_item = post_key[order], post_item[order]
    post_day = pool.days[post_item]
    # Where each (batch item, key) sits in its key's posting list.
    key_index = np.searchsorted(searched, cols)
    lo = np.searchsorted(post_key, key_index, side="left")
    hi = np.searchsorted(post_key, key_index, side="right")
    # Where the item's own day falls in its key's list: its neighbours in time are around.
    position = _positions(post_day, lo, hi, pool.days[rows])
    pair_i: list[np.ndarray] = []
    pair_j: list[np.ndarray] = []
    half = NEAREST // 2 + 1
    for offset in range(-half, half + 1):
        if offset == 0:
            continue
        idx = position + offset
        ok = (idx >= lo) & (idx < hi)
        if not ok.any():
            continue
        a, b = rows[ok], post_item[idx[ok]]
        near = (a != b) & (np.abs(pool.days[a] - pool.days[b]) <= window_days + _EPS_DAYS)
        pair_i.append(a[near])
        pair_j.append(b[near])
    if not pair_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.concatenate(pair_i)
    j = np.concatenate(pair_j)
    # One row per pair, with how many searched keys found it; the best MAX_CANDIDATES per i.
    n = len(pool.days)
    code = i * n + j
    code, hits = np.unique(code, return_counts=True)
    i, j = code // n, code % n
    order = np.lexsort((j, -hits, i))
    i, j = i[order], j[order]
    first = np.searchsorted(i, i, side="left")
    keep = (np.arange(len(i)) - first) < MAX_CANDIDATES
    i, j = i[keep], j[keep]
    # A pair of two batch items is found from both ends: keep it once.
    lo_, hi_ = np.minimum(i, j), np.maximum(i, j)
    code = np.unique(lo_ * n + hi_)
    return code // n, code % n


def _positions(post_day: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               day: np.ndarray) -> np.ndarray:
    """For each (lo, hi, day): the index in post_day[lo:hi] (sorted) where `day` would go."""
    # post_day is sorted within each [lo, hi) run; adding the run's index times a large
    # offset makes the whole array sorted, so one searchsorted answers every query.
    run = np.zeros(len(post_day), dtype=np.int64)
    starts = np.unique(lo)
    run[starts] = 1
    run = np.cumsum(run) - 1
    span = float(np.ptp(post_day)) + 2.0 if len(post_day) else 1.0
    base = post_day.min() if len(post_day) else 0.0
    flat = run * span + (post_day - base)
    query_run = np.searchsorted(starts, lo)
    query = query_run * span + (day - base)
    return np.searchsorted(flat, query, side="left")


# --- joining stories ---------------------------------------------------------------------------


class _Stories:
    """Union-find over pool items (and existing stories), refusing joins that do not hold."""

    def __init__(self, pool: Pool, lead_keys: Sequence[tuple[int, float, int]],
                 pins: Sequence[int | None], window_days: float) -> None:
        n = len(lead_keys)
        self.pool = pool
        self.window_days = window_days
        self.parent = list(range(n))
        self.members: dict[int, list[int]] = {k: [k] for k in range(n)}
        self.lead = list(lead_keys)
        self.span = [(d, d) for d in pool.days.tolist()]
        #: An editor's pin (store.clusters) per root: stories pinned apart never join.
        self.pin: list[int | None] = list(pins)
        self.size = [1] * n
        self.cache: dict[tuple[int, int], float] = {}
        #: Story pairs (roots and combined size) whose join the linkage check refused.
        self.refused: set[tuple[int, int, int]] = set()

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def join(self, a: int, b: int, *, check: bool = True) -> bool:
        """Join a's and b's stories; `check` the span, the size and the linkage first."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        pa, pb = self.pin[ra], self.pin[rb]
        if pa is not None and pb is not None and pa != pb:
            return False
        first = min(self.span[ra][0], self.span[rb][0])
        last = max(self.span[ra][1], self.span[rb][1])
        if check and (last - first > self.window_days + _EPS_DAYS
                      or self.size[ra] + self.size[rb] > MAX_STORY
                      or not self._agree(ra, rb)):
            return False
        if self.lead[rb] < self.lead[ra]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] += self.members.pop(rb)
        self.size[ra] += self.size[rb]
        self.span[ra] = (first, last)
        self.pin[ra] = pa if pa is not None else pb
        return True

    def _sample(self, root: int) -> list[int]:
        """The story's lead and its earliest-joined members: its core, which changes seldom
        as the story grows, so most cross pairs of a later check are already cached."""
        members = self.members[root]
        if len(members) <= LINK_SAMPLE:
            return members
        lead = min(members, key=lambda k: self.lead[k])
        return list(dict.fromkeys([lead, *members[:LINK_SAMPLE]]))[:LINK_SAMPLE]

    def _agree(self, ra: int, rb: int) -> bool:
        """Every pair between the two stories' samples is at least MIN_LINK likely, and
        AVERAGE_LINK on average (each pair computed once; the first weak pair decides)."""
        if self.size[ra] == self.size[rb] == 1:
            return True  # the pair itself is the only cross pair, and it is likely
        key = (min(ra, rb), max(ra, rb), self.size[ra] + self.size[rb])
        if key in self.refused:  # same two stories, not grown since: the same answer
            return False
        total, count = 0.0, 0
        for x in self._sample(ra):
            for y in self._sample(rb):
                pair = (x, y) if x < y else (y, x)
                p = self.cache.get(pair)
                if p is None:
                    p = self.cache[pair] = pair_probability_one(self.pool, *pair)
                if p < MIN_LINK:
                    self.refused.add(key)
                    return False
                total += p
                count += 1
        if total / count >= AVERAGE_LINK:
            return True
        self.refused.add(key)
        return False


def _strongest(i: np.ndarray, j: np.ndarray, p: np.ndarray, likely: np.ndarray) -> np.ndarray:
    """The likely pairs among each item's LINKS_PER_ITEM most likely (at either end).

    A story needs a few links per member, not all of them: in a templated series every item
    is likely with every other, and trying each of those joins would cost quadratic time.
    """
    if len(likely) == 0:
        return likely
    ends = np.concatenate([i[likely], j[likely]])
    pairs = np.concatenate([likely, likely])
    order = np.lexsort((pairs, -p[pairs], ends))
    ends, pairs = ends[order], pairs[order]
    first = np.searchsorted(ends, ends, side="left")
    return np.unique(pairs[(np.arange(len(ends)) - first) < LINKS_PER_ITEM])


def link(pool: Pool, lead_keys: Sequence[tuple[int, float, int]], *,
         groups: Mapping[int, Sequence[int]] | None = None,
         spans: Mapping[int, tuple[float, float]] | None = None,
         pins: Sequence[int | None] | None = None,
         window_days: float = DEFAULT_WINDOW_DAYS,
         pairs: tuple[np.ndarray, np.ndarray] | None = None,
         n_batch: int | None = None) -> tuple[list[int], int, int]:
    """Group pool items into stories: (the lead pool index of each item, candidates, links).

    `groups`: stories that exist already, as pool indices (they start joined), and `spans`:
    their whole extent in days by the same keys (members outside the pool count too);
    `pins`: per item an editor's pin or None; `pairs`: the candidate pairs (default:
    candidate_pairs over the first n_batch items, default all).
    """
    n = len(lead_keys)
    stories = _Stories(pool, lead_keys, pins or [None] * n, window_days)
    for key, members in (groups or {}).items():
        for other in members[1:]:
            stories.join(members[0], other, check=False)
        if spans and key in spans:
            root = stories.find(members[0])
            first, last = stories.span[root]
            stories.span[root] = (min(first, spans[key][0]), max(last, spans[key][1]))
    if pairs is None:
        pairs = candidate_pairs(pool, n if n_batch is None else n_batch, window_days)
    i, j = pairs
    p = pair_probability(pool, i, j) if len(i) else np.zeros(0)
    for x, y, q in zip(i.tolist(), j.tolist(), p.tolist(), strict=True):
        stories.cache[(min(x, y), max(x, y))] = q
    likely = _strongest(i, j, p, np.flatnonzero(p >= LINK_PROBABILITY))
    # Most likely first, so a borderline pair cannot take an item's story slot (span, size)
    # before its real match; indices break ties for a deterministic result.
    likely = likely[np.lexsort((j[likely], i[likely], -p[likely]))]
    for k in likely.tolist():
        stories.join(int(i[k]), int(j[k]))
    leads = []
    for k in range(n):
        root = stories.find(k)
        leads.append(min(stories.members[root], key=lambda m: stories.lead[m]))
    return leads, len(i), len(likely)


# --- the database side --------------------------------------------------------------------------


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a chunk runs.

    A chunk allocates small objects per history item, none of them cyclic; the collections
    those allocations trigger traverse the whole process heap (the desk's, the flow's), a cost
    that grows with whatever else the process holds rather than with the batch.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cluster_items(db: sqlite_utils.Database, item_ids: Sequence[int] | None = None, *,
                  window_days: float = DEFAULT_WINDOW_DAYS) -> ClusterStats:
    """Group items into stories (`items.cluster_id` = the lead's id; a lone item leads itself).

    `item_ids=None` clusters every item not clustered yet. Given ids are taken out of their
    stories first and clustered again (editors' pins stay), so re-running on the same items
    changes nothing. Work is proportional to the batch and the items published within
    `window_days` of it, never to the size of history.
    """
    if not window_days > 0:
        raise ValueError(f"window_days must be positive, not {window_days!r}")
    if item_ids is None:
        ids = store.unclustered_ids(db)
    else:
        # A pinned item stays in the story an editor put it in.
        pinned = store.pins(db, list(item_ids))
        ids = [i for i in dict.fromkeys(item_ids) if i not in pinned]
        with db.atomic():
            store.detach(db, ids)
    return cluster_waiting(db, ids, window_days=window_days)


def cluster_waiting(db: sqlite_utils.Database, ids: Sequence[int], *,
                    window_days: float = DEFAULT_WINDOW_DAYS) -> ClusterStats:
    """Cluster items that wait to be clustered (some of `store.unclustered_ids`) as they are.

    Unlike `cluster_items(db, ids)` nothing is detached first; triage/run.py clusters a
    collect run's waiting items in bounded chunks with this.
    """
    rows = store.batch_rows(db, ids)
    totals = {"items": 0, "window": 0, "pairs": 0, "candidates": 0}
    for start in range(0, len(rows), CHUNK_ITEMS):
        with db.atomic(), _no_gc():
            _cluster_chunk(db, rows[start:start + CHUNK_ITEMS], window_days, totals)
    # Read back: a later chunk may have moved an earlier chunk's story to a new lead.
    leads = store.leads_of(db, [r.id for r in rows])
    sizes = store.story_sizes(db, sorted(set(leads.values())))
    in_stories = [lead for lead in leads.values() if sizes.get(lead, 1) > 1]
    return ClusterStats(items=totals["items"], in_stories=len(in_stories),
                        stories=len(set(in_stories)), window_items=totals["window"],
                        pairs=totals["pairs"], candidates=totals["candidates"])


def _keys(keys: StoryKeys | None, text: tuple[str | None, str | None] | None) -> StoryKeys:
    """Stored keys (unpacked), else the keys of the text (an item stored before keys were)."""
    if keys is None:
        title, summary = text or (None, None)
        keys = story_keys(title, summary)
    return keys


def _cluster_chunk(db: sqlite_utils.Database, batch: list[ClusterRow], window_days: float,
                   totals: dict[str, int]) -> None:
    """Cluster one time-ordered chunk against history and write the result."""
    batch_ids = {r.id for r in batch}
    history = [h for h in store.window_items(db, batch[0].day - window_days - _EPS_DAYS,
                                             batch[-1].day + window_days + _EPS_DAYS)
               if h.id not in batch_ids]
    # Each stored key blob unpacked once (a chunk's history is most of the window).
    batch_unpacked = [unpack(r.tokens) for r in batch]
    history_unpacked = [unpack(h.tokens) for h in history]
    stale = [r.id for r, k in zip(batch, batch_unpacked, strict=True)
             if k is None and r.title is None]
    stale += [h.id for h, k in zip(history, history_unpacked, strict=True) if k is None]
    texts = store.texts(db, stale)
    batch_keys = [_keys(k, (r.title, r.summary_text) if r.title is not None
                        else texts.get(r.id)) for r, k in zip(batch, batch_unpacked, strict=True)]
    history_keys = [_keys(k, texts.get(h.id))
                    for h, k in zip(history, history_unpacked, strict=True)]
    n = len(batch)
    pool = Pool.build(batch_keys + history_keys,
                      [r.day for r in batch] + [h.day for h in history],
                      [r.source_id for r in batch] + [h.source_id for h in history])
    index = {r.id: k for k, r in enumerate(batch)} | {h.id: n + k
                                                     for k, h in enumerate(history)}
    groups: dict[int, list[int]] = {}
    for k, h in enumerate(history):
        groups.setdefault(h.cluster_id, []).append(n + k)
    # Story members outside the window still lead: a story's lead key is its best member's.
    infos = store.stories(db, groups)
    lead_keys = [r.lead_key for r in batch] + [h.lead_key for h in history]
    for lead_id, members in groups.items():
        info = infos.get(lead_id)
        if info is not None and lead_id not in index:
            for m in members:
                lead_keys[m] = min(lead_keys[m], info.lead_key)
    pins = store.pins(db, list(index))
    pin_list = [pins.get(r.id) for r in batch] + [pins.get(h.id) for h in history]
    spans = {lead: (info.first_day, info.last_day) for lead, info in infos.items()}
    leads, candidates, links = link(pool, lead_keys, groups=groups, spans=spans, pins=pin_list,
                                    window_days=window_days, n_batch=n)
    ids = [r.id for r in batch] + [h.id for h in history]

    def story_id(k: int) -> int:
        lead = leads[k]
        if lead >= n:  # led by a history item: its story's lead (maybe outside the window)
            return history[lead - n].cluster_id
        return ids[lead]

    assignments = {}
    for k, r in enumerate(batch):
        lead = story_id(k)
        # An item inserted with its keys already leads its own story (store.items): writing
        # that again is skipped.
        if lead != r.id or r.tokens is None:
            assignments[r.id] = lead
    relead = sorted({(h.cluster_id, story_id(n + k)) for k, h in enumerate(history)
                     if story_id(n + k) != h.cluster_id})
    store.assign(db, assignments.items(), relead)
    store.save_tokens(db, [
        *((r.id, r.day, pack(keys)) for r, keys in zip(batch, batch_keys, strict=True)),
        *((h.id, h.day, pack(keys)) for h, keys in zip(history, history_keys, strict=True)
          if h.id in texts),
    ])
    totals["items"] += n
    totals["window"] += len(history)
    totals["pairs"] += links
    totals["candidates"] += candidates


def cluster_members(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The other items of `item_id`'s story (lead first) with their source names, for the desk."""
    return store.cluster_members(db, item_id)


