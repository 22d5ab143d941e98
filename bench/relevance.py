"""The learned relevance model: the shipped training set, held-out figures and costs.

    python bench/relevance.py --build      # write triage/relevance-train.jsonl.gz
    python bench/relevance.py              # held-out figures, training time, size, µs/item
    python bench/relevance.py --collect 200  # … and a collect run without and with the model

`--build` reads every labelled row of tests/data/relevance-labels.tsv from the feed it came
from (the shared corpus, the demo feeds, the written feeds), and writes the tuning part (the
rows `triage.model.held_out` does not keep back) with their texts, as the package's shipped
labelled set. The held-out third is never shipped: it is what the figures are measured on.

The benchmark trains on the shipped set, measures rules alone, model alone and the blend on
the held-out third, times training on 10,000 labels (the shipped ones with their words
shuffled into new items), reports the stored model's size and the µs to score an item with
the rules alone, with rules + model, and the model's part alone, on the held-out items (half of
them Japanese or typographic English, the slow kinds) and on every item of the shared corpus's
real feeds (`corpus/real`, what parse workers score all day). (tests/test_relevance_fast.py
checks that the tuned per-item scorer equals the straightforward one it replaced.)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alliance_digest.errors import ParseError
from alliance_digest.sources.feeds import parse_feed
from alliance_digest.sources.normalise import canonical_url
from alliance_digest.sources.types import ParsedFeed
from alliance_digest.triage.evaluate import precision, recall
from alliance_digest.triage.model import (
    SHIPPED,
    Example,
    features,
    held_out,
    shipped_examples,
    train,
)
from alliance_digest.triage.relevance import score_text
from alliance_digest.triage.rules import DEFAULT_RULES, load_rules_file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
LABELS = DATA / "relevance-labels.tsv"
WRITTEN = {"written": DATA / "alliance-written.xml", "written-2": DATA / "relevance-written-2.xml"}


def _shared() -> Path:
    for candidate in (ROOT.parent / "shared", Path("/work/shared")):
        if (candidate / "corpus").is_dir():
            return candidate
    return ROOT.parent / "shared"


CORPUS = _shared() / "corpus"


def source_for(origin: str) -> dict[str, str]:
    """How a labelled row's origin is registered as a source (as tests/test_relevance.py)."""
    base = {"name": origin}
    if origin.startswith(("whitehouse/", "real/wh-briefings/")):
        return {**base, "category": "government", "owner": "The White House", "country": "US"}
    if origin.startswith("real/afmil/"):
        return {**base, "category": "military", "owner": "U.S. Air Force", "country": "US"}
    if "_jp" in origin:
        return {**base, "category": "news", "country": "JP"}
    return {**base, "category": "news"}


def origin_path(origin: str) -> Path:
    if origin in WRITTEN:
        return WRITTEN[origin]
    if origin.startswith("demo/"):
        return ROOT / "demo_data" / "feeds" / origin.removeprefix("demo/")
    return CORPUS / origin


def parse_origin(origin: str) -> ParsedFeed:
    """The feed a labelled row's origin (or a real corpus feed) names, parsed as collect does."""
    return parse_feed(origin_path(origin).read_bytes(), {}, f"https://corpus.test/{origin}")


def labelled_rows() -> Iterator[dict[str, Any]]:
    """Every labelled row with its entry's text (title, plain summary) and source fields."""
    with LABELS.open(encoding="utf-8") as f:
        labels = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    feeds: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for lab in labels:
        origin = lab["origin"]
        if origin not in feeds:
            feed = parse_origin(origin)
            feeds[origin] = ({e.url: e for e in feed.entries if e.url},
                             {e.guid: e for e in feed.entries if e.guid})
        by_url, by_guid = feeds[origin]
        url = canonical_url(lab["url"]) if lab["url"] else None
        entry = (by_url.get(url) if url else None) or by_guid.get(lab["guid"])
        if entry is None:
            raise SystemExit(f"{origin}: no entry for {lab['url'] or lab['guid']}")
        yield {"url": lab["url"], "label": int(lab["label"]), "title": entry.title,
               "summary": entry.summary_text[:1500], "source": source_for(origin),
               "held_out": held_out(lab["url"])}


def real_items() -> list[tuple[str, str, dict[str, str]]]:
    """(title, plain summary, source) of every entry of the shared corpus's real feeds (the
    feeds `corpus/real/MANIFEST.tsv` lists that parse): what parse workers score all day."""
    manifest = CORPUS / "real" / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    items = []
    with manifest.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            origin = f"real/{row['local_path']}"
            try:
                feed = parse_origin(origin)
            except (OSError, ParseError):
                continue
            source = source_for(origin)
            items += [(e.title, e.summary_text, source) for e in feed.entries]
    return items


def build() -> None:
    rows = [r for r in labelled_rows() if not r["held_out"]]
    lines = [json.dumps({k: r[k] for k in ("url", "label", "title", "summary", "source")},
                        ensure_ascii=False) for r in rows]
    out = ROOT / "triage" / SHIPPED
    out.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), 9, mtime=0))
    pos = sum(r["label"] for r in rows)
    print(f"{out}: {len(rows)} rows ({pos} relevant), {out.stat().st_size:,} bytes")


def _pr(flags: list[bool], labels: list[int]) -> tuple[float, float]:
    tp = sum(1 for f, y in zip(flags, labels, strict=True) if f and y)
    fp = sum(1 for f, y in zip(flags, labels, strict=True) if f and not y)
    fn = sum(1 for f, y in zip(flags, labels, strict=True) if not f and y)
    return precision(tp, fp), recall(tp, fn)


def _shuffled(examples: list[Example], n: int) -> list[Example]:
    rng = random.Random(7)
    out = list(examples)
    while len(out) < n:
        e = rng.choice(examples)
        words = f"{e.title} {e.summary}".split()
        rng.shuffle(words)
        cut = max(1, len(words) // 8)
        out.append(Example(title=" ".join(words[:cut]), summary=" ".join(words[cut:]),
                           source=e.source, label=e.label, origin="shipped",
                           key=f"{len(out)}"))
    return out[:n]


def bench() -> None:
    from alliance_digest.triage.model import LinearModel
    from alliance_digest.triage.rules import normalise

    rules = load_rules_file(DEFAULT_RULES)
    shipped = shipped_examples()
    result = train(shipped, rules)
    model = result.model
    assert model is not None, result.refused
    blended = rules.with_model(model)
    held = [r for r in labelled_rows() if r["held_out"]]
    labels = [r["label"] for r in held]
    rows = [("rules alone", [score_text(r["title"], r["summary"], r["source"], rules).relevant
                             for r in held])]
    alone = [model.margin(features(normalise(r["title"]), normalise(r["summary"]),
                                   r["source"]))[0] >= 0 for r in held]
    rows.append(("model alone", alone))
    rows.append(("blend", [score_text(r["title"], r["summary"], r["source"], blended).relevant
                           for r in held]))
    print(f"held-out part: {len(held)} items, {sum(labels)} relevant; trained on "
          f"{len(shipped)} shipped labels in {result.seconds:.1f} s "
          f"(cv precision {result.cv_precision:.3f}, recall {result.cv_recall:.3f})")
    print("| scorer | precision | recall |\n|---|---:|---:|")
    for name, flags in rows:
        p, r = _pr(flags, labels)
        print(f"| {name} | {p:.3f} | {r:.3f} |")

    big = _shuffled(shipped, 10_000)
    t0, c0 = time.perf_counter(), time.process_time()
    big_result = train(big, rules)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert big_result.model is not None
    blob = big_result.model.to_blob()
    LinearModel.from_blob(blob)
    print(f"training on 10,000 labels: {seconds:.1f} s ({cpu:.1f} s CPU); stored model "
          f"{len(blob) / 1e6:.2f} MB ({len(big_result.model.weights):,} weights); "
          f"shipped-set model {len(model.to_blob()) / 1e6:.2f} MB")

    texts = [(r["title"], r["summary"], r["source"]) for r in held] * 3
    real = real_items()
    for what, items, repeat in (("scoring", texts, 5),
                                (f"scoring the real corpus's {len(real):,} items", real, 3)):
        for name, scorer in (("rules alone", rules), ("rules + model", blended)) if items else ():
            runs = []
            for _ in range(repeat):
                t0 = time.process_time()
                for title, summary, source in items:
                    score_text(title, summary, source, scorer)
                runs.append((time.process_time() - t0) / len(items) * 1e6)
            print(f"{what}, {name}: {min(runs):.1f} µs CPU an item (median "
                  f"{statistics.median(runs):.1f})")
    # The model's own part, on texts already normalised (as score_text hands them over).
    normalised = [(normalise(t or ""), normalise((s or "")[: rules.summary_chars]), src)
                  for t, s, src in texts]
    runs = []
    for _ in range(5):
        t0 = time.process_time()
        for title_n, summary_n, source in normalised:
            model.part(title_n, summary_n, source)
        runs.append((time.process_time() - t0) / len(texts) * 1e6)
    print(f"scoring, the model's part alone: {min(runs):.1f} µs CPU an item (median "
          f"{statistics.median(runs):.1f})")


def bench_collect(feeds: int, entries: int) -> None:
    """`collect_once` over `feeds` local feeds of labelled texts, without and with a model."""
    import tempfile
    from xml.sax.saxutils import escape

    from alliance_digest.feedserver import FeedServer
    from alliance_digest.pipeline.collect import collect_once
    from alliance_digest.settings import load_settings
    from alliance_digest.store.db import open_db
    from alliance_digest.triage.model import store_result

    rows = list(labelled_rows())
    rules = load_rules_file(DEFAULT_RULES)
    result = train(shipped_examples(), rules)
    with FeedServer() as server, tempfile.TemporaryDirectory() as tmp:
        registry = ""
        for f in range(feeds):
            body = "".join(
                f"<item><title>{escape(r['title'])}</title>"
                f"<link>https://bench.test/{f}/{k}</link><guid>b{f}-{k}</guid>"
                f"<pubDate>Mon, 23 Nov 2026 10:{k % 60:02d}:00 GMT</pubDate>"
                f"<description>{escape(r['summary'])}</description></item>"
                for k in range(entries) for r in [rows[(f * entries + k) % len(rows)]])
            server.route(f"/{f}", body=(f'<?xml version="1.0"?><rss version="2.0"><channel>'
                                        f"<title>F{f}</title>{body}</channel></rss>").encode())
            registry += f'[[source]]\nname = "f{f}"\nurl = "{server.url(f"/{f}")}"\n'
        for label, with_model in (("rules alone", False), ("rules + model", True)):
            folder = Path(tmp) / label.replace(" ", "")
            folder.mkdir()
            (folder / "sources.toml").write_text(registry, encoding="utf-8")
            (folder / "digest.toml").write_text('[store]\npath = "digest.db"\n')
            if with_model:
                db = open_db(folder / "digest.db")
                store_result(db, result, rules)
                db.close()
            t0 = time.perf_counter()
            summary = collect_once(load_settings(folder / "digest.toml"), force=True)
            seconds = time.perf_counter() - t0
            print(f"collect, {label}: {feeds} feeds, {summary.run['items_new']} items in "
                  f"{seconds:.1f} s (model {summary.triage.get('model')})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="write the shipped training set")
    parser.add_argument("--collect", type=int, default=0, metavar="FEEDS",
                        help="also time a collect run of FEEDS local feeds, without and with "
                             "the model")
    parser.add_argument("--entries", type=int, default=30, help="entries per feed (--collect)")
    args = parser.parse_args(argv)
    if args.build:
        build()
        return
    bench()
    if args.collect:
        bench_collect(args.collect, args.entries)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
