"""Benchmark: the collect flow against a plain requests+feedparser loop and lemon24/reader.

    generate N realistic RSS 2.0 feeds (default 1000 x 30 entries) into a temp dir,
    copy the real corpus (shared/corpus/real, the files in MANIFEST.tsv) beside them,
    serve them on 127.0.0.1 (FeedServer static mode: ETag/Last-Modified, 304s; record=False)
    for each contender, as a whole separate process with a fresh data dir and database:
        first pass (every feed 200), then a second pass on the same data (every feed 304)
        wall time; peak RSS (and PSS) and CPU time of the process tree, polling /proc
    print a table and the target checks; write both as markdown to --out

The generated entries are random text drawn from the words of the corpus's 10,000 real titles
(so word frequencies, and what full-text indexing and story clustering see, are realistic):
titles, links with tracking parameters, guids, pubDates, authors, categories, 300-1500
characters of HTML description (paragraphs, some links, images, emphasis, lists; 30% CDATA,
the rest escaped) and a media:content image on a third of them.

Contenders:
    plain          requests + feedparser (its defaults), one feed after another (no threads),
                   counting entries and keeping ETag/Last-Modified in a JSON file
    reader         lemon24/reader: make_reader(db), add_feed per URL,
                   update_feeds(scheduled=False) (workers=1, its default: fetch and parse
                   serially)
    digest cold    `digest collect --force` with no PREFECT_API_URL: Prefect's temporary server
                   is started by the command (and counted in its RSS); once with a fresh
                   PREFECT_HOME, once with a PREFECT_HOME whose database already exists
    digest server  `digest collect --force` against a `prefect server start` already running
    empty flow     the same imports and an async flow that does nothing: Prefect's fixed cost

    python bench/collect.py [--feeds N] [--entries M] [--no-corpus] [--skip-reader] [--out FILE]
                            [--only plain,reader,fresh,cold,server,floor] [--keep]

Peak RSS is the largest sum of the resident sets of the contender's processes (the process,
its descendants and its process group) at one sample: pages shared between a parent and its
forked children are counted once per process, so it overstates real memory a little, and a
peak shorter than 50 ms can be missed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = Path(os.environ.get("DIGEST_CORPUS", HERE.parent.parent / "shared" / "corpus" / "real"))
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/real")
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
BIN = Path(sys.executable).parent
#: Environment variables of ours or Prefect's that must not leak into a contender.
_SCRUB_PREFIXES = ("PREFECT_", "DIGEST_")

# --- generated feeds -----------------------------------------------------------------------------

#: Fallback vocabulary when the corpus is not there.
_TEXT = (
    "alliance defense minister summit security cooperation Japan United States Korea Pacific "
    "Indo-Pacific Tokyo Washington Seoul talks agreement forces exercise joint maritime coast "
    "guard trade economy semiconductor supply chain missile launch deterrence budget treaty "
    "official statement press briefing secretary embassy ambassador visit regional stability "
    "the of and to in for on with at by from about after before during over under new said "
    "would could will also more than its their this that which while where government policy "
    "report analysis week month year plan strategy investment technology energy climate"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


@functools.cache
def _vocabulary() -> tuple[str, ...]:
    """Every word of the corpus's 10,000 entry titles, repeats kept: sampling from it gives
    real news text's word frequencies (about 14,000 distinct words, "the" the commonest)."""
    try:
        with (CORPUS / "ITEMS.tsv").open(encoding="utf-8", newline="") as f:
            words = [w for row in csv.DictReader(f, delimiter="\t")
                     for w in _WORD.findall(row.get("title") or "")]
    except OSError:
        words = []
    return tuple(words) if len(words) > 1000 else tuple(_TEXT.split())


def _sentence(rng: random.Random, lo: int = 8, hi: int = 22) -> str:
    vocabulary = _vocabulary()
    words = [rng.choice(vocabulary) for _ in range(rng.randint(lo, hi))]
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


def _description(rng: random.Random, site: str) -> str:
    """300-1500 characters of typical feed HTML: paragraphs, now and then a link, an image,
    emphasis or a list; cut at the length like a teaser (so a tag may be left open)."""
    target = rng.randint(300, 1500)
    parts: list[str] = []
    if rng.random() < 0.2:
        parts.append(f'<p><img src="/images/{rng.randrange(10**6)}.jpg" width="600" '
                     f'alt="{escape(_sentence(rng, 3, 6))}" /></p>')
    size = sum(map(len, parts))
    while size < target:
        sentences = [escape(_sentence(rng)) for _ in range(rng.randint(2, 4))]
        roll = rng.random()
        if roll < 0.25:
            word = rng.choice(_vocabulary()).lower()
            sentences[rng.randrange(len(sentences))] = (
                f'<a href="{site}/topics/{word}?utm_source=rss">{escape(_sentence(rng, 2, 5))}</a>'
            )
        elif roll < 0.35:
            sentences[0] = f"<strong>{sentences[0]}</strong>"
        chunk = f"<p>{' '.join(sentences)}</p>"
        if roll > 0.95:
            chunk = f"<ul><li>{escape(_sentence(rng, 4, 9))}</li><li>{sentences[0]}</li></ul>"
        parts.append(chunk)
        size += len(chunk)
    text = "".join(parts)
    return text if len(text) <= target else text[:target].rsplit(" ", 1)[0] + "…"


def generate_feed(index: int, entries: int, base_url: str) -> bytes:
    """One RSS 2.0 feed; deterministic for (index, entries)."""
    rng = random.Random(index * 7919 + entries)
    site = f"https://news{index % 97}.example.com/site{index}"
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    items: list[str] = []
    for n in range(entries):
        published = now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        link = f"{site}/{published:%Y/%m/%d}/story-{index}-{n}.html"
        desc = _description(rng, site)
        body = (f"<![CDATA[{desc}]]>" if rng.random() < 0.3 else escape(desc, quote=False))
        media = ""
        if rng.random() < 0.35:
            media = (f'\n      <media:content url="{site}/media/{index}-{n}.jpg" medium="image" '
                     f'type="image/jpeg" width="1200" height="675"/>')
        guid = (f'<guid isPermaLink="false">{site}/id/{index}-{n}</guid>' if n % 4
                else f"<guid>{link}</guid>")
        items.append(
            f"""    <item>
      <title>{escape(_sentence(rng, 5, 14)[:-1])}</title>
      <link>{link}?utm_source=rss&amp;utm_medium=feed</link>
      {guid}
      <pubDate>{format_datetime(published)}</pubDate>
      <dc:creator>{escape(rng.choice(("Staff", "Reuters", "A. Tanaka", "J. Smith")))}</dc:creator>
      <category>{rng.choice(("Politics", "Defense", "Economy", "World"))}</category>
      <description>{body}</description>{media}
    </item>"""
        )
    return (
        f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>Generated feed {index}</title>
    <link>{site}/</link>
    <atom:link href="{base_url}/gen/feed-{index:05d}.xml" rel="self" type="application/rss+xml"/>
    <description>Benchmark feed {index}: realistic news items.</description>
    <language>en-us</language>
    <lastBuildDate>{format_datetime(now)}</lastBuildDate>
{chr(10).join(items)}
  </channel>
</rss>
"""
    ).encode()


def build_served_dir(root: Path, feeds: int, entries: int, corpus: bool) -> list[str]:
    """Write the generated feeds and copy the corpus under `root`; the URL paths to fetch."""
    paths: list[str] = []
    (root / "gen").mkdir(parents=True)
    for i in range(feeds):
        name = f"gen/feed-{i:05d}.xml"
        (root / name).write_bytes(generate_feed(i, entries, "http://127.0.0.1"))
        paths.append(name)
    if corpus:
        with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                src = CORPUS / row["local_path"]
                if not src.is_file():
                    continue
                rel = "corpus/" + row["local_path"]
                if Path(rel).suffix.lower() not in (".xml", ".rss", ".atom", ".rdf", ".json"):
                    rel += ".xml"  # served as application/rss+xml rather than octet-stream
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, root / rel)
                paths.append(rel)
    return paths


# --- process-tree monitoring -------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, bytes, int, int] | None:
    """(ppid, pgid, state, CPU ticks used, RSS pages) of a process, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return (int(fields[1]), int(fields[2]), fields[0], int(fields[11]) + int(fields[12]),
            int(fields[21]))


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] not in (b"Z", b"X")


def _pss(pid: int) -> int:
    """Proportional set size in bytes: shared pages divided among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ")
    except OSError:
        return b""


def _role(pid: int) -> str:
    cmd = _cmdline(pid)
    if not cmd:
        return "main"
    # Prefect's own temporary server (uvicorn ... prefect.server...), or the one digest starts.
    if b"uvicorn" in cmd or b"prefect.server" in cmd or b"prefect server start" in cmd:
        return "prefect server"
    if b"alliance_digest.flows.record" in cmd:
        return "recorder"
    if b"multiprocessing" in cmd or b"forkserver" in cmd:
        return "parse workers"
    return "main"


class TreeMonitor:
    """Samples a process, its descendants and its process group every `interval`: the peak of
    their summed RSS (in all and by role), and the CPU time each used (last sample)."""

    def __init__(self, root: int, interval: float = 0.05, marker: bytes | None = None) -> None:
        self.root = root
        #: A process whose command line holds this joins the tree: digest's detached recorder
        #: (it leaves the command's session and outlives it, so the tree may never hold it).
        self.marker = marker
        self.interval = interval
        self.pids: set[int] = {root}
        self.roles: dict[int, str] = {}
        self.ticks: dict[int, int] = {}
        self.peak = 0
        #: Peak of the summed RSS without Prefect's server (the digest process and its workers).
        self.peak_own = 0
        #: The largest single process's peak RSS, by role (a digest process must stay under
        #: 300 MB whatever its children do; Prefect's server is reported on its own).
        self.peak_single: dict[str, int] = {}
        #: Seconds the process's leftovers worked after it exited (see run_process).
        self.lingered = 0.0
        #: Peak of the summed PSS, sampled every 10th round (reading it costs more).
        self.peak_pss = 0
        self.peak_by_role: dict[str, int] = {}
        #: Seconds after the start when each role's RSS peaked.
        self.peak_at: dict[str, float] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.ticks.values()) / TICKS

    @property
    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, ticks in self.ticks.items():
            role = self.roles.get(pid, "main")
            out[role] = out.get(role, 0.0) + ticks / TICKS
        return out

    def _scan(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            st = _stat(pid)
            if st is None:
                continue
            children.setdefault(st[0], []).append(pid)
            if st[1] == self.root or (self.marker and pid not in self.pids
                                      and self.marker in _cmdline(pid)):
                self.pids.add(pid)
        stack = list(self.pids)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in self.pids:
                    self.pids.add(child)
                    stack.append(child)
        # Looked at again each time: a child seen between fork and exec still has its
        # parent's command line.
        for pid in self.pids:
            if _alive(pid):
                self.roles[pid] = _role(pid)

    def _run(self) -> None:
        n = 0
        while True:
            if n % 4 == 0:  # new processes appear rarely: look for them every 200 ms
                self._scan()
            n += 1
            total = 0
            by_role: dict[str, int] = {}
            for pid in list(self.pids):
                st = _stat(pid)
                if st is None or st[2] in (b"Z", b"X"):
                    continue
                self.ticks[pid] = st[3]
                rss = st[4] * PAGE
                role = self.roles.get(pid)
                if role is None:
                    role = self.roles[pid] = _role(pid)
                total += rss
                by_role[role] = by_role.get(role, 0) + rss
                if rss > self.peak_single.get(role, 0):
                    self.peak_single[role] = rss
            self.peak = max(self.peak, total)
            self.peak_own = max(self.peak_own, total - by_role.get("prefect server", 0))
            if n % 10 == 1:
                self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in list(self.pids)))
            for role, rss in by_role.items():
                if rss > self.peak_by_role.get(role, 0):
                    self.peak_by_role[role] = rss
                    self.peak_at[role] = time.monotonic() - self._started
            if self._stop.wait(self.interval):
                return

    def kill_leftovers(self) -> list[int]:
        """Stop whatever of the tree is still running (by pid); returns their pids."""
        alive = [p for p in self.pids if _alive(p)]
        left = list(alive)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p) for p in alive):
                time.sleep(0.05)
            alive = [p for p in alive if _alive(p)]
            if not alive:
                break
        return left


@dataclass
class Result:
    contender: str
    pass_: str
    wall: float
    items: int
    peak_rss: int
    feeds: int = 0
    roles: dict[str, int] = field(default_factory=dict)
    note: str = ""
    ok: bool = True
    cpu: float = 0.0
    pss: int = 0
    #: The 1-minute load average when the row started (other work on the machine).
    load: float = 0.0
    #: Peak RSS of the tree without Prefect's server process.
    peak_own: int = 0
    #: The largest single process's peak RSS, by role.
    single: dict[str, int] = field(default_factory=dict)

    @property
    def largest_own(self) -> int:
        """The largest single process's peak RSS, Prefect's server aside."""
        return max((v for k, v in self.single.items() if k != "prefect server"), default=0)

    @property
    def rate(self) -> float:
        return self.items / self.wall if self.wall else 0.0


def byte_compile_project() -> None:
    """Compile the project's modules to .pyc files, as pip does when it installs a package.

    Reader's modules were compiled when pip installed them; an editable install of this
    project never is, and with PYTHONDONTWRITEBYTECODE set (as on this machine) every digest
    process compiled ~50 modules from source again: ~0.1 s of each pass, which no installed
    copy pays. Python reads .pyc files whatever that variable says.
    """
    import compileall

    import alliance_digest

    root = Path(alliance_digest.__file__).parent
    compileall.compile_dir(root, quiet=1, rx=re.compile(r"[/\\](\.venv|tests|bench|\.git)[/\\]"))


def stored_complete(db_path: Path) -> bool:
    """No item of the database waits to be indexed for search or clustered (or no database)."""
    if not db_path.exists():
        return True
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True,
                                                timeout=5)) as conn:
            return not conn.execute(
                "SELECT EXISTS (SELECT 1 FROM search_deferred) "
                "OR EXISTS (SELECT 1 FROM item_tokens_new) "
                "OR EXISTS (SELECT 1 FROM items WHERE cluster_id IS NULL)").fetchone()[0]
    except sqlite3.Error:
        return False


class RecorderWatch:
    """`run_process`'s `linger` for a digest run into the data folder `data`: true while the
    detached recorder it started is still completing the run (search index, stories) or
    recording it in Prefect; `complete_at` is when the run was first seen complete
    (perf_counter), `marker` what finds the recorder's process (its payload's path)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.marker = str(data / ".prefect-record-").encode()
        self.complete_at: float | None = None

    def __call__(self) -> bool:
        if self.complete_at is None and stored_complete(self.data / "digest.db"):
            self.complete_at = time.perf_counter()
        return any(self.data.glob(".prefect-record-*")) or self.complete_at is None


def run_process(label: str, pass_: str, argv: list[str], env: dict[str, str], cwd: Path,
                log: Path, timeout: float = 600, linger: Any = None,
                marker: bytes | None = None) -> tuple[float, TreeMonitor, int, float]:
    """Run one contender to completion; (wall seconds, monitor, exit status, load average).

    `linger()`: true while something the process left behind is still working (digest's
    Prefect recorder); the monitor keeps watching until it is false (up to `timeout`), and
    its duration is `monitor.lingered`.
    """
    load = os.getloadavg()[0]
    with log.open("ab") as out:
        out.write(f"\n=== {label} / {pass_}: {' '.join(argv)}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        with TreeMonitor(proc.pid, marker=marker) as mon:
            try:
                status = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                status = -9  # kill_leftovers() below ends it
            wall = time.perf_counter() - started
            while linger is not None and linger() and time.perf_counter() - started < timeout:
                time.sleep(0.1)
            mon.lingered = time.perf_counter() - started - wall
        mon.kill_leftovers()
        proc.wait()
    return wall, mon, status, load


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(PYTHONUNBUFFERED="1", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               NO_COLOR="1", COLUMNS="120")
    return env


# --- the contenders' own code (run as `bench/collect.py _plain …` / `_reader …`) ----------------


def plain_main(urls_file: str, state_file: str) -> None:
    """Sequential requests + feedparser; keeps validators so a second run gets 304s."""
    import feedparser
    import requests

    urls = Path(urls_file).read_text().split()
    state_path = Path(state_file)
    state: dict[str, list[str | None]] = (
        json.loads(state_path.read_text()) if state_path.exists() else {}
    )
    counts = {"items": 0, "ok": 0, "not_modified": 0, "failed": 0}
    with requests.Session() as session:
        for url in urls:
            etag, modified = state.get(url, [None, None])
            headers = {}
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
            try:
                resp = session.get(url, headers=headers, timeout=30)
            except requests.RequestException:
                counts["failed"] += 1
                continue
            if resp.status_code == 304:
                counts["not_modified"] += 1
                continue
            if resp.status_code != 200:
                counts["failed"] += 1
                continue
            parsed = feedparser.parse(resp.content, response_headers=dict(resp.headers))
            counts["items"] += len(parsed.entries)
            counts["ok"] += 1
            state[url] = [resp.headers.get("ETag"), resp.headers.get("Last-Modified")]
    state_path.write_text(json.dumps(state))
    print("RESULT " + json.dumps(counts))


def reader_main(db_path: str, urls_file: str, workers: str = "1") -> None:
    """lemon24/reader: add every URL once, then update_feeds(workers=N)."""
    try:
        import sgmllib  # noqa: F401
    except ImportError:
        # reader vendors a feedparser that imports `sgmllib` (the sgmllib3k package), which
        # feedparser 6.0.12+ no longer installs; its successor module is a drop-in fork.
        import feedparser_sgmllib

        sys.modules["sgmllib"] = feedparser_sgmllib
    from reader import make_reader

    urls = Path(urls_file).read_text().split()
    reader = make_reader(db_path)
    before = reader.get_entry_counts().total
    t0 = time.perf_counter()
    for url in urls:
        reader.add_feed(url, exist_ok=True)
    t1 = time.perf_counter()
    # scheduled=False: also the not-yet-due feeds (the --force of reader); workers: feeds
    # fetched at once (reader parses in the same threads).
    reader.update_feeds(scheduled=False, workers=int(workers))
    t2 = time.perf_counter()
    after = reader.get_entry_counts().total
    errors = sum(1 for f in reader.get_feeds() if f.last_exception)
    reader.close()
    print("RESULT " + json.dumps({"items": after - before, "total": after, "failed": errors,
                                  "add_s": round(t1 - t0, 2), "update_s": round(t2 - t1, 2)}))


def empty_flow_main() -> None:
    """Prefect's own floor: import what `digest collect` imports, run an empty async flow."""
    import asyncio

    import alliance_digest.flows.collect  # noqa: F401  (the same imports as the real run)
    from prefect import flow

    @flow(name="empty")
    async def empty() -> int:
        return 0

    asyncio.run(empty())


def _result_line(log: Path) -> dict[str, Any]:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {}


# --- digest -------------------------------------------------------------------------------------


def write_digest_config(data: Path, urls: list[str]) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    (data / "sources.toml").write_text(
        "".join(f'[[source]]\nname = "feed {i:05d}"\nurl = "{u}"\n\n' for i, u in enumerate(urls)),
        encoding="utf-8",
    )
    config = data / "digest.toml"
    config.write_text('[store]\npath = "data/digest.db"\n\n[sources]\nfile = "sources.toml"\n',
                      encoding="utf-8")
    return config


def digest_counts(data: Path) -> dict[str, Any]:
    """The last run's counters, and when its phases ended (whole seconds, from the database)."""
    con = sqlite3.connect(data / "data" / "digest.db")
    try:
        run = con.execute(
            "SELECT sources_ok, sources_not_modified, sources_failed, items_new, items_updated, "
            "id, started_at, finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        total = con.execute("SELECT count(*) FROM items").fetchone()[0]
        merged = con.execute("SELECT count(*) FROM item_sources").fetchone()[0]
        stored = con.execute("SELECT max(fetched_at) FROM fetches WHERE run_id = ?",
                             [run[5]]).fetchone()[0] if run else None
    finally:
        con.close()
    keys = ("ok", "not_modified", "failed", "items_new", "items_updated")
    counts: dict[str, Any] = {**dict(zip(keys, run or (0,) * 5, strict=False)), "total": total,
                              "merged": merged}
    if run and run[6] and run[7] and stored:
        def at(stamp: str) -> datetime:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        counts["phases"] = (f"flow body {(at(run[7]) - at(run[6])).total_seconds():.0f} s: "
                            f"fetch+parse+store {(at(stored) - at(run[6])).total_seconds():.0f} s, "
                            f"then triage etc. {(at(run[7]) - at(stored)).total_seconds():.0f} s")
    return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path, log: Path) -> Any:
    """`prefect server start` on a free loopback port; yields (api_url, pid); always stopped."""
    port = free_port()
    env = base_env()
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE="100")
    out = log.open("ab")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api"
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with status {proc.returncode}; "
                                   f"see {log}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > 120:
                raise RuntimeError("prefect server did not become healthy in 120 s")
            time.sleep(0.2)
        yield url, proc.pid, time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


def tree_rss(root: int) -> int:
    mon = TreeMonitor(root)
    mon._scan()
    return sum(st[4] * PAGE for p in mon.pids if (st := _stat(p)) is not None)


# --- the run ------------------------------------------------------------------------------------


def mb(n: int) -> float:
    return n / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000, help="generated feeds (default 1000)")
    ap.add_argument("--entries", type=int, default=30, help="entries per feed (default 30)")
    ap.add_argument("--no-corpus", action="store_true", help="serve only the generated feeds")
    ap.add_argument("--hosts", type=int, default=50,
                    help="loopback addresses the feeds are spread over (default 50)")
    ap.add_argument("--skip-reader", action="store_true", help="leave lemon24/reader out")
    ap.add_argument("--skip-fresh-home", action="store_true",
                    help="skip the cold run on a fresh PREFECT_HOME")
    ap.add_argument("--only", default="", help="comma-separated contenders to run "
                    "(plain,reader,fresh,cold,server,floor); default all")
    ap.add_argument("--out", default=str(HERE / "results-collect.md"), help="markdown report")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    def wanted(name: str) -> bool:
        if name == "reader" and args.skip_reader:
            return False
        if name == "fresh" and args.skip_fresh_home:
            return False
        return not only or name in only

    from alliance_digest.feedserver import FeedServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    log = tmp / "bench.log"
    results: list[Result] = []
    notes: list[str] = []
    byte_compile_project()
    try:
        t0 = time.perf_counter()
        paths = build_served_dir(tmp / "served", args.feeds, args.entries, not args.no_corpus)
        served_bytes = sum(f.stat().st_size for f in (tmp / "served").rglob("*") if f.is_file())
        print(f"{len(paths)} feeds ({args.feeds} generated x {args.entries} entries"
              f"{', plus the corpus' if not args.no_corpus else ''}), "
              f"{served_bytes / 1e6:.1f} MB, written in {time.perf_counter() - t0:.1f} s; "
              f"temp dir {tmp}", flush=True)
        with contextlib.ExitStack() as servers:
            # One server per loopback address (127.0.0.1, .2, ...): feeds spread over
            # --hosts hosts, as real feeds are, so per-host politeness does not serialise them.
            hosts = [servers.enter_context(FeedServer(tmp / "served", record=False,
                                                      host=f"127.0.0.{n + 1}"))
                     for n in range(max(1, args.hosts))]
            urls = [hosts[i % len(hosts)].url(p) for i, p in enumerate(paths)]
            urls_file = tmp / "urls.txt"
            urls_file.write_text("\n".join(urls) + "\n")
            script = str(Path(__file__).resolve())
            py = sys.executable

            def record(contender: str, pass_: str, wall: float, mon: TreeMonitor, status: int,
                       items: int, feeds: int, note: str, load: float) -> Result:
                r = Result(contender, pass_, wall, items, mon.peak, feeds,
                           dict(mon.peak_by_role), note, ok=status == 0, cpu=mon.cpu_seconds,
                           load=load, pss=mon.peak_pss, peak_own=mon.peak_own,
                           single=dict(mon.peak_single))
                if status != 0:
                    r.note = f"exit status {status}; {note}"
                results.append(r)
                roles = ", ".join(f"{k} {mb(v):.0f} MB at {mon.peak_at.get(k, 0):.0f} s / "
                                  f"{mon.cpu_by_role.get(k, 0):.1f} s CPU"
                                  for k, v in sorted(r.roles.items()))
                print(f"  {contender:<26} {pass_:<6} {wall:7.2f} s (CPU {r.cpu:6.1f} s, load "
                      f"{load:.1f}) {items:6d} items {r.rate:6.0f}/s  peak {mb(mon.peak):4.0f} MB "
                      f"(PSS {mb(mon.peak_pss):.0f}) "
                      f"({roles})  {r.note}", flush=True)
                return r

            if wanted("plain"):
                state = tmp / "plain-state.json"
                for pass_ in ("first", "304"):
                    argv = [py, script, "_plain", str(urls_file), str(state)]
                    wall, mon, status, load = run_process("plain", pass_, argv, base_env(), tmp,
                                                          log)
                    res = _result_line(log)
                    record("plain (sequential)", pass_, wall, mon, status, res.get("items", 0),
                           res.get("ok", 0) + res.get("not_modified", 0),
                           f"ok {res.get('ok')}, 304 {res.get('not_modified')}, "
                           f"failed {res.get('failed')}", load)

            for workers in (8, 1):  # reader at its best, then its default
                if not wanted("reader") and not wanted(f"reader{workers}"):
                    continue
                rdb = tmp / f"reader-{workers}" / "reader.sqlite"
                rdb.parent.mkdir()
                for pass_ in ("first", "304"):
                    argv = [py, script, "_reader", str(rdb), str(urls_file), str(workers)]
                    wall, mon, status, load = run_process(f"reader-{workers}", pass_, argv,
                                                          base_env(), tmp, log)
                    res = _result_line(log)
                    record(f"reader (workers={workers})", pass_, wall, mon, status,
                           res.get("items", 0), len(urls),
                           f"update_feeds {res.get('update_s')} s, add_feed "
                           f"{res.get('add_s')} s, feeds with errors {res.get('failed')}", load)

            digest = [str(BIN / "digest"), "collect", "--force"]

            def run_digest(contender: str, pass_: str, data: Path, env: dict[str, str],
                           extra: str = "") -> None:
                home = Path(env["PREFECT_HOME"])
                had_db = (home / "prefect.db").exists()
                env = {**env, "DIGEST_CONFIG": str(data / "digest.toml")}
                recorder = RecorderWatch(data / "data")
                started = time.perf_counter()
                wall, mon, status, load = run_process(
                    contender, pass_, digest, env, data, log, linger=recorder,
                    marker=recorder.marker)
                after = (recorder.complete_at - started - wall
                         if recorder.complete_at is not None else 0.0)
                if after > 0.05:
                    extra += (f"; search index and stories complete {after:.1f} s after the "
                              "command (the recorder's work)")
                c = digest_counts(data)
                items = c["items_new"] + c["items_updated"]
                db_note = "" if "server" in contender else (
                    f"prefect.db existed: {'yes' if had_db else 'no'}; ")
                phases = f"; {c['phases']}" if c.get("phases") else ""
                record(contender, pass_, wall, mon, status, items,
                       c["ok"] + c["not_modified"],
                       f"{db_note}ok {c['ok']}, 304 {c['not_modified']}, failed {c['failed']}, "
                       f"items stored {c['total']} (+{c['merged']} merged){phases}{extra}"
                       + (f"; recorded in Prefect {mon.lingered:.1f} s after the command"
                          if mon.lingered > 0.05 else ""), load)

            home = tmp / "prefect-home"
            home.mkdir()
            cold_env = {**base_env(), "PREFECT_HOME": str(home)}
            if wanted("fresh"):
                data = tmp / "digest-fresh"
                write_digest_config(data, urls)
                run_digest("digest cold, fresh home", "first", data, cold_env)
            def run_floor(contender: str, env: dict[str, str]) -> None:
                wall, mon, status, load = run_process(contender, "-", [py, script, "_empty_flow"],
                                                      env, tmp, log)
                record(contender, "-", wall, mon, status, 0, 0,
                       "no feeds: Prefect's fixed cost (imports, server, flow run, exit)", load)

            if wanted("cold"):
                if not (home / "prefect.db").exists():
                    # Initialise PREFECT_HOME once: a flow-less command that opens the database.
                    subprocess.run([str(BIN / "prefect"), "server", "database", "upgrade", "-y"],
                                   env=cold_env, check=False, capture_output=True)
                data = tmp / "digest-cold"
                write_digest_config(data, urls)
                for pass_ in ("first", "304"):
                    run_digest("digest cold (no server running)", pass_, data, cold_env)
                if wanted("floor"):
                    run_floor("empty flow (temp server)", cold_env)

            if wanted("server"):
                shome = tmp / "prefect-server-home"
                shome.mkdir()
                with prefect_server(shome, tmp / "prefect-server.log") as (api, spid, took):
                    notes.append(f"`prefect server start` became healthy in {took:.1f} s "
                                 f"(its own PREFECT_HOME; not counted in any row)")
                    env = {**base_env(), "PREFECT_HOME": str(tmp / "client-home"),
                           "PREFECT_API_URL": api}
                    data = tmp / "digest-server"
                    write_digest_config(data, urls)
                    for pass_ in ("first", "304"):
                        run_digest("digest (server running)", pass_, data, env)
                    if wanted("floor"):
                        run_floor("empty flow (server running)", env)
                    notes.append(f"Prefect server RSS after the runs: "
                                 f"{mb(tree_rss(spid)):.0f} MB (not in the client's peak)")
    finally:
        report = render(results, notes, args, len(urls) if "urls" in locals() else 0)
        print("\n" + report)
        Path(args.out).write_text(report, encoding="utf-8")
        print(f"written to {args.out}")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


def render(results: list[Result], notes: list[str], args: argparse.Namespace,
           feeds: int) -> str:
    def find(prefix: str, pass_: str) -> Result | None:
        return next((r for r in results if r.contender.startswith(prefix) and r.pass_ == pass_),
                    None)

    lines = [
        "# Collect benchmark",
        "",
        f"{feeds} feeds: {args.feeds} generated RSS 2.0 x {args.entries} entries"
        + ("" if args.no_corpus else " plus the real corpus (shared/corpus/real, MANIFEST.tsv)")
        + f", served on {args.hosts} loopback hosts (127.0.0.1-{args.hosts}). "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}.",
        "",
        "| contender | pass | wall s | items | items/s | peak RSS MB (tree) | largest process MB "
        "| peak PSS MB | CPU s | load | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        roles = ""
        if len(r.roles) > 1:
            roles = " [" + ", ".join(f"{k} {mb(v):.0f}" for k, v in sorted(r.roles.items())) + "]"
        rate = f"{r.rate:.0f}" if r.items else "-"
        single = ", ".join(f"{k} {mb(v):.0f}" for k, v in sorted(r.single.items()))
        lines.append(f"| {r.contender} | {r.pass_} | {r.wall:.2f} | {r.items} | {rate} | "
                     f"{mb(r.peak_rss):.0f}{roles} | {single} | {mb(r.pss):.0f} | {r.cpu:.1f} "
                     f"| {r.load:.1f} | {r.note} |")
    checks: list[str] = []

    def check(label: str, ours: Result | None, theirs: Result | None, limit: float) -> None:
        if ours is None or theirs is None:
            return
        ratio = ours.wall / theirs.wall
        verdict = "PASS" if ratio <= limit and ours.ok and theirs.ok else "FAIL"
        checks.append(f"| {label} | {ours.wall:.2f} / {theirs.wall:.2f} | {ratio:.2f} "
                      f"| <= {limit} | {verdict} |")

    # Against reader at its best (8 workers); its default (1 worker) for reference.
    for workers, first_limit, limit_304 in ((8, 0.6, 1.0), (1, 0.6, 1.0)):
        reader_first = find(f"reader (workers={workers})", "first")
        reader_304 = find(f"reader (workers={workers})", "304")
        vs = f"reader-{workers}"
        check(f"cold `digest collect --force` (no server running) vs {vs} first pass",
              find("digest cold (no server", "first"), reader_first, first_limit)
        check(f"cold, fresh PREFECT_HOME (informational) vs {vs} first pass",
              find("digest cold, fresh", "first"), reader_first, 1.0)
        check(f"server already running vs {vs} first pass",
              find("digest (server", "first"), reader_first, first_limit)
        check(f"304 pass, cold (no server running) vs {vs} 304 pass",
              find("digest cold (no server", "304"), reader_304, limit_304)
        check(f"304 pass, server running vs {vs} 304 pass",
              find("digest (server", "304"), reader_304, limit_304)
    lines += ["", "| target | ours / reader s | ratio | limit | |", "|---|---|---:|---:|---|",
              *checks]
    for r in results:
        if r.contender.startswith(("digest", "empty")):
            verdict = "PASS" if r.largest_own <= 300e6 else "FAIL"
            lines.append(f"| every digest process <= 300 MB: {r.contender}, {r.pass_} | "
                         f"largest {mb(r.largest_own):.0f} MB (tree {mb(r.peak_rss):.0f} MB"
                         + (f", Prefect's server {mb(r.single['prefect server']):.0f} MB"
                            if "prefect server" in r.single else "")
                         + f") | | | {verdict} |")
    lines += ["", "Notes:", "",
              "- Every row is a whole separate process (interpreter start-up and imports "
              "included) with its own fresh data directory and database; the 304 pass reruns "
              "it on the same data. Peak RSS sums the resident sets of the process tree "
              "(children such as Prefect's temporary server and the parse workers included), "
              "sampled every 50 ms; it counts pages that forked processes share once per "
              "process, so it overstates a little (peak PSS, sampled every 0.5 s, splits shared "
              "pages fairly). CPU s: user + system time of the whole tree. load: the 1-minute "
              "load average as the row started; anything above 0 is other work competing for "
              "the machine's cores, so compare rows of one run, and prefer CPU s when it is high.",
              "- digest: the temporary server and `prefect server start` use their own "
              "PREFECT_HOME; 'cold' means a fresh data directory and database and no Prefect "
              "server running: the command collects at once (with a server running too) and a "
              "detached recorder it starts completes a run of more than 2,000 new items (their "
              "search index and stories: the 'complete' note) and records the run in Prefect "
              "afterwards, on the running server or a temporary one of its own (the 'recorded "
              "in Prefect' note); the row waits for both before the "
              "next, and its memory, CPU and largest process include the recorder; the phases "
              "come from the run's timestamps in the database (whole seconds). 'empty flow' "
              "rows run a flow that does nothing after the same imports: Prefect's fixed "
              "cost in time and memory.",
              "- plain: requests + feedparser with feedparser's defaults (HTML sanitising on), "
              "one feed after another, no threads; nothing stored but validators.",
              "- reader: lemon24/reader 3.x, `update_feeds(scheduled=False)` (since 3.21 the "
              "default skips feeds not yet due, which would make the second pass fetch nothing) "
              "with workers=8 (its best here: 8 feeds fetched and parsed at once in threads) and "
              "with its default workers=1 (one feed after another).",
              *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_plain":
        plain_main(*sys.argv[2:4])
    elif len(sys.argv) > 1 and sys.argv[1] == "_empty_flow":
        empty_flow_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "_reader":
        reader_main(*sys.argv[2:5])
    else:
        sys.exit(main())
