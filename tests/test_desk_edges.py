"""The desk's edges: signed login tokens, login limits, proxies, body caps, alerts, bulk versions.

TestClient for what the app decides; a real `digest editor` process for what depends on the
server around it (proxy headers, bodies streamed over a socket).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from alliance_digest.editor.app import create_app, format_when
from alliance_digest.editor.guard import KEY_FILE, Signer
from alliance_digest.feedserver import FeedServer
from alliance_digest.settings import Settings, load_settings
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from starlette.testclient import TestClient
from test_editor_http import PASSWORD, build_desk, csrf_from, item_id, login


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return build_desk(tmp_path, attempts=3)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def post_login(client: TestClient, user: str, password: str, token: str) -> int:
    return client.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": token},
        follow_redirects=False,
    ).status_code


# --- the login form's token is the server's ----------------------------------------------------


def test_a_login_token_the_client_made_up_is_refused(client: TestClient) -> None:
    made_up = "A" * 43
    client.cookies.set("desk_login", made_up, path="/login")
    assert post_login(client, "alice", PASSWORD, made_up) == 403
    # A token signed by another desk's key is refused too.
    other = Signer(b"k" * 32).issue("login")
    client.cookies.set("desk_login", other, path="/login")
    assert post_login(client, "alice", PASSWORD, other) == 403
    client.cookies.clear()
    token = csrf_from(client.get("/login").text)
    assert post_login(client, "alice", PASSWORD, token) == 303


def test_the_key_lives_in_the_data_folder_and_survives_a_restart(settings: Settings) -> None:
    with TestClient(create_app(settings)) as first:
        token = csrf_from(first.get("/login").text)
    key = settings.data_dir / KEY_FILE
    assert key.stat().st_mode & 0o777 == 0o600
    with TestClient(create_app(settings)) as second:
        second.cookies.set("desk_login", token, path="/login")
        assert post_login(second, "alice", PASSWORD, token) == 303


# --- login limits ------------------------------------------------------------------------------


def test_a_user_who_knows_the_password_is_not_locked_out(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as alice, TestClient(app) as attacker:
        login(alice)  # alice's browser has logged in before: it holds a device cookie
        alice.post("/logout", data={"csrf_token": csrf_from(alice.get("/").text)})
        token = csrf_from(attacker.get("/login").text)
        # The attacker, from the same address, guesses until the limits bite.
        codes = [post_login(attacker, "alice", f"guess {n}", token) for n in range(12)]
        assert codes[:3] == [401] * 3 and codes[-1] == 429
        assert post_login(attacker, "alice", PASSWORD, token) == 429
        # alice's browser still gets in with the right password.
        assert post_login(alice, "alice", PASSWORD, csrf_from(alice.get("/login").text)) == 303
        # A device cookie for another user does not help the attacker.
        stolen = alice.cookies.get("desk_device", path="/login")
        attacker.cookies.set("desk_device", stolen, path="/login")
        assert post_login(attacker, "bob", "guess", token) == 401  # bob: own counts
        assert post_login(attacker, "alice", PASSWORD, token) == 303  # alice's cookie, right pw


def test_the_device_cookie_has_its_own_limit(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        login(c)
        token = csrf_from(c.get("/login").text)
        codes = [post_login(c, "alice", "wrong", token) for _ in range(4)]
        assert codes == [401, 401, 401, 429]


# --- alerts, bulk versions ---------------------------------------------------------------------


def test_alert_texts_come_from_codes_never_from_the_url(
    client: TestClient, settings: Settings
) -> None:
    login(client)
    page = client.get("/?add_error=Your+session+expired,+log+in+at+evil.example").text
    assert "evil.example" not in page and "Could not add that item" not in page
    html = client.get("/").text
    with FeedServer(host="127.0.0.2") as inside:
        inside.route("/secret.html", body=b"<title>Internal</title>", content_type="text/html")
        # Not admitted (the desk admits 127.0.0.1/32 only, for the other tests' page server).
        r = client.post(
            "/items/add",
            data={"csrf_token": csrf_from(html), "url": inside.url("/secret.html")},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/?add_error=private"
        assert inside.hits("/secret.html") == 0
    page = client.get(r.headers["location"]).text
    assert "the address is not public" in page


def test_a_bulk_decision_on_a_changed_row_is_refused(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as alice, TestClient(app) as bob:
        a_csrf, b_csrf = login(alice), login(bob, "bob")
        one, two = item_id(settings, "5"), item_id(settings, "6")
        assert f'data-id="{one}" data-version="0"' in alice.get("/").text
        # bob shortlists item one after alice's queue was loaded.
        r = bob.post(
            "/api/items/status",
            json={"ids": [one], "versions": [0], "status": "shortlisted"},
            headers={"X-CSRF-Token": b_csrf},
        )
        assert r.status_code == 200 and r.json()["items"][0]["version"] == 1
        r = alice.post(
            "/api/items/status",
            json={"ids": [one, two], "versions": [0, 0], "status": "excluded"},
            headers={"X-CSRF-Token": a_csrf},
        )
        assert r.status_code == 409 and "bob" in r.json()["error"]
    db = open_db(settings.store_path)
    # When bob saved is said as the desk says every time (its zone, labelled), not raw UTC.
    saved_at = editorial.get_item(db, one)["edited_at"]
    shown = format_when(saved_at, ZoneInfo(settings.schedule.timezone))
    assert saved_at.endswith("Z") and shown != saved_at
    assert f"changed by bob at {shown} after" in r.json()["error"]
    assert saved_at not in r.json()["error"]
    assert editorial.get_item(db, one)["status"] == "shortlisted"
    assert editorial.get_item(db, two)["status"] == "candidate"  # all or nothing
    db.close()


def test_an_oversized_body_is_413_before_the_session_check(client: TestClient) -> None:
    big = b"x" * (2 * 1024 * 1024)
    r = client.post("/api/items/status", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    assert "content-security-policy" in r.headers
    r = client.post(
        "/items/1", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 413
    r = client.post(
        "/login",
        content=b"a" * (64 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


# --- a real `digest editor` process --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(folder: Path, extra: str = "") -> str:
        if extra:
            config = folder / "digest.toml"
            config.write_text(config.read_text() + extra)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alliance_digest.cli",
                "--config",
                str(folder / "digest.toml"),
                "editor",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "")
            try:
                if httpx.get(url + "/login", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the desk did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def guesses_then_password(url: str) -> list[int]:
    """Three wrong passwords for alice, then the right one, each 'from' another address."""
    with httpx.Client(base_url=url) as c:
        token = csrf_from(c.get("/login").text)
        codes = []
        for n, password in enumerate(["a", "b", "c", PASSWORD]):
            r = c.post(
                "/login",
                data={"username": "alice", "password": password, "csrf_token": token},
                headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
            )
            codes.append(r.status_code)
        return codes


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path, serve) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "proxied").mkdir()
    plain = build_desk(tmp_path / "plain", attempts=3)
    url = serve(plain.config_path.parent)
    # Rotating the header changes nothing: the socket's address is counted.
    assert guesses_then_password(url) == [401, 401, 401, 429]
    proxied = build_desk(tmp_path / "proxied", attempts=3)
    url = serve(proxied.config_path.parent, 'trusted_proxies = ["127.0.0.1"]\n')
    assert load_settings(proxied.config_path).editor.trusted_proxies == ["127.0.0.1"]
    # Behind a trusted proxy each forwarded address is its own: the password then works.
    assert guesses_then_password(url) == [401, 401, 401, 303]


def raw_post(url: str, head: bytes, parts: list[bytes]) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head)
        try:
            for part in parts:
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest was sent
        return s.recv(4096)


def test_bodies_are_capped_while_streaming(tmp_path: Path, serve) -> None:
    url = serve(build_desk(tmp_path, attempts=3).config_path.parent)
    # Announced as 300 MB: refused on the headers, nothing read.
    head = (
        b"POST /api/items/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 314572800\r\n\r\n"
    )
    assert raw_post(url, head, [b"{"]).startswith(b"HTTP/1.1 413")
    # Chunked, no length: counted as it arrives, cut off at the cap (256 KiB), no session.
    head = (
        b"POST /api/items/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 8 + [b"0\r\n\r\n"]
    assert raw_post(url, head, parts).startswith(b"HTTP/1.1 413")
