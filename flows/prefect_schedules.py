"""When the two deployments run: one definition for `digest serve`, `deploy` and `schedule`.

`[schedule]` holds a cron for collecting and an RRULE (without DTSTART) for drafting;
`draft_start` is the naive local time that anchors the rule and `timezone` the zone both are
read in. Prefect needs both an explicit DTSTART and `timezone=` on an RRule: without DTSTART
it anchors at 2020-01-01 (so nobody chooses which week is "on") and a `DTSTART;TZID=` alone
fires at that hour UTC.

`next_runs` asks Prefect's own server-side schedule models for their dates, the code its
scheduler service runs, so what `digest schedule` prints is what the server will create, DST
handling included. Nothing here imports Prefect until a schedule is actually computed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError
from ..settings import DEFAULT_CONFIG, Settings

if TYPE_CHECKING:
    from prefect.schedules import Schedule

#: Deployment name shared by both flows: `collect/digest` and `draft/digest`.
DEPLOYMENT_NAME = "digest"
#: The flows a schedule is defined for, in the order they are printed.
FLOWS = ("collect", "draft")


@dataclass(frozen=True, slots=True)
class DigestSchedules:
    """Validated schedule definitions, as the strings Prefect takes."""

    timezone: str
    collect_cron: str
    #: The full rule text: "DTSTART:YYYYMMDDTHHMMSS\\nRRULE:...".
    draft_rrule: str


def _where(settings: Settings, key: str) -> str:
    return f"{settings.config_path or DEFAULT_CONFIG}: [schedule] '{key}'"


def _one_line(error: Exception) -> str:
    """The gist of a pydantic or dateutil error, on one line (the CLI prints one line)."""
    errors = getattr(error, "errors", None)
    if callable(errors):  # pydantic.ValidationError: the first message, minus its prefix
        message = str(errors()[0].get("msg", ""))
        message = message.removeprefix("Value error, ")
    else:
        message = str(error)
    if "missing 1 required positional argument: 'freq'" in message:
        message = "FREQ is missing"
    return " ".join(message.split()) or type(error).__name__


def digest_schedules(settings: Settings) -> DigestSchedules:
    """Validate `[schedule]` and build the definitions; a bad key is one ConfigError line.

    Validation uses the same checks Prefect applies when a deployment is registered, so a
    mistake surfaces here, before a server or worker is involved.
    """
    cfg = settings.schedule
    try:
        ZoneInfo(cfg.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{_where(settings, 'timezone')}: unknown time zone {cfg.timezone!r} "
            "(use an IANA name such as 'America/New_York')"
        ) from None
    try:
        start = datetime.fromisoformat(cfg.draft_start)
    except ValueError:
        raise ConfigError(
            f"{_where(settings, 'draft_start')}: {cfg.draft_start!r} is not a date and time "
            "(YYYY-MM-DDTHH:MM:SS)"
        ) from None
    if start.tzinfo is not None:
        raise ConfigError(
            f"{_where(settings, 'draft_start')}: give a local time without an offset; "
            "the zone is [schedule] 'timezone'"
        )
    rule = cfg.draft_rrule.strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[len("RRULE:"):]
    if re.search(r"DTSTART|\n", rule, flags=re.IGNORECASE):
        raise ConfigError(
            f"{_where(settings, 'draft_rrule')}: give one RRULE line without DTSTART; "
            "the start is [schedule] 'draft_start'"
        )
    schedules = DigestSchedules(
        timezone=cfg.timezone,
        collect_cron=cfg.collect_cron.strip(),
        draft_rrule=f"DTSTART:{start:%Y%m%dT%H%M%S}\nRRULE:{rule}",
    )
    _server_models(schedules, settings)  # Prefect's own validators
    return schedules


def _server_models(schedules: DigestSchedules, settings: Settings | None = None,
                   ) -> dict[str, Any]:
    """Prefect's server-side schedule models (they compute dates exactly as its scheduler)."""
    from prefect.server.schemas.schedules import CronSchedule, RRuleSchedule

    try:
        cron = CronSchedule(cron=schedules.collect_cron, timezone=schedules.timezone)
    except ValueError as e:
        where = _where(settings, "collect_cron") if settings else "collect_cron"
        raise ConfigError(f"{where}: {_one_line(e)}") from None
    try:
        rrule = RRuleSchedule(rrule=schedules.draft_rrule, timezone=schedules.timezone)
        rrule.to_rrule()  # parses the rule for real (the validator alone accepts some typos)
    except (ValueError, TypeError) as e:
        where = _where(settings, "draft_rrule") if settings else "draft_rrule"
        detail = re.sub(r'^Invalid RRule string ".*?": ', "", _one_line(e))
        raise ConfigError(f"{where}: invalid RRULE {schedules.draft_rrule.split(':', 2)[-1]!r}: "
                          f"{detail}") from None
    return {"collect": cron, "draft": rrule}


def prefect_schedules(schedules: DigestSchedules) -> dict[str, Schedule]:
    """The `prefect.schedules` objects that deployments are registered with."""
    from prefect.schedules import Cron, RRule

    return {
        "collect": Cron(schedules.collect_cron, timezone=schedules.timezone),
        "draft": RRule(schedules.draft_rrule, timezone=schedules.timezone),
    }


def next_runs(schedules: DigestSchedules, count: int = 5,
              after: datetime | None = None) -> dict[str, list[datetime]]:
    """The next `count` runs of each flow at or after `after` (default now), in local time.

    Times carry the configured zone, so their UTC offset follows daylight saving.
    """
    zone = ZoneInfo(schedules.timezone)
    start = (after or datetime.now(UTC)).astimezone(zone)
    models = _server_models(schedules)

    async def dates() -> dict[str, list[datetime]]:
        found = {name: await model.get_dates(count, start=start)
                 for name, model in models.items()}
        return {name: [_plain(d).astimezone(zone) for d in values]
                for name, values in found.items()}

    return asyncio.run(dates())


def _plain(value: datetime) -> datetime:
    """A stdlib datetime from Prefect's DateTime subclass (for isoformat and equality)."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def next_runs_json(runs: dict[str, list[datetime]]) -> dict[str, dict[str, list[str]]]:
    """`{"collect": {"next_runs": [ISO-8601 with offset, ...]}, "draft": {...}}`."""
    return {name: {"next_runs": [d.isoformat() for d in runs[name]]} for name in FLOWS}


def runner_deployments(settings: Settings, schedules: DigestSchedules, *,
                       work_pool_name: str | None = None,
                       job_variables: dict[str, Any] | None = None) -> list[Any]:
    """The `collect` and `draft` deployments (Prefect RunnerDeployments), scheduled.

    Entrypoints are module paths (`alliance_digest.flows.collect.collect`): the flows use
    relative imports, so they must be imported as the installed package, never as a file;
    this is also what lets a process worker run them with no code storage or image.
    The config file travels as the `config` parameter, so every run reads the same settings.
    """
    from prefect.deployments.runner import EntrypointType

    from .collect import collect
    from .draft import draft

    parameters = {"config": str(settings.config_path)} if settings.config_path else {}
    by_name = prefect_schedules(schedules)
    descriptions = {
        "collect": f"Fetch due sources ({schedules.collect_cron}, {schedules.timezone}).",
        "draft": f"Draft the issue ({schedules.draft_rrule.split(':', 2)[-1]} from "
                 f"{settings.schedule.draft_start}, {schedules.timezone}).",
    }
    return [
        flow_.to_deployment(
            DEPLOYMENT_NAME,
            schedules=[by_name[name]],
            parameters=parameters,
            # Explicit: `serve` pauses its deployments when it stops, and registering them
            # again without `paused` would leave them paused.
            paused=False,
            description=descriptions[name],
            tags=["alliance-digest"],
            entrypoint_type=EntrypointType.MODULE_PATH,
            work_pool_name=work_pool_name,
            job_variables=job_variables,
        )
        for name, flow_ in (("collect", collect), ("draft", draft))
    ]
