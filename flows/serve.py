"""`digest serve`: a long-running process that runs the two deployments on their schedules.

    schedules   = digest_schedules(settings)           (a bad [schedule] key fails here, first)
    server      = PREFECT_API_URL, or an embedded `prefect server start` child on 127.0.0.1
                  (own process group; database under <data>/prefect; analytics off)
    state file  = <data>/prefect-server.json {url, pid, server_pid}: `digest collect` and
                  `digest draft` use that server instead of starting a temporary one
    serve       = prefect.serve(collect/digest, draft/digest) until SIGTERM or Ctrl-C
    on the way out: the runner pauses the deployments, the state file goes, the server's
                  process group gets SIGTERM, then SIGKILL if it lingers

Why a real server: Prefect's temporary server (what a flow call starts without
PREFECT_API_URL) runs no scheduler, so schedules would never fire.

Nothing here imports Prefect at module level, and nothing sets PREFECT_API_URL in this
process's environment: `use_server` finds (or starts) the server before the CLI imports Prefect,
so a temporary server starts while Prefect imports, and `PrefectApi.connected()` points
Prefect at it for the flow calls only, through Prefect's settings (`temporary_settings`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ..errors import DigestError
from ..files import write_file
from ..settings import Settings
from .prefect_schedules import (
    DEPLOYMENT_NAME,
    DigestSchedules,
    digest_schedules,
    next_runs,
    runner_deployments,
)

#: Written in the data folder while `digest serve` runs.
STATE_FILE = "prefect-server.json"
#: A fresh database takes 10-13 s to migrate on a slow machine; allow for much slower ones.
STARTUP_TIMEOUT = 180.0
#: How long the server gets to exit after SIGTERM before its group is killed.
STOP_TIMEOUT = 15.0


# --- finding a running `digest serve` ----------------------------------------------------------


def state_path(settings: Settings) -> Path:
    """Where `digest serve` records its server for other commands."""
    return settings.data_dir / STATE_FILE


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a zombie holds no server)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): existence is all we can tell
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def server_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check (`GET <api>/health` -> true)."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as r:
            return r.status == 200 and r.read().strip() == b"true"
    except (OSError, ValueError):
        return False


def running_server_url(settings: Settings) -> str | None:
    """The API URL of the server a live `digest serve` recorded for this data folder, else None.

    A state file left by a killed `digest serve` is ignored: its process must be alive and
    the URL must answer its health check.
    """
    try:
        state = json.loads(state_path(settings).read_text(encoding="utf-8"))
        url, pid = str(state["url"]), int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not pid_alive(pid) or not server_healthy(url, timeout=1.0):
        return None
    return url


def configured_api_url(settings: Settings) -> str | None:
    """The Prefect API to use: PREFECT_API_URL, else a live `digest serve`'s server; or None."""
    return os.environ.get("PREFECT_API_URL") or running_server_url(settings)


def prefect_home() -> Path:
    """Prefect's home folder as Prefect finds it from the environment (its default otherwise)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


class PrefectApi:
    """The Prefect API a command's flow runs use (see `use_server`).

    `connected()` points Prefect at it for a block through Prefect's own settings
    (`temporary_settings`), never through this process's environment: the block's flow runs,
    their task threads and what they send to Dask see it, and nothing else changes.
    """

    def __init__(self, url: str, server: EmbeddedServer | None = None) -> None:
        #: The API URL (ending in /api).
        self.url = url
        #: The temporary server behind it, when this process started one.
        self.server = server

    @contextlib.contextmanager
    def connected(self) -> Iterator[str]:
        """Wait until the API answers (DigestError if its server cannot start), then run the
        block with Prefect pointed at it.

        Import Prefect before entering: a temporary server starts meanwhile.
        """
        if self.server is not None:
            _wait_for(self.server)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            yield self.url


#: The temporary server this process started (`use_server`): its flow runs share it (the
#: demo's two flows), and it is stopped when the process exits.
_temporary_server: EmbeddedServer | None = None


def use_server(settings: Settings) -> PrefectApi:
    """The Prefect API for this command's flow runs; call it before Prefect is imported.

    PREFECT_API_URL if set; else a running `digest serve`'s server; else a temporary server
    started here and stopped when the process exits (one per process: the demo's two flows
    share it). It is what a flow call would start by itself, with two differences: Prefect
    imports its whole server into the calling process to start its own (about 80 MB and a
    second, here the collect run's), and a caller killed with SIGKILL left Prefect's running,
    where ours gets SIGTERM from the kernel (Linux) and lives in a process group of its own.

    Returns at once, so Prefect can be imported while the server starts: run the flows inside
    `connected()`, which waits for it.
    """
    global _temporary_server
    if url := configured_api_url(settings):
        return PrefectApi(url)
    if _temporary_server is None:
        server = EmbeddedServer(prefect_home(), temporary=True)
        server.start()
        atexit.register(server.stop)
        _temporary_server = server
    return PrefectApi(_temporary_server.url, _temporary_server)


def _wait_for(server: EmbeddedServer) -> None:
    """Wait until a temporary server answers; one that cannot start is stopped and forgotten."""
    global _temporary_server
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        if _temporary_server is server:
            _temporary_server = None
        raise


# --- the embedded server ------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in a process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM a child's process group, SIGKILL it if anything lingers, and reap the child.

    The child leads its own group (start_new_session), so this reaches its children too
    (uvicorn, services) and nothing else.
    """
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


class EmbeddedServer:
    """`prefect server start` as a child process in its own process group.

    Its database lives in `home` (PREFECT_HOME), so schedules and run history survive
    restarts; its output goes to `home/server.log`. A `temporary` server is the one a command
    uses for its own flow runs when no server is running (see `use_server`): it keeps
    Prefect's own PREFECT_HOME, serves no UI and schedules nothing.
    """

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int = 0, *,
                 temporary: bool = False) -> None:
        self.home = home
        self.host = host
        self.port = port or free_port(host)
        self.temporary = temporary
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._answered = False

    @property
    def url(self) -> str:
        """The API URL (what PREFECT_API_URL must be set to)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/api"

    @property
    def log_path(self) -> Path:
        return self.home / ("digest-temporary-server.log" if self.temporary else "server.log")

    @property
    def ui_url(self) -> str:
        """Where a browser opens the Prefect UI this server serves."""
        return self.url.removesuffix("/api")

    def ui_settings(self) -> dict[str, str]:
        """The server process's settings that point its UI at this server's API.

        `prefect server start --port N` listens on N but does not tell the UI: the UI asks
        for the API at PREFECT_SERVER_UI_API_URL, which defaults to PREFECT_API_URL, else to
        PREFECT_SERVER_API_HOST:PREFECT_SERVER_API_PORT (4200), never to the --port given.
        So they are set here, in the child's settings (its environment), explicitly: a
        profile's or the caller's PREFECT_API_URL must not leak into them either. A UI API
        URL the user set (a reverse proxy's) is kept.
        """
        settings = {"PREFECT_SERVER_API_HOST": self.host,
                    "PREFECT_SERVER_API_PORT": str(self.port), "PREFECT_UI_URL": self.ui_url}
        if not any(os.environ.get(k) for k in ("PREFECT_SERVER_UI_API_URL",
                                               "PREFECT_UI_API_URL")):
            settings["PREFECT_SERVER_UI_API_URL"] = self.url
        return settings

    def start(self) -> None:
        """Start the server (returns at once; see `wait_ready`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
               "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING")}
        if not self.temporary:
            env["PREFECT_HOME"] = str(self.home)
        env.pop("PREFECT_API_URL", None)
        env.update(self.ui_settings())
        extra = ["--no-ui", "--no-scheduler", "--no-late-runs"] if self.temporary else []
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", self.host,
             "--port", str(self.port), *extra],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Block until /api/health answers (at once once it has); a server that exits or stalls
        is a DigestError."""
        if self._answered:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise DigestError(f"the Prefect server exited during start-up; "
                                  f"{self._tail()}")
            if server_healthy(self.url, timeout=1.0):
                self._answered = True
                return
            time.sleep(0.25)
        raise DigestError(f"the Prefect server did not answer within {timeout:.0f} s; "
                          f"{self._tail()}")

    def _tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return f"last log line: {lines[-1].strip()!r} (see {self.log_path})" if lines else (
            f"see {self.log_path}")

    def stop(self) -> None:
        """Stop the whole process group (idempotent)."""
        if self.process is not None:
            stop_group(self.process)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


# --- serving ------------------------------------------------------------------------------------


def write_state(path: Path, url: str, server_pid: int | None) -> None:
    """Record the server for other commands (files.write_file: an exclusive temporary file
    renamed into place, never through a planted symlink)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps({"url": url, "pid": os.getpid(), "server_pid": server_pid}))


def remove_state(path: Path) -> None:
    """Remove the state file if this process wrote it (another serve may have replaced it)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text(encoding="utf-8"))["pid"]) == os.getpid():
            path.unlink()


class _Stop(SystemExit):
    """SIGTERM before the Prefect runner has taken over the signal: leave through `finally`."""


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop(0)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Let clean-up finish: a second Ctrl-C or SIGTERM must not orphan the server."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def serve_forever(settings: Settings, *, host: str = "127.0.0.1", port: int = 0,
                  report: Callable[[str], None] = print) -> None:
    """Serve the two deployments until SIGTERM or Ctrl-C; then stop everything it started."""
    schedules = digest_schedules(settings)
    already = running_server_url(settings)
    if already:
        # A second server on the same SQLite database would run every schedule twice.
        raise DigestError(f"digest serve is already running for {settings.data_dir} "
                          f"(Prefect API {already})")
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    server: EmbeddedServer | None = None
    state = state_path(settings)
    try:
        url = os.environ.get("PREFECT_API_URL")
        if not url:
            server = EmbeddedServer(settings.data_dir / "prefect", host=host, port=port)
            report(f"starting the Prefect server on {server.url} (log: {server.log_path})")
            server.start()
            server.wait_ready()
            url = server.url
        write_state(state, url, server.process.pid if server and server.process else None)
        runs = next_runs(schedules, count=1)
        report(f"Prefect UI: {url.removesuffix('/api')}/  (API: {url})")
        for name in ("collect", "draft"):
            when = runs[name][0].isoformat() if runs[name] else "never"
            report(f"serving {name}/{DEPLOYMENT_NAME}: next run {when}")
        report("stop with Ctrl-C or SIGTERM")
        _run_runner(settings, schedules, url)
    finally:
        with _signals_ignored():
            remove_state(state)
            if server is not None:
                report("stopping the Prefect server")
                server.stop()
        signal.signal(signal.SIGTERM, previous)


def _run_runner(settings: Settings, schedules: DigestSchedules, url: str) -> None:
    """prefect.serve() the deployments against `url` (returns when the runner is stopped).

    The runner gives the flow-run processes it starts its current settings as environment
    variables, the API URL among them: this process's environment is left alone.
    """
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        deployments = runner_deployments(settings, schedules)
        serve(*deployments, print_starting_message=False)
