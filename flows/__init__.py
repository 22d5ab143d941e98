"""Prefect flows and their schedules: orchestration only; the work is in sources/store/triage.

QUIET_PREFECT holds Prefect's quiet, offline-friendly defaults. Prefect reads its settings when
it is first imported, so the front doors apply them (`quiet_prefect`) before anything imports
Prefect: the `digest` command in its root callback (the processes it starts inherit them), the
tests in conftest. Importing this package changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

QUIET_PREFECT = {
    # No analytics or telemetry calls (offline they only log errors, and on a fresh server
    # they were seen to cause "database is locked").
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # Prefect's own chatter at WARNING; our summary is printed by the CLI.
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    # A fresh temporary server migrates its database first: on a busy 2-core machine that took
    # longer than Prefect's 20 s default, and the run failed before it began.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Task runs are recorded in larger batches (measured to halve end-to-end time).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
}


def quiet_prefect(verbose: bool = False) -> None:
    """Apply QUIET_PREFECT to the environment without overriding what the user set.

    `verbose` (`digest --verbose`): Prefect's INFO lines too (they go to the console then).
    """
    if verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)


#: Prefect's log in the data folder: what it would print on the console (its warnings,
#: "EventsWorker - Still processing items", tracebacks of its services) goes here instead.
PREFECT_LOG = "prefect.log"


def log_prefect_to(path: Path) -> None:
    """Send what Prefect's own console handlers would print to `path` (appended) instead.

    Call it before any flow runs: Prefect sets up its logging once per process (here, if
    importing it has not yet). Only Prefect's console handlers are replaced, on every logger that
    has one (the root logger included), so a handler the caller added (pytest's, say) stays.
    """
    import logging

    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # what importing Prefect's flows does; later it does nothing
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path, encoding="utf-8", delay=True)
    to_file.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(), *(logger for logger in
                                      logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        consoles = [h for h in logger.handlers if _prints_to_console(h, PrefectConsoleHandler)]
        for handler in consoles:
            logger.removeHandler(handler)
        if consoles and to_file not in logger.handlers:
            logger.addHandler(to_file)


def _prints_to_console(handler: object, console_class: type) -> bool:
    # Prefect's console handler, and its debug one (a private StreamHandler on stderr).
    return isinstance(handler, console_class) or (
        type(handler).__module__.startswith("prefect.")
        and type(handler).__name__ == "_SafeStreamHandler")
