"""`digest triage …`, `digest search` and the triage fields of `digest items --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import collect_into, digest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def triaged(tmp_path_factory) -> Path:
    """The hand-written alliance feed collected and triaged, in a folder of its own."""
    folder = tmp_path_factory.mktemp("triaged")
    collect_into(folder, {"Written": (DATA / "alliance-written.xml").read_bytes()}, triage=True)
    return folder


def test_items_json_carries_score_reasons_and_cluster(triaged):
    rows = json.loads(digest("items", "--json", "--status", "all", cwd=triaged).stdout)
    assert len(rows) == 79
    for r in rows:
        assert isinstance(r["score"], float) and isinstance(r["reasons"], list)
        assert r["cluster_id"] is not None
        assert r["status"] in ("candidate", "filtered")
    dialogue = next(r for r in rows if r["title"] == "Japan-U.S. Extended Deterrence Dialogue")
    assert dialogue["status"] == "candidate" and dialogue["reasons"]
    assert {"rule", "match", "weight"} <= set(dialogue["reasons"][0])
    star = [r for r in rows if "Star Alliance" in r["title"]]
    assert star and all(r["status"] == "filtered" for r in star)


def test_search_phrases_exclusions_and_japanese(triaged):
    def ids(*args: str) -> list[int]:
        return [r["id"] for r in json.loads(digest("search", *args, "--json", cwd=triaged).stdout)]

    phrase = json.loads(digest("search", '"extended deterrence"', "--json", cwd=triaged).stdout)
    assert phrase and all("extended deterrence" in (r["title"] + r["snippet"]).lower()
                          for r in phrase)
    nichibei = json.loads(digest("search", "日米", "--json", cwd=triaged).stdout)
    assert nichibei and all("日米" in r["title"] + r["snippet"] for r in nichibei)
    okinawa = set(ids("Okinawa"))
    assert len(okinawa) == 4
    without = set(ids("Okinawa", "-Henoko"))  # unquoted, as an editor types it
    assert without < okinawa and len(without) == 3
    assert set(ids("沖縄")) and set(ids("沖縄", "-台風")) < set(ids("沖縄"))
    bad = digest("search", '"unbalanced', cwd=triaged, check=False)
    assert bad.returncode in (0, 1) and "Traceback" not in bad.stderr


def test_rescore_moves_items_and_spares_editor_decisions(triaged, tmp_path):
    rows = json.loads(digest("items", "--json", "--status", "candidate", cwd=triaged).stdout)
    kept = rows[0]["id"]
    digest("tag", str(kept), "--include", cwd=triaged, check=False)
    if json.loads(digest("items", "--json", "--status", "included",
                         cwd=triaged).stdout) == []:  # before the CLI twin exists
        from alliance_digest.store.db import open_db

        db = open_db(triaged / "data" / "digest.db")
        db["items"].update(kept, {"status": "included", "status_by": "tester"})
        db.close()
    # Stricter rules, next to digest.toml: everything is now below the threshold.
    strict = (Path(__file__).parents[1] / "relevance.toml").read_text(encoding="utf-8")
    (triaged / "relevance.toml").write_text(
        strict.replace("threshold = ", "threshold = 1000 # was ", 1), encoding="utf-8")
    try:
        moved = digest("triage", "rescore", cwd=triaged).stdout
        assert f"{len(rows) - 1} moved out to filtered" in moved
        after = json.loads(digest("items", "--json", "--status", "all", cwd=triaged).stdout)
        assert {r["status"] for r in after} == {"filtered", "included"}
        assert next(r for r in after if r["id"] == kept)["status"] == "included"
    finally:
        (triaged / "relevance.toml").unlink()
    back = digest("triage", "rescore", cwd=triaged).stdout
    assert f"{len(rows) - 1} moved in to candidate" in back


def test_evaluate_prints_precision_recall_and_misses(triaged):
    labels = DATA / "relevance-labels.tsv"
    shown = digest("triage", "evaluate", "--labels", str(labels), cwd=triaged).stdout
    assert "precision" in shown.lower() and "recall" in shown.lower()
    missing = digest("triage", "evaluate", "--labels", "nope.tsv", cwd=triaged, check=False)
    assert missing.returncode == 1 and "nope.tsv" in missing.stderr
