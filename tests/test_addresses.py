"""Add-by-URL fetches public addresses only (SSRF): checked at connect time, on every hop.

Real servers on loopback stand in for the internal services an attacker would aim at; the
tests that must reach one admit it explicitly with `allowed_url_networks`, as an operator
would admit one intranet server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alliance_digest.errors import ConfigError, PrivateAddress
from alliance_digest.feedserver import FeedServer
from alliance_digest.pipeline.add_url import add_by_url, url_policy
from alliance_digest.settings import HttpSettings, load_settings
from alliance_digest.sources.addresses import AddressPolicy
from alliance_digest.store.db import open_db
from support import digest

SECRET = (
    b"<html><head><title>Internal admin</title>"
    b'<meta name="description" content="root password is hunter2"></head></html>'
)


@pytest.fixture
def secret_server() -> Iterator[FeedServer]:
    """An 'internal service' on 127.0.0.1."""
    with FeedServer() as server:
        server.route("/secret.html", body=SECRET, content_type="text/html")
        yield server


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.3.4.5", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%lo", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not a public"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    refused = AddressPolicy().check(address)
    assert refused is not None and reason in refused


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert AddressPolicy().check(address) is None


def test_policy_switches() -> None:
    assert AddressPolicy(allow_private=True).check("127.0.0.1") is None
    one = AddressPolicy.from_settings(False, ["10.0.0.5"])
    assert one.check("10.0.0.5") is None and one.check("10.0.0.6") is not None
    assert one.check("::ffff:10.0.0.5") is None


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "127.1",
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
    ],
)
def test_every_spelling_of_loopback_is_refused(
    new_db, fast_http: HttpSettings, secret_server: FeedServer, host: str
) -> None:
    db = new_db()
    url = f"http://{host}:{secret_server.port}/secret.html"
    with pytest.raises(PrivateAddress) as caught:
        add_by_url(db, url, fast_http, editor="alice")
    message = str(caught.value)
    assert "\n" not in message and "allow_private_urls" in message
    assert "address" in message
    assert secret_server.hits("/secret.html") == 0
    assert db["items"].count == 0


def test_a_redirect_to_loopback_is_refused_at_the_hop(new_db, fast_http: HttpSettings) -> None:
    """The first server is admitted (127.0.0.1 only); its 302 points at 127.0.0.2."""
    with FeedServer() as front, FeedServer(host="127.0.0.2") as inside:
        inside.route("/secret.html", body=SECRET, content_type="text/html")
        front.route("/go", status=302, redirect_to=inside.url("/secret.html"))
        db = new_db()
        admitted = AddressPolicy.from_settings(False, ["127.0.0.1/32"])
        with pytest.raises(PrivateAddress, match=r"127\.0\.0\.2 is a loopback address"):
            add_by_url(db, front.url("/go"), fast_http, editor="alice", addresses=admitted)
        assert front.hits("/go") == 1 and inside.hits("/secret.html") == 0
        assert db["items"].count == 0
        # The same chain with the guard off does reach the inside page (so the refusal above
        # is the guard's doing, not a dead server).
        added = add_by_url(
            db,
            front.url("/go"),
            fast_http,
            editor="alice",
            addresses=AddressPolicy(allow_private=True),
        )
        assert added.item["title"] == "Internal admin" and added.fetch_error is None


def test_ipv6_literal_urls_work(new_db, fast_http: HttpSettings) -> None:
    with FeedServer(host="::1") as server:
        server.route(
            "/a.html",
            body=b"<html><head><title>Over IPv6</title></head></html>",
            content_type="text/html",
        )
        db = new_db()
        added = add_by_url(
            db,
            server.url("/a.html"),
            fast_http,
            editor="alice",
            addresses=AddressPolicy.from_settings(False, ["::1/128"]),
        )
    assert added.fetch_error is None and added.item["title"] == "Over IPv6"
    assert added.item["url"].startswith("http://[::1]:")


def test_settings_keys(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(
        '[editor]\nallow_private_urls = true\nallowed_url_networks = ["10.0.0.0/8"]\n'
    )
    settings = load_settings(config)
    assert url_policy(settings.editor).allow_private
    config.write_text('[editor]\nallowed_url_networks = ["intranet"]\n')
    with pytest.raises(ConfigError, match="allowed_url_networks"):
        load_settings(config)


def test_cli_add_url_refuses_loopback_in_one_line(
    tmp_path: Path, secret_server: FeedServer
) -> None:
    (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n')
    url = f"http://2130706433:{secret_server.port}/secret.html"
    done = digest("add-url", url, cwd=tmp_path, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "127.0.0.1 is a loopback address" in done.stderr
    assert secret_server.hits("/secret.html") == 0
    assert open_db(tmp_path / "data" / "digest.db")["items"].count == 0
    (tmp_path / "digest.toml").write_text(
        '[store]\npath = "data/digest.db"\n[editor]\nallow_private_urls = true\n'
    )
    done = digest("add-url", url, cwd=tmp_path)
    assert "Internal admin" in done.stderr


def test_https_connections_are_guarded_too(new_db, fast_http: HttpSettings) -> None:
    db = new_db()
    with pytest.raises(PrivateAddress, match="loopback"):
        add_by_url(db, "https://localhost:8443/admin", fast_http, editor="alice")
    assert db["items"].count == 0
