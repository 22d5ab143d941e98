"""Sending an issue by email to its subscribers, each delivery recorded.

    gate        an approved issue (or a final one being resumed); --test: any state
    recipients  [email] recipients (a list, or a file one address a line), checked, deduplicated;
                those the `deliveries` table says already have it are skipped
    message     multipart/alternative: the plain-text twin and the email HTML (CSS inlined,
                absolute links, the lead image by URL), List-Unsubscribe: mailto reply_to
    SMTP        one connection ([email] security: starttls, ssl, or none on loopback), login
                with DIGEST_SMTP_USER / DIGEST_SMTP_PASSWORD when set; then per recipient one
                transaction (MAIL, RCPT, DATA), its outcome committed before the next
    final       once anyone has the issue it is final (pipeline.send.mark_final)

A refused recipient is recorded `failed` and the others still get theirs. A dropped
connection records the recipient in flight as failed and stops; `send` again sends only to
those without a `sent` row, so nobody gets an issue twice. (The one gap SMTP leaves: a
process killed between the server's "250" and the commit of that row — microseconds — would
send that one recipient the issue again on the next run.)
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import sqlite_utils

from ..errors import (
    ConfigError,
    DeliveryError,
    IssueNotApproved,
    RecipientError,
    SMTPAuthFailed,
    SMTPUnavailable,
)
from ..settings import EmailSettings, Settings
from ..store import deliveries as deliveries_store
from ..store.db import open_db
from ..store.issues import find_issue
from ..templates.formats import IssueDocument, render_email
from ..templates.render import long_date
from . import review
from .export import issue_document

#: States from which an issue may go to its subscribers: approved, or final (a resumed send).
SENDABLE = ("approved", "final")
USER_ENV, PASSWORD_ENV = "DIGEST_SMTP_USER", "DIGEST_SMTP_PASSWORD"
# Deliberately plain: one @, no spaces or angle brackets, a dotted domain (or localhost).
_ADDRESS_RE = re.compile(r"[^@\s<>()\[\],;:\"]+@(?:(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+|localhost)")


@dataclass
class SendResult:
    """What one `send` run did."""

    issue_id: int
    vol_num: str
    test: bool
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Recipients skipped because an earlier run already sent them the issue.
    already_sent: int = 0
    #: Recipients never tried because the connection was lost first.
    not_tried: list[str] = field(default_factory=list)
    #: The issue is final after this run.
    final: bool = False
    #: Why the run stopped early (a dropped connection), else "".
    stopped: str = ""

    def summary(self) -> dict[str, Any]:
        return {"issue_id": self.issue_id, "vol_num": self.vol_num, "test": self.test,
                "sent": self.sent, "failed": [{"recipient": r, "reply": m}
                                              for r, m in self.failed],
                "already_sent": self.already_sent, "not_tried": self.not_tried,
                "final": self.final, "stopped": self.stopped}


# --- who may send, and marking sent ------------------------------------------------------------


def is_publisher(db: sqlite_utils.Database, user: str) -> bool:
    """May this desk account send issues? Its role may (pipeline.review: publishers only)."""
    row = db.execute("SELECT role FROM users WHERE name = ?", [user]).fetchone()
    return row is not None and review.may(row[0], "send")


def mark_final(db: sqlite_utils.Database, issue_id: int, *, actor: str) -> bool:
    """Mark a sent issue final (sent and frozen), recorded in its review trail as `actor`'s
    finalize; True if it changed. Sending checked the state (approved, or final to resume)."""
    if find_issue(db, issue_id)["status"] == "final":
        return False
    _, changed = review.finalize(db, issue_id, actor=actor, force=True)
    return changed


# --- recipients and the message ----------------------------------------------------------------


def check_address(value: str, where: str) -> str:
    """A bare address from `value` ("Name <a@b.org>" allowed), or RecipientError naming it."""
    _, address = parseaddr(value.strip())
    if not address or not _ADDRESS_RE.fullmatch(address):
        raise RecipientError(f"{where}: {value.strip()!r} is not an email address",
                             field="recipients")
    return address


def recipients(settings: EmailSettings) -> list[str]:
    """The subscriber list, checked and deduplicated (case-insensitively), in its order."""
    if settings.recipients_file is not None:
        path = settings.recipients_file
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ConfigError(f"[email] recipients: cannot read {path}: {e.strerror}") from None
        entries = [(f"{path.name} line {n}", line) for n, line in enumerate(lines, start=1)
                   if line.strip() and not line.lstrip().startswith("#")]
    else:
        entries = [(f"[email] recipients #{n}", r)
                   for n, r in enumerate(settings.recipients, start=1)]
    seen: dict[str, str] = {}
    for where, value in entries:
        address = check_address(value, where)
        seen.setdefault(address.lower(), address)
    if not seen:
        where = settings.recipients_file or "[email] recipients"
        raise RecipientError(f"{where}: no recipients to send to", field="recipients")
    return list(seen.values())


def subject(settings: EmailSettings, doc: IssueDocument, *, test: bool) -> str:
    text = settings.subject.format(title=doc.title, volume=doc.volume, number=doc.number,
                                   date=long_date(doc.date))
    return f"[TEST] {text}" if test else text


def build_message(doc: IssueDocument, settings: Settings, *, test: bool) -> EmailMessage:
    """The message without its To: multipart/alternative, text first, then the email HTML."""
    email = settings.email
    if not email.sender:
        raise ConfigError("[email] from: not set (the address the digest is sent from)")
    sender = check_address(email.sender, "[email] from")
    reply_to = check_address(email.reply_to, "[email] reply_to") if email.reply_to else sender
    rendered = render_email(doc, settings)
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["Subject"] = subject(email, doc, test=test)
    msg["From"] = email.sender
    msg["Reply-To"] = email.reply_to or email.sender
    msg["List-Unsubscribe"] = f"<mailto:{reply_to}?subject=unsubscribe>"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def for_recipient(msg: EmailMessage, recipient: str, sender: str) -> bytes:
    """The message addressed to one recipient, with its own Date and Message-ID."""
    for name in ("To", "Date", "Message-ID"):
        del msg[name]
    msg["To"] = recipient
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    return msg.as_bytes()


# --- SMTP --------------------------------------------------------------------------------------


def connect(settings: EmailSettings) -> smtplib.SMTP:
    """An open, authenticated SMTP session, or one clear error."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    user, password = os.environ.get(USER_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    if bool(user) != bool(password):
        raise SMTPAuthFailed(f"set both {USER_ENV} and {PASSWORD_ENV}, or neither")
    try:
        if settings.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                                  timeout=settings.timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout)
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if user:
            smtp.login(user, password)
    except smtplib.SMTPAuthenticationError as e:
        raise SMTPAuthFailed(f"SMTP server {where} refused the credentials in {USER_ENV}/"
                             f"{PASSWORD_ENV}: {_reply(e.smtp_code, e.smtp_error)}") from None
    except smtplib.SMTPNotSupportedError as e:
        raise DeliveryError(f"SMTP server {where}: {e} (check [email] security)") from None
    except (smtplib.SMTPException, OSError) as e:
        raise SMTPUnavailable(f"cannot reach SMTP server {where}: {_why(e)}") from None
    return smtp


def _reply(code: int | None, message: bytes | str | None) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message or ""
    return " ".join(f"{code or ''} {text}".split())


def _why(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return _reply(error.smtp_code, error.smtp_error)
    return str(error) or type(error).__name__


def deliver(smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> tuple[bool, str]:
    """One SMTP transaction: (accepted, the server's reply). A lost connection raises."""
    code, resp = smtp.mail(sender)
    if code != 250:
        smtp.rset()
        if code == 530:
            raise SMTPAuthFailed(f"the SMTP server requires authentication: set {USER_ENV} "
                                 f"and {PASSWORD_ENV} ({_reply(code, resp)})")
        raise DeliveryError(f"the SMTP server refused the sender {sender}: {_reply(code, resp)}")
    code, resp = smtp.rcpt(recipient)
    if code not in (250, 251):
        smtp.rset()
        return False, _reply(code, resp)
    try:
        code, resp = smtp.data(data)
    except smtplib.SMTPDataError as e:
        smtp.rset()
        return False, _reply(e.smtp_code, e.smtp_error)
    return True, _reply(code, resp)


def send_issue(settings: Settings, ref: str | int, *, test: str | None = None,
               on_delivery: Callable[[str, bool, str], None] | None = None,
               actor: str = "digest") -> SendResult:
    """Send issue `ref` (id or VOL.NUM) to its subscribers, or with `test` to one address;
    `actor` is who sent it (the desk's account, or the CLI's OS user) for the trail."""
    db = open_db(settings.store_path)
    try:
        issue = find_issue(db, ref)
        vol_num = f"{issue['volume']}.{issue['number']}"
        if test is None and issue["status"] not in SENDABLE:
            raise IssueNotApproved(
                f"issue {vol_num} ({issue['date']}) is {issue['status']}: only an approved "
                "issue can be sent (send a test with --test ADDRESS)")
        targets = [check_address(test, "--test")] if test else recipients(settings.email)
        done = set() if test else deliveries_store.sent_to(db, int(issue["id"]))
        pending = [r for r in targets if r.lower() not in done]
        result = SendResult(issue_id=int(issue["id"]), vol_num=vol_num, test=bool(test),
                            already_sent=len(targets) - len(pending),
                            final=issue["status"] == "final")
        if not pending:
            return result
        msg = build_message(issue_document(db, settings, issue), settings, test=bool(test))
        sender = check_address(settings.email.sender, "[email] from")
        try:
            _send_all(db, settings.email, result, msg, sender, pending, record=not test,
                      on_delivery=on_delivery)
        finally:
            # Whatever stopped the run, an issue anyone has received is sent: freeze it.
            if not test and deliveries_store.sent_to(db, result.issue_id):
                mark_final(db, result.issue_id, actor=actor)
                result.final = True
        return result
    finally:
        db.close()


def _send_all(db: sqlite_utils.Database, email: EmailSettings, result: SendResult,
              msg: EmailMessage, sender: str, pending: Sequence[str], *, record: bool,
              on_delivery: Callable[[str, bool, str], None] | None) -> None:
    smtp = connect(email)
    try:
        for index, recipient in enumerate(pending):
            try:
                ok, reply = deliver(smtp, sender, recipient, for_recipient(msg, recipient, sender))
            except (smtplib.SMTPServerDisconnected, OSError) as e:
                reply = f"connection lost: {_why(e)}"
                _note(db, result, recipient, False, reply, record, on_delivery)
                result.not_tried = list(pending[index + 1:])
                result.stopped = (f"the SMTP server {email.smtp_host}:{email.smtp_port} dropped "
                                  f"the connection ({_why(e)})")
                return
            except smtplib.SMTPResponseException as e:
                # A reply the transaction cannot go on from (a 421 closing, say).
                _note(db, result, recipient, False, _why(e), record, on_delivery)
                result.not_tried = list(pending[index + 1:])
                result.stopped = f"the SMTP server stopped the run: {_why(e)}"
                return
            _note(db, result, recipient, ok, reply, record, on_delivery)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _note(db: sqlite_utils.Database, result: SendResult, recipient: str, ok: bool, reply: str,
          record: bool, on_delivery: Callable[[str, bool, str], None] | None) -> None:
    if record:
        deliveries_store.record(db, result.issue_id, recipient, "sent" if ok else "failed",
                                reply)
    if ok:
        result.sent.append(recipient)
    else:
        result.failed.append((recipient, reply))
    if on_delivery:
        on_delivery(recipient, ok, reply)


def issue_deliveries(settings: Settings, ref: str | int) -> tuple[dict[str, Any],
                                                                   list[dict[str, Any]]]:
    """An issue and every delivery recorded for it."""
    db = open_db(settings.store_path)
    try:
        issue = find_issue(db, ref)
        return issue, deliveries_store.deliveries(db, int(issue["id"]))
    finally:
        db.close()

