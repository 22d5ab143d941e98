"""A small, real HTTP/1.1 server on 127.0.0.1 for tests, the offline demo and benchmarks.

It serves a directory of feeds (with ETag/Last-Modified and 304s for conditional requests) and
programmable routes that misbehave on purpose: redirects and loops, error statuses with
Retry-After, slow or trickling responses, gzip bombs, dropped connections. Every request is
recorded (method, path, headers) so tests can assert what the client sent.

    with FeedServer() as server:
        server.route("/feed.xml", body=rss, etag='"v1"')
        server.route("/old", status=301, redirect_to="/feed.xml")
        fetch(session, FetchRequest("x", server.url("/old")), http)
        assert server.requests[-1].headers["User-Agent"].startswith("AllianceDigest")

Keep-alive, no logging and one dict lookup per request keep the overhead low enough to serve a
thousand feeds to a benchmark. `stop()` wakes every sleeping or trickling handler and closes
open connections, so no thread outlives the server.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import mimetypes
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from requests.structures import CaseInsensitiveDict

__all__ = ["FeedServer", "RecordedRequest", "Route", "gzip_bomb"]

#: Content-Type by file extension in static mode (`.xml` can be overridden per server).
CONTENT_TYPES: dict[str, str] = {
    ".xml": "application/rss+xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

_ETAG = re.compile(r'(?:W/)?"[^"]*"')
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Route:
    """How one path answers. `body` is sent as given (already gzipped when `gzip=True`)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    #: Seconds to wait before sending anything (simulates a slow server / read timeout).
    delay: float = 0.0
    #: Send the body at this many bytes per second.
    trickle: float | None = None
    #: Body is gzip-compressed; sends Content-Encoding: gzip.
    gzip: bool = False
    #: Location header (status defaults to 302 when given).
    redirect_to: str | None = None
    #: Validators sent with 2xx, and compared against If-None-Match / If-Modified-Since.
    etag: str | None = None
    last_modified: str | None = None
    #: Transfer-Encoding: chunked instead of Content-Length.
    chunked: bool = False
    #: Announce the full Content-Length but close the connection after this many bytes.
    drop_after: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What the client sent."""

    method: str
    #: Path as requested, query included.
    path: str
    #: Case-insensitive: `headers["if-none-match"]` works.
    headers: Mapping[str, str]
    #: time.monotonic() when the request arrived.
    at: float


def gzip_bomb(inflated_size: int) -> bytes:
    """A small gzip stream (about 1/1000 of the size) that inflates to `inflated_size` zeros."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts: list[bytes] = []
    left = inflated_size
    while left > 0:
        n = min(left, len(block))
        parts.append(comp.compress(block[:n]))
        left -= n
    parts.append(comp.flush())
    return b"".join(parts)


def _http_date(value: str | datetime | float | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return formatdate(value, usegmt=True)


def _parse_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _weak(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(request_headers: Mapping[str, str], etag: str | None,
                 last_modified: str | None) -> bool:
    """Whether a GET with these headers gets a 304 (RFC 9110 §13.1.2, §13.1.3, §13.2.2)."""
    inm = request_headers.get("If-None-Match")
    if inm is not None:
        # If-None-Match wins over If-Modified-Since; it uses weak comparison.
        if inm.strip() == "*":
            return etag is not None
        if etag is None:
            return False
        tags = _ETAG.findall(inm) or [t.strip() for t in inm.split(",")]
        return any(_weak(t) == _weak(etag) for t in tags)
    ims = request_headers.get("If-Modified-Since")
    if ims and last_modified:
        since, modified = _parse_date(ims), _parse_date(last_modified)
        return since is not None and modified is not None and modified <= since
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "FeedServer/1"
    disable_nagle_algorithm = True
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 30
    server: _Server

    def do_GET(self) -> None:
        self.server.owner._handle(self, head=False)

    def do_HEAD(self) -> None:
        self.server.owner._handle(self, head=True)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FeedServer) -> None:
        self.owner = owner
        self.conn_lock = threading.Lock()
        self.open_conns: dict[socket.socket, threading.Thread] = {}
        self.accepted = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # an IPv6 literal such as "::1"
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="feedserver-conn",
            daemon=True,
        )
        with self.conn_lock:
            self.open_conns[request] = t
            self.accepted += 1
        t.start()

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.open_conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client hung up (e.g. our own timeout tests): not an error
        super().handle_error(request, client_address)


class FeedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (port 0: the OS picks a free one; `host` may be
    another loopback address, "::1" included).

    `directory` turns on static mode (routes take precedence over files); `xml_type` is the
    Content-Type for `.xml` files. `record=False` skips request recording for benchmarks.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        xml_type: str = "application/rss+xml",
        record: bool = True,
    ) -> None:
        self.directory = Path(directory).resolve() if directory is not None else None
        self.host = host
        self._port = port
        self.xml_type = xml_type
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, Route] = {}
        self._handlers: dict[str, Callable[[RecordedRequest], Route]] = {}
        self._files: dict[Path, tuple[int, int, bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        #: Most requests being handled at the same moment since start (or `reset()`).
        self.max_in_flight = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FeedServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server((self.host, self._port), self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="feedserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers, close open connections, join every thread."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
        with httpd.conn_lock:
            conns = list(httpd.open_conns.items())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in conns:
            thread.join(timeout=5)
        httpd.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    def url(self, path: str = "/") -> str:
        """Absolute URL of `path` on this server."""
        return f"{self.base_url}/{path.lstrip('/')}"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (keep-alive reuses one for many requests)."""
        return self._httpd.accepted if self._httpd else 0

    # -- routes -----------------------------------------------------------------------------

    def route(
        self,
        path: str,
        status: int = 200,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        delay: float = 0.0,
        trickle: float | None = None,
        gzip: bool = False,
        redirect_to: str | None = None,
        etag: str | None = None,
        last_modified: str | datetime | float | None = None,
        chunked: bool = False,
        drop_after: int | None = None,
    ) -> Route:
        """Make `path` (query included if given) answer this way; replaces any earlier route.

        `gzip=True` compresses `body` here; to serve a bomb pass `body=gzip_bomb(n)` with
        `headers={"Content-Encoding": "gzip"}`. `redirect_to` may be relative.
        """
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        hdrs = dict(headers or {})
        if gzip:
            data = gzip_module.compress(data, compresslevel=6, mtime=0)
            hdrs.setdefault("Content-Encoding", "gzip")
        if redirect_to is not None and status == 200:
            status = 302
        if content_type is None and data and 200 <= status < 300:
            content_type = "application/rss+xml"
        r = Route(
            status=status,
            body=data,
            headers=hdrs,
            content_type=content_type,
            delay=delay,
            trickle=trickle,
            gzip=gzip,
            redirect_to=redirect_to,
            etag=etag,
            last_modified=_http_date(last_modified),
            chunked=chunked,
            drop_after=drop_after,
        )
        self._routes[self._key(path)] = r
        return r

    def handle(self, path: str, fn: Callable[[RecordedRequest], Route]) -> None:
        """Answer `path` with whatever `fn(request)` returns (e.g. fail first, then succeed)."""
        self._handlers[self._key(path)] = fn

    def remove(self, path: str) -> None:
        self._routes.pop(self._key(path), None)
        self._handlers.pop(self._key(path), None)

    @staticmethod
    def _key(path: str) -> str:
        return "/" + path.lstrip("/")

    # -- inspection -------------------------------------------------------------------------

    def requests_for(self, path: str) -> list[RecordedRequest]:
        key = self._key(path)
        with self._lock:
            return [r for r in self.requests if r.path == key or r.path.split("?")[0] == key]

    def hits(self, path: str) -> int:
        return len(self.requests_for(path))

    def reset(self) -> None:
        """Forget recorded requests and the in-flight maximum (routes stay)."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self._in_flight

    # -- serving ----------------------------------------------------------------------------

    def _handle(self, h: _Handler, *, head: bool) -> None:
        rec = RecordedRequest(h.command, h.path, CaseInsensitiveDict(h.headers.items()),
                              time.monotonic())
        with self._lock:
            if self.record:
                self.requests.append(rec)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._respond(h, rec, head=head)
        except _CLIENT_GONE:
            h.close_connection = True
        finally:
            with self._lock:
                self._in_flight -= 1

    def _respond(self, h: _Handler, rec: RecordedRequest, *, head: bool) -> None:
        path = h.path
        bare = path.split("?", 1)[0]
        fn = self._handlers.get(path) or self._handlers.get(bare)
        route = fn(rec) if fn else (self._routes.get(path) or self._routes.get(bare))
        if route is None and self.directory is not None:
            route = self._static(bare)
        if route is None:
            route = Route(status=404, body=b"not found\n", content_type="text/plain")
        self._send(h, route, rec.headers, head=head)

    def _static(self, path: str) -> Route | None:
        assert self.directory is not None
        target = (self.directory / unquote(path).lstrip("/")).resolve()
        if not target.is_relative_to(self.directory):
            return None
        if target.is_dir():
            target = target / "index.html"
        try:
            st = target.stat()
        except OSError:
            return None
        cached = self._files.get(target)
        if cached and cached[0] == st.st_mtime_ns and cached[1] == st.st_size:
            data = cached[2]
        else:
            data = target.read_bytes()
            self._files[target] = (st.st_mtime_ns, st.st_size, data)
        suffix = target.suffix.lower()
        ctype = self.xml_type if suffix == ".xml" else CONTENT_TYPES.get(suffix)
        if ctype is None:
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return Route(
            body=data,
            content_type=ctype,
            etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            last_modified=formatdate(st.st_mtime, usegmt=True),
        )

    def _send(
        self, h: _Handler, route: Route, request_headers: Mapping[str, str], *, head: bool
    ) -> None:
        if route.delay and self._stopping.wait(route.delay):
            h.close_connection = True
            return
        status = route.status
        if 200 <= status < 300 and not_modified(request_headers, route.etag, route.last_modified):
            status = 304
        h.send_response(status)
        if route.redirect_to is not None:
            h.send_header("Location", route.redirect_to)
        if route.etag is not None:
            h.send_header("ETag", route.etag)
        if route.last_modified is not None:
            h.send_header("Last-Modified", route.last_modified)
        if status == 304:
            h.end_headers()
            return
        if route.content_type:
            h.send_header("Content-Type", route.content_type)
        if route.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(len(route.body)))
        for name, value in route.headers.items():
            h.send_header(name, value)
        if route.drop_after is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        if head or status in (204,) or 100 <= status < 200:
            return
        body = route.body
        if route.drop_after is not None:
            body = body[: route.drop_after]
            h.close_connection = True
        for piece in self._pieces(body, route.trickle):
            if route.chunked:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece) if piece else b""
            if piece:
                h.wfile.write(piece)
        if route.chunked and route.drop_after is None and not self._stopping.is_set():
            h.wfile.write(b"0\r\n\r\n")

    def _pieces(self, body: bytes, trickle: float | None) -> Iterator[bytes]:
        if not trickle:
            yield body
            return
        # ~20 writes a second at the requested rate.
        size = max(1, int(trickle / 20))
        pause = size / trickle
        for i in range(0, len(body), size):
            yield body[i : i + size]
            if self._stopping.wait(pause):
                return
