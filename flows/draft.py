"""The `draft` flow: draft the issue for a date, then publish its Markdown in the Prefect UI.

    result    = pipeline.draft.draft_issue(settings, day, ...)   files written, issue recorded
    artifact  = the Markdown, key "draft-issue"
    retrain   = pipeline.relevance_model.retrain_if_due(settings)   (an issue finalised, or
                [triage] retrain_after decisions, since the model was trained: train, rescore)
    return      result.summary() (+ "relevance_model" when it trained)

All the work is the use case's (tests call it without Prefect); the flow only wires it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ..pipeline.draft import draft_issue, parse_date
from ..pipeline.relevance_model import retrain_if_due
from ..settings import load_settings

#: Training the relevance model when it is due; its failure never fails the draft.
retrain_relevance = task(retrain_if_due, name="retrain-relevance", cache_policy=NO_CACHE)


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
    summary = result.summary()
    try:
        training = retrain_relevance(settings)
    except Exception as e:  # the draft is written: a failed training only reports itself
        summary["relevance_model"] = {"error": f"{type(e).__name__}: {e}"}
    else:
        if training is not None:
            summary["relevance_model"] = training.as_dict()
    return summary
