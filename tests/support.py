"""Helpers the tests share: collecting into a configured folder, and running `digest`."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alliance_digest.feedserver import FeedServer

# --- A configured folder with collected items, and the `digest` command ----------------------

SITE_FEED = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>'
             b"<item><title>Japan, US hold 2+2</title><link>https://e.test/1</link><guid>g1</guid>"
             b"<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>"
             b"<item><title>Quad leaders meet</title><link>https://e.test/2</link><guid>g2</guid>"
             b"<pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>")


def collect_into(folder: Path, feeds: dict[str, bytes], *, triage: bool = False) -> Path:
    """Write digest.toml + sources.toml in `folder`, serve `feeds` and collect them (no Prefect).

    Returns the digest.toml path. With `triage`, the items are scored and clustered as
    `digest collect` does; without, they are stored untriaged (batches that return their
    outcomes unannotated, and no triage step).
    """
    from concurrent.futures import ThreadPoolExecutor

    from alliance_digest.pipeline.collect import collect_once
    from alliance_digest.settings import load_settings
    from alliance_digest.sources.batch import fetch_batch

    with FeedServer() as server:
        registry = "# my sources\n"
        for name, body in feeds.items():
            server.route(f"/{len(registry)}", body=body)
            registry += (f'[[source]]\nname = "{name}"\nurl = "{server.url(f"/{len(registry)}")}"'
                         '\ncountry = "US"\ncategory = "news"\n')
        (folder / "sources.toml").write_text(registry, encoding="utf-8")
        config = folder / "digest.toml"
        if not config.exists():
            config.write_text('[store]\npath = "data/digest.db"\n')
        if triage:
            collect_once(load_settings(config), force=True)
        else:
            with ThreadPoolExecutor(1) as threads:
                collect_once(load_settings(config), force=True,
                             submit_batch=lambda job: threads.submit(fetch_batch, job.requests,
                                                                     job.http),
                             triage=lambda *_: {})
    return config


def desk_login(client: Any, user: str, password: str) -> None:
    """Log a starlette TestClient into the desk through its login form."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    done = client.post("/login", data={"username": user, "password": password,
                                       "csrf_token": token.group(1)}, follow_redirects=False)
    assert done.status_code == 303, done.text


def digest(*args: str, cwd: Path, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DIGEST_CONFIG", None)
    if env and "DIGEST_CONFIG" in env:
        full_env["DIGEST_CONFIG"] = env["DIGEST_CONFIG"]
    done = subprocess.run([sys.executable, "-m", "alliance_digest.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=full_env, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr
    return done



def _shared() -> Path:
    """The project's shared material: beside the clone (as CI lays it), else /work/shared."""
    for candidate in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")):
        if (candidate / "corpus").is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared"


#: ../shared: the real feed corpus, the source reference and the seed issue.
SHARED = _shared()


def random_texts(alphabet: str, *, seed: int, count: int = 20_000,
                 longest: int = 30) -> Iterator[str]:
    """Reproducible random strings over `alphabet`, for checking a fast path against the
    plain definition it replaces on inputs nobody thought of."""
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


# --- Stored entries: the one builder of parsed-entry dicts ------------------------------------

def make_entry(key: int | str, **fields: object) -> dict[str, object]:
    """A parsed feed entry as `store.items.store_entries` takes it; `fields` override.

    An int key is a linked item ("guid:N", https://news.test/N, "Story N"); a str key is an
    identity of an item without guid or link (titled with the key).
    """
    if isinstance(key, int):
        base: dict[str, object] = {"identity": f"guid:{key}", "guid": str(key),
                                   "url": f"https://news.test/{key}", "title": f"Story {key}"}
    else:
        base = {"identity": key, "guid": None, "url": None, "title": key}
    base.update({"summary": "", "summary_text": "", "author": None, "language": "en",
                 "image_url": None, "published_at": None, "updated_at": None})
    base.update(fields)
    return base
