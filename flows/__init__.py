"""Prefect flows and their schedules: orchestration only; the work is in sources/store/triage.

QUIET_PREFECT holds Prefect's quiet, offline-friendly defaults. Prefect reads its settings when
it is first imported, so the front doors apply them (`quiet_prefect`) before anything imports
Prefect: the `digest` command in its root callback (the processes it starts inherit them), the
tests in conftest. Importing this package changes nothing.
"""

from __future__ import annotations

import os

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


def quiet_prefect() -> None:
    """Apply QUIET_PREFECT to the environment without overriding what the user set."""
    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
