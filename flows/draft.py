"""The `draft` flow: draft the issue for a date, export it, publish it in the Prefect UI.

    result    = pipeline.draft.draft_issue(settings, day, ...)   files written, issue recorded
    exports   = pipeline.export.export_formats(issue)            the PDF and the Word file
    artifact  = the Markdown, key "draft-issue", ending with links to the PDF and Word files
    publish   = pipeline.publish.publish_site (when [publish] out_dir is set): the public
                archive brought up to date, so an issue sent since the last run appears
    retrain   = pipeline.relevance_model.retrain_if_due(settings)   (an issue finalised, or
                [triage] retrain_after decisions, since the model was trained: train, rescore)
    return      result.summary() (+ "exports", "published", "relevance_model" when it trained)

All the work is the use cases' (tests call them without Prefect); the flow only wires them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ..pipeline.draft import draft_issue, parse_date
from ..pipeline.export import export_formats, remove_stale_exports
from ..pipeline.publish import publish_site
from ..pipeline.relevance_model import retrain_if_due
from ..settings import load_settings

#: Training the relevance model when it is due; its failure never fails the draft.
retrain_relevance = task(retrain_if_due, name="retrain-relevance", cache_policy=NO_CACHE)


@task(name="publish")
def publish(config: str | None) -> dict[str, Any]:
    """Bring the public archive ([publish] out_dir) up to date with the sent issues."""
    site = publish_site(load_settings(config), None)
    return {"folder": str(site.folder), "issues": site.issues,
            "written": [str(p) for p in site.written]}


def files_markdown(paths: dict[str, Path]) -> str:
    """Links to the issue's files, for the artifact (file: URLs open on the desk's machine)."""
    names = {"pdf": "PDF", "docx": "Word", "md": "Markdown", "html": "Email HTML",
             "txt": "Text"}
    links = [f"[{names.get(kind, kind)}]({path.resolve().as_uri()})"
             for kind, path in paths.items()]
    return "**Files:** " + " · ".join(links)


@flow(name="draft", log_prints=False, validate_parameters=False)
async def draft(date: str | None = None, out: str | None = None, volume: int | None = None,
                number: int | None = None, config: str | None = None) -> dict[str, Any]:
    """Draft the issue for `date` (default: today), export it and publish it as an artifact."""
    settings = load_settings(config)
    result = draft_issue(settings, day=parse_date(date) if date else None, out_dir=out,
                         volume=volume, number=number)
    exports = export_formats(settings, result.issue_id)
    removed = remove_stale_exports(result.removed)
    await acreate_markdown_artifact(
        key="draft-issue",
        markdown=f"{result.rendered.markdown}\n\n---\n\n{files_markdown(exports)}\n",
        description=f"Draft of Vol {result.volume}.{result.number}, {result.date.isoformat()}",
    )
    summary = result.summary()
    summary["exports"] = {kind: str(path) for kind, path in exports.items()}
    summary["removed"] += [str(p) for p in removed]
    if settings.publish.out_dir:
        summary["published"] = publish(config)
    try:
        training = retrain_relevance(settings)
    except Exception as e:  # the draft is written: a failed training only reports itself
        summary["relevance_model"] = {"error": f"{type(e).__name__}: {e}"}
    else:
        if training is not None:
            summary["relevance_model"] = training.as_dict()
    return summary
