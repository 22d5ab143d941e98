"""Benchmark: a whole `digest collect` of 18,000 templated items plus the demo feeds.

    python bench/templated_collect.py [--templated 18000] [--feeds 60]

Issue 11's case end to end: the demo snapshot and `--feeds` feeds that together carry
`--templated` items of one templated series (the same readout text, a date and a number
apart, as in bench/triage.py --templated) are served on 127.0.0.1; `digest collect` runs as
a real process (no Prefect server running, as a user's first collect) into a fresh folder.
A run this large leaves its search indexing and clustering to the recorder the command starts
(flows/record.py): the bench waits for it too. Prints the command's wall time, when the index
and stories were complete, the largest digest process's peak RSS (the recorder included,
bench/collect.py's monitor), the run's counts, then checks that every item was stored and
clustered (nothing set aside).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from alliance_digest.demo import DEMO_DATA, write_demo_config
from alliance_digest.feedserver import FeedServer
from collect import RecorderWatch, mb, run_process  # bench/collect.py, beside this script

SEED = 20261205


def templated_feed(index: int, count: int, start: datetime, days: float,
                   rng: random.Random) -> bytes:
    """One RSS feed of `count` items of the series, spread over `days` before `start`."""
    items = []
    for k in range(count):
        at = start - timedelta(days=days * rng.random())
        n = index * count + k
        items.append(
            "<item>"
            f"<title>Readout of the Deputy Secretary's call with the Japanese Vice Minister "
            f"No. {n}</title>"
            f"<link>https://series.test/readout/{n}</link><guid>series-{n}</guid>"
            f"<pubDate>{format_datetime(at)}</pubDate>"
            "<description>"
            + escape("The Deputy Secretary spoke today with Japan's Vice Minister for Foreign "
                     "Affairs to discuss the U.S.-Japan Alliance, regional security and "
                     "economic cooperation, and committed to continued close coordination on "
                     f"shared priorities, including item {rng.randint(1, 50)} of the bilateral "
                     "work plan.")
            + "</description></item>")
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
            f"<title>Series {index}</title><link>https://series.test/</link>"
            f"<description>templated</description>{''.join(items)}</channel></rss>"
            ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templated", type=int, default=18_000)
    parser.add_argument("--feeds", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    per_feed = -(-args.templated // args.feeds)
    with tempfile.TemporaryDirectory() as tmp, FeedServer(DEMO_DATA, record=False) as server:
        folder = Path(tmp) / "run"
        config = write_demo_config(folder, server.base_url)
        extra = []
        for i in range(args.feeds):
            count = min(per_feed, args.templated - i * per_feed)
            if count <= 0:
                break
            server.route(f"/series/{i}.xml", body=templated_feed(i, count, now, 28.0, rng),
                         content_type="application/rss+xml")
            url = server.url(f"/series/{i}.xml")
            extra.append(f'\n[[source]]\nname = "Series {i}"\nurl = "{url}"\n'
                         'owner = "Series"\ncountry = "US"\ncategory = "government"\n'
                         'language = "en"\n')
        with (folder / "sources.toml").open("a", encoding="utf-8") as f:
            f.write("".join(extra))
        env = {**os.environ, "PREFECT_HOME": str(Path(tmp) / "prefect")}
        env.pop("PREFECT_API_URL", None)
        digest = Path(sys.executable).with_name("digest")
        data = folder / "data"
        recorder = RecorderWatch(data)
        log = Path(tmp) / "collect.log"
        started = time.perf_counter()
        seconds, monitor, status, _load = run_process(
            "digest", "first", [str(digest), "--config", str(config), "collect"], env, folder,
            log, timeout=1800, linger=recorder, marker=recorder.marker)
        complete = (recorder.complete_at - started if recorder.complete_at is not None
                    else float("nan"))
        if status not in (0, 3):
            sys.exit(f"digest collect failed ({status}): {log.read_text()[-2000:]}")
        db = sqlite3.connect(data / "digest.db")
        stored = db.execute("SELECT count(*) FROM items").fetchone()[0]
        series = db.execute("SELECT count(*) FROM items WHERE guid LIKE 'series-%'").fetchone()[0]
        waiting = db.execute("SELECT count(*) FROM items WHERE cluster_id IS NULL").fetchone()[0]
        aside = db.execute("SELECT count(*) FROM triage_set_aside").fetchone()[0]
        stories = db.execute("SELECT count(DISTINCT cluster_id) FROM items "
                             "WHERE guid LIKE 'series-%'").fetchone()[0]
        db.close()
    single = monitor.peak_single
    peaks = ", ".join(f"{role} {mb(rss):.0f}" for role, rss in sorted(single.items()))
    largest = max((v for k, v in single.items() if k != "prefect server"), default=0)
    print(f"digest collect of {args.templated:,} templated items in {args.feeds} feeds plus the "
          f"demo feeds: {seconds:.1f} s wall; search index and stories complete "
          f"{complete:.1f} s from the start; largest digest process peak "
          f"{mb(largest):.0f} MB ({peaks} MB)")
    print(json.dumps({"items": stored, "series_items": series, "series_stories": stories,
                      "unclustered": waiting, "set_aside": aside, "exit": status}))
    if series != args.templated or waiting or aside:
        sys.exit("not every series item was stored and clustered")


if __name__ == "__main__":
    main()
