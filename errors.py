"""The project's one error tree, modelled on lemon24/reader's `exceptions.py`.

    DigestError
    ├── ConfigError (ValueError)        a config or registry file holds a wrong value
    ├── InputError (ValueError)         a value a user typed cannot be taken (`field`)
    │   ├── EditError                   an item change (unknown field, bad value)
    │   ├── UserError                   a bad user name or password, a duplicate account
    │   │   └── UnknownUser (NotFoundError)
    │   ├── SearchQueryError            a search the parser cannot read
    │   ├── SearchTooBroad              a search ran past its time budget
    │   ├── IssueNumberError            a volume/number this issue cannot take
    │   └── RecipientError              an empty recipient list or a malformed address
    ├── NotFoundError (LookupError)     a named source, item or issue does not exist
    ├── ConflictError                   the change is based on something that moved on
    │   ├── StaleSave                   a save based on a version saved over since (who, when)
    │   │   └── StaleEdit, StaleEntry   the item / the issue entry
    │   ├── FieldConflict               fields someone else changed since the form was loaded
    │   ├── IssueFinalError             a final (sent) issue is frozen
    │   ├── CollectRunning              another collect run holds the database's collect lock
    │   └── IssueStateError             a review step the issue's state does not allow
    │       ├── NotReadyError           approval refused: paragraphs still need writing
    │       ├── OpenComments            approval asks to confirm: comments are open
    │       └── IssueNotApproved        only an approved issue can be sent
    ├── Forbidden                       the signed-in role may not do this (desk: 403)
    ├── ExportError                     an export (PDF, Word, the archive) cannot be written
    ├── DeliveryError                   email could not be sent
    │   ├── SMTPUnavailable             the SMTP server cannot be reached or dropped us
    │   └── SMTPAuthFailed              the server refused the credentials
    ├── StoreError                      the database cannot be opened, migrated or written
    │   ├── DatabaseBusy                another process held the write lock past the timeout
    │   └── DatabaseDamaged             SQLite found the file malformed (see `digest check`)
    ├── TemplateRenderError             a digest template failed to render (`template`)
    └── SourceError                     one source could not be fetched or parsed this time
        ├── FetchError                  the HTTP exchange failed
        │   ├── FetchTimeout, ConnectionFailed, TooManyRedirects, BodyTooLarge
        │   ├── PrivateAddress          add-by-URL refused a non-public address (SSRF guard)
        │   └── HTTPStatusError         Refused, HTTPNotFound, Gone, RateLimited, ServerError
        └── ParseError                  the body holds no usable items
            └── EmptyBody, NotAFeed, BinaryBody, InvalidFeed

Callers catch the base class. Invalid-input errors also subclass `ValueError` and lookups
`LookupError`, so generic code keeps working. `str(error)` is one line that names the cause;
the structured attributes (source, URL, HTTP status, field) are there for code that needs
them. Each front door maps the tree in one place: the CLI's `main` prints the line and exits
1; the desk's exception handler answers 400 (input), 403 (forbidden), 404 (not found), 409
(conflict) or 500.

A source failure is stored by its `kind` (`fetches.error_kind`, `sources.last_error_kind`)
and crosses the parse process pool as a `SourceFailure` (kind + message): `kind` is a fixed
value of `SourceErrorKind`, not the class name, so renaming a class changes nothing stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class DigestError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(DigestError, ValueError):
    """A configuration or registry file is missing, unreadable or holds a wrong value."""


class InputError(DigestError, ValueError):
    """A value given by a user (CLI argument, desk form, API body) cannot be taken."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        #: The field or argument at fault, so a form can mark it; None if none.
        self.field = field


class EditError(InputError):
    """A change names an unknown field or holds a value the field cannot take."""


class UserError(InputError):
    """A bad user name or password, a duplicate account, or an unknown one."""


class NotFoundError(DigestError, LookupError):
    """A named thing (source, item, issue, user) does not exist."""


class UnknownUser(UserError, NotFoundError):
    """No account has this name."""


class SearchQueryError(InputError):
    """The search text cannot be understood (empty, unclosed quote, dangling OR, ...)."""


class SearchTooBroad(InputError):
    """A search or listing ran past its time budget (`[editor] search_budget_seconds`)."""

    def __init__(self, message: str = "search too broad, add a term or a date range") -> None:
        super().__init__(message, field="q")


class IssueNumberError(InputError):
    """A volume/number cannot be given to this issue (taken by another date, or out of range)."""


class ConflictError(DigestError):
    """A change was based on a state that has moved on since; nothing was changed."""


class StaleSave(ConflictError):
    """A save based on a version someone else has saved over since; names who and when.

    `describe(when)` is the message with the time shown by `when` (the desk shows it in its
    zone, labelled); str() shows it as stored (UTC).
    """

    kind = "item"

    def __init__(self, object_id: int, *, expected_version: int, version: int,
                 edited_by: str | None, edited_at: str | None) -> None:
        self.expected_version = expected_version
        self.version = version
        self.edited_by = edited_by
        self.edited_at = edited_at
        self._id = object_id
        super().__init__(self.describe())

    def describe(self, when: Callable[[str], str] | None = None) -> str:
        shown = (when or str)(self.edited_at) if self.edited_at else ""
        return (f"{self.kind} {self._id} was changed by {self.edited_by or 'someone'}"
                f"{f' at {shown}' if shown else ''} after you opened it "
                f"(version {self.version}, yours {self.expected_version}); reload it and "
                "redo your change")


class StaleEdit(StaleSave):
    """The item was saved by someone else since the page this save came from was loaded."""

    def __init__(self, item_id: int, **kwargs: Any) -> None:
        super().__init__(item_id, **kwargs)
        self.item_id = item_id


class StaleEntry(StaleSave):
    """The issue entry was saved by someone else since the page this save came from was loaded."""

    kind = "entry"

    def __init__(self, entry_id: int, **kwargs: Any) -> None:
        super().__init__(entry_id, **kwargs)
        self.entry_id = entry_id


class IssueFinalError(ConflictError):
    """A final issue was asked to change (redrafted); its items and files are frozen."""


class FieldConflict(ConflictError):
    """Fields the editor changed were also changed by someone else since the form was loaded.

    `fields` maps each such field to (theirs, yours); nothing was written.
    """

    def __init__(self, item_id: int, fields: dict[str, tuple[str | None, str | None]], *,
                 edited_by: str | None, kind: str = "item") -> None:
        names = ", ".join(fields)
        super().__init__(f"{kind} {item_id}: {names} changed by {edited_by or 'someone'} since "
                         "you opened it; both versions are shown")
        self.item_id = item_id
        self.fields = fields
        self.edited_by = edited_by


class IssueStateError(ConflictError):
    """A review step the issue's state does not allow (approve a draft, submit a final)."""


class NotReadyError(IssueStateError):
    """Approval refused: `entries` name the paragraphs still unwritten or without headline."""

    def __init__(self, message: str, *, entries: list[str]) -> None:
        super().__init__(message)
        self.entries = entries


class OpenComments(IssueStateError):
    """Approval with open comments must be confirmed; `count` says how many are open."""

    def __init__(self, message: str, *, count: int) -> None:
        super().__init__(message)
        self.count = count


class Forbidden(DigestError):
    """The signed-in account's role may not take this step (the desk answers 403)."""


class RecipientError(InputError):
    """No recipients, or an address that is not one (the message names it)."""


class IssueNotApproved(IssueStateError):
    """An issue that is not approved was asked to be sent to its subscribers."""


class ExportError(DigestError):
    """A PDF, a Word file or the public archive cannot be written (folder, disk, renderer)."""


class DeliveryError(DigestError):
    """Email could not be sent; deliveries already made are recorded."""


class SMTPUnavailable(DeliveryError):
    """The SMTP server cannot be reached, refused the connection or dropped it."""


class SMTPAuthFailed(DeliveryError):
    """The SMTP server refused DIGEST_SMTP_USER / DIGEST_SMTP_PASSWORD (or needs them)."""


class StoreError(DigestError):
    """The database cannot be opened, migrated or written."""


class DatabaseBusy(StoreError):
    """Another process kept the database's write lock longer than the busy timeout."""


class DatabaseDamaged(StoreError):
    """SQLite found the database file malformed: `digest check` says where; restore a backup."""


class CollectRunning(ConflictError):
    """Another collect run (this machine, same database) is running: one writer at a time."""

    def __init__(self, pid: int | None, since: str | None) -> None:
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"another collect is running ({who}, since {since or 'unknown'})")
        #: The running collect's process id and when it started (UTC), as its lock file says.
        self.pid = pid
        self.since = since


class ModelError(StoreError):
    """A stored relevance model that cannot be used: damaged, or trained by another version.

    Triage never fails on it: it warns and scores with the rules alone.
    """


class TemplateRenderError(DigestError):
    """A digest template (usually a user's own) failed to render; the message names it."""

    def __init__(self, message: str, *, template: str | None = None) -> None:
        super().__init__(message)
        #: The template's file name, when known.
        self.template = template


# --- sources -----------------------------------------------------------------------------------


class SourceErrorKind(StrEnum):
    """What went wrong with a source, as stored in `fetches.error_kind` and on the source.

    The values are data (other tools read them): they never change when a class is renamed.
    """

    FETCH = "FetchError"
    TIMEOUT = "FetchTimeout"
    CONNECTION = "ConnectionFailed"
    HTTP_STATUS = "HTTPStatusError"
    REFUSED = "Refused"
    NOT_FOUND = "NotFound"
    GONE = "Gone"
    RATE_LIMITED = "RateLimited"
    SERVER = "ServerError"
    REDIRECTS = "TooManyRedirects"
    TOO_LARGE = "BodyTooLarge"
    PRIVATE_ADDRESS = "PrivateAddress"
    PARSE = "ParseError"
    EMPTY = "EmptyBody"
    NOT_A_FEED = "NotAFeed"
    BINARY = "BinaryBody"
    INVALID = "InvalidFeed"

    @property
    def error_class(self) -> type[SourceError]:
        """The class that raises this kind."""
        return _SOURCE_ERRORS[self]

    @property
    def is_parse(self) -> bool:
        """True for failures of a body that did arrive (its caching validators are kept)."""
        return issubclass(self.error_class, ParseError)


class SourceError(DigestError):
    """A source could not be fetched or parsed this time."""

    #: Stored as the failure's kind; each subclass names its own.
    kind: ClassVar[SourceErrorKind]
    #: True when retrying later cannot help (e.g. 410 Gone); the source gets disabled.
    permanent: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, url: str | None = None,
                 source: str | None = None) -> None:
        super().__init__(message)
        #: The HTTP status the server answered, when there was one.
        self.status = status
        #: Seconds the server asked us to wait (Retry-After), when it did.
        self.retry_after = retry_after
        #: The URL that failed, when known.
        self.url = url
        #: The source's name, when known.
        self.source = source

    def failure(self) -> SourceFailure:
        """This error as plain data that crosses a process boundary."""
        return SourceFailure(self.kind, str(self))


class FetchError(SourceError):
    """The HTTP exchange failed."""

    kind = SourceErrorKind.FETCH


class FetchTimeout(FetchError):
    """Connect, read or the whole-source deadline ran out."""

    kind = SourceErrorKind.TIMEOUT


class ConnectionFailed(FetchError):
    """DNS, refused connection, TLS or a dropped connection."""

    kind = SourceErrorKind.CONNECTION


class HTTPStatusError(FetchError):
    """The server answered with an error status."""

    kind = SourceErrorKind.HTTP_STATUS


class Refused(HTTPStatusError):
    """401/403: the server refused us (bot walls, geo blocks), not a parse error."""

    kind = SourceErrorKind.REFUSED


class HTTPNotFound(HTTPStatusError):
    """404 (stored as kind `NotFound`)."""

    kind = SourceErrorKind.NOT_FOUND


class Gone(HTTPStatusError):
    """410 Gone: the source is disabled."""

    kind = SourceErrorKind.GONE
    permanent = True


class RateLimited(HTTPStatusError):
    """429, or 503 with Retry-After: come back later."""

    kind = SourceErrorKind.RATE_LIMITED


class ServerError(HTTPStatusError):
    """5xx."""

    kind = SourceErrorKind.SERVER


class TooManyRedirects(FetchError):
    """More redirects than allowed, or a redirect loop."""

    kind = SourceErrorKind.REDIRECTS


class BodyTooLarge(FetchError):
    """The body (after decompression) went past the configured cap."""

    kind = SourceErrorKind.TOO_LARGE


class PrivateAddress(FetchError):
    """The host is (or resolved to, or redirected to) a loopback, private, link-local,
    multicast or reserved address, which an address-guarded fetch refuses to connect to."""

    kind = SourceErrorKind.PRIVATE_ADDRESS


class ParseError(SourceError):
    """The body arrived but holds no usable items."""

    kind = SourceErrorKind.PARSE


class EmptyBody(ParseError):
    """A 200 with nothing in it."""

    kind = SourceErrorKind.EMPTY


class NotAFeed(ParseError):
    """HTML (or something else) where a feed, JSON or listing page was expected."""

    kind = SourceErrorKind.NOT_A_FEED


class BinaryBody(ParseError):
    """Bytes that are not text at all."""

    kind = SourceErrorKind.BINARY


class InvalidFeed(ParseError):
    """Truncated or malformed XML/JSON from which no entry could be read."""

    kind = SourceErrorKind.INVALID


_SOURCE_ERRORS: dict[SourceErrorKind, type[SourceError]] = {
    cls.kind: cls for cls in (
        FetchError, FetchTimeout, ConnectionFailed, HTTPStatusError, Refused, HTTPNotFound,
        Gone, RateLimited, ServerError, TooManyRedirects, BodyTooLarge, PrivateAddress,
        ParseError, EmptyBody, NotAFeed, BinaryBody, InvalidFeed,
    )
}


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """A source error as data: what a parse worker returns instead of raising across processes."""

    kind: SourceErrorKind
    message: str

    def error(self) -> SourceError:
        """The error this failure stands for."""
        return self.kind.error_class(self.message)
