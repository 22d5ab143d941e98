"""sources.http against a real server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path

import pytest
import requests
from alliance_digest import errors
from alliance_digest.feedserver import FeedServer, gzip_bomb
from alliance_digest.settings import DEFAULT_USER_AGENT, HttpSettings
from alliance_digest.sources.http import (
    HostLimiter,
    cache_hints,
    fetch,
    make_session,
    parse_retry_after,
)
from alliance_digest.sources.next_fetch import next_fetch_at
from alliance_digest.sources.types import FetchRequest, Response

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><item><title>A</title></item></channel></rss>
"""


@pytest.fixture
def session(fast_http: HttpSettings) -> requests.Session:
    with make_session(fast_http) as s:
        yield s


def get(session: requests.Session, http: HttpSettings, url: str, **kw: object) -> Response:
    return fetch(session, FetchRequest(name="src", url=url, **kw), http)  # type: ignore[arg-type]


def raises(exc: type[errors.SourceError], session, http, url, **kw) -> errors.SourceError:
    with pytest.raises(exc) as info:
        get(session, http, url, **kw)
    message = str(info.value)
    assert message and "\n" not in message
    return info.value


# --- success, headers, conditional requests ---------------------------------------------------


def test_200_feed_and_default_headers(feed_server, session, fast_http):
    lm = "Wed, 25 Nov 2026 08:00:00 GMT"
    feed_server.route("/feed.xml", body=RSS, etag='"v1"', last_modified=lm)
    url = feed_server.url("/feed.xml")
    r = get(session, fast_http, url)
    assert (r.status, r.body, r.url, r.permanent_url) == (200, RSS, url, None)
    assert not r.not_modified
    assert r.headers["etag"] == '"v1"'  # case-insensitive
    assert r.headers["Last-Modified"] == "Wed, 25 Nov 2026 08:00:00 GMT"
    assert r.elapsed > 0
    sent = feed_server.requests[-1].headers
    assert sent["User-Agent"] == DEFAULT_USER_AGENT
    assert sent["Accept-Encoding"] == "gzip, deflate"
    assert sent["Accept"].startswith("application/rss+xml")
    assert "If-None-Match" not in sent and "If-Modified-Since" not in sent


def test_accept_follows_kind(feed_server, session, fast_http):
    feed_server.route("/api", body=b"[]", content_type="application/json")
    get(session, fast_http, feed_server.url("/api"), kind="json")
    assert feed_server.requests[-1].headers["Accept"].startswith("application/json")
    get(session, fast_http, feed_server.url("/api"), kind="page")
    assert feed_server.requests[-1].headers["Accept"].startswith("text/html")


def test_per_source_headers_override_defaults(feed_server, session, fast_http):
    feed_server.route("/feed.xml", body=RSS)
    headers = {"User-Agent": "Mozilla/5.0 (compatible)", "x-api-key": "k1", "accept": "*/*"}
    get(session, fast_http, feed_server.url("/feed.xml"), headers=headers)
    sent = feed_server.requests[-1].headers
    assert sent["User-Agent"] == "Mozilla/5.0 (compatible)"
    assert sent["X-Api-Key"] == "k1"
    assert sent["Accept"] == "*/*"
    assert sent["Accept-Encoding"] == "gzip, deflate"


def test_validators_sent_back_exactly_and_304(feed_server, session, fast_http):
    etag = 'W/"5f3a-1a2b"'
    lm = "Wed, 25 Nov 2026 08:00:00 GMT"
    feed_server.route("/feed.xml", body=RSS, etag=etag, last_modified=lm)
    r = get(session, fast_http, feed_server.url("/feed.xml"), etag=etag, last_modified=lm)
    sent = feed_server.requests[-1].headers
    assert sent["If-None-Match"] == etag
    assert sent["If-Modified-Since"] == lm
    assert r.status == 304 and r.not_modified and r.body == b""
    assert r.headers["ETag"] == etag


def test_odd_validators_are_not_normalised(feed_server, session, fast_http):
    feed_server.route("/feed.xml", body=RSS)
    odd_date = "Wednesday, 25-Nov-26 08:00:00 GMT"  # RFC 850 form, sent as stored
    get(session, fast_http, feed_server.url("/feed.xml"), etag="abc", last_modified=odd_date)
    sent = feed_server.requests[-1].headers
    assert (sent["If-None-Match"], sent["If-Modified-Since"]) == ("abc", odd_date)


def test_if_modified_since_alone_gets_304(feed_server, session, fast_http):
    feed_server.route("/feed.xml", body=RSS, last_modified="Wed, 25 Nov 2026 08:00:00 GMT")
    r = get(session, fast_http, feed_server.url("/feed.xml"),
            last_modified="Thu, 26 Nov 2026 08:00:00 GMT")
    assert r.status == 304
    r = get(session, fast_http, feed_server.url("/feed.xml"),
            last_modified="Tue, 24 Nov 2026 08:00:00 GMT")
    assert r.status == 200 and r.body == RSS


def test_changed_etag_gets_200(feed_server, session, fast_http):
    feed_server.route("/feed.xml", body=RSS, etag='"v2"')
    r = get(session, fast_http, feed_server.url("/feed.xml"), etag='"v1"')
    assert r.status == 200 and r.headers["ETag"] == '"v2"'


def test_empty_binary_and_html_bodies_are_returned_as_is(feed_server, session, fast_http):
    feed_server.route("/empty", body=b"")
    feed_server.route("/bin", body=bytes(range(256)), content_type="application/octet-stream")
    feed_server.route("/html", body=b"<html><body>hi</body></html>", content_type="text/html")
    feed_server.route("/nocontent", status=204)
    assert get(session, fast_http, feed_server.url("/empty")).body == b""
    assert get(session, fast_http, feed_server.url("/bin")).body == bytes(range(256))
    r = get(session, fast_http, feed_server.url("/html"))
    assert r.headers["Content-Type"] == "text/html" and r.body.startswith(b"<html>")
    r = get(session, fast_http, feed_server.url("/nocontent"))
    assert (r.status, r.body) == (204, b"")


def test_keep_alive_reuses_one_connection(feed_server, session, fast_http):
    feed_server.route("/feed.xml", body=RSS, etag='"v1"')
    feed_server.route("/gone", status=404, body=b"nope")
    for _ in range(3):
        get(session, fast_http, feed_server.url("/feed.xml"))
        get(session, fast_http, feed_server.url("/feed.xml"), etag='"v1"')
        with pytest.raises(errors.HTTPNotFound):
            get(session, fast_http, feed_server.url("/gone"))
    assert feed_server.connections == 1


# --- status mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc", "message"),
    [
        (401, errors.Refused, "refused by the server (401 Unauthorized)"),
        (403, errors.Refused, "refused by the server (403 Forbidden)"),
        (404, errors.HTTPNotFound, "not found (404 Not Found)"),
        (410, errors.Gone, "gone for good (410 Gone)"),
        (400, errors.HTTPStatusError, "client error (400 Bad Request)"),
        (418, errors.HTTPStatusError, "client error (418 I'm a Teapot)"),
        (500, errors.ServerError, "server error (500 Internal Server Error)"),
        (502, errors.ServerError, "server error (502 Bad Gateway)"),
        (503, errors.ServerError, "server error (503 Service Unavailable)"),
        (429, errors.RateLimited, "rate limited by the server (429 Too Many Requests)"),
    ],
)
def test_status_mapping(feed_server, session, fast_http, status, exc, message):
    feed_server.route("/x", status=status, body=b"<html>error page</html>")
    e = raises(exc, session, fast_http, feed_server.url("/x"))
    assert type(e) is exc
    assert str(e) == message
    assert e.status == status
    # The stored kind is a fixed value: 404 is stored as "NotFound" whatever the class is called.
    assert e.kind == ("NotFound" if exc is errors.HTTPNotFound else exc.__name__)
    assert e.permanent is (status == 410)
    assert e.retry_after is None


def test_retry_after_seconds(feed_server, session, fast_http):
    feed_server.route("/x", status=429, headers={"Retry-After": "120"})
    e = raises(errors.RateLimited, session, fast_http, feed_server.url("/x"))
    assert e.retry_after == 120
    assert str(e) == "rate limited by the server (429 Too Many Requests), retry after 120 s"


def test_503_with_retry_after_http_date_is_rate_limited(feed_server, session, fast_http):
    when = formatdate(time.time() + 90, usegmt=True)
    feed_server.route("/x", status=503, headers={"Retry-After": when})
    e = raises(errors.RateLimited, session, fast_http, feed_server.url("/x"))
    assert e.status == 503
    assert 87 <= e.retry_after <= 91
    assert str(e).startswith("server unavailable (503 Service Unavailable), retry after")


# --- redirects ----------------------------------------------------------------------------------


def test_relative_temporary_redirect(feed_server, session, fast_http):
    feed_server.route("/feed.xml", body=RSS)
    feed_server.route("/old", status=302, redirect_to="feed.xml")
    r = get(session, fast_http, feed_server.url("/old"))
    assert r.url == feed_server.url("/feed.xml") and r.body == RSS
    assert r.permanent_url is None


def test_all_permanent_hops_report_new_url(feed_server, session, fast_http):
    feed_server.route("/a", status=301, redirect_to="/b")
    feed_server.route("/b", status=308, redirect_to=feed_server.url("/c"))
    feed_server.route("/c", body=RSS)
    r = get(session, fast_http, feed_server.url("/a"))
    assert r.permanent_url == feed_server.url("/c") == r.url


def test_permanent_redirect_then_304_still_reports_move(feed_server, session, fast_http):
    feed_server.route("/a", status=301, redirect_to="/c")
    feed_server.route("/c", body=RSS, etag='"v1"')
    r = get(session, fast_http, feed_server.url("/a"), etag='"v1"')
    assert r.status == 304 and r.permanent_url == feed_server.url("/c")
    assert feed_server.requests[-1].headers["If-None-Match"] == '"v1"'


@pytest.mark.parametrize("middle", [302, 303, 307])
def test_mixed_chain_is_not_permanent(feed_server, session, fast_http, middle):
    feed_server.route("/a", status=301, redirect_to="/b")
    feed_server.route("/b", status=middle, redirect_to="/c")
    feed_server.route("/c", body=RSS)
    r = get(session, fast_http, feed_server.url("/a"))
    assert r.url == feed_server.url("/c") and r.permanent_url is None


def test_redirect_limit(feed_server, session, fast_http):
    for i in range(4):
        feed_server.route(f"/r{i}", status=302, redirect_to=f"/r{i + 1}")
    feed_server.route("/r4", body=RSS)
    assert get(session, fast_http, feed_server.url("/r1")).body == RSS  # exactly 3 hops
    e = raises(errors.TooManyRedirects, session, fast_http, feed_server.url("/r0"))
    assert str(e).startswith("more than 3 redirects")
    assert e.status == 302


def test_redirect_loop(feed_server, session, fast_http):
    feed_server.route("/a", status=301, redirect_to="/b")
    feed_server.route("/b", status=302, redirect_to="/a")
    e = raises(errors.TooManyRedirects, session, fast_http, feed_server.url("/a"))
    assert str(e).startswith("redirect loop: ")
    assert feed_server.hits("/a") == 1 and feed_server.hits("/b") == 1


def test_redirect_to_other_scheme_refused(feed_server, session, fast_http):
    feed_server.route("/a", status=302, redirect_to="ftp://example.org/feed.xml")
    e = raises(errors.FetchError, session, fast_http, feed_server.url("/a"))
    assert "only http and https" in str(e) and e.status == 302


def test_cross_host_redirect_drops_credentials(feed_server, session, fast_http):
    other = feed_server.url("/c").replace("127.0.0.1", "localhost")
    feed_server.route("/a", status=302, redirect_to=other)
    feed_server.route("/c", body=RSS)
    get(session, fast_http, feed_server.url("/a"),
        headers={"Authorization": "Bearer x", "X-Keep": "1"})
    first, second = feed_server.requests
    assert first.headers["Authorization"] == "Bearer x"
    assert "Authorization" not in second.headers and second.headers["X-Keep"] == "1"


def test_non_http_url_rejected(session, fast_http):
    e = raises(errors.FetchError, session, fast_http, "file:///etc/passwd")
    assert str(e) == "unsupported URL ('file:', only http and https): file:///etc/passwd"


# --- timeouts and connection failures -----------------------------------------------------------


def test_slow_server_hits_read_timeout(feed_server, session, fast_http):
    feed_server.route("/slow", body=RSS, delay=3)
    t0 = time.monotonic()
    e = raises(errors.FetchTimeout, session, fast_http, feed_server.url("/slow"))
    assert time.monotonic() - t0 < 0.9
    where = f"127.0.0.1:{feed_server.port}"
    assert str(e) == f"timed out after 0.5 s waiting for {where} to answer (read timeout)"


def test_trickle_is_cut_at_total_deadline(feed_server, session, fast_http):
    # 40 bytes a second never trips the 0.5 s read timeout, only the 1 s total deadline.
    feed_server.route("/trickle", body=RSS * 10, trickle=40)
    t0 = time.monotonic()
    e = raises(errors.FetchTimeout, session, fast_http, feed_server.url("/trickle"))
    took = time.monotonic() - t0
    assert 0.9 <= took < 1.4
    assert str(e) == "timed out after 1 s (total deadline)"
    assert e.status == 200


def test_deadline_covers_the_whole_redirect_chain(feed_server, session, fast_http):
    feed_server.route("/a", status=302, redirect_to="/b", delay=0.4)
    feed_server.route("/b", status=302, redirect_to="/c", delay=0.4)
    feed_server.route("/c", body=RSS, delay=0.4)
    e = raises(errors.FetchTimeout, session, fast_http, feed_server.url("/a"))
    assert "total deadline" in str(e)


def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = HttpSettings(connect_timeout=1, read_timeout=1, total_timeout=2)
    with make_session(http) as session:
        e = raises(errors.ConnectionFailed, session, http, f"http://127.0.0.1:{port}/feed")
    assert str(e) == f"connection refused by 127.0.0.1:{port}"


def test_connection_dropped_mid_body(feed_server, session, fast_http):
    feed_server.route("/drop", body=RSS * 20, drop_after=100)
    e = raises(errors.ConnectionFailed, session, fast_http, feed_server.url("/drop"))
    assert str(e).startswith("connection dropped after")
    assert e.status == 200


# --- body cap and compression ---------------------------------------------------------------------


def test_body_at_cap_is_accepted(feed_server, session, fast_http):
    feed_server.route("/exact", body=b"x" * fast_http.max_bytes, chunked=True)
    assert len(get(session, fast_http, feed_server.url("/exact")).body) == fast_http.max_bytes


def test_content_length_over_cap_rejected_upfront(feed_server, session, fast_http):
    feed_server.route("/big", body=b"x" * (fast_http.max_bytes + 1))
    e = raises(errors.BodyTooLarge, session, fast_http, feed_server.url("/big"))
    assert str(e) == "body larger than 64 KiB cap (Content-Length 65537)"
    assert e.status == 200


def test_streamed_body_over_cap_rejected(feed_server, session, fast_http):
    feed_server.route("/big", body=b"x" * 10 * fast_http.max_bytes, chunked=True)
    e = raises(errors.BodyTooLarge, session, fast_http, feed_server.url("/big"))
    assert str(e) == "body larger than 64 KiB cap"


def test_gzip_is_decoded(feed_server, session, fast_http):
    feed_server.route("/gz", body=RSS * 100, gzip=True)
    r = get(session, fast_http, feed_server.url("/gz"))
    assert r.body == RSS * 100
    assert r.headers["Content-Encoding"] == "gzip"


def test_concatenated_gzip_members(feed_server, session, fast_http):
    body = gzip.compress(b"abc") + gzip.compress(b"def")
    feed_server.route("/gz", body=body, headers={"Content-Encoding": "gzip"})
    assert get(session, fast_http, feed_server.url("/gz")).body == b"abcdef"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_deflate_zlib_and_raw(feed_server, session, fast_http, wbits):
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    feed_server.route("/d", body=c.compress(RSS) + c.flush(),
                      headers={"Content-Encoding": "deflate"})
    assert get(session, fast_http, feed_server.url("/d")).body == RSS


def test_gzip_bomb_stops_at_cap(feed_server, session, fast_http):
    bomb = gzip_bomb(10 * 1024 * 1024)
    assert len(bomb) < 20_000
    feed_server.route("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    e = raises(errors.BodyTooLarge, session, fast_http, feed_server.url("/bomb"))
    assert str(e).startswith("body larger than 64 KiB cap after gzip decompression")


def test_corrupt_gzip_and_unknown_encoding(feed_server, session, fast_http):
    feed_server.route("/bad", body=b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})
    feed_server.route("/br", body=b"xx", headers={"Content-Encoding": "br"})
    e = raises(errors.FetchError, session, fast_http, feed_server.url("/bad"))
    assert str(e).startswith("could not decompress the gzip body")
    e = raises(errors.FetchError, session, fast_http, feed_server.url("/br"))
    assert str(e) == "unsupported Content-Encoding 'br' (we ask for gzip or deflate)"


# --- per-host concurrency -------------------------------------------------------------------------


def _fetch_all(urls, http, limiter):
    with make_session(http) as session, ThreadPoolExecutor(max_workers=len(urls)) as pool:

        def one(url):
            if limiter is None:
                return fetch(session, FetchRequest("s", url), http)
            with limiter.slot(url):
                return fetch(session, FetchRequest("s", url), http)

        return list(pool.map(one, urls))


def test_host_limiter_caps_in_flight_requests(feed_server):
    http = HttpSettings(read_timeout=5, total_timeout=5)
    feed_server.route("/slow", body=RSS, delay=0.2)
    urls = [feed_server.url("/slow")] * 6
    _fetch_all(urls, http, HostLimiter(2))
    assert feed_server.max_in_flight == 2
    feed_server.reset()
    _fetch_all(urls, http, None)  # the measurement itself works
    assert feed_server.max_in_flight > 2


def test_host_limiter_counts_hosts_separately(feed_server):
    http = HttpSettings(read_timeout=5, total_timeout=5)
    feed_server.route("/slow", body=RSS, delay=0.2)
    a = feed_server.url("/slow")
    urls = [a, a.replace("127.0.0.1", "localhost")] * 4
    _fetch_all(urls, http, HostLimiter(2))
    assert 2 < feed_server.max_in_flight <= 4


def test_host_limiter_key():
    assert HostLimiter.host("https://WWW.State.gov:443/x") == "www.state.gov"
    with pytest.raises(ValueError):
        HostLimiter(0)


# --- cache hints ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (None, None)),
        ({"cache-control": "public, max-age=900"}, (900.0, None)),
        ({"Cache-Control": 'max-age="600"', "Age": "100"}, (500.0, None)),
        ({"Cache-Control": "max-age=60", "Age": "100"}, (0.0, None)),
        ({"Cache-Control": "no-cache"}, (0.0, None)),
        ({"Cache-Control": "no-store, max-age=900"}, (0.0, None)),
        ({"Cache-Control": "max-age=abc"}, (0.0, None)),
        (
            {"Date": "Wed, 25 Nov 2026 08:00:00 GMT", "Expires": "Wed, 25 Nov 2026 09:00:00 GMT"},
            (3600.0, None),
        ),
        ({"Expires": "0"}, (0.0, None)),
        ({"Retry-After": "120"}, (None, 120.0)),
        ({"Retry-After": "soon"}, (None, None)),
        ({"Retry-After": "-5"}, (None, None)),
        (
            {"Date": "Wed, 25 Nov 2026 08:00:00 GMT", "Retry-After": "Wed, 25 Nov 2026 08:02 GMT"},
            (None, 120.0),
        ),
        (
            {"Date": "Wed, 25 Nov 2026 08:00:00 GMT", "Retry-After": "Wed, 25 Nov 2026 07:00 GMT"},
            (None, 0.0),
        ),
    ],
)
def test_cache_hints(headers, expected):
    assert cache_hints(headers) == expected


def test_retry_after_date_without_date_header_uses_now():
    later = (datetime.now(UTC) + timedelta(seconds=300)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 298 <= parse_retry_after(later) <= 300


# --- next_fetch_at ----------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def due(**kw):
    args = {"ok": False, "interval_minutes": 60, "consecutive_failures": 0, "retry_after": None,
            "max_age": None, "max_backoff_minutes": 24 * 60}
    args.update(kw)
    return next_fetch_at(NOW, **args) - NOW


def test_next_fetch_on_success():
    assert due(ok=True) == timedelta(minutes=60)
    assert due(ok=True, max_age=600) == timedelta(minutes=60)
    assert due(ok=True, max_age=3 * 3600) == timedelta(hours=3)
    # A year-long max-age from a CDN is capped at the back-off ceiling.
    assert due(ok=True, max_age=365 * 86400) == timedelta(hours=24)


@pytest.mark.parametrize(("failures", "minutes"), [(1, 60), (2, 120), (3, 240), (5, 960),
                                                   (6, 1440), (50, 1440), (10_000, 1440)])
def test_next_fetch_backs_off_exponentially(failures, minutes):
    assert due(consecutive_failures=failures) == timedelta(minutes=minutes)


def test_next_fetch_honours_retry_after():
    assert due(consecutive_failures=1, retry_after=7200) == timedelta(hours=2)
    assert due(consecutive_failures=3, retry_after=60) == timedelta(hours=4)
    assert due(consecutive_failures=50, retry_after=2 * 86400) == timedelta(days=2)
    assert due(ok=True, retry_after=7200) == timedelta(hours=2)


# --- the feed server itself --------------------------------------------------------------


def test_static_directory_mode(tmp_path: Path, fast_http):
    (tmp_path / "feed.xml").write_bytes(RSS)
    (tmp_path / "data.json").write_text("[]")
    (tmp_path / "page.html").write_text("<html></html>")
    with FeedServer(tmp_path) as server, make_session(fast_http) as session:
        r = get(session, fast_http, server.url("/feed.xml"))
        assert r.body == RSS and r.headers["Content-Type"] == "application/rss+xml"
        assert get(session, fast_http, server.url("/data.json")).headers["Content-Type"] == (
            "application/json"
        )
        assert get(session, fast_http, server.url("/page.html")).headers["Content-Type"].startswith(
            "text/html"
        )
        again = get(session, fast_http, server.url("/feed.xml"), etag=r.headers["ETag"])
        assert again.status == 304
        again = get(session, fast_http, server.url("/feed.xml"),
                    last_modified=r.headers["Last-Modified"])
        assert again.status == 304
        with pytest.raises(errors.HTTPNotFound):
            get(session, fast_http, server.url("/../../etc/passwd"))
        with pytest.raises(errors.HTTPNotFound):
            get(session, fast_http, server.url("/missing.xml"))


def test_server_stops_cleanly_mid_request(fast_http):
    before = {t for t in threading.enumerate() if t.name.startswith("feedserver")}
    server = FeedServer().start()
    server.route("/slow", body=RSS * 100, trickle=10)
    server.route("/sleep", body=RSS, delay=30)
    http = HttpSettings(read_timeout=30, total_timeout=30)
    pool = ThreadPoolExecutor(max_workers=2)
    with make_session(http) as session:
        futures = [pool.submit(get, session, http, server.url(p)) for p in ("/slow", "/sleep")]
        time.sleep(0.3)
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 2
        for f in futures:
            with pytest.raises(errors.FetchError):
                f.result(timeout=5)
    pool.shutdown()
    after = {t for t in threading.enumerate() if t.name.startswith("feedserver")}
    assert after == before


def test_trickled_redirect_body_does_not_outlast_deadline(feed_server, session, fast_http):
    feed_server.route("/a", status=302, redirect_to="/c", body=b"x" * 1000, trickle=20)
    feed_server.route("/c", body=RSS)
    t0 = time.monotonic()
    e = raises(errors.FetchTimeout, session, fast_http, feed_server.url("/a"))
    assert str(e) == "timed out after 1 s (total deadline)"
    assert time.monotonic() - t0 < 1.3
