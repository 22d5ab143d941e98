"""Review and approval: roles, the issue's states, comments, discard, per-issue settings.

The seed-issue folder of test_draft.py (its stories all written), plus one included story
without a blurb or headline, which approval must refuse by name.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alliance_digest.errors import (
    Forbidden,
    IssueFinalError,
    IssueNumberError,
    IssueStateError,
    NotReadyError,
    OpenComments,
    UserError,
)
from alliance_digest.pipeline import review
from alliance_digest.pipeline.draft import draft_issue
from alliance_digest.pipeline.preview import preview_issue
from alliance_digest.settings import Settings
from alliance_digest.store.db import open_db
from alliance_digest.store.entries import entry_of, entry_row
from alliance_digest.store.issues import all_issues, find_issue
from alliance_digest.store.review import comments, events
from alliance_digest.store.users import (
    add_user,
    create_session,
    get_session,
    list_users,
    set_role,
)
from support import digest
from test_draft import SEED_DATE, SEED_STEM, add_items, site  # noqa: F401  (a fixture)

UNWRITTEN = {"title": "Coast guards meet in Yokohama", "published_at": "2023-02-13T09:00:00Z",
             "source": "Kyodo", "section": "Regional", "summary_text": "They met. Talks went on."}


def _entry(db, item_id: int) -> int:
    """The issue entry that holds an included item (its paragraph)."""
    return entry_of(db, [item_id])[item_id]


@pytest.fixture
def drafted(site: Settings) -> tuple[Settings, int]:  # noqa: F811
    """The seed issue drafted (Vol 2.3) with one unwritten story in it; its id."""
    db = open_db(site.store_path)
    (unwritten,) = add_items(db, [UNWRITTEN])
    db.close()
    draft_issue(site, day=SEED_DATE)
    return site, unwritten


def test_roles_are_stored_listed_and_checked(tmp_path: Path) -> None:
    db = open_db(tmp_path / "d.db")
    add_user(db, "ann", "long enough pw")
    add_user(db, "pat", "long enough pw", role="publisher")
    assert {u["name"]: u["role"] for u in list_users(db)} == {"ann": "editor", "pat": "publisher"}
    with pytest.raises(UserError, match="unknown role 'boss'"):
        add_user(db, "bob", "long enough pw", role="boss")
    token, _ = create_session(db, "ann", 1)
    assert get_session(db, token)["role"] == "editor"
    set_role(db, "ann", "publisher")
    assert get_session(db, token)["role"] == "publisher"  # read on every request
    assert review.may("editor", "submit") and not review.may("editor", "approve")
    assert review.may("publisher", "discard") and not review.may(None, "comment")
    db.close()


def test_an_editor_submits_and_only_a_publisher_approves(drafted) -> None:
    settings, unwritten = drafted
    db = open_db(settings.store_path)
    issue, moved = review.submit(db, "2.3", actor="ann", role="editor")
    assert moved and issue["status"] == "review" and issue["status_by"] == "ann"
    with pytest.raises(Forbidden):
        review.approve(db, settings, "2.3", actor="ann", role="editor")
    with pytest.raises(NotReadyError) as refused:
        review.approve(db, settings, "2.3", actor="pat", role="publisher")
    entry = _entry(db, unwritten)
    assert refused.value.entries == [
        f"entry {entry} “Coast guards meet in Yokohama” (needs writing, no headline)"]
    assert find_issue(db, "2.3")["status"] == "review"
    db["items"].update(unwritten, {"blurb": "Coast guards **met**.", "headline": "They met"})
    review.comment(db, settings, "2.3", str(entry), "  Check   the date ", actor="pat")
    with pytest.raises(OpenComments, match="1 open comment"):
        review.approve(db, settings, "2.3", actor="pat", role="publisher")
    approved, moved = review.approve(db, settings, "2.3", actor="pat", role="publisher",
                                     confirm_open_comments=True)
    assert moved and approved["status"] == "approved"
    trail = [(e["event"], e["actor"], e["from_status"], e["to_status"], e["detail"])
             for e in events(db, approved["id"])][::-1]
    assert trail == [("submit", "ann", "draft", "review", None),
                     ("comment", "pat", None, None, "Check the date"),
                     ("approve", "pat", "review", "approved", None)]
    db.close()


def test_states_refuse_the_wrong_move(drafted) -> None:
    settings, _ = drafted
    db = open_db(settings.store_path)
    with pytest.raises(IssueStateError, match="is draft: approve needs it review"):
        review.approve(db, settings, "2.3", actor="pat")
    with pytest.raises(IssueStateError, match="finalize needs it approved"):
        review.finalize(db, "2.3", actor="pat")
    assert review.reopen(db, "2.3", actor="pat")[1] is False  # a draft already
    assert review.finalize(db, "2.3", actor="pat", force=True)[0]["status"] == "final"
    with pytest.raises(IssueFinalError):
        review.discard(db, settings, "2.3", actor="pat")
    db.close()


def test_comments_name_a_real_entry(drafted) -> None:
    settings, unwritten = drafted
    db = open_db(settings.store_path)
    with pytest.raises(Exception, match="has no entry '99999'"):
        review.comment(db, settings, "2.3", "99999", "x", actor="pat")
    with pytest.raises(Exception, match="needs text"):
        review.comment(db, settings, "2.3", str(_entry(db, unwritten)), "   ", actor="pat")
    entry = str(_entry(db, unwritten))
    made = review.comment(db, settings, "2.3", entry, "Fix the tense", actor="pat")
    done = review.resolve(db, made["id"], actor="ann", role="editor")
    assert done["resolved_by"] == "ann"
    assert [e["event"] for e in events(db)][:2] == ["resolve", "comment"]
    db.close()


def test_issue_settings_are_stored_and_rendered(drafted) -> None:
    settings, _ = drafted
    db = open_db(settings.store_path)
    issue_id = find_issue(db, "2.3")["id"]
    with pytest.raises(IssueNumberError, match="already the issue of 2023-01-31"):
        review.save_settings(db, settings, "2.3", {"number": "2"}, actor="ann")
    review.save_settings(db, settings, issue_id, {
        "number": "7", "image_url": "https://img.example/lead.jpg", "image_credit": "Kyodo",
        "footer": "Sent by [Sasakawa USA](https://spfusa.org/)."}, actor="ann")
    preview = preview_issue(db, settings, SEED_DATE)
    assert (preview.plan.volume, preview.plan.number) == (2, 7)
    assert 'src="https://img.example/lead.jpg"' in preview.rendered.html
    assert "[Sasakawa USA](https://spfusa.org/)" in preview.rendered.markdown
    assert "Kyodo" in preview.rendered.text
    changed = {e["entry"] for e in events(db, issue_id) if e["event"] == "settings"}
    assert changed == {"number", "image_url", "image_credit", "footer"}
    db.close()


def test_the_desk_works_on_the_open_draft_else_the_next_scheduled_date(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        '[store]\npath = "data/d.db"\n[schedule]\ntimezone = "America/New_York"\n'
        'draft_rrule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;BYHOUR=9"\n'
        'draft_start = "2026-01-06T09:00:00"\n', encoding="utf-8")
    from alliance_digest.settings import load_settings

    settings = load_settings(tmp_path / "digest.toml")
    # Thursday 2026-12-03 (a run was Tuesday 11-24, two weeks before 12-08): next is 12-08.
    now = dt.datetime(2026, 12, 3, 15, tzinfo=dt.UTC)
    assert review.next_draft_date(settings, now) == dt.date(2026, 12, 8)
    # On a run day it is that day, in the schedule's zone (01:00 UTC is still the 8th there).
    assert review.next_draft_date(
        settings, dt.datetime(2026, 12, 9, 1, tzinfo=dt.UTC)) == dt.date(2026, 12, 8)
    assert review.next_draft_date(
        settings, dt.datetime(2026, 12, 9, 6, tzinfo=dt.UTC)) == dt.date(2026, 12, 22)
    db = open_db(settings.store_path)
    desk = review.desk_issue(db, settings, now)
    assert desk.plan.date == dt.date(2026, 12, 8) and desk.issue is None
    recorded = review.record_issue(db, settings, desk.plan, actor="ann")
    later = review.desk_issue(db, settings, dt.datetime(2026, 12, 20, tzinfo=dt.UTC))
    assert later.issue is not None and later.issue["id"] == recorded["id"]
    db.close()


def test_review_from_the_command_line(drafted) -> None:
    settings, unwritten = drafted
    folder = settings.base_dir
    refused = digest("issue", "finalize", "2.3", cwd=folder, check=False)
    assert refused.returncode == 1 and "finalize needs it approved" in refused.stderr
    assert "is now in review" in digest("issue", "submit", "2.3", cwd=folder).stdout
    refused = digest("issue", "approve", "2.3", cwd=folder, check=False)
    assert refused.returncode == 1
    db = open_db(settings.store_path)
    entry = _entry(db, unwritten)
    assert f"entry {entry} “Coast guards meet in Yokohama”" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    db["items"].update(unwritten, {"blurb": "They **met**.", "headline": "They met"})
    db.close()
    digest("issue", "comment", "2.3", str(entry), "Source?", cwd=folder)
    asks = digest("issue", "approve", "2.3", cwd=folder, check=False)
    assert asks.returncode == 1 and "1 open comment" in asks.stderr and "--yes" in asks.stderr
    assert "is now approved" in digest("issue", "approve", "2.3", "--yes", cwd=folder).stdout
    assert "is now a draft" in digest("issue", "reopen", "2.3", cwd=folder).stdout
    trail = digest("history", "--issue", "2.3", cwd=folder, env={"COLUMNS": "200"}).stdout
    for word in ("submit", "comment", "approve", "reopen", "Source?"):
        assert word in trail
    digest("issue", "submit", "2.3", cwd=folder)
    digest("issue", "approve", "2.3", "--yes", cwd=folder)
    assert "is now final" in digest("issue", "finalize", "2.3", cwd=folder).stdout


def test_an_approved_issue_is_not_redrafted_until_reopened(drafted) -> None:
    """A redraft rewrites what an issue holds and its files: of an approved issue (whose
    approval fixed what is sent) it is refused in one line naming the reopen, nothing
    written; the issue stays approved, holding what was approved."""
    settings, unwritten = drafted
    folder = settings.base_dir
    db = open_db(settings.store_path)
    db["items"].update(unwritten, {"blurb": "They **met**.", "headline": "They met"})
    review.submit(db, "2.3", actor="ann", role="editor")
    approved, _ = review.approve(db, settings, "2.3", actor="pat", role="publisher")
    held = {e["id"] for e in db.query("SELECT id FROM entries WHERE issue_id = ?",
                                      [approved["id"]])}
    (late,) = add_items(db, [{**UNWRITTEN, "title": "Included after approval"}])
    db.close()
    md = folder / "drafts" / f"{SEED_STEM}.md"
    before = md.read_text(encoding="utf-8")
    with pytest.raises(IssueStateError, match=r"2\.3 of 2023-02-14 is approved and cannot "
                       r"be redrafted: reopen it first \(digest issue reopen 2\.3\)"):
        draft_issue(settings, day=SEED_DATE)
    refused = digest("draft", "--date", SEED_DATE.isoformat(), cwd=folder, check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "digest issue reopen 2.3" in refused.stderr
    assert md.read_text(encoding="utf-8") == before
    db = open_db(settings.store_path)
    issue = find_issue(db, "2.3")
    assert issue["status"] == "approved" and issue["updated_at"] == approved["updated_at"]
    assert {e["id"] for e in db.query("SELECT id FROM entries WHERE issue_id = ?",
                                      [issue["id"]])} == held
    review.reopen(db, "2.3", actor="pat")
    db.close()
    redrafted = draft_issue(settings, day=SEED_DATE)
    assert redrafted.status == "draft"
    assert "Included after approval" in md.read_text(encoding="utf-8")
    db = open_db(settings.store_path)
    assert entry_row(db, _entry(db, late))["issue_id"] == issue["id"]
    db.close()


def test_a_dropped_entrys_open_comments_are_resolved_by_who_dropped_it(drafted) -> None:
    """An entry dropped from the issue (its items dropped, or its only item taken out from
    the queue) takes its open comments with it: resolved by whoever dropped it, each with a
    trail row saying why, listed as on a dropped entry; no longer asking approval to confirm."""
    from alliance_digest.pipeline import entries
    from alliance_digest.store import editorial

    settings, unwritten = drafted
    db = open_db(settings.store_path)
    (lone,) = add_items(db, [{**UNWRITTEN, "title": "Only item of its entry",
                              "blurb": "Written.", "headline": "Lone"}])
    dropped, excluded = str(_entry(db, unwritten)), str(_entry(db, lone))
    kept = next(p.entry for p in review.issue_paragraphs(db, settings, find_issue(db, "2.3"))
                if p.entry not in (dropped, excluded))
    issue_id = find_issue(db, "2.3")["id"]
    for entry in (dropped, excluded, kept):
        review.comment(db, settings, "2.3", entry, f"On {entry}", actor="pat")
    done = review.comment(db, settings, "2.3", dropped, "Already done", actor="pat")
    review.resolve(db, done["id"], actor="pat")
    entries.drop(db, int(dropped), editor="ann")
    editorial.update_item(db, lone, {"status": "excluded"}, editor="bob")
    assert [c["entry"] for c in comments(db, issue_id, open_only=True)] == [kept]
    by_entry = {(c["entry"], c["text"]): c for c in comments(db, issue_id)}
    assert by_entry[(dropped, f"On {dropped}")]["resolved_by"] == "ann"
    assert by_entry[(dropped, "Already done")]["resolved_by"] == "pat"  # not resolved twice
    assert by_entry[(excluded, f"On {excluded}")]["resolved_by"] == "bob"
    assert [c["entry_dropped"] for c in comments(db, issue_id)] == [1, 1, 0, 1]
    trail = [(e["actor"], e["detail"]) for e in events(db, issue_id) if e["event"] == "resolve"]
    assert ("ann", f"comment {by_entry[(dropped, f'On {dropped}')]['id']}: On {dropped} "
            f"(entry {dropped} dropped)") in trail and len(trail) == 3
    db.close()
    listed = digest("issue", "comments", "2.3", "--all", cwd=settings.base_dir).stdout
    assert f"entry {dropped} (dropped)" in listed and f"entry {kept} (dropped)" not in listed
    only_open = digest("issue", "comments", "2.3", cwd=settings.base_dir).stdout
    assert f"On {kept}" in only_open and f"On {dropped}" not in only_open


def test_discard_frees_the_number_and_unassigns_the_items(drafted) -> None:
    settings, unwritten = drafted
    folder = settings.base_dir
    # Drafted again for the next date, the same items make 2.4: the stray run of the issue.
    draft_issue(settings, day=SEED_DATE + dt.timedelta(days=14))
    db = open_db(settings.store_path)
    assert [(i["volume"], i["number"]) for i in all_issues(db)][-2:] == [(2, 3), (2, 4)]
    db.close()
    done = digest("issue", "discard", "2.3", cwd=folder)
    assert "discarded Vol 2.3 (2023-02-14" in done.stdout and "2.3 is free" in done.stdout
    assert f"removed {(folder / 'drafts' / SEED_STEM).resolve()}.md" in done.stdout
    assert not (folder / "drafts" / f"{SEED_STEM}.md").exists()
    db = open_db(settings.store_path)
    assert [(i["volume"], i["number"]) for i in all_issues(db)] == [(2, 1), (2, 2), (2, 4)]
    assert db.execute("SELECT status FROM items WHERE id = ?", [unwritten]).fetchone()[0] == \
        "included"
    assert db.execute("SELECT count(*) FROM issue_items WHERE item_id = ? AND issue_id NOT IN "
                      "(SELECT id FROM issues WHERE number = 4)", [unwritten]).fetchone()[0] == 0
    db.close()
    digest("issue", "discard", "2.4", cwd=folder)
    redo = draft_issue(settings, day=SEED_DATE + dt.timedelta(days=14))
    assert (redo.volume, redo.number) == (2, 3)  # the freed number is taken again
    trail = digest("history", "--issue", "all", cwd=folder, env={"COLUMNS": "200"}).stdout
    assert trail.count("discard") == 2


def test_users_cli_roles(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[store]\npath = "data/d.db"\n', encoding="utf-8")
    import subprocess
    import sys

    def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "alliance_digest.cli", "users", *args],
                              cwd=tmp_path, input=stdin, capture_output=True, text=True,
                              timeout=120)

    assert "added user pat (publisher)" in users(
        "add", "pat", "--role", "publisher", "--password-stdin", stdin="long enough pw\n").stdout
    assert "(editor)" in users("add", "ann", "--password-stdin", stdin="long enough pw\n").stdout
    assert "ann is now publisher" in users("set-role", "ann", "publisher").stdout
    bad = users("set-role", "ann", "king")
    assert bad.returncode == 1 and "unknown role 'king'" in bad.stderr
    listed = users("list").stdout
    assert listed.count("publisher") == 2


def test_draft_out_deletes_nothing_elsewhere_and_paths_are_relative(site: Settings,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    first = draft_issue(site, day=SEED_DATE)
    db = open_db(site.store_path)
    stored = find_issue(db, "2.3")["md_path"]
    db.close()
    assert not Path(stored).is_absolute()
    assert (site.data_dir / stored).resolve() == first.paths["md"]
    elsewhere = tmp_path / "elsewhere"
    again = draft_issue(site, day=SEED_DATE, out_dir=elsewhere, number=4)
    assert again.removed == [] and first.paths["md"].exists()
    assert again.paths["md"].parent == elsewhere.resolve()
    # In the same folder, the earlier draft's files under the old name are replaced.
    third = draft_issue(site, day=SEED_DATE, out_dir=elsewhere, number=5)
    assert {p.name for p in third.removed} == {again.paths[k].name for k in again.paths}
    assert first.paths["md"].exists()


def test_discard_removes_the_issues_pdf_and_word_files_too(drafted) -> None:
    """The draft flow and `digest issue export` write a PDF and a Word file beside the draft's
    files; discarding the issue ("deletes an unsent issue and its files") takes them too."""
    from alliance_digest.pipeline.export import export_issue

    settings, _ = drafted
    exports = [export_issue(settings, "2.3", fmt) for fmt in ("pdf", "docx")]
    assert all(p.is_file() for p in exports)
    db = open_db(settings.store_path)
    try:
        _, removed = review.discard(db, settings, "2.3", actor="pat")
    finally:
        db.close()
    assert not any(p.exists() for p in exports)
    assert {p.resolve() for p in exports} <= {p.resolve() for p in removed}


def test_a_dropped_entrys_number_is_not_given_to_the_next_story(drafted) -> None:
    """Comments and the trail name entries by number: a new entry must not take the number of
    a dropped one, or its open comments would land on another story."""
    from alliance_digest.pipeline import entries

    settings, unwritten = drafted
    db = open_db(settings.store_path)
    try:
        dropped = _entry(db, unwritten)
        review.comment(db, settings, "2.3", str(dropped), "Which coast guards?", actor="pat")
        entries.drop(db, dropped, editor="ann")
        (other,) = add_items(db, [{**UNWRITTEN, "title": "Ospreys resume flights",
                                   "status": "candidate"}])
        made = entries.include(db, other, editor="ann")
        assert made["id"] != dropped
        issue_id = find_issue(db, "2.3")["id"]
        on_new = [c for c in comments(db, issue_id) if c["entry"] == str(made["id"])]
        assert on_new == []
    finally:
        db.close()


def test_an_item_of_a_sent_issue_cannot_leave_its_entry(drafted) -> None:
    """A final issue is frozen: excluding (or shortlisting) one of its items from the queue or
    `digest tag` must not take it out of the sent issue's entry (the archive would change)."""
    from alliance_digest.errors import IssueFinalError
    from alliance_digest.store import editorial

    settings, unwritten = drafted
    db = open_db(settings.store_path)
    try:
        review.finalize(db, "2.3", actor="pat", force=True)
        entry = _entry(db, unwritten)
        with pytest.raises(IssueFinalError, match="final"):
            editorial.update_items(db, [unwritten], {"status": "excluded"}, editor="ann")
        assert _entry(db, unwritten) == entry
        assert editorial.get_item(db, unwritten)["status"] == "included"
        # Nor does its lead item's page (or `digest tag --headline`) rewrite its paragraph.
        with pytest.raises(IssueFinalError, match="final"):
            editorial.update_items(db, [unwritten], {"headline": "Rewritten"}, editor="ann")
        assert entry_row(db, entry)["headline"] != "Rewritten"
        editorial.update_items(db, [unwritten], {"tags": '["kept"]'}, editor="ann")
    finally:
        db.close()
