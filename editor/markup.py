"""Turning untrusted text into HTML the desk can show: blurbs and feed summaries.

Everything a feed or an editor typed is hostile until it passes through here. Jinja's autoescape
covers plain text; these functions cover the places where the desk produces HTML on purpose:

    blurb_preview_html(text)   the blurb exactly as the issue renders it (templates.render)
    summary_html(html)         a feed summary, nh3-sanitised again on the way out

Link targets go through templates.render.safe_url (the desk's `safe_url` filter): there is one
blurb parser and one URL check, shared with the draft, so the preview cannot drift from the email.
"""

from __future__ import annotations

from markupsafe import Markup

from ..sources.normalise import sanitize_html
from ..templates.render import html_inline, parse_inline


def blurb_preview_html(text: str | None) -> Markup:
    """An editor's blurb as the issue's HTML shows it: **bold** and http(s) links, one paragraph.

    The renderer keeps a non-http(s) link's words and drops its target, so a pasted
    `[x](javascript:…)` never becomes clickable.
    """
    nodes = parse_inline(text)
    if not nodes:
        return Markup("")
    return Markup("<p>") + html_inline(nodes) + Markup("</p>")


def summary_html(fragment: str | None) -> Markup:
    """A feed summary sanitised again at render time (stored sanitised; defence in depth)."""
    return Markup(sanitize_html(fragment))
