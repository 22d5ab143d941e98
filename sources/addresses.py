"""Fetching public addresses only: the guard add-by-URL uses against server-side request forgery.

An editor's URL is fetched by the server, so `http://127.0.0.1:8080/admin`, a hostname that
resolves to 10.0.0.5, or a public page that redirects to either would let the desk read
services only the server can reach. The check therefore happens where the socket is made:

    getaddrinfo(host)                   every spelling (localhost, 2130706433, 0x7f000001,
                                        127.1, [::1], ::ffff:127.0.0.1) ends up an address
    for each address:  refused?         loopback, private, link-local, multicast, reserved,
                                        unspecified, shared (CGNAT), not globally routable;
                                        an IPv4-mapped/compatible IPv6 address is judged by
                                        its IPv4 address
        connect, then check the peer    the address actually connected (getpeername), so
                                        nothing between resolving and connecting can swap it
    none allowed → PrivateAddress       one line naming the address and why

It is a urllib3 connection class, so every request the session makes — each redirect hop
that `sources.http.fetch` follows by hand included — goes through it. Environment proxies
are switched off for a guarded session: through a proxy, the peer checked would be the proxy.

`AddressPolicy(allow_private=True)` turns the guard off (an intranet desk); `allowed_networks`
admits chosen networks only (one intranet server, or the tests' loopback server).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from ..errors import ConfigError, PrivateAddress

__all__ = ["AddressPolicy", "guard_session", "refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: How to turn the guard off, said in every refusal.
HINT = "set [editor] allow_private_urls = true to fetch intranet pages"


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses a guarded session may connect to."""

    #: True: any address (the guard is off).
    allow_private: bool = False
    #: Non-public networks allowed all the same (`[editor] allowed_url_networks`).
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(
        cls,
        allow_private: bool,
        networks: Iterable[str],
        where: str = "[editor] allowed_url_networks",
    ) -> AddressPolicy:
        """The policy for these config values; a network that does not parse is a ConfigError."""
        parsed: list[IPNetwork] = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(str(text).strip(), strict=False))
            except ValueError:
                raise ConfigError(f"{where}: not an IP network: {text!r}") from None
        return cls(allow_private=allow_private, allowed_networks=tuple(parsed))

    def check(self, address: str) -> str | None:
        """Why connecting to `address` (an IP literal) is refused, or None when it is allowed."""
        if self.allow_private:
            return None
        ip = _ip(address)
        if ip is None:
            return f"{address} is not an IP address"
        judged = _embedded_ipv4(ip) or ip
        if any(judged in net or ip in net for net in self.allowed_networks):
            return None
        return refusal(judged)


def refusal(ip: IPAddress) -> str | None:
    """Which kind of non-public address `ip` is ("a loopback address"), or None if public."""
    for test, label in (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    ):
        if getattr(ip, test):
            return label
    # Shared address space (100.64/10), documentation and benchmarking ranges, 6to4 relays…
    return None if ip.is_global else "not a public address"


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside ::ffff:a.b.c.d (mapped) or ::a.b.c.d (compatible), else None.

    Python 3.11 judges `::ffff:127.0.0.1` as neither loopback nor private, yet the kernel
    connects it to 127.0.0.1.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    packed = ip.packed
    if packed[:12] == bytes(12) and packed[12:] not in (bytes(4), b"\x00\x00\x00\x01"):
        return ipaddress.IPv4Address(packed[12:])
    return None


# --- the connection ----------------------------------------------------------------------------


class _GuardedMixin:
    """Replaces urllib3's `_new_conn`: resolve, refuse, connect, check the peer."""

    policy: AddressPolicy
    # Provided by urllib3's HTTPConnection.
    _dns_host: str
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, 0, socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e  # type: ignore[arg-type]
        refused: list[str] = []
        error: OSError | None = None
        for family, kind, proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            reason = self.policy.check(address)
            if reason is not None:
                refused.append(f"{address} is {reason}")
                continue
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
                peer = str(sock.getpeername()[0])
            except TimeoutError as e:
                sock.close()
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from e
            except OSError as e:
                sock.close()
                error = e
                continue
            late = self.policy.check(peer)
            if late is not None:
                sock.close()
                raise PrivateAddress(f"refused {self.host}: connected to {peer}, {late} ({HINT})")
            return sock
        if refused and error is None:
            raise PrivateAddress(f"refused {self.host}: {refused[0]} ({HINT})")
        raise NewConnectionError(
            self,
            f"Failed to establish a new connection: {error or 'no address'}",  # type: ignore[arg-type]
        )


def _pool_classes(policy: AddressPolicy) -> dict[str, type[HTTPConnectionPool]]:
    http_conn = type("GuardedHTTPConnection", (_GuardedMixin, HTTPConnection), {"policy": policy})
    https_conn = type(
        "GuardedHTTPSConnection", (_GuardedMixin, HTTPSConnection), {"policy": policy}
    )
    http_pool = type(
        "GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
    )
    https_pool = type(
        "GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
    )
    return {"http": http_pool, "https": https_pool}


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections only reach addresses `policy` allows."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        # Through a proxy the checked peer would be the proxy, not the page's server.
        raise PrivateAddress(f"refused to fetch through the proxy {proxy}: {HINT}")

    def __setstate__(self, state: dict[str, Any]) -> None:  # pragma: no cover - pickling
        super().__setstate__(state)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)


def guard_session(session: requests.Session, policy: AddressPolicy) -> requests.Session:
    """Mount the guard on `session` (keeping its pool sizes); environment proxies are ignored."""
    if policy.allow_private:
        return session
    current = session.get_adapter("http://")
    size = getattr(current, "_pool_maxsize", 10)
    adapter = GuardedAdapter(
        policy,
        pool_connections=getattr(current, "_pool_connections", 10),
        pool_maxsize=size,
        max_retries=0,
        pool_block=False,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session
