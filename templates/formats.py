"""A recorded issue in the formats it is delivered in: email, PDF and Word.

    IssueDocument   what an issue says: numbering, lead image, and per paragraph its headline
                    and Markdown (bold and links only), as the draft wrote it
    render_email    the draft's own digest.html.j2 / digest.txt.j2 (CSS inlined for email)
    render_pdf      the same digest.html.j2 with a print stylesheet ([issue] paper), WeasyPrint
    render_docx     python-docx: headings and bullets as in the seed, real hyperlinks, bold

Every format is built from the same IssueDocument, so the PDF, the Word file, the email and
the archive's page say the same thing. Paragraph Markdown is read back into the renderer's
nodes (`markdown_nodes`), with the draft's backslash escapes undone.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from string import Template
from typing import Any

import css_inline
from jinja2 import TemplateError

from ..errors import ExportError, TemplateRenderError
from ..settings import Settings
from .render import (
    DRAFT_MARKER,
    TEMPLATE_NAMES,
    Bold,
    IssueView,
    Link,
    Node,
    Rendered,
    Text,
    _context,
    _environment,
    _user_templates,
    parse_inline,
    text_inline,
)


@dataclass(frozen=True, slots=True)
class Paragraph:
    """One entry of the issue: its headline and its Details paragraph as Markdown."""

    headline: str
    markdown: str
    #: Drafted from a summary, not written by an editor yet.
    needs_writing: bool = False


@dataclass(frozen=True)
class IssueDocument:
    """A recorded issue, ready for any delivery format."""

    title: str
    volume: int
    number: int
    date: date
    paragraphs: list[Paragraph] = field(default_factory=list)
    image_url: str = ""
    image_credit: str = ""
    image_alt: str = ""
    #: The issue's own footer (set in the desk); None means `[issue] footer`.
    footer: str | None = None

    @property
    def vol_num(self) -> str:
        return f"{self.volume}.{self.number}"


# --- Markdown back to nodes --------------------------------------------------------------------

_ESCAPED_RE = re.compile(r"\\([\\`*_\[\]<>~&#>+=\-.)!])")
#: Escaped characters stand in as private-use code points while the blurb parser runs.
_PRIVATE = 0xE000


def markdown_nodes(markdown: str) -> list[Node]:
    """A paragraph's Markdown (the renderer's md_inline output) as inline nodes.

    The draft escapes Markdown's special characters with a backslash; those are held aside as
    private-use characters while the bold-and-links parser runs, then put back as text.
    """
    held = _ESCAPED_RE.sub(lambda m: chr(_PRIVATE + ord(m.group(1))), markdown)
    return [_restore(n) for n in parse_inline(held)]


def _unhold(text: str) -> str:
    return "".join(chr(ord(c) - _PRIVATE) if _PRIVATE <= ord(c) < _PRIVATE + 128 else c
                   for c in text)


def _restore(node: Node) -> Node:
    if isinstance(node, Text):
        return Text(_unhold(node.text))
    children = tuple(_restore(c) for c in node.children)
    if isinstance(node, Bold):
        return Bold(children)
    return Link(_unhold(node.url), children)


# --- the draft's templates, fed from a document ------------------------------------------------


def document_context(doc: IssueDocument, settings: Settings) -> dict[str, Any]:
    """The templates' context for a document: the renderer's own, with its paragraphs."""
    view = IssueView(title=doc.title, volume=doc.volume, number=doc.number, date=doc.date,
                     image_url=doc.image_url, image_credit=doc.image_credit,
                     image_alt=doc.image_alt)
    issue_settings = settings.issue
    if doc.footer:
        issue_settings = dataclasses.replace(issue_settings, footer=doc.footer)
    context = _context(view, issue_settings)
    context["items"] = [
        {"view": None, "headline": p.headline, "section": "", "needs_writing": p.needs_writing,
         "paragraph": markdown_nodes(p.markdown)}
        for p in doc.paragraphs
    ]
    return context


def _render(kind: str, context: dict[str, Any], settings: Settings) -> str:
    name = TEMPLATE_NAMES[kind]
    try:
        return _environment(_user_templates(settings)).get_template(name).render(context)
    except TemplateError as e:
        raise TemplateRenderError(f"{name}: {type(e).__name__}: {e}", template=name) from None


def render_email(doc: IssueDocument, settings: Settings) -> Rendered:
    """The email's HTML (CSS inlined, absolute links) and its plain-text twin; and Markdown."""
    context = document_context(doc, settings)
    html = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False,
                                 keep_link_tags=False).inline(_render("html", context, settings))
    return Rendered(markdown=_render("markdown", context, settings), html=html,
                    text=_render("text", context, settings))


# --- PDF ---------------------------------------------------------------------------------------

#: Turns the email's one 600 px column into a printed page; the email's look stays.
PRINT_CSS = """
@page { size: $paper; margin: 18mm 16mm 20mm 16mm;
        @bottom-center { content: "$title · Vol $vol_num · page " counter(page);
                         font-family: Georgia, serif; font-size: 9pt; color: #777777; } }
body, .outer { background-color: #ffffff !important; }
.column { width: 100% !important; max-width: none !important; }
table { width: 100% !important; }
.lead { width: 100% !important; max-width: none !important; }
li { page-break-inside: avoid; }
a { color: #0b57d0; text-decoration: none; }
"""

def render_pdf(doc: IssueDocument, settings: Settings, *, image: bytes | None = None) -> bytes:
    """The issue as a PDF: the email template before inlining, with a print stylesheet.

    The lead image is given as bytes (the caller fetched it, with its own limits) and embedded
    as a data: URI; without them the image is left out and its credit stays. Rendering itself
    fetches nothing: the fetcher allows data: URIs only.
    """
    import weasyprint
    from weasyprint.urls import URLFetcher

    context = document_context(doc, settings)
    if context["image"] is not None:
        if image:
            encoded = base64.b64encode(image).decode("ascii")
            context["image"] = {**context["image"],
                                "url": f"data:{_image_type(image)};base64,{encoded}"}
        else:
            context["image"] = None
    html = _render("html", context, settings)
    css = Template(PRINT_CSS).substitute(paper=settings.issue.paper, vol_num=doc.vol_num,
                                         title=_css_string(doc.title))
    fetcher = URLFetcher(allowed_protocols={"data"})
    try:
        return weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(
            stylesheets=[weasyprint.CSS(string=css)])
    except (OSError, ValueError) as e:
        raise ExportError(f"PDF of Vol {doc.vol_num}: WeasyPrint failed: {e}") from None


_IMAGE_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"),
                (b"RIFF", "image/webp"))


def _image_type(data: bytes) -> str:
    return next((kind for magic, kind in _IMAGE_MAGIC if data.startswith(magic)),
                "application/octet-stream")


def _css_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


# --- Word --------------------------------------------------------------------------------------


def render_docx(doc: IssueDocument, settings: Settings, *,
                image: bytes | None = None) -> bytes:
    """The issue as a .docx in the seed's shape: title, Vol, Date, image and credit, Headlines
    and Details as bulleted lists, the footer. Linked words are real hyperlinks (a run inside
    `w:hyperlink` with a relationship id) and bold stays bold, so a reviewer's tracked changes
    sit on the same words as the entry's Markdown.
    """
    from docx import Document
    from docx.shared import Inches, Pt

    context = document_context(doc, settings)
    word = Document()
    word.core_properties.title = f"{context['title']} Vol {doc.vol_num}"
    word.add_heading(context["title"], level=0)
    word.add_paragraph(f"Vol: {doc.vol_num}")
    word.add_paragraph(f"Date: {context['date_text']}")
    if image:
        # An image Word cannot take (python-docx raises several kinds) leaves the credit line.
        with contextlib.suppress(Exception):
            word.add_picture(io.BytesIO(image), width=Inches(6))
    if context["credit"]:
        para = word.add_paragraph()
        para.add_run(f"{context['credit_prefix']} ")
        _add_nodes(para, context["credit"])
        for run in para.runs:
            run.font.size = Pt(9)
    word.add_heading("Headlines:", level=2)
    for item in context["items"]:
        word.add_paragraph(item["headline"], style="List Bullet")
    word.add_heading("Details:", level=2)
    for item in context["items"]:
        para = word.add_paragraph(style="List Bullet")
        if item["needs_writing"]:
            para.add_run(f"[{DRAFT_MARKER}] ").bold = True
        _add_nodes(para, item["paragraph"])
    _add_nodes(word.add_paragraph(), context["footer"])
    out = io.BytesIO()
    word.save(out)
    return out.getvalue()


def _add_nodes(para: Any, nodes: Sequence[Node], *, bold: bool = False) -> None:
    for node in nodes:
        if isinstance(node, Text):
            para.add_run(node.text).bold = bold or None
        elif isinstance(node, Bold):
            _add_nodes(para, node.children, bold=True)
        else:
            _add_hyperlink(para, node.url, node.children, bold=bold)


def _add_hyperlink(para: Any, url: str, children: Sequence[Node], *, bold: bool) -> None:
    """A real Word hyperlink: w:hyperlink r:id=… holding styled runs."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    rel_id = para.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), rel_id)
    for text, strong in _flatten(children, bold):
        run = OxmlElement("w:r")
        props = OxmlElement("w:rPr")
        style = OxmlElement("w:rStyle")
        style.set(qn("w:val"), "Hyperlink")
        props.append(style)
        if strong:  # the schema's order: rStyle, b, …, color, …, u
            props.append(OxmlElement("w:b"))
        color = OxmlElement("w:color")
        color.set(qn("w:val"), "0B57D0")
        props.append(color)
        underline = OxmlElement("w:u")
        underline.set(qn("w:val"), "single")
        props.append(underline)
        run.append(props)
        t = OxmlElement("w:t")
        t.set(qn("xml:space"), "preserve")
        t.text = text
        run.append(t)
        link.append(run)
    para._p.append(link)


def _flatten(nodes: Sequence[Node], bold: bool) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for node in nodes:
        if isinstance(node, Text):
            out.append((node.text, bold))
        elif isinstance(node, Bold):
            out += _flatten(node.children, True)
        else:
            out.append((text_inline(node.children), bold))
    return out
