"""The `draft` flow: draft the issue for a date, then publish its Markdown in the Prefect UI.

    result    = pipeline.draft.draft_issue(settings, day, ...)   files written, issue recorded
    artifact  = the Markdown, key "draft-issue"
    return      result.summary()

All the work is the use case's (tests call it without Prefect); the flow only wires it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact

from ..pipeline.draft import draft_issue, parse_date
from ..settings import load_settings


@flow(name="draft", log_prints=False, validate_parameters=False)
async def draft(date: str | None = None, out: str | None = None, volume: int | None = None,
                number: int | None = None, config: str | None = None) -> dict[str, Any]:
    """Draft the issue for `date` (default: today) and publish its Markdown as an artifact."""
    settings = load_settings(config)
    result = draft_issue(settings, day=parse_date(date) if date else None, out_dir=out,
                         volume=volume, number=number)
    await acreate_markdown_artifact(
        key="draft-issue",
        markdown=result.rendered.markdown,
        description=f"Draft of Vol {result.volume}.{result.number}, {result.date.isoformat()}",
    )
    return result.summary()
