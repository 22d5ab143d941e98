"""The root of the project's error tree.

Every failure a user can see has a precise type under `DigestError`; callers catch the base
class. Invalid-input errors also subclass `ValueError`. `str(error)` is one line that names the
cause (and, for configuration, the file, the source and the key).
"""


class DigestError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(DigestError, ValueError):
    """A configuration or registry file is missing, unreadable or holds a wrong value."""


class StoreError(DigestError):
    """The database cannot be opened, migrated or written."""


class NotFoundError(DigestError, LookupError):
    """A named thing (source, item, issue) does not exist."""
