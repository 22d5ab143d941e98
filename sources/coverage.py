"""How much of a source's mapping matched: one count per key, warnings an operator can act on.

A json path or a page selector with a typo matches nothing and the source quietly stores
garbage (URLs as titles, no links, every item undated). The parsers count, per mapped key,
the items where it was found (and, for dates, read as a date); this module turns the counts
into lines such as

    title path 'title.rendred' found in 0 of 3 items
    date path 'published' read as a date in 0 of 3 items (date_format '%d/%m/%Y')

Which shortfalls are worth a line: the keys every item should have (`required`, `expected`)
whenever any item lacks them, the optional ones (a summary, an image) only when no item has
them. `fatal()` names a required key no item has: that fetch fails and stores nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Coverage"]


@dataclass(slots=True)
class Coverage:
    """Counts for one parse. `labels` maps a key to how it is named ("title path 'x'")."""

    labels: dict[str, str]
    #: Keys an item is useless without (json: title, link).
    required: frozenset[str] = frozenset()
    #: Keys every item should have, worth a warning when some lack them (a date).
    expected: frozenset[str] = frozenset()
    total: int = 0
    found: Counter[str] = field(default_factory=Counter)
    #: Dates found but not readable, by key.
    unread: Counter[str] = field(default_factory=Counter)
    #: Extra words for an unreadable date ("(date_format '%d/%m/%Y')").
    date_hint: str = ""

    def count(self, key: str, present: bool, readable: bool = True) -> None:
        """One item's result for `key` (a date may be present yet unreadable)."""
        if key not in self.labels:
            return
        if present:
            self.found[key] += 1
            if not readable:
                self.unread[key] += 1

    def warnings(self) -> list[str]:
        """One line per key that fell short (see the module doc)."""
        lines: list[str] = []
        if not self.total:
            return lines
        for key, label in self.labels.items():
            found = self.found[key]
            must = key in self.required or key in self.expected
            if found < self.total and (must or found == 0):
                lines.append(f"{label} found in {found} of {self.total} items")
            elif self.unread[key]:
                read = found - self.unread[key]
                lines.append(
                    f"{label} read as a date in {read} of {self.total} items{self.date_hint}"
                )
        return lines

    def fatal(self) -> str | None:
        """The line for a required key that no item has, else None."""
        if not self.total:
            return None
        for key in self.labels:
            if key in self.required and self.found[key] == 0:
                return f"{self.labels[key]} found in 0 of {self.total} items"
        return None
