"""Per-source failures, modelled on lemon24/reader's error tree.

`SourceError` is what a fetch or a parse raises; the collect run catches it, records
`str(error)` as the source's `last_error` and `kind` as its class name, and goes on.
"""

from __future__ import annotations

from ..errors import DigestError


class SourceError(DigestError):
    """A source could not be fetched or parsed this time."""

    #: True when retrying later cannot help (e.g. 410 Gone); the source gets disabled.
    permanent: bool = False

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        #: The HTTP status the server answered, when there was one.
        self.status = status
        #: Seconds the server asked us to wait (Retry-After), when it did.
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        """Short machine-readable name of the failure, stored in `fetches.error_kind`."""
        return type(self).__name__


class FetchError(SourceError):
    """The HTTP exchange failed."""


class FetchTimeout(FetchError):
    """Connect, read or the whole-source deadline ran out."""


class ConnectionFailed(FetchError):
    """DNS, refused connection, TLS or a dropped connection."""


class HTTPStatusError(FetchError):
    """The server answered with an error status."""


class Refused(HTTPStatusError):
    """401/403: the server refused us (bot walls, geo blocks), not a parse error."""


class NotFound(HTTPStatusError):
    """404."""


class Gone(HTTPStatusError):
    """410 Gone: the source is disabled."""

    permanent = True


class RateLimited(HTTPStatusError):
    """429, or 503 with Retry-After: come back later."""


class ServerError(HTTPStatusError):
    """5xx."""


class TooManyRedirects(FetchError):
    """More redirects than allowed, or a redirect loop."""


class BodyTooLarge(FetchError):
    """The body (after decompression) went past the configured cap."""


class ParseError(SourceError):
    """The body arrived but holds no usable items."""


class EmptyBody(ParseError):
    """A 200 with nothing in it."""


class NotAFeed(ParseError):
    """HTML (or something else) where a feed, JSON or listing page was expected."""


class BinaryBody(ParseError):
    """Bytes that are not text at all."""


class InvalidFeed(ParseError):
    """Truncated or malformed XML/JSON from which no entry could be read."""
