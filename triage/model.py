"""A learned relevance model beside the rules: trained on editors' decisions and shipped labels.

What it learns from (`training_examples`): items an editor included or shortlisted (relevant)
or excluded (not), plus the shipped labelled set (`relevance-train.jsonl.gz`, the tuning part of
tests/data/relevance-labels.tsv with its texts). Items nobody decided are not labels.

The model (`LinearModel`) is a logistic regression over binary features of the text the rules
read (title and the start of the summary, normalised as `rules.normalise` does):

    words                       "takaichi", "cabinet", "self-defense"
    Japanese and Chinese runs   character pairs ("防衛", "衛費"), no segmenter needed
    the source                  "@category=government", "@country=jp"

each weighted 1/sqrt(number of features) so long summaries do not shout. Scoring is a dict
look-up per feature in plain Python (no scikit-learn, no numpy in the parse workers), so its
cost is the number of features an item makes: the model reads the title and the summary's
lede (MODEL_CHARS, CJK_CHARS) and no word pairs. Pairs and twice the text doubled the
look-ups for no gain in cross-validation on the tuning part (precision 0.907 / recall 0.951
with them, 0.907 / 0.951 without; bench/relevance.py reports the held-out figures).
`LinearModel.part` is the per-item path; `features` and `margin` are what training uses, and
tests/test_relevance_fast.py checks the two agree. Only features seen in training carry a
weight, so the model stays small.

The blend (`blend_score`) is in the rules' points so the queue's order and the threshold keep
their meaning:

    margin = model's log-odds for the item
    score  = rules' score + scale * margin + offset          (candidate when >= rules.threshold)

`scale` and `offset` come from a logistic regression over (rules score, out-of-fold margin)
and a threshold that keeps the cross-validated recall at `RECALL_TARGET`: recall first, since
an editor sees the queue and never what was filtered away. Items within `band` points of the
threshold are marked borderline, so editors' decisions on them feed the next training.

Training (`train`) needs scikit-learn; scoring does not. A model is stored in the database
(`store.models`) and never leaves the machine; `load_current` refuses a model of another format
with a warning, and triage then uses the rules alone.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import time
import zlib
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from itertools import repeat
from operator import add
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from ..texts import ascii_but_quotes
from .rules import Rules, normalise

if TYPE_CHECKING:
    import sqlite_utils

__all__ = [
    "FORMAT", "MIN_LABELS", "RECALL_TARGET", "Example", "LinearModel", "ModelError",
    "TrainResult", "features", "held_out", "shipped_examples", "train",
]

#: The model's format: a stored model of another format is not used (rules alone, a warning).
#: /2: words without word pairs, over less text (a /1 model's pair weights would go unused).
FORMAT = "alliance-digest-relevance/2"
#: Fewer labels than this of either kind: no model is trained (the rules stay alone).
MIN_LABELS = 30
#: Inverse regularisation of the logistic regression (chosen on the tuning part).
_C = 20.0
#: Cross-validated recall the blend's threshold is chosen to hold.
RECALL_TARGET = 0.95
#: How much of the summary the model reads (the lede; the rules read more).
MODEL_CHARS = 400
#: How many Japanese (or Chinese) characters it reads: each makes a feature, where an English
#: word of five or six characters makes two.
CJK_CHARS = 160
#: Borderline band around the threshold, in the blend's log-odds (about p 0.27-0.73).
BAND_LOGIT = 1.0
#: Terms shown in an item's reasons.
SHOWN_TERMS = 3
#: The shipped labelled set (package data).
SHIPPED = "relevance-train.jsonl.gz"

#: A word: letters and digits, with ' . - inside ("u.s.-japan" is "u.s.-japan", "u.s." is
#: "u.s"). Written with possessive runs (nothing to backtrack into): a sixth faster than
#: `[a-z0-9](?:[a-z0-9'.\-]*[a-z0-9])?`, which finds the same words (tests/test_relevance_fast.py).
_WORD = re.compile(r"[a-z0-9]++(?:['.\-]++[a-z0-9]++)*+")
_CJK = re.compile(r"[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]+")


def held_out(url: str) -> bool:
    """The held-out third of a labelled set, by a hash of the URL: never trained or tuned on."""
    import hashlib

    return int(hashlib.sha1(url.encode()).hexdigest(), 16) % 3 == 0


def features(title_n: str, summary_n: str, source: Mapping[str, Any] | None) -> list[str]:
    """The model's features of a normalised title and summary, repeats kept (module docstring).

    A list, not a set: finding words with one `findall` and looking them up with `map` keeps
    the per-item cost in C; a feature found twice counts twice. The text's features come
    first, the source's last.
    """
    found = _text_features(title_n, summary_n)
    if source:
        found += _source_features(source)
    return found


def _text_features(title_n: str, summary_n: str, plain: bool | None = None) -> list[str]:
    # Both capped: a hostile feed's megabyte title costs what a normal one does. `plain`: the
    # whole title and summary are ASCII but for quotes (so no Japanese or Chinese), when the
    # caller knows it; False or None only costs a look for runs that may not be there.
    text = f"{title_n[:MODEL_CHARS]} \n {summary_n[:MODEL_CHARS]}"
    found = _WORD.findall(text)
    if not (plain or ascii_but_quotes(text)):
        found += _cjk_pairs(text)
    return found


def _cjk_pairs(text: str) -> list[str]:
    """Character pairs of the Japanese (or Chinese) runs in `text`, CJK_CHARS characters at most."""
    found: list[str] = []
    budget = CJK_CHARS
    for run in _CJK.findall(text):
        run = run[:budget]
        budget -= len(run)
        if len(run) == 1:
            found.append(run)
        else:  # operator.add, not str.__add__: a fifth less per pair (no method wrapper)
            found += map(add, run, run[1:])
        if budget <= 0:
            break
    return found


#: (category, country) → the source's features: a feed's items all share theirs.
_SOURCE_FEATURES: dict[tuple[str, str], tuple[str, ...]] = {}


def _source_features(source: Mapping[str, Any]) -> tuple[str, ...]:
    category, country = source.get("category"), source.get("country")
    key = (str(category or ""), str(country or ""))
    known = _SOURCE_FEATURES.get(key)
    if known is None:
        known = tuple(f"@{name}={value.casefold()}"
                      for name, value in zip(("category", "country"), key, strict=True) if value)
        if len(_SOURCE_FEATURES) >= 1024:  # bounded, whatever the sources table holds
            _SOURCE_FEATURES.clear()
        _SOURCE_FEATURES[key] = known
    return known


@dataclass(frozen=True, slots=True)
class LinearModel:
    """A trained model: feature weights and the blend with the rules (module docstring)."""

    weights: Mapping[str, float]
    intercept: float
    #: Points per unit of margin, and points added, in the blend.
    scale: float
    offset: float
    #: Items within this many points of the threshold are borderline.
    band: float
    #: The row in `relevance_models` (0 before it is stored).
    version: int = 0
    format: str = FORMAT
    def margin(self, feats: Sequence[str]) -> tuple[float, list[float]]:
        """Log-odds of relevance, and each feature's weight (0 for an unknown one)."""
        values = list(map(self.weights.get, feats, repeat(0.0)))
        norm = 1.0 / math.sqrt(len(feats)) if feats else 0.0
        return self.intercept + norm * sum(values), values

    def part(self, title_n: str, summary_n: str, source: Mapping[str, Any] | None,
             plain: bool | None = None) -> tuple[float, dict[str, Any]]:
        """The model's points for an item and its reason (the terms that pushed it most).

        The points are `margin(features(...))`'s, written for the parse workers: the weights
        are looked up and summed in C. The reason shows the heaviest term up, the next
        heaviest up (of a lower weight) and the heaviest down, each the first in the text of
        the terms with its weight: one sort of the weights, a bisection and their `index`. A term
        found twice is shown once; the source's features are never shown. `plain`: as
        `_text_features` takes it (score_text knows it from the rules' scan).
        """
        get = self.weights.get
        feats = _text_features(title_n, summary_n, plain)
        values = list(map(get, feats, repeat(0.0)))
        top = second = bottom = 0.0
        if values:
            ordered = sorted(values)  # floats sort in C faster than max, a filtered max, min
            top = ordered[-1]
            if top > 0:
                below = bisect_left(ordered, top)  # the heaviest weight under the top one
                if below and ordered[below - 1] > 0:
                    second = ordered[below - 1]
            bottom = min(ordered[0], 0.0)
        if source:  # after the text's, as `features` puts them: the same sum, to the last bit
            values += map(get, _source_features(source), repeat(0.0))
        n = len(values)
        if not n:
            points = self.scale * self.intercept + self.offset
            return points, {"rule": "model", "match": "no known term", "weight": round(points, 2)}
        root = math.sqrt(n)
        points = self.scale * (self.intercept + 1.0 / root * sum(values)) + self.offset
        if top <= 0 and bottom == 0:
            terms = "no known term"
        else:
            # Heaviest first (a tie keeps the order up, next up, down), then shown in points.
            index = values.index
            shown = [top] if top > 0 else []
            if second:
                shown.append(second)
            if bottom:
                shown.insert(sum(1 for w in shown if w >= -bottom), bottom)
            unit = self.scale / root
            terms = ", ".join([f'"{feats[index(w)]}" {unit * w:+.1f}'
                               for w in shown[:SHOWN_TERMS]])
        return points, {"rule": "model", "match": terms, "weight": round(points, 2)}

    # --- storage -------------------------------------------------------------------------------

    def to_blob(self) -> bytes:
        """Compressed JSON (not pickle: a damaged or foreign blob can only fail to load)."""
        data = {"format": self.format, "intercept": self.intercept, "scale": self.scale,
                "offset": self.offset, "band": self.band,
                "weights": {f: round(x, 5) for f, x in self.weights.items()}}
        return zlib.compress(json.dumps(data, ensure_ascii=False).encode(), 6)

    @classmethod
    def from_blob(cls, blob: bytes, version: int = 0) -> LinearModel:
        """Read a stored model; ModelError when it is damaged or of another format."""
        try:
            data = json.loads(zlib.decompress(blob))
        except (zlib.error, ValueError, TypeError) as e:
            raise ModelError(f"relevance model {version} is damaged ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ModelError(f"relevance model {version} has format {found!r}, this program "
                             f"reads {FORMAT!r}: run `digest triage train`")
        try:
            weights = {str(f): float(x) for f, x in data["weights"].items()}
            return cls(weights=weights, intercept=float(data["intercept"]),
                       scale=float(data["scale"]), offset=float(data["offset"]),
                       band=float(data["band"]), version=version)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"relevance model {version} is damaged ({e!r})") from None


# --- training ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled item: its text and source fields as stored, and 1 (relevant) or 0."""

    title: str
    summary: str
    source: Mapping[str, Any]
    label: int
    #: Where the label comes from: "editor" or "shipped".
    origin: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What `train` made, and how it did on cross-validation."""

    model: LinearModel | None
    relevant: int
    not_relevant: int
    from_editors: int
    from_shipped: int
    #: Cross-validated precision and recall of the blend at its threshold (and of the rules).
    cv_precision: float = 0.0
    cv_recall: float = 0.0
    rules_precision: float = 0.0
    rules_recall: float = 0.0
    seconds: float = 0.0
    #: Why no model was made (too few labels), else "".
    refused: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def shipped_examples() -> list[Example]:
    """The shipped labelled set (the tuning part only; the held-out part is never shipped)."""
    path = files("alliance_digest.triage").joinpath(SHIPPED)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile):
        return []
    out = []
    for line in raw.decode("utf-8").splitlines():
        row = json.loads(line)
        out.append(Example(title=row["title"], summary=row["summary"], source=row["source"],
                           label=int(row["label"]), origin="shipped", key=row["url"]))
    return out


def _matrix(rows: Sequence[list[str]], vocab: dict[str, int] | None = None
            ) -> tuple[Any, dict[str, int]]:
    from scipy.sparse import csr_matrix

    grow = vocab is None
    vocab = {} if vocab is None else vocab
    indptr, indices, data = [0], [], []
    for feats in rows:
        norm = 1.0 / math.sqrt(len(feats)) if feats else 0.0
        for f in feats:
            j = vocab.get(f)
            if j is None:
                if not grow:
                    continue
                j = vocab[f] = len(vocab)
            indices.append(j)
            data.append(norm)
        indptr.append(len(indices))
    x = csr_matrix((data, indices, indptr), shape=(len(rows), max(len(vocab), 1)))
    x.sum_duplicates()  # a feature found twice counts twice
    return x, vocab


def _fit(rows: Sequence[list[str]], labels: Sequence[int]) -> tuple[dict[str, float], float]:
    from sklearn.linear_model import LogisticRegression

    x, vocab = _matrix(rows)
    # lbfgs: the same objective as liblinear here, in about a third of the time on 10,000
    # labels (most of training is these fits: one per fold and a last one on everything).
    clf = LogisticRegression(C=_C, class_weight="balanced", solver="lbfgs", max_iter=300)
    clf.fit(x, labels)
    coef = clf.coef_[0]
    names = list(vocab)
    weights = {names[j]: float(coef[j]) for j in range(len(names)) if abs(coef[j]) >= 1e-3}
    return weights, float(clf.intercept_[0])


def _margins(weights: Mapping[str, float], intercept: float, rows: Sequence[list[str]]
             ) -> list[float]:
    probe = LinearModel(weights=weights, intercept=intercept, scale=0, offset=0, band=0)
    return [probe.margin(r)[0] for r in rows]


def _threshold(values: Sequence[float], labels: Sequence[int], target: float) -> float:
    """A cut that keeps at least `target` of the positives at or above it.

    The highest such cut is a positive's own value; the cut is lowered to halfway towards
    the next negative below it, which loses no precision and leaves room for unseen items a
    little weaker than the ones trained on.
    """
    pos = sorted(v for v, y in zip(values, labels, strict=True) if y)
    if not pos:
        return 0.0
    top = pos[min(len(pos) - 1, math.floor((1 - target) * len(pos)))]
    below = [v for v, y in zip(values, labels, strict=True) if not y and v < top]
    return (top + max(below)) / 2 if below else top - 1.0


def _pr(flags: Sequence[bool], labels: Sequence[int]) -> tuple[float, float]:
    from .evaluate import precision, recall

    tp = sum(1 for f, y in zip(flags, labels, strict=True) if f and y)
    fp = sum(1 for f, y in zip(flags, labels, strict=True) if f and not y)
    fn = sum(1 for f, y in zip(flags, labels, strict=True) if not f and y)
    return precision(tp, fp), recall(tp, fn)


def train(examples: Sequence[Example], rules: Rules, *, folds: int = 5,
          target: float = RECALL_TARGET) -> TrainResult:
    """Train a model and its blend with `rules` on `examples` (see the module docstring).

    Fewer than MIN_LABELS of either kind: no model, `refused` says why.
    """
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread: these fits are small, and threads fighting over two busy cores
    # made training ten times slower, not faster.
    with threadpool_limits(1):
        return _train(examples, rules, folds=folds, target=target)


def _train(examples: Sequence[Example], rules: Rules, *, folds: int,
           target: float) -> TrainResult:
    from .relevance import score_text

    started = time.perf_counter()
    labels = [e.label for e in examples]
    pos, neg = sum(labels), len(labels) - sum(labels)
    counts = {"relevant": pos, "not_relevant": neg,
              "from_editors": sum(1 for e in examples if e.origin == "editor"),
              "from_shipped": sum(1 for e in examples if e.origin == "shipped")}
    if pos < MIN_LABELS or neg < MIN_LABELS:
        return TrainResult(model=None, **counts, refused=(
            f"too few labels to train ({pos} relevant, {neg} not; at least {MIN_LABELS} of "
            f"each are needed): the rules stay alone"))

    rows, rule_scores = [], []
    for e in examples:
        rows.append(features(normalise(e.title or ""), normalise(e.summary or ""), e.source))
        rule_scores.append(score_text(e.title, e.summary, e.source, rules).score)

    # Out-of-fold margins: each item scored by a model that never saw it.
    oof = [0.0] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: zlib.crc32((examples[i].key or
                                                                examples[i].title).encode()))
    for k in range(folds):
        test = order[k::folds]
        test_set = set(test)
        train_idx = [i for i in range(len(rows)) if i not in test_set]
        if len({labels[i] for i in train_idx}) < 2:
            continue
        w, b = _fit([rows[i] for i in train_idx], [labels[i] for i in train_idx])
        for i, m in zip(test, _margins(w, b, [rows[i] for i in test]), strict=True):
            oof[i] = m

    # The blend: log-odds = a * rules + c * margin + d, fitted out of fold.
    from sklearn.linear_model import LogisticRegression

    stack = LogisticRegression(C=1.0, class_weight="balanced")
    stack.fit([[r, m] for r, m in zip(rule_scores, oof, strict=True)], labels)
    a, c = (float(x) for x in stack.coef_[0])
    d = float(stack.intercept_[0])
    a = max(a, 0.05)  # the rules' points stay the unit of the score
    z = [a * r + c * m + d for r, m in zip(rule_scores, oof, strict=True)]
    cut = _threshold(z, labels, target)
    cv_p, cv_r = _pr([v >= cut for v in z], labels)
    rules_p, rules_r = _pr([s >= rules.threshold for s in rule_scores], labels)

    weights, intercept = _fit(rows, labels)
    # score = r + (c*m + d - cut)/a + T  >=  T  <=>  z >= cut
    model = LinearModel(weights=weights, intercept=intercept, scale=c / a,
                        offset=(d - cut) / a + rules.threshold, band=BAND_LOGIT / a)
    return TrainResult(model=model, **counts, cv_precision=cv_p, cv_recall=cv_r,
                       rules_precision=rules_p, rules_recall=rules_r,
                       seconds=time.perf_counter() - started)


# --- the database's labels and models ----------------------------------------------------------


def editor_examples(db: sqlite_utils.Database, rules: Rules) -> list[Example]:
    """Editors' decisions as labels: included or shortlisted = 1, excluded = 0."""
    from ..store.models import editor_decisions

    return [Example(title=row["title"] or "",
                    summary=(row["summary_text"] or "")[: rules.summary_chars],
                    source={"name": row["source_name"], "category": row["source_category"],
                            "owner": row["source_owner"], "country": row["source_country"]},
                    label=0 if row["status"] == "excluded" else 1, origin="editor",
                    key=row["url"] or f"item:{row['id']}")
            for row in editor_decisions(db)]


def training_examples(db: sqlite_utils.Database, rules: Rules, *,
                      shipped: bool = True) -> list[Example]:
    """Editors' decisions, plus the shipped labelled set where no editor decided that URL."""
    from ..sources.normalise import canonical_url

    mine = editor_examples(db, rules)
    if not shipped:
        return mine
    decided = {e.key for e in mine}
    return mine + [e for e in shipped_examples()
                   if (canonical_url(e.key) or e.key) not in decided]


def load_current(db: sqlite_utils.Database) -> tuple[LinearModel | None, str]:
    """The current model, or None; and a warning when one is stored but cannot be used."""
    from ..store.models import current_model

    row = current_model(db)
    if row is None:
        return None, ""
    try:
        if row["format"] != FORMAT:
            raise ModelError(f"relevance model {row['id']} was trained by another version "
                             f"({row['format']!r}, this one reads {FORMAT!r})")
        return LinearModel.from_blob(row["model"], int(row["id"])), ""
    except ModelError as e:
        return None, f"{e}; relevance uses the rules alone until `digest triage train`"


def store_result(db: sqlite_utils.Database, result: TrainResult, rules: Rules) -> int:
    """Store a trained model as the current one; returns its version."""
    from ..store.models import save_model

    assert result.model is not None
    return save_model(db, result.model.to_blob(), {
        "format": FORMAT, "labels_relevant": result.relevant,
        "labels_not_relevant": result.not_relevant, "from_editors": result.from_editors,
        "from_shipped": result.from_shipped, "cv_precision": result.cv_precision,
        "cv_recall": result.cv_recall, "threshold": rules.threshold,
        "band": result.model.band, "seconds": result.seconds,
    })


def format_training(result: TrainResult, version: int | None) -> str:
    """What a training did, for the terminal and the flow's log."""
    head = (f"labels: {result.relevant} relevant, {result.not_relevant} not "
            f"({result.from_editors} editors' decisions, {result.from_shipped} shipped)")
    if result.model is None:
        return f"{head}\n{result.refused}"
    return "\n".join([
        head,
        f"cross-validated ({RECALL_TARGET:.0%} recall held):  blend precision "
        f"{result.cv_precision:.3f} recall {result.cv_recall:.3f}   rules alone precision "
        f"{result.rules_precision:.3f} recall {result.rules_recall:.3f}",
        f"model {version}: {len(result.model.weights):,} weights, trained in "
        f"{result.seconds:.1f} s; now current (run `digest triage rescore` to apply it)",
    ])


#: (version, format, size) of a stored model → its warning, so the desk's pages do not
#: decompress the model on every request.
_WARNINGS: dict[tuple[Any, ...], str] = {}


def model_warning(db: sqlite_utils.Database) -> str:
    """Why the current stored model is not in use ("" when it is, or when there is none)."""
    from ..store.models import current_model_key

    key = current_model_key(db)
    if key is None:
        return ""
    if key not in _WARNINGS:
        if len(_WARNINGS) > 64:
            _WARNINGS.clear()
        _WARNINGS[key] = load_current(db)[1]
    return _WARNINGS[key]


def with_current_model(db: sqlite_utils.Database, rules: Rules) -> tuple[Rules, str]:
    """`rules` blended with the current learned model, if any; and a warning, or "".

    A damaged model, or one trained by another version, leaves the rules alone: triage never
    fails on it.
    """
    model, warning = load_current(db)
    return rules.with_model(model), warning
