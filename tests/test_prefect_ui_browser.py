"""The Prefect UI that `digest serve` starts, in a real browser (Debian's chromium, Playwright).

`digest serve --port N` (N not Prefect's default 4200) must serve a UI that talks to ITS OWN
API on N: the deployments it serves and a completed run are visible, and the page never asks
for another server's API.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from alliance_digest.feedserver import FeedServer
from alliance_digest.flows.serve import free_port, group_alive, server_healthy, state_path
from alliance_digest.settings import load_settings
from test_schedule import tail, wait_for

CHROMIUM = Path("/usr/bin/chromium")
DIGEST = [sys.executable, "-m", "alliance_digest.cli"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.flow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
    ),
]

FEED = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>F</title>'
    b"<item><title>Japan and the US hold alliance talks</title>"
    b"<link>https://news.example.test/1</link><guid>g1</guid>"
    b"<pubDate>Mon, 23 Nov 2026 09:00:00 GMT</pubDate></item></channel></rss>"
)


def test_serve_on_a_non_default_port_serves_a_ui_that_reaches_its_own_api(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    while port == 4200:
        port = free_port()
    folder = tmp_path / "site"
    folder.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "client-home")}
    for name in (
        "PREFECT_API_URL",
        "DIGEST_CONFIG",
        "PREFECT_UI_API_URL",
        "PREFECT_SERVER_UI_API_URL",
    ):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    with FeedServer() as feeds:
        feeds.route("/f", body=FEED)
        (folder / "sources.toml").write_text(
            f'[[source]]\nname = "wire"\nurl = "{feeds.url("/f")}"\n', encoding="utf-8"
        )
        config = folder / "digest.toml"
        config.write_text('[store]\npath = "data/digest.db"\n', encoding="utf-8")
        settings = load_settings(config)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*DIGEST, "--config", str(config), "serve", "--port", str(port)],
                env=env,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        server_pid = None
        try:
            wait_for("the state file", lambda: state_path(settings).is_file(), 180, log, proc)
            info = json.loads(state_path(settings).read_text())
            server_pid = info["server_pid"]
            api = f"http://127.0.0.1:{port}/api"
            assert info["url"] == api and server_healthy(api)
            ui = f"http://127.0.0.1:{port}"
            wait_for("the UI line", lambda: f"Prefect UI: {ui}/" in log.read_text(), 30, log, proc)
            # A completed run on that server: `digest collect` finds it through the state file.
            done = subprocess.run(
                [*DIGEST, "--config", str(config), "collect"],
                env=env,
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert done.returncode == 0, done.stderr

            with sync_api.sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--no-first-run",
                    ],
                )
                try:
                    page = browser.new_page()
                    asked: list[str] = []
                    page.on("request", lambda r: asked.append(r.url))
                    page.goto(f"{ui}/deployments")
                    sync_api.expect(page.get_by_text("collect", exact=True)).to_be_visible(
                        timeout=60_000
                    )
                    sync_api.expect(page.get_by_text("draft", exact=True)).to_be_visible()
                    page.goto(f"{ui}/runs")
                    sync_api.expect(page.get_by_text("Completed").first).to_be_visible(
                        timeout=60_000
                    )
                    body = page.inner_text("body")
                finally:
                    browser.close()
            assert "Can't connect" not in body
            api_calls = [u for u in asked if "/api/" in u]
            assert api_calls and all(u.startswith(f"{api}/") for u in api_calls), api_calls
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=90)
            for pgid in (proc.pid, server_pid):
                if pgid and group_alive(pgid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pgid, signal.SIGKILL)
    assert proc.returncode == 0, tail(log)
