"""Schema versions. `PRAGMA user_version` holds the number of migrations applied.

Each migration is a function of the database, applied once, in order, inside one transaction.
Append new ones; never edit one that has shipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlite_utils

from ..errors import StoreError

ITEM_STATUSES = ("candidate", "filtered", "shortlisted", "included", "excluded")
#: Statuses only an editor sets; feeds and triage never change them.
EDITOR_STATUSES = ("shortlisted", "included", "excluded")
#: Columns editors own: collection never writes them after insert.
EDITOR_FIELDS = ("section", "tags", "headline", "key_phrase", "blurb", "rank", "note",
                 "lead_image", "image_credit", "links")


def _initial(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {
            "id": int,
            "name": str,
            # Effective URL (a permanent redirect updates it); registry_url is sources.toml's.
            "url": str,
            "registry_url": str,
            "kind": str,
            "owner": str,
            "country": str,
            "category": str,
            "language": str,
            "interval_minutes": int,
            "enabled": int,
            # Why collection disabled it (410 Gone), independent of sources.toml's `enabled`.
            "disabled_reason": str,
            # 0 once the source is no longer in sources.toml; its items keep their source row.
            "in_registry": int,
            "etag": str,
            "last_modified": str,
            # Last HTTP status, and the outcome of the last fetch (ok, not_modified, failed).
            "last_status": int,
            "last_outcome": str,
            "last_error": str,
            "last_error_kind": str,
            "warning": str,
            "consecutive_failures": int,
            "last_fetched_at": str,
            "last_success_at": str,
            "next_fetch_at": str,
            "newest_item_at": str,
            "created_at": str,
        },
        pk="id",
        not_null={"name", "url", "registry_url", "kind", "enabled", "in_registry",
                  "consecutive_failures"},
        defaults={"kind": "feed", "enabled": 1, "in_registry": 1, "consecutive_failures": 0},
    )
    db["sources"].create_index(["name"], unique=True)

    db["runs"].create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            # running, completed, failed
            "status": str,
            "forced": int,
            "source_filter": str,
            "sources_due": int,
            "sources_ok": int,
            "sources_not_modified": int,
            "sources_failed": int,
            "items_new": int,
            "items_updated": int,
            "error": str,
            "flow_run_id": str,
        },
        pk="id",
        not_null={"started_at", "status"},
        defaults={"status": "running", "forced": 0, "sources_due": 0, "sources_ok": 0,
                  "sources_not_modified": 0, "sources_failed": 0, "items_new": 0,
                  "items_updated": 0},
    )

    db["items"].create(
        {
            "id": int,
            "source_id": int,
            # Unique within the source: guid:…, url:… or hash:… (see sources/normalise.py).
            "identity": str,
            "guid": str,
            "url": str,
            "title": str,
            "summary": str,
            "summary_text": str,
            "author": str,
            "language": str,
            "image_url": str,
            # Published, else updated, else first seen (then published_guessed = 1).
            "published_at": str,
            "published_guessed": int,
            "updated_at": str,
            "first_seen_at": str,
            "changed_at": str,
            "content_hash": str,
            "status": str,
            # Who set the status last: NULL (collect), 'triage', or an editor's name.
            "status_by": str,
            "section": str,
            # JSON array of strings.
            "tags": str,
            "headline": str,
            "key_phrase": str,
            "blurb": str,
            "rank": int,
            "note": str,
        },
        pk="id",
        foreign_keys=[("source_id", "sources", "id")],
        not_null={"source_id", "identity", "title", "published_at", "first_seen_at", "status",
                  "tags"},
        defaults={"status": "candidate", "tags": "[]", "published_guessed": 0},
    )
    db["items"].create_index(["source_id", "identity"], unique=True)
    db["items"].create_index(["published_at"])
    db["items"].create_index(["status", "published_at"])
    db["items"].create_index(["url"])

    db["fetches"].create(
        {
            "id": int,
            "run_id": int,
            "source_id": int,
            "fetched_at": str,
            "outcome": str,
            "http_status": int,
            "bytes": int,
            "duration_ms": int,
            "error": str,
            "error_kind": str,
            "warning": str,
            "items_seen": int,
            "items_new": int,
            "items_updated": int,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id"), ("source_id", "sources", "id")],
        not_null={"run_id", "source_id", "fetched_at", "outcome"},
        defaults={"bytes": 0, "items_seen": 0, "items_new": 0, "items_updated": 0},
    )
    db["fetches"].create_index(["source_id", "fetched_at"])
    db["fetches"].create_index(["run_id"])


def _triage(db: sqlite_utils.Database) -> None:
    """Relevance score with its reasons, story clusters, and the other outlets of an item."""
    db["items"].add_column("score", float)
    # JSON list of {"rule", "match", "weight"} objects: why the item scored what it did.
    db["items"].add_column("reasons", str)
    # The id of the item that leads this item's story cluster (itself when it leads).
    db["items"].add_column("cluster_id", int)
    db["items"].add_column("triaged_at", str)
    db["items"].create_index(["cluster_id"])
    db["items"].create_index(["score"])
    # Exact duplicates: one item, several sources that published the same canonical URL.
    # Keyed like items (source, identity) so a re-fetch of the second source finds it here.
    db["item_sources"].create(
        {"source_id": int, "identity": str, "item_id": int, "url": str, "first_seen_at": str},
        pk=("source_id", "identity"),
        foreign_keys=[("item_id", "items", "id"), ("source_id", "sources", "id")],
        not_null={"item_id", "source_id", "identity", "first_seen_at"},
    )
    db["item_sources"].create_index(["item_id"])


#: The columns full-text search covers, in the order bm25() weights refer to.
SEARCH_COLUMNS = ("title", "summary_text", "headline", "blurb")


def _search_and_story_tokens(db: sqlite_utils.Database) -> None:
    """Full-text search over items, and each item's persisted token set for story clustering.

    Re-runnable: sqlite-utils' enable_fts runs `executescript`, which commits the migration's
    transaction early, so a crash mid-way can leave part of this step applied without the
    version bump. Dropping what a previous attempt left makes the retry converge.
    """
    if db["items_fts"].exists():
        db["items"].disable_fts()
    # Trigram: substring matching that works for Japanese (no word breaks) as well as English.
    # External content (the items table), kept current by sqlite-utils' triggers.
    db["items"].enable_fts(list(SEARCH_COLUMNS), tokenize="trigram", create_triggers=True)
    # sqlite-utils' update trigger re-indexes a row on *any* update; triage writes score and
    # cluster_id to every item, and re-tokenising the text for those would make triage's cost
    # grow with the FTS index. Same trigger name (sqlite-utils' disable_fts still finds it),
    # fired only when an indexed column changes.
    old_cols = ", ".join(f"old.[{c}]" for c in SEARCH_COLUMNS)
    new_cols = ", ".join(f"new.[{c}]" for c in SEARCH_COLUMNS)
    cols = ", ".join(f"[{c}]" for c in SEARCH_COLUMNS)
    db.execute("DROP TRIGGER IF EXISTS [items_au]")
    db.execute(
        f"CREATE TRIGGER [items_au] AFTER UPDATE OF {cols} ON [items] BEGIN "
        f"INSERT INTO [items_fts] ([items_fts], rowid, {cols}) "
        f"VALUES ('delete', old.rowid, {old_cols}); "
        f"INSERT INTO [items_fts] (rowid, {cols}) VALUES (new.rowid, {new_cols}); END"
    )
    # The normalised token set of an item's title and summary (sorted uint32 hashes), written
    # when the item is clustered, with its publication day (julianday) so a batch reads its
    # time window from this narrow table alone — history is never re-read or re-tokenised
    # (see triage/clusters.py).
    db["item_tokens"].create(
        {"item_id": int, "day": float, "tokens": bytes},
        pk="item_id",
        foreign_keys=[("item_id", "items", "id")],
        not_null={"day"},
        if_not_exists=True,
    )
    db["item_tokens"].create_index(["day"], if_not_exists=True)
    # A changed title, summary or date makes the stored tokens stale: forget them (NULL) and
    # move the day; clustering recomputes the tokens the next time the item is in a window.
    db.execute("DROP TRIGGER IF EXISTS [items_tokens_au]")
    db.execute(
        "CREATE TRIGGER [items_tokens_au] AFTER UPDATE OF [title], [summary_text], "
        "[published_at] ON [items] BEGIN UPDATE [item_tokens] SET tokens = NULL, "
        "day = julianday(new.published_at) WHERE item_id = old.id; END"
    )
    db.execute("DROP TRIGGER IF EXISTS [items_tokens_bd]")
    db.execute(
        "CREATE TRIGGER [items_tokens_bd] BEFORE DELETE ON [items] "
        "BEGIN DELETE FROM [item_tokens] WHERE item_id = old.id; END"
    )


def _editor_desk(db: sqlite_utils.Database) -> None:
    """Accounts, sessions, the audit trail, and what editors add to an item."""
    # Bumped by every editor save: a save based on an older version is refused (two stale
    # pages must not silently overwrite each other).
    db["items"].add_column("version", int, not_null_default=0)
    db["items"].add_column("edited_by", str)
    db["items"].add_column("edited_at", str)
    # The image editors chose for the issue (else the feed's image_url) and its credit.
    db["items"].add_column("lead_image", str)
    db["items"].add_column("image_credit", str)
    # JSON list of {"url", "label"}: extra source links picked from the item's story cluster.
    db["items"].add_column("links", str)
    # 'feed', or 'manual' for items an editor added by URL.
    db["items"].add_column("origin", str, not_null_default="feed")
    db["users"].create(
        {"id": int, "name": str, "password_hash": str, "created_at": str,
         "last_login_at": str},
        pk="id",
        not_null={"name", "password_hash", "created_at"},
    )
    db["users"].create_index(["name"], unique=True)
    # Server-side sessions: the cookie holds a random token, the table its hash, so a stolen
    # database copy cannot be replayed as a cookie and logging out really ends a session.
    db["sessions"].create(
        {"token_hash": str, "user_id": int, "csrf_token": str, "created_at": str,
         "expires_at": str},
        pk="token_hash",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "csrf_token", "created_at", "expires_at"},
    )
    db["edits"].create(
        {"id": int, "item_id": int, "field": str, "old": str, "new": str, "editor": str,
         "at": str},
        pk="id",
        foreign_keys=[("item_id", "items", "id")],
        not_null={"item_id", "field", "editor", "at"},
    )
    db["edits"].create_index(["item_id", "at"])


def _issues(db: sqlite_utils.Database) -> None:
    """Drafted issues of the digest and the items each one holds."""
    db["issues"].create(
        {"id": int, "title": str, "volume": int, "number": int, "date": str,
         # The window: after the previous issue's date (exclusive) up to `date` (inclusive).
         "window_start": str, "window_end": str,
         # 'draft' until finalised; a final issue's items never appear in a later window.
         "status": str, "md_path": str, "html_path": str, "txt_path": str,
         "created_at": str, "updated_at": str, "finalized_at": str},
        pk="id",
        not_null={"title", "volume", "number", "date", "status", "created_at"},
        defaults={"status": "draft"},
    )
    db["issues"].create_index(["date"], unique=True)
    db["issues"].create_index(["volume", "number"], unique=True)
    db["issue_items"].create(
        {"issue_id": int, "item_id": int, "position": int},
        pk=("issue_id", "item_id"),
        foreign_keys=[("issue_id", "issues", "id"), ("item_id", "items", "id")],
        not_null={"position"},
    )
    db["issue_items"].create_index(["item_id"])


def _collect_fast_path(db: sqlite_utils.Database) -> None:
    """What lets a collect run index and triage new items in bulk (pipeline/collect.py).

    - `search_deferred`: while it holds a row, inserting an item does not index it; the
      items after `after_id` are indexed in bulk (`store.items.index_backlog`; migration 13
      lets the backlog outlive a transaction). FTS5 writes a
      new index segment per statement, and merging thousands of one-source segments cost a
      third of storing a large run.
    - `item_tokens_new`: the items waiting to be clustered that were inserted already
      triaged, with the story tokens the parse workers made for them, so clustering at the
      end of a run does not tokenise them again. Such an item is inserted as a story of its
      own (cluster_id = its id: a lone item leads itself), so clustering rewrites only the
      items that join a story, not every new item's row. Clustering moves the tokens to
      `item_tokens`; a changed title or summary makes them stale (NULL: made again from the
      text). Waiting to be clustered: cluster_id IS NULL, or a row here.
    """
    db["search_deferred"].create({"id": int, "after_id": int}, pk="id", not_null={"after_id"},
                                 if_not_exists=True)
    cols = ", ".join(f"[{c}]" for c in SEARCH_COLUMNS)
    new_cols = ", ".join(f"new.[{c}]" for c in SEARCH_COLUMNS)
    # Same name as sqlite-utils' trigger, so its disable_fts/rebuild helpers still find it.
    db.execute("DROP TRIGGER IF EXISTS [items_ai]")
    db.execute(
        "CREATE TRIGGER [items_ai] AFTER INSERT ON [items] "
        "WHEN NOT EXISTS (SELECT 1 FROM [search_deferred]) BEGIN "
        f"INSERT INTO [items_fts] (rowid, {cols}) VALUES (new.rowid, {new_cols}); END"
    )
    db["item_tokens_new"].create(
        {"item_id": int, "tokens": bytes},
        pk="item_id",
        foreign_keys=[("item_id", "items", "id")],
        if_not_exists=True,
    )
    db.execute("DROP TRIGGER IF EXISTS [items_tokens_new_au]")
    db.execute(
        "CREATE TRIGGER [items_tokens_new_au] AFTER UPDATE OF [title], [summary_text] "
        "ON [items] BEGIN UPDATE [item_tokens_new] SET tokens = NULL "
        "WHERE item_id = old.id; END"
    )
    # Items not scored yet (a killed run's): the end of every collect run looks for them, so
    # that look must not scan every item. A partial index holds only those rows.
    db.execute("CREATE INDEX IF NOT EXISTS [idx_items_untriaged] ON [items] ([id]) "
               "WHERE [triaged_at] IS NULL")
    db.execute("DROP TRIGGER IF EXISTS [items_tokens_new_bd]")
    db.execute(
        "CREATE TRIGGER [items_tokens_new_bd] BEFORE DELETE ON [items] "
        "BEGIN DELETE FROM [item_tokens_new] WHERE item_id = old.id; END"
    )


def _story_pins(db: sqlite_utils.Database) -> None:
    """Editors' corrections to stories: an item pinned to a story stays there.

    `pin` names the story as the editor left it (its lead's id then); clustering never moves a
    pinned item and never joins two stories pinned apart, so a merge or a split survives
    rescoring and later runs. Stored item keys of the old format (before the bilingual keys
    of triage/tokens.py) are not migrated: clustering makes them again from the text when it
    meets them.
    """
    db["story_pins"].create(
        {"item_id": int, "pin": int, "pinned_by": str, "pinned_at": str},
        pk="item_id",
        foreign_keys=[("item_id", "items", "id")],
        not_null={"pin", "pinned_at"},
        if_not_exists=True,
    )
    db["story_pins"].create_index(["pin"], if_not_exists=True)
    db.execute("DROP TRIGGER IF EXISTS [items_story_pins_bd]")
    db.execute(
        "CREATE TRIGGER [items_story_pins_bd] BEFORE DELETE ON [items] "
        "BEGIN DELETE FROM [story_pins] WHERE item_id = old.id; END"
    )


def _issue_entries(db: sqlite_utils.Database) -> None:
    """Issue entries: one paragraph of the issue, holding several items of one development.

    An entry has its own headline, key phrase, blurb, section and position (the paragraph the
    editor writes), a lead item and kept siblings (`entry_items`, an item in one entry at
    most). `issue_id` is NULL until a draft assigns the entry to an issue. Every included item
    becomes a one-item entry with the same id as the item, its editor's fields copied; items
    its `links` named become its kept siblings. `items.cluster_id` keeps its meaning.
    """
    db["entries"].create(
        {"id": int, "issue_id": int, "position": int, "section": str, "headline": str,
         "key_phrase": str, "blurb": str, "lead_item_id": int, "note": str,
         # Bumped by every save: a save based on an older version is refused (StaleEntry).
         "version": int, "created_by": str, "created_at": str, "edited_by": str,
         "edited_at": str},
        pk="id",
        foreign_keys=[("issue_id", "issues", "id"), ("lead_item_id", "items", "id")],
        not_null={"lead_item_id", "version", "created_at"},
        defaults={"version": 0},
        if_not_exists=True,
    )
    db["entries"].create_index(["issue_id"], if_not_exists=True)
    db["entry_items"].create(
        {"entry_id": int, "item_id": int, "position": int, "role": str},
        pk="item_id",
        foreign_keys=[("entry_id", "entries", "id"), ("item_id", "items", "id")],
        not_null={"entry_id", "position", "role"},
        if_not_exists=True,
    )
    db["entry_items"].create_index(["entry_id", "position"], if_not_exists=True)
    db.execute("DROP TRIGGER IF EXISTS [items_entry_items_bd]")
    db.execute(
        "CREATE TRIGGER [items_entry_items_bd] BEFORE DELETE ON [items] "
        "BEGIN DELETE FROM [entry_items] WHERE item_id = old.id; END"
    )
    now = db.execute("SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now')").fetchone()[0]
    included = list(db.query(
        "SELECT id, section, headline, key_phrase, blurb, rank, note, links, edited_by FROM items "
        "WHERE status = 'included' AND id NOT IN (SELECT item_id FROM entry_items) ORDER BY id"))
    for row in included:
        issue = db.execute(
            "SELECT ii.issue_id FROM issue_items ii JOIN issues i ON i.id = ii.issue_id "
            "WHERE ii.item_id = ? ORDER BY i.status = 'final' DESC, i.date DESC LIMIT 1",
            [row["id"]]).fetchone()
        db.execute(
            "INSERT INTO entries (id, issue_id, position, section, headline, key_phrase, blurb, "
            "lead_item_id, note, version, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            [row["id"], issue[0] if issue else None, row["rank"], row["section"],
             row["headline"], row["key_phrase"], row["blurb"], row["id"], row["note"],
             row["edited_by"] or "migration", now])
        db.execute("INSERT INTO entry_items (entry_id, item_id, position, role) "
                   "VALUES (?, ?, 1, 'lead')", [row["id"], row["id"]])
    for row in included:
        try:
            links = json.loads(row["links"] or "[]")
        except ValueError:
            links = []
        position = 1
        for link in links if isinstance(links, list) else []:
            url = link.get("url") if isinstance(link, dict) else None
            if not url:
                continue
            found = db.execute(
                "SELECT id FROM items WHERE url = ? UNION "
                "SELECT item_id FROM item_sources WHERE url = ? LIMIT 1", [url, url]).fetchone()
            if found is None:
                continue
            taken = db.execute("SELECT 1 FROM entry_items WHERE item_id = ?",
                               [found[0]]).fetchone()
            if taken is None:
                position += 1
                db.execute("INSERT INTO entry_items (entry_id, item_id, position, role) "
                           "VALUES (?, ?, ?, 'sibling')", [row["id"], found[0], position])
                # An item in an entry is included: the one rule the desk and the draft share.
                db.execute("UPDATE items SET status = 'included', status_by = ? WHERE id = ?",
                           [row["edited_by"] or "migration", found[0]])


def _review_and_approval(db: sqlite_utils.Database) -> None:
    """Roles, the issue's review states, its own settings, its comments and state events.

    `issues.status` was 'draft' or 'final'; both keep their meaning, anything else was a
    draft. `issue_events` has no foreign key: a discarded issue's trail outlives the issue.
    """
    db["users"].add_column("role", str, not_null_default="editor")
    db.execute("UPDATE issues SET status = 'draft' WHERE status IS NULL "
               "OR status NOT IN ('draft', 'review', 'approved', 'final')")
    for column in ("status_by", "status_at", "image_url", "image_credit", "footer"):
        db["issues"].add_column(column, str)
    db["issue_events"].create(
        {"id": int, "issue_id": int, "issue": str, "event": str, "from_status": str,
         "to_status": str, "entry": str, "detail": str, "actor": str, "at": str},
        pk="id",
        not_null={"issue_id", "issue", "event", "actor", "at"},
    )
    db["issue_events"].create_index(["issue_id", "at"])
    db["issue_comments"].create(
        {"id": int, "issue_id": int, "entry": str, "text": str, "author": str,
         "created_at": str, "resolved_by": str, "resolved_at": str},
        pk="id",
        foreign_keys=[("issue_id", "issues", "id")],
        not_null={"issue_id", "entry", "text", "author", "created_at"},
    )
    db["issue_comments"].create_index(["issue_id"])


def _deliveries(db: sqlite_utils.Database) -> None:
    """Email deliveries: one row per issue and recipient, so a re-run never sends twice.

    `status` is `sent` or `failed`; `reply` is the SMTP server's answer (or why no answer
    came). The unique (issue, recipient) pair is what makes a re-run resume, not repeat.
    """
    db["deliveries"].create(
        {"id": int, "issue_id": int, "recipient": str, "status": str, "reply": str,
         "attempts": int, "at": str},
        pk="id",
        foreign_keys=[("issue_id", "issues", "id")],
        not_null={"issue_id", "recipient", "status", "at"},
        defaults={"attempts": 1},
        if_not_exists=True,
    )
    db["deliveries"].create_index(["issue_id", "recipient"], unique=True, if_not_exists=True)


def _bounded_cost(db: sqlite_utils.Database) -> None:
    """Bounded triage and search: set-aside items, and texts cut to a bounded length.

    Items whose clustering failed or ran out of time are set aside so collect goes on.
    `triage_set_aside` holds each such item (stored and visible, waiting to be clustered)
    with how often clustering was tried, the last error and when; later runs retry it a few
    times in small chunks, then `digest triage retry` does. A chunk is written here before it
    is clustered and removed after, so a process killed while clustering (out of memory)
    leaves its chunk set aside rather than in the way of the next run. The run that set items
    aside says so: `runs.triage_set_aside` (how many) and `runs.triage_error`.
    Texts: `items.text_cut` (below).
    """
    db["triage_set_aside"].create(
        {"item_id": int, "attempts": int, "error": str, "set_aside_at": str,
         "last_tried_at": str},
        pk="item_id",
        foreign_keys=[("item_id", "items", "id")],
        not_null={"attempts", "set_aside_at", "last_tried_at"},
        if_not_exists=True,
    )
    db.execute("DROP TRIGGER IF EXISTS [items_triage_set_aside_bd]")
    db.execute(
        "CREATE TRIGGER [items_triage_set_aside_bd] BEFORE DELETE ON [items] "
        "BEGIN DELETE FROM [triage_set_aside] WHERE item_id = old.id; END"
    )
    db["runs"].add_column("triage_set_aside", int, not_null_default=0)
    db["runs"].add_column("triage_error", str)
    # Titles and summaries are capped when normalised (sources/normalise.py: 1,000 and 20,000
    # characters); `text_cut` records the original lengths. Items stored before are cut here
    # too, so no stored text sets the cost of a search (the index follows by its trigger).
    db["items"].add_column("text_cut", str)
    db.execute(
        "UPDATE items SET text_cut = json_object("
        "'title', CASE WHEN length(title) > 1000 THEN length(title) END, "
        "'summary', CASE WHEN length(summary_text) > 20000 THEN length(summary_text) END), "
        "title = substr(title, 1, 1000), summary_text = substr(summary_text, 1, 20000), "
        # The sanitised HTML of a cut summary becomes its (escaped) cut text.
        "summary = CASE WHEN length(summary_text) > 20000 THEN replace(replace(replace("
        "substr(summary_text, 1, 20000), '&', '&amp;'), '<', '&lt;'), '>', '&gt;') "
        "ELSE summary END "
        "WHERE length(title) > 1000 OR length(summary_text) > 20000")
    db.execute("UPDATE items SET text_cut = json_remove(text_cut, '$.title') "
               "WHERE json_extract(text_cut, '$.title') IS NULL AND text_cut IS NOT NULL")
    db.execute("UPDATE items SET text_cut = json_remove(text_cut, '$.summary') "
               "WHERE json_extract(text_cut, '$.summary') IS NULL AND text_cut IS NOT NULL")


def _relevance_models(db: sqlite_utils.Database) -> None:
    """Learned relevance models, and items near the relevance threshold.

    Each training adds a row (its id is the model's version); the row marked `current` is the
    one triage blends with the rules. `model` is the model itself (compressed JSON, see
    triage/model.py): it never leaves the machine and is rebuilt from the database's decisions
    by training again. `borderline` marks items near the threshold, where an editor's decision
    teaches the next model most.
    """
    db["relevance_models"].create(
        {"id": int, "format": str, "trained_at": str, "labels_relevant": int,
         "labels_not_relevant": int, "from_editors": int, "from_shipped": int,
         "cv_precision": float, "cv_recall": float, "threshold": float, "band": float,
         "seconds": float, "current": int, "model": bytes},
        pk="id",
        not_null={"format", "trained_at", "current", "model"},
        defaults={"current": 0},
        if_not_exists=True,
    )
    db["items"].add_column("borderline", int, not_null_default=0)
    db["items"].create_index(["borderline", "status"], if_not_exists=True)


def _search_backlog(db: sqlite_utils.Database) -> None:
    """A search backlog that outlives its transaction (store.items.defer_search_index).

    A collect run leaves the indexing of what it stored to a process of its own after the
    command (pipeline/collect.py), so the items after `search_deferred.after_id` may wait in
    the committed database. The index must never be asked to forget text it was never given:
    updating or deleting such an item leaves the index alone (`index_backlog` reads the
    item's text as it is when it gets there).
    """
    cols = ", ".join(f"[{c}]" for c in SEARCH_COLUMNS)
    old_cols = ", ".join(f"old.[{c}]" for c in SEARCH_COLUMNS)
    new_cols = ", ".join(f"new.[{c}]" for c in SEARCH_COLUMNS)
    indexed = "WHEN NOT EXISTS (SELECT 1 FROM [search_deferred] WHERE old.rowid > after_id)"
    db.execute("DROP TRIGGER IF EXISTS [items_au]")
    db.execute(
        f"CREATE TRIGGER [items_au] AFTER UPDATE OF {cols} ON [items] {indexed} BEGIN "
        f"INSERT INTO [items_fts] ([items_fts], rowid, {cols}) "
        f"VALUES ('delete', old.rowid, {old_cols}); "
        f"INSERT INTO [items_fts] (rowid, {cols}) VALUES (new.rowid, {new_cols}); END"
    )
    db.execute("DROP TRIGGER IF EXISTS [items_ad]")
    db.execute(
        f"CREATE TRIGGER [items_ad] AFTER DELETE ON [items] {indexed} BEGIN "
        f"INSERT INTO [items_fts] ([items_fts], rowid, {cols}) "
        f"VALUES ('delete', old.rowid, {old_cols}); END"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _initial, _triage, _search_and_story_tokens, _editor_desk, _issues, _collect_fast_path,
    _story_pins, _issue_entries, _review_and_approval, _deliveries, _bounded_cost,
    _relevance_models, _search_backlog,
]


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending migrations; returns the schema version. Refuses a newer database."""
    if schema_version(db) == len(MIGRATIONS):
        return len(MIGRATIONS)
    # IMMEDIATE takes the write lock first, so two processes starting at once (the desk and a
    # collect run) cannot both apply the same migration; the loser re-reads the version.
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)
        if version > len(MIGRATIONS):
            raise StoreError(
                f"database schema version {version} is newer than this program knows "
                f"({len(MIGRATIONS)}): upgrade alliance-digest"
            )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        db.rollback()
        raise
    db.commit()
    return len(MIGRATIONS)
