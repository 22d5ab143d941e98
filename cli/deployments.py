"""`digest schedule`, `digest serve` and `digest deploy`: running the flows on their schedules."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from . import app, err, out, print_json, state


@app.command()
def schedule(
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=100,
                                       help="How many runs of each flow.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the next scheduled runs of collect and draft (in [schedule] timezone)."""
    from ..flows.prefect_schedules import FLOWS, digest_schedules, next_runs, next_runs_json

    settings = state.settings()
    schedules = digest_schedules(settings)
    runs = next_runs(schedules, count=count)
    if as_json:
        print_json(next_runs_json(runs))
        return
    rules = {"collect": f"cron {schedules.collect_cron}",
             "draft": f"{schedules.draft_rrule.split(':', 2)[-1]} from "
                      f"{settings.schedule.draft_start}"}
    for name in FLOWS:
        out.print(f"{name}: {rules[name]} ({schedules.timezone})", soft_wrap=True)
        for when in runs[name]:
            out.print(f"  {when:%a %Y-%m-%d %H:%M %Z} (UTC{when.isoformat()[-6:]})")
        if not runs[name]:
            out.print("  no future runs")


@app.command()
def serve(
    host: Annotated[str, typer.Option(
        help="Address the embedded Prefect server listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        min=0, max=65535, help="Its port (0 = any free port).")] = 0,
) -> None:
    """Run collect and draft on their schedules until stopped (Ctrl-C or SIGTERM).

    Uses the Prefect server at PREFECT_API_URL, else starts one (database in the data folder).
    """
    from ..flows.serve import serve_forever

    def report(line: str) -> None:
        err.print(escape(line), soft_wrap=True)

    serve_forever(state.settings(), host=host, port=port, report=report)


@app.command()
def deploy(
    pool: Annotated[str, typer.Option("--pool", help="Work pool (created as a process pool "
                                                      "if missing).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register collect and draft on a work pool of the server at PREFECT_API_URL."""
    from ..flows.deploy import deploy as deploy_flows

    result = deploy_flows(state.settings(), pool)
    if as_json:
        print_json(result)
        return
    created = " (created, type process)" if result["pool_created"] else ""
    out.print(f"work pool {result['pool']}{created} on {result['api_url']}")
    for name in result["deployments"]:
        out.print(f"registered {name}")
    out.print(f"start a worker where the database is: prefect worker start --pool "
              f"'{result['pool']}'")
