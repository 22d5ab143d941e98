"""`digest triage …` and `digest search`: relevance on demand, and finding anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import _db, _fail, app, editor_name, err, out, print_json, state

triage_app = typer.Typer(help="Relevance scoring and its quality.", no_args_is_help=True)
app.add_typer(triage_app, name="triage")


@triage_app.command("rescore")
def triage_rescore() -> None:
    """Re-apply the relevance rules and the current learned model to stored items.

    Editors' decisions stay.
    """
    from ..triage.run import rescore

    settings = state.settings()
    with _db(settings) as db:
        counts = rescore(db, settings)
    if counts["warning"]:
        err.print(f"warning: {counts['warning']}")
    out.print(f"rescored {counts['scored']} items"
              + (f" with relevance model {counts['model']}" if counts["model"] else
                 " with the rules alone")
              + f": {counts['moved_in']} moved in to candidate, "
              f"{counts['moved_out']} moved out to filtered"
              + (f"; {counts['candidates']} new candidates, {counts['filtered']} newly filtered"
                 if counts["candidates"] or counts["filtered"] else ""), soft_wrap=True)


@triage_app.command("train")
def triage_train(
    shipped: Annotated[bool, typer.Option(
        "--shipped/--no-shipped",
        help="Also learn from the labelled set shipped with the program.")] = True,
) -> None:
    """Train the relevance model on editors' decisions, store it and make it current."""
    from ..pipeline.relevance_model import train_model

    training = train_model(state.settings(), shipped=shipped)
    out.print(training.summary(), markup=False, soft_wrap=True)


@triage_app.command("retry")
def triage_retry() -> None:
    """Cluster the items triage set aside (it failed or ran out of time), in small chunks."""
    from ..pipeline.triage_retry import retry_set_aside

    counts = retry_set_aside(state.settings())
    out.print(f"clustered {counts['clustered']} items ({counts['in_stories']} in "
              f"{counts['stories']} multi-outlet stories); {counts['set_aside_total']} still "
              "set aside", soft_wrap=True)
    if counts["set_aside_total"]:
        _fail(f"{counts['set_aside_total']} items could not be clustered: "
              f"{counts['triage_error']}")


@triage_app.command("evaluate")
def triage_evaluate(
    labels: Annotated[Path, typer.Option("--labels", help="TSV with url or guid, and label 0/1.")],
    show: Annotated[int, typer.Option(help="Wrong items to list of each kind and row.")] = 20,
) -> None:
    """Precision and recall of the rules alone, the model alone and the blend, and misses."""
    from ..triage.evaluate import evaluate_three, format_three
    from ..triage.model import load_current
    from ..triage.rules import load_rules

    settings = state.settings()
    with _db(settings, write=False) as db:
        model, warning = load_current(db)
        reports = evaluate_three(db, labels, load_rules(settings), model)
    if warning:
        err.print(f"warning: {warning}")
    out.print(format_three(reports, show=show), markup=False, soft_wrap=True)


@triage_app.command("evaluate-stories")
def triage_evaluate_stories(
    labels: Annotated[Path, typer.Option(
        "--labels", help="TSV with url or guid, and story (items of one development share it).")],
    show: Annotated[int, typer.Option(help="Wrong pairs to list of each kind.")] = 50,
) -> None:
    """Pairwise precision and recall of the stored stories, overall and per language pair."""
    from ..triage.story_eval import evaluate_stories, format_story_report

    settings = state.settings()
    with _db(settings, write=False) as db:
        report = evaluate_stories(db, labels)
    out.print(format_story_report(report, show=show))


story_app = typer.Typer(help="Correct stories: merge two, or take an item out of one.",
                        no_args_is_help=True)
app.add_typer(story_app, name="story")


@story_app.command("merge")
def story_merge(
    item: Annotated[int, typer.Argument(help="An item of the first story.")],
    other: Annotated[int, typer.Argument(help="An item of the second story.")],
) -> None:
    """Make the two items' stories one; later runs keep it so."""
    from ..pipeline.stories import merge
    from ..store.clusters import story_members

    settings = state.settings()
    with _db(settings) as db:
        lead = merge(db, item, other, editor=editor_name())
        size = len(story_members(db, lead))
    out.print(f"story {lead}: {size} items")


@story_app.command("split")
def story_split(
    item: Annotated[int, typer.Argument(help="The item to take out of its story.")],
) -> None:
    """Take an item out of its story; later runs keep them apart."""
    from ..pipeline.stories import split

    settings = state.settings()
    with _db(settings) as db:
        rest = split(db, item, editor=editor_name())
    out.print(f"item {item} is a story of its own" + (
        f"; the rest stays story {rest}" if rest != item else ""))


# Unknown options pass through as words, so `digest search Okinawa -COVID` needs no quoting.
@app.command(context_settings={"ignore_unknown_options": True})
def search(
    words: Annotated[list[str], typer.Argument(
        help='The query, e.g. \'"extended deterrence"\', Okinawa -COVID, 日米')],
    status: Annotated[str | None, typer.Option(help="Only items in this status (or all).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many results.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Full-text search over titles, summaries, headlines and blurbs, best match first."""
    from ..store.items import search_backlog
    from ..triage.search import search as run_search

    settings = state.settings()
    with _db(settings, write=False) as db:
        rows = run_search(db, " ".join(words), status=status, limit=limit,
                          budget=settings.editor.search_budget_seconds)
        unindexed = search_backlog(db)
    if unindexed:
        err.print(f"note: {unindexed} items the last collect stored are still being added to "
                  "the search index; this search cannot find them yet (search again in a few "
                  "seconds)", soft_wrap=True)
    if as_json:
        keys = ("id", "source", "url", "title", "published_at", "status", "entry", "score",
                "snippet")
        print_json([{k: r.get(k) for k in keys} for r in rows])
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "published", "status", "source", "title / snippet"):
        table.add_column(col, overflow="fold")
    for r in rows:
        shown = f"{r['status']} · {r['entry']}" if r.get("entry") else r["status"]
        table.add_row(str(r["id"]), r["published_at"][:10], shown, r["source"],
                      f"{r['title']}\n{r['snippet']}" if r.get("snippet") else r["title"])
    out.print(table)
    out.print(f"{len(rows)} results")
