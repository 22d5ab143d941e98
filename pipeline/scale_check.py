"""Checking a Dask scale-out before a collect starts: one clear line, at once.

    [scale] dask_address empty         → nothing to check
    tcp://host:port (or tls://, host:port)
        TCP connect within CONNECT_TIMEOUT → reachable; prefect-dask then connects for real
        refused / unresolvable / timed out → DigestError naming the address and the cause
    other protocols (inproc://, ucx://) → left to Dask

Without this, distributed's client waits its whole 30 s connect timeout and Prefect logs the
failed flow run's traceback before the one clear line. The check runs before a temporary Prefect
server is started, so a dead scheduler costs nothing else. `remote_workers_warning` says when the
workers, on other machines, could never reach the Prefect API the command uses.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..errors import DigestError
from ..settings import ScaleSettings

__all__ = ["CONNECT_TIMEOUT", "check_scheduler", "remote_workers_warning", "scheduler_host"]

#: Seconds to reach the scheduler: a live one on a network answers well within this.
CONNECT_TIMEOUT = 5.0


def scheduler_host(address: str) -> tuple[str, int] | None:
    """(host, port) of a TCP scheduler address; None for a protocol that is not TCP."""
    text = address.strip()
    if "://" not in text:
        text = f"tcp://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("tcp", "tls"):
        return None
    try:
        port = parts.port or 8786
    except ValueError:
        raise DigestError(f"[scale] dask_address: not a scheduler address: {address!r}") from None
    if not parts.hostname:
        raise DigestError(f"[scale] dask_address: not a scheduler address: {address!r}")
    return parts.hostname, port


def check_scheduler(scale: ScaleSettings, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise DigestError (one line) when `[scale] dask_address` is set and cannot be reached."""
    address = scale.dask_address
    if not address:
        return
    target = scheduler_host(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except socket.gaierror:
        cause = f"cannot resolve {target[0]}"
    except TimeoutError:
        cause = f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        cause = "connection refused"
    except OSError as e:
        cause = e.strerror or type(e).__name__
    else:
        return
    raise DigestError(
        f"[scale] dask_address: cannot reach the Dask scheduler at {address}: {cause}"
    )


def remote_workers_warning(scale: ScaleSettings, api_url: str) -> str | None:
    """A warning when Dask workers elsewhere would report to a Prefect API on loopback."""
    target = scheduler_host(scale.dask_address) if scale.dask_address else None
    if target is None or _loopback(target[0]):
        return None
    api_host = urlsplit(api_url).hostname or ""
    if not _loopback(api_host):
        return None
    return (
        f"Dask workers on other machines cannot reach the Prefect API at {api_url} (their "
        "task logs and states are lost): set PREFECT_API_URL to a server every machine "
        "reaches"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
