"""Polite HTTP fetching of one source.

The pipeline for one `FetchRequest`:

1. `make_session()` once per run: an honest User-Agent, gzip/deflate only, pooled keep-alive
   connections, and no automatic retries or redirects (we do both ourselves).
2. `fetch()` sends the stored validators (If-None-Match / If-Modified-Since) so an unchanged
   feed costs a bodiless 304; follows redirects by hand (capped, loop-checked, noting whether
   every hop was permanent so the source's URL can be updated); maps error statuses onto
   `sources.errors`; and streams the body under three limits: the read timeout per socket read,
   a total deadline for the whole source, and a byte cap counted *after* decompression.
3. `cache_hints()` reads Cache-Control max-age and Retry-After for the scheduler, and
   `next_fetch_at()` (from `schedule`) turns them into the next due time.
4. `HostLimiter` keeps at most N requests in flight per host, whatever the thread pool size.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.client import HTTPException, IncompleteRead, RemoteDisconnected
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from ..errors import (
    BodyTooLarge,
    ConnectionFailed,
    FetchError,
    FetchTimeout,
    Gone,
    HTTPNotFound,
    HTTPStatusError,
    RateLimited,
    Refused,
    ServerError,
    TooManyRedirects,
)
from ..settings import HttpSettings
from .next_fetch import next_fetch_at
from .types import FetchRequest, Response

__all__ = [
    "ACCEPT",
    "HostLimiter",
    "cache_hints",
    "fetch",
    "make_session",
    "next_fetch_at",
    "parse_retry_after",
]

#: What we ask for, by source kind. Feeds are served under many types (and as text/html by
#: misconfigured servers), so everything stays acceptable at a low weight: a 406 helps no one.
ACCEPT: dict[str, str] = {
    "feed": (
        "application/rss+xml, application/atom+xml, application/rdf+xml, "
        "application/xml;q=0.9, text/xml;q=0.9, application/feed+json;q=0.8, */*;q=0.1"
    ),
    "json": "application/json, application/feed+json;q=0.9, */*;q=0.1",
    "page": "text/html, application/xhtml+xml;q=0.9, */*;q=0.1",
}

#: Only codings we can decode under the byte cap ourselves (RFC 9110 §8.4.1).
ACCEPT_ENCODING = "gzip, deflate"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: RFC 9110 §15.4.2 and §15.4.9: only these tell us the resource moved for good.
_PERMANENT_STATUSES = frozenset({301, 308})
#: Credentials set per source are for that source's host, never for wherever it redirects to.
_HOST_BOUND_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
_CHUNK = 64 * 1024
#: Error and redirect bodies up to this size are read so the connection can be reused.
_DRAIN_LIMIT = 64 * 1024


# ---------------------------------------------------------------------------------------------
# Session


def make_session(http: HttpSettings) -> requests.Session:
    """A session for one collect run: shared connection pools, our headers, no magic."""
    session = requests.Session()
    # Replace requests' defaults entirely: its Accept-Encoding may advertise br/zstd, which we
    # could not count against the byte cap while decoding.
    session.headers = CaseInsensitiveDict(
        {
            "User-Agent": http.user_agent,
            "Accept": ACCEPT["feed"],
            "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "keep-alive",
        }
    )
    # One pool per host (LRU, up to max_connections hosts), each able to hold every connection
    # we may open at once, so none is discarded; no retries: a failure is recorded and the
    # scheduler backs off instead of hammering the server.
    adapter = HTTPAdapter(
        pool_connections=http.max_connections,
        pool_maxsize=http.max_connections,
        max_retries=0,
        pool_block=False,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = http.max_redirects
    return session


# ---------------------------------------------------------------------------------------------
# Fetch


def fetch(session: requests.Session, request: FetchRequest, http: HttpSettings) -> Response:
    """GET one source: a 2xx or 304 `Response`, or a `FetchError` subclass naming the cause."""
    started = time.monotonic()
    deadline = started + http.total_timeout
    url = _check_url(request.url)
    headers = _request_headers(request)
    chain = [url]
    all_permanent = True

    while True:
        resp = _send(session, url, headers, http, deadline)
        try:
            status = resp.status_code
            target = session.get_redirect_target(resp) if status in _REDIRECT_STATUSES else None
            if target is not None:
                _drain(resp, deadline)
                next_url = _check_url(requote_uri(urljoin(url, target)), status)
                if next_url in chain:
                    loop = [*chain[chain.index(next_url) :], next_url]
                    raise TooManyRedirects(f"redirect loop: {' -> '.join(loop)}", status=status)
                if len(chain) - 1 >= http.max_redirects:
                    raise TooManyRedirects(
                        f"more than {http.max_redirects} redirects (next was {next_url})",
                        status=status,
                    )
                all_permanent = all_permanent and status in _PERMANENT_STATUSES
                headers = _redirect_headers(headers, url, next_url)
                chain.append(next_url)
                url = next_url
                continue

            moved = url if all_permanent and len(chain) > 1 else None
            if status == 304:
                # RFC 9111 §4.3.4: a 304 carries the validators to store; it has no body.
                _drain(resp, deadline)
                body = b""
            elif 200 <= status < 300:
                body = _read_body(resp, http, deadline)
            else:
                _drain(resp, deadline)
                raise _status_error(resp)
            return Response(
                url=url,
                status=status,
                headers=CaseInsensitiveDict(resp.headers),
                body=body,
                permanent_url=moved,
                elapsed=time.monotonic() - started,
            )
        finally:
            # After a complete read urllib3 has already returned the connection to the pool and
            # this is a no-op; after an error it closes the connection, which cannot be reused.
            resp.close()


def _check_url(url: str, status: int | None = None) -> str:
    """`status` is the redirect's, when the URL came from a Location header."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"'{parts.scheme}:'" if parts.scheme else "no scheme"
        raise FetchError(f"unsupported URL ({scheme}, only http and https): {url}", status=status)
    if not parts.hostname:
        raise FetchError(f"invalid URL (no host): {url}", status=status)
    return url


def _request_headers(request: FetchRequest) -> CaseInsensitiveDict[str]:
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    headers["Accept"] = ACCEPT.get(request.kind, ACCEPT["feed"])
    headers.update(request.headers)
    # RFC 9110 §8.8.3 / §13.1: validators are opaque, sent back byte for byte as received
    # (a weak W/"…" ETag included, a non-standard date format included).
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    return headers


def _redirect_headers(
    headers: CaseInsensitiveDict[str], old_url: str, new_url: str
) -> CaseInsensitiveDict[str]:
    if urlsplit(old_url).hostname == urlsplit(new_url).hostname:
        return headers
    trimmed = headers.copy()
    for name in _HOST_BOUND_HEADERS:
        trimmed.pop(name, None)
    return trimmed


def _send(
    session: requests.Session,
    url: str,
    headers: Mapping[str, str],
    http: HttpSettings,
    deadline: float,
) -> requests.Response:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchTimeout(_deadline_message(http))
    # Up to the response headers only per-socket-operation timeouts exist, so both are clipped
    # to the time left; the body is then read under the deadline proper (`_read_body`).
    connect = min(http.connect_timeout, remaining)
    read = min(http.read_timeout, remaining)
    try:
        # Straight to the adapter: Session.send, even with allow_redirects=False, reads a 3xx's
        # whole body (to precompute Response.next), unbounded in size and time.
        prepared = session.prepare_request(requests.Request("GET", url, headers=headers))
        env = session.merge_environment_settings(prepared.url or url, {}, True, None, None)
        env["stream"] = True
        resp = session.get_adapter(prepared.url or url).send(
            prepared, timeout=(connect, read), **env
        )
        extract_cookies_to_jar(session.cookies, prepared, resp.raw)
        return resp
    except requests.exceptions.ConnectTimeout:
        if connect < http.connect_timeout:
            raise FetchTimeout(_deadline_message(http)) from None
        raise FetchTimeout(
            f"timed out after {_secs(connect)} connecting to {_netloc(url)}"
        ) from None
    except requests.exceptions.ReadTimeout:
        if read < http.read_timeout:
            raise FetchTimeout(_deadline_message(http)) from None
        raise FetchTimeout(
            f"timed out after {_secs(read)} waiting for {_netloc(url)} to answer (read timeout)"
        ) from None
    except requests.exceptions.SSLError as e:
        raise ConnectionFailed(f"TLS error with {_netloc(url)}: {_tls_reason(e)}") from None
    except requests.exceptions.ConnectionError as e:
        raise ConnectionFailed(_connection_message(e, url)) from None
    except requests.exceptions.RequestException as e:
        raise FetchError(f"request to {url} failed: {_one_line(str(e))}") from None


def _read_body(resp: requests.Response, http: HttpSettings, deadline: float) -> bytes:
    """Stream the body, decompressing as we go, under the deadline and the byte cap."""
    status = resp.status_code
    cap = http.max_bytes
    decoder = _Decoder(resp.headers.get("Content-Encoding", ""), status)
    length = _content_length(resp)
    if not decoder.active and length is not None and length > cap:
        raise BodyTooLarge(
            f"body larger than {_size(cap)} cap (Content-Length {length})", status=status
        )
    raw = resp.raw
    parts: list[bytes] = []
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchTimeout(_deadline_message(http), status=status)
        read_timeout = min(http.read_timeout, remaining)
        # The read timeout bounds each socket read; shrinking it to the time left also makes a
        # server that trickles a byte a second hit the total deadline on time.
        _set_socket_timeout(raw, read_timeout)
        try:
            # read1: return what has arrived instead of blocking until a whole chunk has.
            data = raw.read1(_CHUNK, decode_content=False)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            if read_timeout < http.read_timeout or time.monotonic() >= deadline:
                raise FetchTimeout(_deadline_message(http), status=status) from None
            raise FetchTimeout(
                f"timed out after {_secs(read_timeout)} waiting for more of the body "
                "(read timeout)",
                status=status,
            ) from None
        except (urllib3.exceptions.HTTPError, HTTPException, OSError) as e:
            raise ConnectionFailed(
                f"connection dropped after {total} bytes of the body ({_drop_reason(e)})",
                status=status,
            ) from None
        if not data:
            break
        out = decoder.decompress(data, cap - total + 1)
        total += len(out)
        if total > cap:
            raise BodyTooLarge(_too_large_message(cap, decoder), status=status)
        parts.append(out)
    out = decoder.flush(cap - total + 1)
    if total + len(out) > cap:
        raise BodyTooLarge(_too_large_message(cap, decoder), status=status)
    parts.append(out)
    return b"".join(parts)


def _drain(resp: requests.Response, deadline: float) -> None:
    """Read a small leftover body so keep-alive can reuse the connection; else just drop it.

    Bounded in size and time (a trickled redirect body must not outlast the deadline); anything
    unread makes resp.close() close the connection instead.
    """
    length = 0 if resp.status_code in (204, 304) else _content_length(resp)
    if length is None or length > _DRAIN_LIMIT:
        return
    stop = min(deadline, time.monotonic() + 1.0)
    try:
        while (left := stop - time.monotonic()) > 0:
            _set_socket_timeout(resp.raw, left)
            if not resp.raw.read1(_DRAIN_LIMIT, decode_content=False):
                return
    except Exception:  # only an optimisation; close() cleans up
        return


def _set_socket_timeout(raw: urllib3.HTTPResponse, seconds: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _content_length(resp: requests.Response) -> int | None:
    try:
        value = int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


class _Decoder:
    """gzip/deflate decoding with bounded output, so a bomb is stopped at the cap."""

    def __init__(self, content_encoding: str, status: int) -> None:
        codings = [
            c.strip().lower() for c in content_encoding.split(",") if c.strip().lower()
        ]
        codings = [c for c in codings if c != "identity"]
        self.status = status
        self.coding = codings[0] if codings else ""
        self.compressed = 0
        self._obj: zlib._Decompress | None = None
        self._pending = b""  # deflate: first bytes kept until the header can be sniffed
        if len(codings) > 1 or self.coding not in ("", "gzip", "x-gzip", "deflate"):
            raise FetchError(
                f"unsupported Content-Encoding '{content_encoding}' (we ask for gzip or deflate)",
                status=status,
            )
        if self.coding in ("gzip", "x-gzip"):
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def active(self) -> bool:
        return bool(self.coding)

    def decompress(self, data: bytes, limit: int) -> bytes:
        """Decode `data`, producing at most `limit` bytes (more means over the cap anyway)."""
        if not self.coding:
            return data
        self.compressed += len(data)
        if self._obj is None:  # deflate
            self._pending += data
            if len(self._pending) < 2:
                return b""
            # RFC 9110 §8.4.1.2 says zlib (RFC 1950) but some servers send raw deflate (RFC
            # 1951); a zlib stream starts with a CMF/FLG pair that is a multiple of 31.
            cmf, flg = self._pending[0], self._pending[1]
            is_zlib = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS)
            data, self._pending = self._pending, b""
        try:
            out = self._obj.decompress(data, limit)
            # Concatenated gzip members (RFC 1952 §2.2) decode as one body.
            while self._obj.eof and self._obj.unused_data and len(out) < limit:
                rest = self._obj.unused_data
                if self.coding == "deflate" or rest[:2] != b"\x1f\x8b":
                    break  # trailing garbage after the stream: ignored, as browsers do
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out += self._obj.decompress(rest, limit - len(out))
        except zlib.error as e:
            raise FetchError(
                f"could not decompress the {self.coding} body: {e}", status=self.status
            ) from None
        return out

    def flush(self, limit: int) -> bytes:
        if not self.coding:
            return b""
        if self._obj is None:  # deflate body shorter than two bytes
            return self.decompress(b"", limit) if self._pending else b""
        try:
            # A truncated stream is passed on as is: the parser reports what it cannot read.
            return self._obj.flush() if not self._obj.eof else b""
        except zlib.error as e:
            raise FetchError(
                f"could not decompress the {self.coding} body: {e}", status=self.status
            ) from None


def _too_large_message(cap: int, decoder: _Decoder) -> str:
    if decoder.active:
        return (
            f"body larger than {_size(cap)} cap after {decoder.coding} decompression "
            f"({_size(decoder.compressed)} compressed)"
        )
    return f"body larger than {_size(cap)} cap"


def _status_error(resp: requests.Response) -> HTTPStatusError:
    status = resp.status_code
    label = f"{status} {_phrase(status, resp.reason)}".strip()
    retry_after = parse_retry_after(resp.headers.get("Retry-After"), resp.headers.get("Date"))
    later = f", retry after {_secs(retry_after)}" if retry_after is not None else ""
    if status in (401, 403):
        return Refused(f"refused by the server ({label})", status=status)
    if status == 404:
        return HTTPNotFound(f"not found ({label})", status=status)
    if status == 410:
        return Gone(f"gone for good ({label})", status=status)
    if status == 429:
        return RateLimited(
            f"rate limited by the server ({label}){later}", status=status, retry_after=retry_after
        )
    if status == 503 and retry_after is not None:
        # RFC 9110 §15.6.4: a 503 with Retry-After is a temporary overload, not a fault.
        return RateLimited(
            f"server unavailable ({label}){later}", status=status, retry_after=retry_after
        )
    if status >= 500:
        return ServerError(f"server error ({label})", status=status, retry_after=retry_after)
    if status >= 400:
        return HTTPStatusError(f"client error ({label})", status=status, retry_after=retry_after)
    if status in _REDIRECT_STATUSES:
        return HTTPStatusError(f"redirect without a Location header ({label})", status=status)
    return HTTPStatusError(f"unexpected status ({label})", status=status)


# ---------------------------------------------------------------------------------------------
# Cache hints


def cache_hints(headers: Mapping[str, str]) -> tuple[float | None, float | None]:
    """(max_age, retry_after) in seconds from a response's headers, each None when absent.

    max_age is how much longer the response stays fresh (RFC 9111 §4.2.1): Cache-Control
    max-age minus Age, else Expires minus Date; `no-store`/`no-cache` give 0.
    retry_after is Retry-After as delay-seconds or HTTP-date (RFC 9110 §10.2.3).
    """
    h = headers if isinstance(headers, CaseInsensitiveDict) else CaseInsensitiveDict(headers)
    return _max_age(h), parse_retry_after(h.get("Retry-After"), h.get("Date"))


_DIRECTIVE = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("[^"]*"|[^,\s]*))?\s*(?:,|$)')


def _max_age(h: Mapping[str, str]) -> float | None:
    directives: dict[str, str | None] = {}
    for m in _DIRECTIVE.finditer(h.get("Cache-Control", "") or ""):
        name = m.group(1).lower()
        value = m.group(2)
        # RFC 9111 §5.2: recipients accept the quoted-string form too; first occurrence wins.
        directives.setdefault(name, value.strip('"') if value is not None else None)
    age = _nonneg_int(h.get("Age")) or 0
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    if "max-age" in directives:
        max_age = _nonneg_int(directives["max-age"])
        if max_age is not None:
            return float(max(0, max_age - age))
        return 0.0  # RFC 9111 §4.2.1: an invalid max-age makes the response stale
    expires = h.get("Expires")
    if expires is None:
        return None
    expires_at = _http_date(expires)
    if expires_at is None:
        return 0.0  # RFC 9111 §5.3: an invalid Expires ("0", "-1") means already expired
    date = _http_date(h.get("Date") or "") or datetime.now(UTC)
    return max(0.0, (expires_at - date).total_seconds() - age)


def parse_retry_after(value: str | None, date: str | None = None) -> float | None:
    """Retry-After as seconds: delay-seconds, or an HTTP-date measured from the response's
    Date (so the server's clock and ours need not agree), else from now. None if invalid."""
    if value is None:
        return None
    value = value.strip()
    seconds = _nonneg_int(value)
    if seconds is not None:
        return float(seconds)
    when = _http_date(value)
    if when is None:
        return None
    base = _http_date(date or "") or datetime.now(UTC)
    return max(0.0, (when - base).total_seconds())


def _nonneg_int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 9110 §5.6.7: HTTP-dates are UTC; a zone-less one is read as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Per-host concurrency


class HostLimiter:
    """At most `per_host` requests in flight to any one host, across threads.

    >>> limiter = HostLimiter(2)
    >>> with limiter.slot("https://www.state.gov/feed"):
    ...     pass
    """

    def __init__(self, per_host: int) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be at least 1, got {per_host}")
        self.per_host = per_host
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    @staticmethod
    def host(url: str) -> str:
        """The key requests are counted under: the host name, lower-cased (ports ignored)."""
        return (urlsplit(url).hostname or url).lower()

    def _semaphore(self, url: str) -> threading.BoundedSemaphore:
        key = self.host(url)
        with self._lock:
            sem = self._slots.get(key)
            if sem is None:
                sem = self._slots[key] = threading.BoundedSemaphore(self.per_host)
            return sem

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        """Block until a slot for the URL's host is free; hold it for the `with` body."""
        sem = self._semaphore(url)
        sem.acquire()
        try:
            yield
        finally:
            sem.release()


# ---------------------------------------------------------------------------------------------
# Messages


def _deadline_message(http: HttpSettings) -> str:
    return f"timed out after {_secs(http.total_timeout)} (total deadline)"


def _secs(value: float) -> str:
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


def _size(n: int) -> str:
    for unit, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if n >= unit:
            return f"{n / unit:.3g} {name}"
    return f"{n} bytes"


def _phrase(status: int, reason: str | None) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _one_line(reason or "")


def _netloc(url: str) -> str:
    return urlsplit(url).netloc


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _causes(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [e]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        for nxt in (getattr(cur, "reason", None), cur.__cause__, cur.__context__, *cur.args):
            if isinstance(nxt, BaseException):
                stack.append(nxt)


def _connection_message(e: BaseException, url: str) -> str:
    where = _netloc(url)
    causes = list(_causes(e))
    text = " ".join(str(c) for c in causes)
    if any(isinstance(c, urllib3.exceptions.NameResolutionError) for c in causes) or any(
        s in text for s in ("Name or service not known", "nodename nor servname", "getaddrinfo")
    ):
        return f"could not resolve host {urlsplit(url).hostname}"
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text:
        return f"connection refused by {where}"
    if any(isinstance(c, ConnectionResetError) for c in causes) or "reset by peer" in text:
        return f"connection reset by {where}"
    if any(isinstance(c, RemoteDisconnected) for c in causes):
        return f"{where} closed the connection without answering"
    if any(isinstance(c, (TimeoutError, socket.timeout)) for c in causes):
        return f"timed out connecting to {where}"
    oserrors = [c for c in causes if isinstance(c, OSError) and c.strerror]
    if oserrors:
        return f"connection to {where} failed: {oserrors[-1].strerror}"
    return f"connection to {where} failed: {_one_line(str(causes[-1]))}"


def _tls_reason(e: BaseException) -> str:
    text = " ".join(str(c) for c in _causes(e))
    m = re.search(r"certificate verify failed: ([^'\"()]+)", text)
    if m:
        return f"certificate verify failed: {m.group(1).strip()}"
    m = re.search(r"\[SSL: [A-Z0-9_]+\] ([^'\"()]+)", text)
    return _one_line(m.group(1).strip() if m else text)


def _drop_reason(e: BaseException) -> str:
    causes = list(_causes(e))
    if any(isinstance(c, IncompleteRead) for c in causes):
        return "incomplete body"
    if any(isinstance(c, ConnectionResetError) for c in causes):
        return "connection reset"
    return _one_line(str(causes[-1]) or type(causes[-1]).__name__, 120)
