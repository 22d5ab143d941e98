"""Feed-parsing speed on the fastfeedparser benchmark corpus: our settings vs feedparser defaults.

    python bench/parse_speed.py [--limit N] [--repeat R] [--corpus DIR]

Prints entries per second for:

- `feedparser defaults`: `feedparser.parse(body, response_headers=…)` as shipped (its own HTML
  sanitiser and relative-URI resolution, unbuffered expat);
- `feedparser, sanitize/resolve off`: the flags `parse_feed` passes, stock expat;
- `feedparser, flags off + buffered expat`: the two together (what `parse_feed` runs);
- `parse_feed (full)`: the whole of `sources.feeds.parse_feed` — encoding detection, feedparser,
  nh3 sanitising and `make_entry` normalisation.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
import feedparser.api
from alliance_digest.errors import ParseError
from alliance_digest.sources import feeds

DEFAULT_CORPUS = Path("/work/shared/corpus/real/fastfeedparser/benchmark_data")
HEADERS = {"content-type": "application/rss+xml"}


def _stock(body: bytes) -> int:
    return len(feedparser.parse(io.BytesIO(body), response_headers=HEADERS).entries)


def _flags_off(body: bytes) -> int:
    return len(feedparser.parse(io.BytesIO(body), response_headers=HEADERS, sanitize_html=False,
                                resolve_relative_uris=False).entries)


def _ours(body: bytes) -> int:
    try:
        return len(feeds.parse_feed(body, HEADERS, "https://example.com/feed").entries)
    except ParseError:
        return 0


def _time(fn: Callable[[bytes], int], bodies: list[bytes], repeat: int) -> tuple[float, int]:
    best = float("inf")
    entries = 0
    for _ in range(repeat):
        start = time.perf_counter()
        entries = sum(fn(body) for body in bodies)
        best = min(best, time.perf_counter() - start)
    return best, entries


def main() -> None:
    """Run the comparison and print one line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="only the first N files")
    parser.add_argument("--repeat", type=int, default=1, help="best of R runs")
    args = parser.parse_args()

    files = sorted(p for p in args.corpus.iterdir() if p.is_file())
    if args.limit:
        files = files[: args.limit]
    bodies = [p.read_bytes() for p in files]
    megabytes = sum(map(len, bodies)) / 1e6
    print(f"{len(bodies)} files, {megabytes:.1f} MB")

    ours_driver = feeds.__name__
    drivers = feedparser.api.PREFERRED_XML_PARSERS
    stock_drivers = [d for d in drivers if d != ours_driver]
    runs: list[tuple[str, Callable[[bytes], int], list[str]]] = [
        ("feedparser defaults", _stock, stock_drivers),
        ("feedparser, sanitize/resolve off", _flags_off, stock_drivers),
        ("feedparser, flags off + buffered expat", _flags_off, [ours_driver, *stock_drivers]),
        ("parse_feed (full)", _ours, [ours_driver, *stock_drivers]),
    ]
    baseline = None
    for label, fn, preferred in runs:
        feedparser.api.PREFERRED_XML_PARSERS[:] = preferred
        seconds, entries = _time(fn, bodies, args.repeat)
        rate = entries / seconds if seconds else 0.0
        baseline = baseline or seconds
        print(f"{label:42} {seconds:7.2f} s  {entries:6d} entries  {rate:8.0f} entries/s  "
              f"x{baseline / seconds:.2f}")
    feedparser.api.PREFERRED_XML_PARSERS[:] = drivers


if __name__ == "__main__":
    main()
