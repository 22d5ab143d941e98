"""The one timestamp format: ISO-8601 UTC, whole seconds, with a Z ("2026-11-26T08:00:00Z").

The database stores every moment this way, so timestamps sort and compare as text. On the
ground floor (sources/ and store/ both import it); nothing here imports the project.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: strftime pattern of the format; prefer `utc_timestamp`, which converts to UTC first.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_timestamp(moment: datetime) -> str:
    """`moment` in the one format, converted to UTC; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def utcnow() -> str:
    """Now, in the one format."""
    return utc_timestamp(datetime.now(UTC))
