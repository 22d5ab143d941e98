"""`digest editor`: serve the editor desk (editor/app.py) with uvicorn."""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated

import typer

from ..errors import DigestError
from . import _db, app, out, state


def is_loopback(host: str) -> bool:
    """True when `host` only ever means this machine (127.0.0.0/8, ::1, localhost).

    A name is resolved and must resolve to loopback addresses only; "0.0.0.0" and "::" listen
    on every interface, so they are not loopback.
    """
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


@app.command()
def editor(
    host: Annotated[str | None, typer.Option(help="Address to listen on ([editor] host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on ([editor] port).")] = None,
) -> None:
    """Serve the editor desk. Listening beyond this machine needs an account first."""
    import uvicorn

    from ..editor.app import create_app
    from ..editor.guard import uvicorn_proxy_options
    from ..store.users import user_count

    settings = state.settings()
    host = host or settings.editor.host
    port = port if port is not None else settings.editor.port
    with _db(settings, write=False) as db:  # the desk also shows a read-only copy
        accounts = user_count(db)
    if accounts == 0 and not is_loopback(host):
        # Without an account nobody can log in, and the login form would invite guessing from
        # the network: refuse before opening a socket.
        raise DigestError(
            f"refusing to listen on {host}: no editor account exists yet "
            "(create one with 'digest users add NAME', or listen on 127.0.0.1)"
        )
    out.print(f"editor desk on http://{host}:{port}/  (Ctrl+C stops it)")
    # X-Forwarded-For/-Proto only from [editor] trusted_proxies (uvicorn trusts 127.0.0.1).
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",
                server_header=False, **uvicorn_proxy_options(settings.editor))
