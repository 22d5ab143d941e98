"""Story clusters: the same event reported by several outlets becomes one story.

The pipeline, per time-ordered chunk of the batch:

    tokens   = token_set(title, summary) for each batch item          # triage/tokens.py;
                                                                      # made at parse time
                                                                      # for new items
    history  = (id, day, tokens) of clustered items within ±window    # item_tokens.day index:
                                                                      # never re-tokenised
    pairs    = candidates sharing >= 2 of their rarest tokens          # one scipy sparse
               → exact Jaccard(token sets) >= threshold                # product, no Python
               and published within window_days of each other         # per history item
    stories  = union pairs, most similar first, unless the story would then span more than
               window_days (keeps a daily "press conference" from chaining into one story)
    lead     = government/military source first, then earliest published, then lowest id
    write    cluster_id = lead id for the batch, move re-led stories, store batch tokens

Similarity is the Jaccard index of two items' token sets: words of the title plus the first
SUMMARY_TOKENS words of the plain-text summary, lower-cased, with function words, press-release
boilerplate ("commencing at", "approximately 40 minutes") and words nearly every alliance item
shares ("Japan", "U.S.", "minister", "security") removed, so what is left is mostly names,
places and the specifics of the event. Japanese text contributes character bigrams (untuned:
same-template MOFA releases about different counterparts score high).

Why not MinHash/LSH: reports of one event by different outlets share only a third or so of
their words (Jaccard ≈ 0.3-0.6), while a different meeting of the same ministers shares a
quarter. LSH tuned for J ≈ 0.3 either misses pairs or makes a tenth of the window candidates,
and MinHash's estimate (±0.05 at 128 permutations) blurs exactly the margin that separates
them. So the score is the exact Jaccard index; only finding candidates is approximate, the
way LSH is, and cheaper (see similar_pairs).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlite_utils
from scipy import sparse

from ..store import clusters as store
from ..store.clusters import ClusterRow
from .tokens import token_set

#: Jaccard index at or above which two items report the same event. Chosen on realistic
#: multi-outlet coverage (tests/test_clusters.py): reports of one event score 0.3-0.65,
#: different events with the same officials (Japan-US vs Japan-Australia 2+2) 0.2-0.25.
DEFAULT_THRESHOLD = 0.3
DEFAULT_WINDOW_DAYS = 3.0
#: Items with fewer distinct tokens ("Press Release", "Readout") never link: a two-word
#: overlap says nothing about the event.
MIN_TOKENS = 4
#: Rarest shared tokens per item used to find candidate pairs (see similar_pairs). Reports of
#: one event share several names and places, so a few suffice; more only adds cost.
CANDIDATE_TOKENS = 8
#: Batch items handled per chunk (and per transaction): bounds memory on a first run over a
#: large backlog while keeping a normal collect batch in one chunk.
CHUNK_ITEMS = 2_000

#: Slots of the bitmap that screens history tokens against the batch's (a power of two).
_BITMAP_SIZE = 1 << 22
#: Tolerance on day comparisons (julianday doubles carry ~50 µs of rounding).
_EPS_DAYS = 1e-6

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
    #: Item pairs at or above the threshold within the window.
    pairs: int


def similar_pairs(sets: Sequence[bytes], days: np.ndarray, n_batch: int, *,
                  threshold: float, window_days: float) -> list[tuple[float, int, int]]:
    """(jaccard, i, j) for i < j, i in the batch (the first n_batch sets), j anywhere.

    Candidates come from one sparse product over each set's *rarest* tokens (by frequency in
    this pool): a report's names, places and specifics, not the words half the window shares,
    which would pair every item with most of history and make the cost grow with the window.
    Only tokens the batch has are looked at (nothing else can be shared with a batch item);
    of those, only tokens some other set also has (the others pair nothing), at most
    CANDIDATE_TOKENS per set, and never more than the prefix-filtering bound
    |x| - ceil(t·|x|) + 1 (Chaudhuri et al., ICDE 2006). A candidate must share two of them:
    sets of at least MIN_TOKENS with a Jaccard index above 1/7 share at least two tokens.
    The Jaccard index of each candidate is then computed exactly.

    Like LSH, this can miss a pair, here one whose common words are all among the pool's
    commonest: on the benchmark's synthetic news it finds 96% of the pairs at 0.3, and every
    pair at the default threshold on the real coverage in tests/test_clusters.py.
    """
    sizes = np.fromiter((len(s) // 4 for s in sets), dtype=np.int64, count=len(sets))
    hashes = np.frombuffer(b"".join(sets), dtype="<u4")
    small = sizes < MIN_TOKENS
    if small.any():
        hashes = hashes[np.repeat(~small, sizes)]
        sizes[small] = 0
    if not sizes[:n_batch].any():
        return []
    # A history token no batch item has cannot be shared with one: columns are the batch's
    # vocabulary, and history entries are screened by a bitmap of the batch's hashes before
    # the (exact) lookup, so most of history never reaches a sort.
    rows = np.repeat(np.arange(len(sets)), sizes)
    n_entries = int(sizes[:n_batch].sum())
    vocabulary = np.unique(hashes[:n_entries])
    seen = np.zeros(_BITMAP_SIZE, dtype=bool)
    seen[vocabulary & (_BITMAP_SIZE - 1)] = True
    maybe = seen[hashes & (_BITMAP_SIZE - 1)]
    rows, hashes = rows[maybe], hashes[maybe]
    columns = np.minimum(np.searchsorted(vocabulary, hashes), len(vocabulary) - 1)
    known = vocabulary[columns] == hashes
    rows, columns = rows[known], columns[known].astype(np.int64)
    counts = np.bincount(columns, minlength=len(vocabulary))
    shape = (len(sets), len(vocabulary))
    row_starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(sets)))])

    # Each row's tokens rarest first, ties by column (a fixed global order): one sort on
    # (row, count, column) packed into an int64.
    freq = counts[columns].astype(np.int64)
    order = np.argsort((rows * (int(counts.max()) + 1) + freq) * len(counts) + columns)
    row_of = rows[order]
    starts = row_starts[row_of]
    position = np.arange(len(order)) - starts
    shared = freq[order] > 1
    before = np.cumsum(shared) - shared
    rank = before - before[starts]
    bound = sizes - np.ceil(threshold * sizes - 1e-9).astype(np.int64) + 1
    kept = order[shared & (rank < CANDIDATE_TOKENS) & (position < bound[row_of])]
    # Sorted by row, so the CSR arrays are built directly (no COO conversion).
    keys = sparse.csr_matrix(
        (np.ones(len(kept), dtype=np.float32), columns[kept],
         np.concatenate([[0], np.cumsum(np.bincount(rows[kept], minlength=len(sets)))])),
        shape=shape)

    candidates = (keys[:n_batch] @ keys.T).tocoo()
    i, j = candidates.row, candidates.col
    keep = ((candidates.data >= 2) & (j > i)
            & (np.abs(days[i] - days[j]) <= window_days + _EPS_DAYS))
    i, j = i[keep], j[keep]
    if not len(i):
        return []
    full = sparse.csr_matrix(
        (np.ones(len(columns), dtype=np.float32), columns, row_starts), shape=shape)
    common = np.asarray(full[i].multiply(full[j]).sum(axis=1)).ravel()
    jaccard = common / (sizes[i] + sizes[j] - common)
    keep = jaccard >= threshold
    return [(float(s), int(a), int(b))
            for s, a, b in zip(jaccard[keep], i[keep], j[keep], strict=True)]


class _Stories:
    """Union-find over batch items and existing stories, refusing unions that span too long."""

    def __init__(self, window_days: float) -> None:
        self.window_days = window_days
        self.parent: dict[Any, Any] = {}
        self.lead: dict[Any, tuple[int, float, int]] = {}
        self.span: dict[Any, tuple[float, float]] = {}

    def add(self, node: Any, lead_key: tuple[int, float, int], first: float,
            last: float) -> None:
        if node not in self.parent:
            self.parent[node] = node
            self.lead[node] = lead_key
            self.span[node] = (first, last)

    def find(self, node: Any) -> Any:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: Any, b: Any) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        first = min(self.span[ra][0], self.span[rb][0])
        last = max(self.span[ra][1], self.span[rb][1])
        if last - first > self.window_days + _EPS_DAYS:
            return False
        self.parent[rb] = ra
        self.lead[ra] = min(self.lead[ra], self.lead[rb])
        self.span[ra] = (first, last)
        return True


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a chunk runs.

    A chunk allocates a tuple per history item, none of them cyclic; the collections those
    allocations trigger traverse the whole process heap (the desk's, the flow's), a cost that
    grows with whatever else the process holds rather than with the batch. Measured at 10% of
    a 1,000-item batch against 1M items of history.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cluster_items(db: sqlite_utils.Database, item_ids: Sequence[int] | None = None, *,
                  window_days: float = DEFAULT_WINDOW_DAYS,
                  threshold: float = DEFAULT_THRESHOLD) -> ClusterStats:
    """Group items into stories (`items.cluster_id` = the lead's id; a lone item leads itself).

    `item_ids=None` clusters every item not clustered yet. Given ids are taken out of their
    stories first and clustered again, so re-running on the same items changes nothing.
    Work is proportional to the batch and the items published within `window_days` of it,
    never to the size of history.
    """
    if not window_days > 0:
        raise ValueError(f"window_days must be positive, not {window_days!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], not {threshold!r}")
    if item_ids is None:
        ids = store.unclustered_ids(db)
    else:
        ids = list(dict.fromkeys(item_ids))
        with db.atomic():
            store.detach(db, ids)
    rows = store.batch_rows(db, ids)
    totals = {"items": 0, "window": 0, "pairs": 0}
    for start in range(0, len(rows), CHUNK_ITEMS):
        with db.atomic(), _no_gc():
            _cluster_chunk(db, rows[start:start + CHUNK_ITEMS], window_days, threshold, totals)
    # Read back: a later chunk may have moved an earlier chunk's story to a new lead.
    leads = store.leads_of(db, [r.id for r in rows])
    sizes = store.story_sizes(db, sorted(set(leads.values())))
    in_stories = [lead for lead in leads.values() if sizes.get(lead, 1) > 1]
    return ClusterStats(items=totals["items"], in_stories=len(in_stories),
                        stories=len(set(in_stories)), window_items=totals["window"],
                        pairs=totals["pairs"])


def _cluster_chunk(db: sqlite_utils.Database, batch: list[ClusterRow], window_days: float,
                   threshold: float, totals: dict[str, int]) -> None:
    """Cluster one time-ordered chunk against history and write the result."""
    batch_ids = {r.id for r in batch}
    history = [h for h in store.window_tokens(db, batch[0].day - window_days - _EPS_DAYS,
                                              batch[-1].day + window_days + _EPS_DAYS)
               if h[0] not in batch_ids]
    batch_sets = [r.tokens if r.tokens is not None else token_set(r.title, r.summary_text)
                  for r in batch]
    stale = [h[0] for h in history if h[2] is None]
    refreshed = {item_id: token_set(*text) for item_id, text in store.texts(db, stale).items()}
    sets = batch_sets + [h[2] if h[2] is not None else refreshed.get(h[0], b"")
                         for h in history]
    days = np.array([r.day for r in batch] + [h[1] for h in history], dtype=np.float64)
    pairs = similar_pairs(sets, days, len(batch), threshold=threshold, window_days=window_days)

    # Nodes: ("i", item id) for batch items, ("s", lead id) for stories already stored.
    n = len(batch)
    story_of = store.leads_of(db, sorted({history[k - n][0] for _, _, k in pairs if k >= n}))
    uf = _Stories(window_days)
    for r in batch:
        uf.add(("i", r.id), r.lead_key, r.day, r.day)
    for lead_id, info in store.stories(db, story_of.values()).items():
        uf.add(("s", lead_id), info.lead_key, info.first_day, info.last_day)

    def node(k: int) -> tuple[str, int] | None:
        if k < n:
            return ("i", batch[k].id)
        lead = story_of.get(history[k - n][0])  # None: detached by a run that did not finish
        return ("s", lead) if ("s", lead) in uf.parent else None

    # Most similar first, so a borderline pair cannot claim an item's story slot (span limit)
    # before its real match; ids break ties for a deterministic result.
    ids = [r.id for r in batch] + [h[0] for h in history]
    for _, i, j in sorted(pairs, key=lambda p: (-p[0], ids[p[1]], ids[p[2]])):
        a, b = node(i), node(j)
        if a is not None and b is not None:
            uf.union(a, b)

    # An item inserted with its tokens already leads its own story (store.items): writing
    # that again is skipped.
    assignments = {r.id: lead for r in batch
                   if (lead := uf.lead[uf.find(("i", r.id))][2]) != r.id or r.tokens is None}
    relead = [(old, uf.lead[uf.find(("s", old))][2]) for kind, old in uf.parent
              if kind == "s" and uf.lead[uf.find(("s", old))][2] != old]
    store.assign(db, assignments.items(), relead)
    history_days = {h[0]: h[1] for h in history}
    store.save_tokens(db, [*((r.id, r.day, t) for r, t in zip(batch, batch_sets, strict=True)),
                           *((i, history_days[i], t) for i, t in refreshed.items())])
    totals["items"] += len(batch)
    totals["window"] += len(history)
    totals["pairs"] += len(pairs)


def cluster_members(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The other items of `item_id`'s story (lead first) with their source names, for the desk."""
    return store.cluster_members(db, item_id)
