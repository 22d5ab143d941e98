"""Benchmark: story clustering cost grows with the batch, not with history; FTS search latency.

    python bench/triage.py [--items 1000000] [--batch 1000] [--years 4] [--repeat 3]
    python bench/triage.py --templated 18000 [--ordinary 40000]
    python bench/triage.py --model     # the relevance model's costs (bench/relevance.py)

Builds (once, cached under the temp dir) a database of `--items` realistic items spread over
`--years`: generated events reported by one to five outlets each, English with varied
vocabulary plus a share of Japanese, collected and clustered the way production does it.
Then clusters the same new batch (the next day and a half of news) into an empty database
and into the big one, and times FTS searches on the big one. Prints a table.

With --templated N it measures the case that made clustering unbounded before: N items of a
templated series (a daily briefing, a readout, generated load: titles and summaries the same
but for a date and a number) among --ordinary ordinary ones, all published over four weeks
and clustered in one run, as a first collect would. It reports the time and how much the
process's peak resident memory grew while clustering.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alliance_digest.store import sources
from alliance_digest.store.db import open_db
from alliance_digest.timestamps import utc_timestamp
from alliance_digest.triage.clusters import cluster_items
from alliance_digest.triage.search import search
from alliance_digest.triage.tokens import token_set

SEED = 20250215


def _words(text: str) -> list[str]:
    return text.split()


CATEGORIES = ["government"] * 25 + ["military"] * 11 + ["news"] * 22 + ["think-tank"] * 11

PEOPLE = ["Iwaya", "Rubio", "Kamikawa", "Blinken", "Kihara", "Austin", "Hegseth", "Nakatani",
          "Ishiba", "Kishida", "Trump", "Biden", "Marles", "Wong", "Cho", "Yoon", "Tamaki",
          "Hayashi", "Emanuel", "Glass", "Koehler", "Paparo", "Aquilino", "Yoshida", "Sakai",
          "Campbell", "Sullivan", "Akiba", "Motegi", "Kono"]
PLACES = ["Tokyo", "Washington", "Okinawa", "Yokosuka", "Sasebo", "Iwakuni", "Misawa",
          "Yokota", "Kadena", "Futenma", "Henoko", "Guam", "Hawaii", "Manila", "Seoul",
          "Canberra", "Munich", "Singapore", "Hokkaido", "Kyushu", "Taiwan Strait",
          "East China Sea", "South China Sea", "Senkaku Islands", "Yonaguni", "Ishigaki",
          "Amami", "Camp Zama", "Camp Hansen", "Camp Schwab", "Atsugi", "Pearl Harbor"]
TOPICS = list(_words("deterrence extended nuclear umbrella missile defense interceptor radar drone "
          "exercise drills amphibious littoral regiment destroyer carrier submarine fighter "
          "jets F-35 Osprey Tomahawk HIMARS counterstrike budget spending procurement "
          "coproduction shipbuilding repair command headquarters integration interoperability "
          "base relocation runway noise crime curfew status forces agreement host nation "
          "support semiconductors export controls economic security supply chain critical "
          "minerals cyber space satellite intelligence sharing hypersonic glide phase "
          "typhoon evacuation disaster relief earthquake tariffs trade investment steel "
          "summit dialogue consultation trilateral quadrilateral Quad AUKUS Pillar II "
          "Philippines Korea China Russia North Korea launch ballistic cruise coast guard "
          "patrol incursion airspace scramble maritime militia Taiwan contingency"))
FILLER = list(_words("the a of to and in on for with as by at from said says will would new after "
          "over amid plan plans official officials report reports week month year first "
          "second third more than also but while about into under talks meeting minister "
          "ministers defense security alliance cooperation agreed agree vowed confirmed "
          "discussed exchanged views held hold statement announced according government "
          "military forces troops people local residents group members region regional "
          "future further strengthen deepen boost ties US U.S. Japan Japanese"))
KANJI = list(_words("日米 同盟 抑止力 防衛 外相 会談 首脳 在日米軍 沖縄 基地 移設 辺野古 普天間 "
                    "訓練 演習 "
         "自衛隊 海上 航空 陸上 統合 司令部 指揮 統制 安全保障 協議 合意 強化 確認 協力 "
         "ミサイル 発射 北朝鮮 中国 台湾 海峡 尖閣 領空 侵犯 緊急 発進 予算 防衛費 "
         "装備品 共同 開発 生産 輸出 規制 半導体 経済 関税 交渉 大統領 総理大臣 国務長官 "
         "国防長官 防衛大臣 外務大臣 記者会見 発表 声明 電話 首相 訪問 来日 訪米"))
SYLLABLES = ["ka", "ri", "to", "men", "sa", "lo", "dor", "vi", "nu", "pel", "tra", "zo", "ben",
             "qui", "ar", "os", "lin", "mer", "tas", "go", "ph", "el", "und", "ex", "cor", "bal"]


def _lexicon(rng: random.Random, n: int) -> list[str]:
    """Pseudo-words: the long tail of names, places and jargon real news is full of."""
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(n)]


class Generator:
    """Events, each reported by a few outlets in their own words."""

    def __init__(self, seed: int, n_sources: int) -> None:
        self.rng = random.Random(seed)
        self.lexicon = _lexicon(self.rng, 20_000)
        self.n_sources = n_sources

    def event_reports(self, at: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        if rng.random() < 0.1:
            return self._japanese(at)
        people = rng.sample(PEOPLE, rng.randint(1, 3))
        place = rng.choice(PLACES)
        topic = rng.sample(TOPICS, rng.randint(3, 5))
        specific = rng.sample(self.lexicon, rng.randint(2, 4))
        reports = []
        for _ in range(min(5, 1 + int(rng.expovariate(1.2)))):
            words = [*people, place, *topic, *specific]
            title_words = rng.sample(words, min(len(words), rng.randint(4, 6)))
            title_words += rng.sample(FILLER, rng.randint(2, 5))
            rng.shuffle(title_words)
            body = rng.sample(words, max(3, int(len(words) * rng.uniform(0.5, 0.9))))
            body += rng.sample(FILLER, rng.randint(12, 22))
            body += rng.sample(self.lexicon, rng.randint(3, 8))
            rng.shuffle(body)
            reports.append(self._item(at, " ".join(title_words).capitalize(),
                                      " ".join(body).capitalize() + "."))
        return reports

    def _japanese(self, at: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        core = rng.sample(KANJI, rng.randint(3, 5))
        reports = []
        for _ in range(min(3, 1 + int(rng.expovariate(1.5)))):
            title = "".join(rng.sample(core, len(core)) + rng.sample(KANJI, 1))
            body = "、".join(rng.sample(core + rng.sample(KANJI, 6), 8)) + "について協議した。"
            reports.append(self._item(at, title, body))
        return reports

    def _item(self, at: datetime, title: str, summary: str) -> dict[str, Any]:
        published = at + timedelta(minutes=self.rng.randint(0, 36 * 60))
        return {"source_id": self.rng.randint(1, self.n_sources), "title": title,
                "summary_text": summary,
                "published_at": utc_timestamp(published)}


def _new_db(path: Path) -> Any:
    db = open_db(path)
    sources.sync_sources(db, [{"name": f"source-{i:02d}", "url": f"https://example.org/{i}",
                               "category": c} for i, c in enumerate(CATEGORIES, start=1)])
    return db


def _insert(db: Any, rows: list[dict[str, Any]], start_id: int) -> list[int]:
    """Bulk insert (one executemany per call); returns the new ids."""
    ids = list(range(start_id, start_id + len(rows)))
    db.conn.executemany(
        "INSERT INTO items (id, source_id, identity, url, title, summary, summary_text, "
        "published_at, first_seen_at, status, tags) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'candidate', '[]')",
        [(i, r["source_id"], f"url:https://example.org/item/{i}",
          f"https://example.org/item/{i}", r["title"], r["summary_text"], r["summary_text"],
          r["published_at"], r["published_at"]) for i, r in zip(ids, rows, strict=True)],
    )
    return ids


def _stream(gen: Generator, start: datetime, end: datetime, n: int):
    """About n reports of events spread evenly over [start, end)."""
    made = 0
    span = (end - start).total_seconds()
    while made < n:
        at = start + timedelta(seconds=span * made / n)
        for r in gen.event_reports(at):
            if made < n:
                made += 1
                yield r


def build_history(path: Path, n: int, years: float) -> datetime:
    """The big database, clustered; returns the end of its history."""
    end = datetime(2025, 6, 1, tzinfo=UTC)
    start = end - timedelta(days=365 * years)
    db = _new_db(path)
    gen = Generator(SEED, len(CATEGORIES))
    t0 = time.perf_counter()
    buf: list[dict[str, Any]] = []
    next_id = 1
    for row in _stream(gen, start, end, n):
        buf.append(row)
        if len(buf) == 50_000:
            with db.atomic():
                next_id += len(_insert(db, buf, next_id))
            buf = []
            print(f"  inserted {next_id - 1:>9,} items  {time.perf_counter() - t0:6.0f} s",
                  flush=True)
    if buf:
        with db.atomic():
            _insert(db, buf, next_id)
    t1 = time.perf_counter()
    stats = cluster_items(db)
    print(f"  clustered {stats.items:,} items into history in {time.perf_counter() - t1:.0f} s "
          f"({stats.in_stories:,} in {stats.stories:,} multi-outlet stories)", flush=True)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("ANALYZE")
    db.close()
    return end


def batch_rows(end: datetime, n: int) -> list[dict[str, Any]]:
    """The next day and a half of news after the history ends (plus late reports of its
    last days, which is what makes history matter)."""
    gen = Generator(SEED + 1, len(CATEGORIES))
    return list(_stream(gen, end - timedelta(hours=12), end + timedelta(hours=24), n))


def time_clustering(path: Path, rows: list[dict[str, Any]],
                    start_id: int) -> tuple[float, float, Any]:
    """Insert the batch (untimed), then time clustering it."""
    db = open_db(path)
    with db.atomic():
        _insert(db, rows, start_id)
    # Start both databases from the same state: nothing pending in the WAL, nothing dirty in
    # the OS cache (a fresh 2 GB copy would otherwise be flushed by the first checkpoint's
    # fsync, inside the timed part).
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.sync()
    t0, c0 = time.perf_counter(), time.process_time()
    stats = cluster_items(db)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    db.close()
    return seconds, cpu, stats


SEARCHES = ["Okinawa", "deterrence", '"extended deterrence"', "Okinawa -typhoon",
            "Yokosuka destroyer", "typhoon OR earthquake Okinawa", "日米", "在日米軍",
            "日米 抑止力", "US", "日豪"]
#: What a query exercises, where the table should say.
NOTES = {"日米": "2 chars: LIKE, newest first", "US": "2 chars: whole word",
         "日豪": "2 chars, absent: full scan"}


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def templated_rows(n: int, start: datetime, days: float) -> list[dict[str, Any]]:
    """A templated series: one text, a date and a number apart, from a few sources."""
    rng = random.Random(SEED + 2)
    rows = []
    for k in range(n):
        at = start + timedelta(days=days * k / n)
        day = at.strftime("%B %d, %Y")
        rows.append({
            "source_id": 1 + k % 4,
            "title": f"Readout of the Secretary's Call with the Minister of Defense ({day})",
            "summary_text": (
                f"Secretary of Defense spoke with the Minister of Defense on {day}. The two "
                "leaders discussed regional security, reaffirmed the strength of the alliance "
                "and committed to continued close coordination on shared priorities, "
                f"including item {rng.randint(1, 50)} of the bilateral work plan."),
            "published_at": utc_timestamp(at)})
    return rows


def templated(args: argparse.Namespace) -> None:
    """Cluster --templated series items among --ordinary ones in one run; time and memory."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    days = 28.0
    gen = Generator(SEED, len(CATEGORIES))
    rows = list(_stream(gen, start, start + timedelta(days=days), args.ordinary))
    rows += templated_rows(args.templated, start, days)
    rows.sort(key=lambda r: r["published_at"])
    with tempfile.TemporaryDirectory() as tmp:
        db = _new_db(Path(tmp) / "templated.db")
        with db.atomic():
            ids = _insert(db, rows, 1)
            # As a collect run stores them: keys made by the parse workers, each item a
            # story of its own until clustered (store.items.store_entries).
            db.conn.executemany(
                "INSERT INTO item_tokens_new (item_id, tokens) VALUES (?, ?)",
                [(i, token_set(r["title"], r["summary_text"]))
                 for i, r in zip(ids, rows, strict=True)])
            db.execute("UPDATE items SET cluster_id = id")
        cluster_items(db, [])  # imports and first-call costs outside the measurement
        with contextlib.suppress(OSError):  # reset the peak (VmHWM) to now: Linux clear_refs
            Path("/proc/self/clear_refs").write_text("5")
        before = _rss_mb("VmRSS")
        t0, c0 = time.perf_counter(), time.process_time()
        stats = cluster_items(db)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = _rss_mb("VmHWM")
        db.close()
    print(f"clustering {args.templated:,} templated items among {args.ordinary:,} ordinary "
          f"ones ({len(rows):,} items over {days:g} days, one run)")
    print(f"{'seconds':>10}{'CPU s':>10}{'peak RSS growth MB':>20}{'candidates':>12}"
          f"{'in stories':>12}{'stories':>10}")
    print(f"{seconds:>10.2f}{cpu:>10.2f}{peak - before:>20.0f}{stats.candidates:>12,}"
          f"{stats.in_stories:>12,}{stats.stories:>10,}")
    print("(targets: under 10 s and under 300 MB more than the process had)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templated", type=int, default=0,
                        help="measure N templated items among --ordinary ones instead")
    parser.add_argument("--ordinary", type=int, default=40_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--years", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "alliance-digest-bench")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--model", action="store_true",
                        help="the learned relevance model's costs instead (bench/relevance.py: "
                             "held-out figures, training on 10,000 labels, size, µs an item)")
    args = parser.parse_args()
    if args.model:
        import relevance  # bench/relevance.py, beside this file (on sys.path as its directory)

        relevance.bench()
        return
    if args.templated:
        templated(args)
        return

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    cached = args.cache_dir / f"history-{args.items}-{args.years:g}y-v2.db"
    end = datetime(2025, 6, 1, tzinfo=UTC)
    if args.rebuild or not cached.exists():
        print(f"building {cached} (once; cached for later runs)", flush=True)
        cached.unlink(missing_ok=True)
        partial = cached.with_suffix(".partial")
        for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            p.unlink(missing_ok=True)
        t0 = time.perf_counter()
        end = build_history(partial, args.items, args.years)
        partial.rename(cached)
        print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)

    rows = batch_rows(end, args.batch)
    work = args.cache_dir / "work"
    empty_times: list[float] = []
    full_times: list[float] = []
    empty_cpu: list[float] = []
    full_cpu: list[float] = []
    for run in range(args.repeat + 1):  # run 0 warms up imports and caches: not counted
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        _new_db(work / "empty.db").close()
        seconds, cpu, empty_stats = time_clustering(work / "empty.db", rows, args.items + 1)
        if run:
            empty_times.append(seconds)
            empty_cpu.append(cpu)
        shutil.copyfile(cached, work / "full.db")
        seconds, cpu, full_stats = time_clustering(work / "full.db", rows, args.items + 1)
        if run:
            full_times.append(seconds)
            full_cpu.append(cpu)

    print()
    print(f"clustering a batch of {args.batch:,} new items ({args.repeat} runs each, "
          "alternating; best is the least disturbed by other load on the machine)")
    print(f"{'database':<22}{'best s':>9}{'median s':>10}{'median CPU s':>14}"
          f"{'history compared':>18}{'in stories':>12}")
    for label, times, cpus, stats in (
            ("empty", empty_times, empty_cpu, empty_stats),
            (f"{args.items:,} items", full_times, full_cpu, full_stats)):
        print(f"{label:<22}{min(times):>9.3f}{statistics.median(times):>10.3f}"
              f"{statistics.median(cpus):>14.3f}{stats.window_items:>18,}{stats.in_stories:>12,}")
    print(f"{'ratio (must be <= 1.5)':<22}{min(full_times) / min(empty_times):>9.2f}"
          f"{statistics.median(full_times) / statistics.median(empty_times):>10.2f}"
          f"{statistics.median(full_cpu) / statistics.median(empty_cpu):>14.2f}")

    db = open_db(work / "full.db")
    print()
    print(f"FTS search on {args.items + args.batch:,} items (limit 50, median of 5 runs)")
    print(f"{'query':<34}{'ms':>10}{'results':>10}  note")
    for query in SEARCHES:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            found = search(db, query)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{query:<34}{statistics.median(times):>10.1f}{len(found):>10}  "
              f"{NOTES.get(query, '')}")
    db.close()


if __name__ == "__main__":
    main()
