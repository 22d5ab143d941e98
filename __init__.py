"""Alliance Digest: collect, triage and draft the bi-weekly US-Japan Alliance Digest."""

__version__ = "0.1.0"
