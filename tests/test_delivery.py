"""Delivery: PDF and Word exports, email to subscribers with recorded deliveries, the archive.

The issue is the seed issue (tests/test_draft.py's fixture data), drafted for real. Its lead
image is served by a FeedServer on 127.0.0.1, so exports never reach the internet. Email goes
to a real SMTP server (aiosmtpd) on 127.0.0.1 that can refuse a recipient or drop the
connection mid-list.
"""

from __future__ import annotations

import email
import io
import re
import socket
import struct
import zlib
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import docx
import feedparser
import pypdf
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from alliance_digest.errors import (
    ConfigError,
    ExportError,
    IssueNotApproved,
    RecipientError,
    SMTPAuthFailed,
    SMTPUnavailable,
)
from alliance_digest.feedserver import FeedServer
from alliance_digest.pipeline import review
from alliance_digest.pipeline.draft import draft_issue
from alliance_digest.pipeline.export import export_issue, issue_document
from alliance_digest.pipeline.publish import publish_site
from alliance_digest.pipeline.send import is_publisher, send_issue
from alliance_digest.settings import Settings, load_settings
from alliance_digest.store.db import open_db
from alliance_digest.store.deliveries import deliveries
from alliance_digest.store.issues import find_issue
from alliance_digest.store.users import add_user
from alliance_digest.templates.formats import markdown_nodes
from alliance_digest.templates.render import Bold, Link, Text, md_inline
from support import digest
from test_draft import FOOTER, SEED_DATE, SEED_ITEMS, SEED_STEM, add_items


def png(width: int = 4, height: int = 3) -> bytes:
    """A small white PNG, built by hand: the lead image, served locally."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    rows = b"".join(b"\x00" + b"\xff\xff\xff" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = png()
HEADLINES = [item["headline"] for item in SEED_ITEMS]
SUBSCRIBERS = ["ann@example.org", "bob@example.org", "refused@example.org",
               "cy@example.org", "dee@example.org"]


def approve(settings: Settings, issue_id: int) -> None:
    """Put an issue through review: submitted by an editor, approved by a publisher."""
    db = open_db(settings.store_path)
    review.submit(db, issue_id, actor="ann", role="editor")
    review.approve(db, settings, issue_id, actor="pat", role="publisher",
                   confirm_open_comments=True)
    db.close()


# --- a real SMTP server on 127.0.0.1 -----------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps what it accepts; refuses some recipients; can drop once."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, email.message.EmailMessage]] = []
        self.refuse: set[str] = set()
        #: Drop the connection at DATA when this many messages have been accepted (once).
        self.drop_at: int | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.drop_at is not None and len(self.messages) == self.drop_at:
            self.drop_at = None
            server.transport.close()
            return "421 closing"
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        for rcpt in envelope.rcpt_tos:
            self.messages.append((rcpt, message))
        return f"250 2.0.0 queued as {len(self.messages)}"

    def recipients(self) -> list[str]:
        return [r for r, _ in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"right-password"
    return AuthResult(success=ok, handled=False)


# --- the seed issue, drafted ------------------------------------------------------------------


def write_config(folder: Path, port: int, *, recipients: Any = None, extra: str = "") -> Path:
    footer = FOOTER.replace("\\", "\\\\").replace('"', '\\"')
    rcpts = recipients if recipients is not None else SUBSCRIBERS
    rcpt_value = f'"{rcpts}"' if isinstance(rcpts, str) else "[" + ", ".join(
        f'"{r}"' for r in rcpts) + "]"
    config = folder / "digest.toml"
    config.write_text(
        f'[store]\npath = "data/digest.db"\n[issue]\nfooter = "{footer}"\npaper = "A4"\n'
        f'out_dir = "drafts"\n'
        f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsecurity = "none"\n'
        f'from = "Alliance Digest <digest@example.org>"\nreply_to = "editors@example.org"\n'
        f"recipients = {rcpt_value}\ntimeout = 5\n{extra}", encoding="utf-8")
    return config


@pytest.fixture
def image_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.route("/lead.png", body=PNG, content_type="image/png")
        yield server


@pytest.fixture
def issue(tmp_path: Path, smtp: tuple[Inbox, int], image_server: FeedServer
          ) -> tuple[Settings, int]:
    """(settings, issue id): the seed issue drafted into tmp_path/drafts, its image local."""
    settings = load_settings(write_config(tmp_path, smtp[1]))
    items = [dict(item) for item in SEED_ITEMS]
    for item in items:
        if "lead_image" in item:
            item["lead_image"] = image_server.url("/lead.png")
    db = open_db(settings.store_path)
    add_items(db, items)
    db.close()
    result = draft_issue(settings, day=SEED_DATE, volume=2, number=3)
    return settings, result.issue_id


# --- paragraphs: Markdown back to nodes -------------------------------------------------------


def test_markdown_nodes_undo_the_drafts_escapes():
    nodes = [Text("3 * 4 [sic] a_b "), Bold((Text("key"),)), Text(" "),
             Link("https://e.test/a_(b)", (Text("said"),)), Text(" <tag> &amp; ~x~ \\ 1.")]
    assert markdown_nodes(md_inline(nodes)) == nodes
    # A line starting like a list item is escaped by the draft and read back as text.
    assert markdown_nodes(md_inline([Text("1. first")])) == [Text("1. first")]


@pytest.mark.parametrize(("line", "message"), [
    ('security = "tls"', "'security' must be one of starttls, ssl, none"),
    ("smtp_port = 0", "'smtp_port' must be 1-65535"),
    ('subject = "Vol {vol}"', "'subject': bad template"),
    ("recipients = 3", "'recipients' must be a list of addresses or a file path"),
    ('password = "x"', "unknown key 'password'"),
])
def test_email_settings_are_checked(tmp_path, line, message):
    config = tmp_path / "digest.toml"
    config.write_text(f'[email]\nsmtp_host = "127.0.0.1"\n{line}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(config)


def test_email_settings_defaults_follow_security(tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text('[email]\nsmtp_host = "mail.example.org"\nsecurity = "ssl"\n'
                      '[issue]\npaper = "A4"\n', encoding="utf-8")
    settings = load_settings(config)
    assert (settings.email.smtp_port, settings.issue.paper) == (465, "A4")
    config.write_text('[issue]\npaper = "A5"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'paper' must be Letter or A4"):
        load_settings(config)


# --- PDF and Word ------------------------------------------------------------------------------


def test_pdf_holds_every_headline_and_the_footer(issue):
    settings, issue_id = issue
    path = export_issue(settings, issue_id, "pdf")
    assert path == settings.resolve("drafts").resolve() / f"{SEED_STEM}.pdf"
    reader = pypdf.PdfReader(path)
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    for headline in HEADLINES:
        assert headline in text
    assert "To receive \"Alliance Digest\" via email, contact egulum@spfusa.org" in text
    assert "Vol: 2.3" in text and "Date: February 14, 2023" in text
    assert "Image Source: Yonhap News" in text
    # The lead image (served on 127.0.0.1) is embedded.
    assert len(reader.pages[0].images) == 1
    # [issue] paper = "A4": 595 x 842 points.
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    # The links of the paragraphs survive as PDF link annotations.
    uris = {a.get_object()["/A"]["/URI"] for page in reader.pages
            for a in page.get("/Annots", []) if "/A" in a.get_object()}
    assert "https://en.yna.co.kr/view/AEN20230213000300315" in uris


def test_an_image_that_cannot_be_had_is_left_out_and_its_credit_stays(issue, image_server):
    settings, issue_id = issue
    image_server.remove("/lead.png")  # now a 404
    reader = pypdf.PdfReader(export_issue(settings, issue_id, "pdf"))
    assert len(reader.pages[0].images) == 0
    assert "Image Source: Yonhap News" in reader.pages[0].extract_text()
    word = docx.Document(str(export_issue(settings, issue_id, "docx")))
    assert len(word.inline_shapes) == 0
    assert any(p.text == "Image Source: Yonhap News" for p in word.paragraphs)


def test_pdf_is_letter_by_default_and_goes_where_out_says(issue, tmp_path):
    settings, _ = issue
    config = settings.config_path.read_text(encoding="utf-8").replace('paper = "A4"\n', "")
    settings.config_path.write_text(config, encoding="utf-8")
    settings = load_settings(settings.config_path)
    path = export_issue(settings, "2.3", "pdf", tmp_path / "elsewhere")
    assert path.parent == (tmp_path / "elsewhere").resolve()
    box = pypdf.PdfReader(path).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)


def test_docx_has_real_hyperlinks_bold_key_phrases_headings_and_bullets(issue):
    settings, issue_id = issue
    path = export_issue(settings, issue_id, "docx")
    assert path.name == f"{SEED_STEM}.docx"
    word = docx.Document(str(path))
    paras = word.paragraphs
    assert paras[0].text == "US-Japan Alliance Digest" and paras[0].style.name == "Title"
    assert [p.text for p in paras if p.style.name.startswith("Heading")] == [
        "Headlines:", "Details:"]
    bullets = [p for p in paras if p.style.name == "List Bullet"]
    assert [p.text for p in bullets[:5]] == [
        "Dep. Sec. Sherman hosts trilateral meeting with Japan & South Korea",
        "US & Japan conduct first Strategic Dialogue on Democratic Resilience",
        "Allies engage in logistics training to boost interoperability",
        "IPEF delegates meet in New Delhi for new round of negotiations",
        "Japan's Cabinet approves bill to support domestic defense industry"]
    details = bullets[5:]
    assert len(details) == 5
    sherman = details[0]
    assert [(h.text, h.address) for h in sherman.hyperlinks] == [
        ("said", "https://en.yna.co.kr/view/AEN20230213000300315")]
    assert [r.text for r in sherman.runs if r.bold] == ["trilateral meeting"]
    cabinet = details[4]
    assert [r.text for r in cabinet.runs if r.bold] == [
        "support Japan's defense industry and facilitate collaboration with foreign partners"]
    assert [h.text for h in cabinet.hyperlinks] == ["approved", "create"]
    footer = paras[-1]
    assert [h.address for h in footer.hyperlinks] == [
        "https://spfusa.org/", "https://spfusa.org/next-alliance/"]
    # The lead image (served on 127.0.0.1) is in the document.
    assert len(word.inline_shapes) == 1


def test_export_refuses_an_unknown_format_and_an_unwritable_folder(issue, tmp_path):
    settings, issue_id = issue
    with pytest.raises(ValueError, match="--format"):
        export_issue(settings, issue_id, "odt")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot write"):
        export_issue(settings, issue_id, "pdf", blocker / "sub")
    done = digest("issue", "export", "2.3", "--format", "docx", "--out", str(blocker),
                  cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot write" in done.stderr


# --- email ------------------------------------------------------------------------------------


def test_only_an_approved_issue_is_sent_but_a_test_goes_at_any_state(issue, smtp):
    settings, issue_id = issue
    inbox, _ = smtp
    with pytest.raises(IssueNotApproved, match="only an approved issue"):
        send_issue(settings, issue_id)
    assert inbox.messages == []
    result = send_issue(settings, issue_id, test="me@example.org")
    assert result.sent == ["me@example.org"] and not result.final
    ((_, message),) = inbox.messages
    assert message["Subject"] == "[TEST] US-Japan Alliance Digest Vol 2.3 — February 14, 2023"
    db = open_db(settings.store_path)
    assert deliveries(db, issue_id) == [] and find_issue(db, issue_id)["status"] == "draft"
    db.close()


def test_send_records_a_refused_recipient_and_sends_the_rest(issue, smtp):
    settings, issue_id = issue
    inbox, _ = smtp
    inbox.refuse = {"refused@example.org"}
    approve(settings, issue_id)
    result = send_issue(settings, issue_id)
    assert result.sent == ["ann@example.org", "bob@example.org", "cy@example.org",
                           "dee@example.org"]
    assert [r for r, _ in result.failed] == ["refused@example.org"]
    assert result.final and inbox.recipients() == result.sent
    db = open_db(settings.store_path)
    rows = {r["recipient"]: r for r in deliveries(db, issue_id)}
    assert rows["refused@example.org"]["status"] == "failed"
    assert rows["refused@example.org"]["reply"].startswith("550")
    assert rows["ann@example.org"]["status"] == "sent"
    assert "queued as 1" in rows["ann@example.org"]["reply"]
    assert find_issue(db, issue_id)["status"] == "final"
    db.close()
    # The message: multipart/alternative, text then HTML, unsubscribe by mail to reply_to.
    _, message = inbox.messages[0]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["List-Unsubscribe"] == "<mailto:editors@example.org?subject=unsubscribe>"
    assert message["Reply-To"] == "editors@example.org" and message["To"] == "ann@example.org"
    assert message["Subject"] == "US-Japan Alliance Digest Vol 2.3 — February 14, 2023"
    html = message.get_body(("html",)).get_content()
    assert 'style="' in html and "<style" not in html  # CSS inlined
    assert 'href="https://en.yna.co.kr/view/AEN20230213000300315"' in html
    assert 'src="http://127.0.0.1' in html  # the lead image by URL
    text = message.get_body(("plain",)).get_content()
    assert all(h in text for h in HEADLINES) and "<" not in text
    # Sending again: everyone who has it is skipped; the refused address is tried again only.
    inbox.refuse = set()
    again = send_issue(settings, issue_id)
    assert again.sent == ["refused@example.org"] and again.already_sent == 4
    assert sorted(inbox.recipients()) == sorted(SUBSCRIBERS)


def test_a_dropped_connection_mid_list_then_the_rerun_sends_each_once(issue, smtp):
    settings, issue_id = issue
    inbox, _ = smtp
    approve(settings, issue_id)
    inbox.drop_at = 2  # the third message's DATA
    result = send_issue(settings, issue_id)
    assert result.sent == ["ann@example.org", "bob@example.org"]
    assert [r for r, _ in result.failed] == ["refused@example.org"]
    assert "connection lost" in result.failed[0][1]
    assert result.not_tried == ["cy@example.org", "dee@example.org"] and result.stopped
    assert result.final  # two subscribers have it: it is sent and frozen
    db = open_db(settings.store_path)
    assert {r["recipient"]: r["status"] for r in deliveries(db, issue_id)} == {
        "ann@example.org": "sent", "bob@example.org": "sent", "refused@example.org": "failed"}
    db.close()
    rerun = send_issue(settings, issue_id)
    assert rerun.sent == ["refused@example.org", "cy@example.org", "dee@example.org"]
    assert rerun.already_sent == 2
    # Every subscriber got exactly one copy.
    assert sorted(inbox.recipients()) == sorted(SUBSCRIBERS)
    assert send_issue(settings, issue_id).sent == []


def test_send_cli_reports_and_deliveries_lists(issue, smtp, tmp_path):
    settings, issue_id = issue
    inbox, _ = smtp
    inbox.refuse = {"refused@example.org"}
    approve(settings, issue_id)
    done = digest("issue", "send", str(issue_id), cwd=tmp_path)
    assert "4 sent, 1 failed" in done.stdout and "the issue is final" in done.stdout
    listed = digest("issue", "deliveries", "2.3", "--json", cwd=tmp_path)
    rows = __import__("json").loads(listed.stdout)
    assert sorted((r["recipient"], r["status"]) for r in rows) == sorted(
        [(r, "failed" if r.startswith("refused") else "sent") for r in SUBSCRIBERS])


def test_bad_smtp_settings_and_recipients_are_one_line_and_send_nothing(issue, smtp, tmp_path,
                                                                         monkeypatch):
    settings, issue_id = issue
    inbox, port = smtp
    approve(settings, issue_id)

    def reload(**kwargs: Any) -> Settings:
        return load_settings(write_config(tmp_path, kwargs.pop("port", port), **kwargs))

    with pytest.raises(SMTPUnavailable, match=r"cannot reach SMTP server 127\.0\.0\.1"):
        send_issue(reload(port=free_port()), issue_id)
    with pytest.raises(RecipientError, match="no recipients"):
        send_issue(reload(recipients=[]), issue_id)
    with pytest.raises(RecipientError, match="'not-an-address' is not an email address"):
        send_issue(reload(recipients=["ann@example.org", "not-an-address"]), issue_id)
    listed = tmp_path / "subscribers.txt"
    listed.write_text("# subscribers\nann@example.org\n\nbob@@example.org\n", encoding="utf-8")
    with pytest.raises(RecipientError, match=r"subscribers\.txt line 4"):
        send_issue(reload(recipients="subscribers.txt"), issue_id)
    config = write_config(tmp_path, port)
    config.write_text(config.read_text(encoding="utf-8").replace(
        'smtp_host = "127.0.0.1"', 'smtp_host = "mail.example.org"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="allowed only for a loopback host"):
        load_settings(config)
    assert inbox.messages == []
    db = open_db(settings.store_path)
    assert deliveries(db, issue_id) == [] and find_issue(db, issue_id)["status"] == "approved"
    db.close()
    # The CLI says it in one line.
    write_config(tmp_path, port, recipients=[])
    done = digest("issue", "send", "2.3", cwd=tmp_path, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "no recipients" in done.stderr


def test_bad_credentials_are_refused_in_one_line(tmp_path, image_server, monkeypatch):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        settings = load_settings(write_config(tmp_path, port))
        db = open_db(settings.store_path)
        add_items(db, [dict(SEED_ITEMS[2])])
        db.close()
        issue_id = draft_issue(settings, day=SEED_DATE, volume=2, number=3).issue_id
        approve(settings, issue_id)
        monkeypatch.setenv("DIGEST_SMTP_USER", "digest")
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong-password")
        with pytest.raises(SMTPAuthFailed, match="refused the credentials"):
            send_issue(settings, issue_id)
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "right-password")
        assert len(send_issue(settings, issue_id).sent) == len(SUBSCRIBERS)
    finally:
        controller.stop()


# --- the public archive -----------------------------------------------------------------------


def test_publish_writes_sent_issues_with_a_feed_and_changes_only_what_changed(issue, smtp,
                                                                              tmp_path):
    settings, issue_id = issue
    site = tmp_path / "site"
    empty = publish_site(settings, site)
    assert empty.issues == []  # a draft is not published
    assert "No issue has been sent yet" in (site / "index.html").read_text(encoding="utf-8")
    approve(settings, issue_id)
    send_issue(settings, issue_id)
    first = publish_site(settings, site)
    assert first.issues == ["2.3"]
    page = site / "issues" / f"{SEED_STEM}.html"
    pdf = site / "issues" / f"{SEED_STEM}.pdf"
    assert page.is_file() and pdf.read_bytes().startswith(b"%PDF")
    index = (site / "index.html").read_text(encoding="utf-8")
    assert f'href="issues/{SEED_STEM}.html"' in index and 'href="feed.xml"' in index
    assert "http://" not in index.split("<body>")[1]  # relative links only
    feed = feedparser.parse((site / "feed.xml").read_bytes())
    assert not feed.bozo and feed.feed.title == "US-Japan Alliance Digest"
    assert [e.title for e in feed.entries] == [
        "US-Japan Alliance Digest Vol 2.3 — February 14, 2023"]
    assert feed.entries[0].link == f"issues/{SEED_STEM}.html"
    assert HEADLINES[0] in feed.entries[0].summary
    stamps = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    again = publish_site(settings, site)
    assert again.written == [] and again.removed == []
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()} == stamps


def test_publish_cli_and_config(issue, tmp_path):
    settings, _ = issue
    done = digest("publish", cwd=tmp_path, check=False)
    assert done.returncode == 1 and "[publish] out_dir" in done.stderr
    done = digest("publish", "--out", "site", cwd=tmp_path)
    assert (tmp_path / "site" / "feed.xml").is_file() and "0 issues" in done.stdout
    db = open_db(settings.store_path)
    document = issue_document(db, settings, find_issue(db, "2.3"))
    db.close()
    assert document.paragraphs[0].headline == HEADLINES[1]


# --- the desk ---------------------------------------------------------------------------------


def test_only_publishers_may_send(db):
    add_user(db, "pat", "a-long-password", role="publisher")
    add_user(db, "ed", "a-long-password")
    assert is_publisher(db, "pat") and not is_publisher(db, "ed")
    assert not is_publisher(db, "nobody")


def desk_login(client: Any, user: str) -> str:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"username": user, "password": "a-long-password",
                                    "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    return re.search(r'<meta name="csrf-token" content="([^"]+)"',
                     client.get("/").text).group(1)


def test_desk_downloads_tests_and_sends_an_issue(issue, smtp):
    from alliance_digest.editor.app import create_app
    from starlette.testclient import TestClient

    settings, issue_id = issue
    inbox, _ = smtp
    db = open_db(settings.store_path)
    add_user(db, "pat", "a-long-password", role="publisher")
    db.close()
    with TestClient(create_app(settings)) as client:
        csrf = desk_login(client, "pat")
        page = client.get("/issue").text
        assert f'href="/issues/{issue_id}/export.pdf"' in page
        assert "sendable once approved" in page
        pdf = client.get(f"/issues/{issue_id}/export.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert f'filename="{SEED_STEM}.pdf"' in pdf.headers["content-disposition"]
        word = client.get(f"/issues/{issue_id}/export.docx")
        assert len(docx.Document(io.BytesIO(word.content)).paragraphs) > 10
        assert client.get(f"/issues/{issue_id}/export.odt").status_code == 400
        # A test to oneself at any state; sending the draft itself is refused (409).
        r = client.post(f"/issues/{issue_id}/send-test",
                        data={"csrf_token": csrf, "address": "pat@example.org"})
        assert r.status_code == 200 and "A test of Vol 2.3 was sent" in r.text
        assert inbox.recipients() == ["pat@example.org"]
        r = client.post(f"/issues/{issue_id}/send", data={"csrf_token": csrf, "confirm": "1"})
        assert r.status_code == 409 and "only an approved issue" in r.text
        approve(settings, issue_id)
        assert "Send issue" in client.get("/issue").text
        r = client.post(f"/issues/{issue_id}/send", data={"csrf_token": csrf})
        assert r.status_code == 400  # not confirmed
        r = client.post(f"/issues/{issue_id}/send", data={"csrf_token": csrf, "confirm": "1"})
        assert r.status_code == 200 and "Vol 2.3: 5 sent, 0 failed" in r.text
        assert sorted(inbox.recipients()) == sorted(["pat@example.org", *SUBSCRIBERS])
        # Without the CSRF token, nothing is sent.
        r = client.post(f"/issues/{issue_id}/send-test", data={"address": "x@example.org"})
        assert r.status_code == 403


def test_desk_refuses_sending_to_an_editor(issue, smtp):
    from alliance_digest.editor.app import create_app
    from starlette.testclient import TestClient

    settings, issue_id = issue
    inbox, _ = smtp
    db = open_db(settings.store_path)
    add_user(db, "ed", "a-long-password")  # an editor: the default role
    db.close()
    approve(settings, issue_id)
    with TestClient(create_app(settings)) as client:
        csrf = desk_login(client, "ed")
        page = client.get("/issue").text
        assert "export.docx" in page and "Send issue" not in page
        for path, data in (("send-test", {"address": "ed@example.org"}),
                           ("send", {"confirm": "1"})):
            r = client.post(f"/issues/{issue_id}/{path}", data={"csrf_token": csrf, **data})
            assert r.status_code == 403
    assert inbox.messages == []


def test_stale_exports_go_with_the_draft_files_a_redraft_removed(tmp_path):
    from alliance_digest.pipeline.export import remove_stale_exports

    old = tmp_path / "digest-vol-2-3_2023-02-14.md"
    for suffix in (".pdf", ".docx", ".txt"):
        old.with_suffix(suffix).write_bytes(b"x")
    keep = tmp_path / "digest-vol-2-4_2023-02-14.pdf"
    keep.write_bytes(b"x")
    gone = remove_stale_exports([old, old.with_suffix(".html")])
    assert sorted(p.suffix for p in gone) == [".docx", ".pdf"]
    assert keep.is_file() and old.with_suffix(".txt").is_file()


def test_an_entry_written_after_the_draft_and_approved_is_in_what_is_sent(issue, smtp):
    """Approval checks the issue as a redraft would write it (the desk's Issue page shows
    every open entry); what it approved is what the exports and the email then hold, not
    the entries the draft recorded before."""
    settings, issue_id = issue
    db = open_db(settings.store_path)
    add_items(db, [{"title": "Allies open a new logistics hub", "source": "Kyodo",
                    "published_at": "2023-02-13T08:00:00Z", "section": "Regional",
                    "headline": "New logistics hub",
                    "blurb": "The allies opened a logistics hub in Sasebo."}])
    db.close()
    approve(settings, issue_id)
    db = open_db(settings.store_path)
    try:
        headlines = [p.headline for p in issue_document(db, settings, find_issue(db, issue_id))
                     .paragraphs]
    finally:
        db.close()
    assert "New logistics hub" in headlines and set(HEADLINES) <= set(headlines)
    send_issue(settings, issue_id)
    body = smtp[0].messages[0][1].get_body(("plain",)).get_content()
    assert "New logistics hub" in body and "logistics hub in Sasebo" in body
