"""The use cases: plain functions where sources, store, triage and templates meet.

One module per use case (collect once, draft an issue, preview it, add an item by URL, turn a
source on or off, …). The front doors — `flows/` (Prefect), `cli/` (`digest`) and `editor/`
(the desk) — call these and never each other; the parts below never import this package.
State travels in arguments and return values (a progress callback, a typed summary), never
in module globals.
"""
