"""The learned relevance model: training from decisions, the blend, storage, fallbacks, CLI.

The held-out third of tests/data/relevance-labels.tsv (`triage.model.held_out`) is never in
the shipped training set; the figures asserted here are measured on it.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.errors import ConfigError
from alliance_digest.pipeline.relevance_model import retrain_if_due, retraining_due, train_model
from alliance_digest.settings import load_settings
from alliance_digest.sources.feeds import parse_feed
from alliance_digest.sources.normalise import canonical_url
from alliance_digest.store import items, sources
from alliance_digest.store.db import open_db
from alliance_digest.store.editorial import update_items
from alliance_digest.store.models import current_model
from alliance_digest.triage.evaluate import evaluate_three, format_three
from alliance_digest.triage.model import (
    MIN_LABELS,
    SHIPPED,
    LinearModel,
    held_out,
    load_current,
    shipped_examples,
    train,
)
from alliance_digest.triage.relevance import apply_relevance, score_text
from alliance_digest.triage.rules import DEFAULT_RULES, load_rules_file
from support import SHARED, collect_into, digest, make_entry

DATA = Path(__file__).parent / "data"
LABELS = DATA / "relevance-labels.tsv"
WRITTEN = {"written": DATA / "alliance-written.xml", "written-2": DATA / "relevance-written-2.xml"}


@pytest.fixture(scope="module")
def rules():
    return load_rules_file(DEFAULT_RULES)


def _labels() -> list[dict[str, str]]:
    with LABELS.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _source_for(origin: str) -> dict[str, str]:
    base = {"name": origin, "url": f"https://corpus.test/{origin}", "kind": "feed"}
    if origin.startswith(("whitehouse/", "real/wh-briefings/")):
        return {**base, "category": "government", "owner": "The White House", "country": "US"}
    if origin.startswith("real/afmil/"):
        return {**base, "category": "military", "owner": "U.S. Air Force", "country": "US"}
    if "_jp" in origin:
        return {**base, "category": "news", "country": "JP", "language": "ja"}
    return {**base, "category": "news"}


def _origin_path(origin: str) -> Path:
    if origin in WRITTEN:
        return WRITTEN[origin]
    if origin.startswith("demo/"):
        return Path(__file__).parents[1] / "demo_data" / "feeds" / origin.removeprefix("demo/")
    return SHARED / "corpus" / origin


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory) -> Path:
    """A configured folder whose database holds every entry of the labelled feeds, triaged."""
    origins = sorted({row["origin"] for row in _labels()})
    missing = [o for o in origins if not _origin_path(o).is_file()]
    if missing:
        pytest.skip(f"corpus not available: {missing[0]}")
    folder = tmp_path_factory.mktemp("labelled")
    (folder / "digest.toml").write_text('[store]\npath = "digest.db"\n', encoding="utf-8")
    db = open_db(folder / "digest.db")
    sources.sync_sources(db, [_source_for(o) for o in origins])
    with db.atomic():
        for origin in origins:
            src = sources.get_source(db, origin)
            feed = parse_feed(_origin_path(origin).read_bytes(), {}, src["url"])
            items.store_entries(db, src["id"], [dataclasses.asdict(e) for e in feed.entries])
    apply_relevance(db, load_rules_file(DEFAULT_RULES))
    db.close()
    return folder


@pytest.fixture
def folder(labelled_folder, tmp_path) -> Path:
    """A copy of the labelled folder a test may change."""
    shutil.copy(labelled_folder / "digest.toml", tmp_path / "digest.toml")
    shutil.copy(labelled_folder / "digest.db", tmp_path / "digest.db")
    return tmp_path


def _write_labels(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("url\tguid\tlabel\n" + "".join(
        f"{r['url']}\t{r['guid']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    return path


# --- the shipped set and the held-out targets ----------------------------------------------------


def test_shipped_set_is_exactly_the_tuning_part():
    """The package's training set holds the tuning two thirds, never a held-out row."""
    shipped = shipped_examples()
    tuning = {r["url"]: int(r["label"]) for r in _labels() if not held_out(r["url"])}
    assert {e.key: e.label for e in shipped} == tuning
    assert all(e.title for e in shipped)
    raw = (Path(__file__).parents[1] / "triage" / SHIPPED).read_bytes()
    assert len(gzip.decompress(raw).splitlines()) == len(tuning)


def test_held_out_targets_on_the_shipped_set(folder, rules, tmp_path):
    """Trained on the shipped set alone: recall >= 0.95 at precision >= 0.80 on the held-out
    third, better recall than the rules alone."""
    result = train(shipped_examples(), rules)
    assert result.model is not None and result.cv_recall >= 0.95
    held = _write_labels(tmp_path / "held.tsv", [r for r in _labels() if held_out(r["url"])])
    db = open_db(folder / "digest.db")
    rows = dict(evaluate_three(db, held, rules, result.model))
    db.close()
    blend, alone = rows["blend"], rows["rules alone"]
    assert blend is not None and alone is not None
    print(format_three(list(rows.items()), show=5))
    assert blend.unmatched == [] and blend.matched > 600
    assert blend.recall >= 0.95 and blend.precision >= 0.80
    assert blend.recall > alone.recall


# --- editors' decisions ------------------------------------------------------------------------


def _decide(db, labelled: list[dict[str, str]], editor: str = "alice") -> None:
    """Editors' decisions on labelled items: 1 → included, 0 → excluded."""
    by_url = {canonical_url(r["url"]): r for r in labelled}
    ids: dict[str, list[int]] = {"included": [], "excluded": []}
    for row in db.query("SELECT id, url FROM items"):
        lab = by_url.get(row["url"])
        if lab is not None:
            ids["included" if lab["label"] == "1" else "excluded"].append(row["id"])
    for status, chosen in ids.items():
        if chosen:
            update_items(db, chosen, {"status": status}, editor=editor)


def _stored_pr(db, labelled: list[dict[str, str]]) -> tuple[float, float, int]:
    want = {canonical_url(r["url"]): r["label"] == "1" for r in labelled}
    tp = fp = fn = 0
    for row in db.query("SELECT url, status FROM items"):
        if row["url"] not in want:
            continue
        got = row["status"] == "candidate"
        tp += got and want[row["url"]]
        fp += got and not want[row["url"]]
        fn += (not got) and want[row["url"]]
    return tp / (tp + fp), tp / (tp + fn), tp + fn


def test_editor_simulation_decide_half_train_rescore_other_half(folder, rules, tmp_path):
    """Decisions on one half of the held-out part, `digest triage train`, `digest triage
    rescore`: the other half's recall >= 0.90 at precision >= 0.70, never below the rules."""
    held = [r for r in _labels() if held_out(r["url"])]
    first = [r for r in held if zlib.crc32(r["url"].encode()) % 2 == 0]
    second = [r for r in held if zlib.crc32(r["url"].encode()) % 2 == 1]
    db = open_db(folder / "digest.db")
    _rules_p, rules_r, positives = _stored_pr(db, second)
    _decide(db, first)
    decided = dict(db.execute("SELECT status, count(*) FROM items WHERE status IN "
                              "('included', 'excluded') GROUP BY status").fetchall())
    db.close()

    shown = digest("triage", "train", cwd=folder).stdout
    assert "now current" in shown and "cross-validated" in shown
    assert f"{sum(decided.values())} editors' decisions" in shown
    moved = digest("triage", "rescore", cwd=folder).stdout
    assert "with relevance model 1" in moved

    db = open_db(folder / "digest.db")
    p, r, _ = _stored_pr(db, second)
    after = dict(db.execute("SELECT status, count(*) FROM items WHERE status IN "
                            "('included', 'excluded') GROUP BY status").fetchall())
    row = current_model(db)
    db.close()
    assert positives > 30
    assert after == decided  # rescore kept every editor's status
    assert r >= 0.90 and p >= 0.70
    assert r >= rules_r
    assert row is not None and row["from_editors"] == sum(decided.values())
    assert row["cv_recall"] >= 0.95 and row["threshold"] == rules.threshold


SIMILAR = [
    ("JGSDF and Marines train together at Camp Hansen", "Ground troops and Marines rehearse "
     "a river crossing at Camp Hansen with the 1st Airborne Brigade."),
    ("Airlift wing drills with JASDF over Kyushu", "C-130 crews of the airlift wing fly "
     "formation with Japanese crews over Kyushu in a bilateral drill."),
]
NOISE = [
    ("Base library opens a reading corner", "The base library opens a reading corner for "
     "children of service members, with story hours on Fridays."),
    ("Commissary extends its weekend hours", "The commissary now opens earlier on weekends "
     "after shoppers asked for more time before the holidays."),
]


def _plain_items(n: int, start: int, positive: bool) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        title, summary = (SIMILAR if positive else NOISE)[k % 2]
        unit = ["3rd Marine Division", "12th Brigade", "35th Infantry", "18th Wing"][k % 4]
        text = f"{summary} The {unit} takes part, day {k}."
        out.append(make_entry(start + k, title=f"{title} ({k})", summary=text, summary_text=text,
                              published_at=f"2026-03-{1 + k % 27:02d}T10:00:00Z"))
    return out


@pytest.fixture
def desk_folder(tmp_path) -> Path:
    """A folder with 80 unit-and-base items the rules alone cannot tell apart."""
    (tmp_path / "digest.toml").write_text('[store]\npath = "digest.db"\n[triage]\n'
                                          'retrain_after = 50\n', encoding="utf-8")
    db = open_db(tmp_path / "digest.db")
    sources.sync_sources(db, [{"name": "Base news", "url": "https://base.test/feed",
                               "kind": "feed", "category": "military", "country": "US"}])
    src = sources.get_source(db, "Base news")
    with db.atomic():
        items.store_entries(db, src["id"], _plain_items(40, 1, True) + _plain_items(40, 100,
                                                                                      False))
    apply_relevance(db, load_rules_file(DEFAULT_RULES))
    db.close()
    return tmp_path


def test_training_from_desk_and_cli_decisions_moves_similar_unseen_items(desk_folder, rules):
    from alliance_digest.editor.app import create_app
    from alliance_digest.store.users import add_user
    from starlette.testclient import TestClient
    from test_editor_http import login

    settings = load_settings(desk_folder / "digest.toml")
    db = open_db(settings.store_path)
    add_user(db, "alice", "correct horse battery")
    ids = {r["guid"]: r["id"] for r in db.query("SELECT id, guid FROM items")}
    db.close()
    unseen_yes = ("Marines and JGSDF rehearse at Camp Hansen", "Marines and ground troops "
                  "rehearse a river crossing with the airborne brigade.")
    unseen_no = ("Base library adds Friday story hours", "The library opens a corner with "
                 "story hours for children on the base.")
    before = [score_text(t, s, {"category": "military"}, rules).score
              for t, s in (unseen_yes, unseen_no)]

    # Half the decisions at the desk (its HTTP API), half with `digest tag`.
    with TestClient(create_app(settings)) as client:
        csrf = login(client)
        for status, guids in (("included", range(1, 21)), ("excluded", range(100, 120))):
            chosen = [ids[str(g)] for g in guids]
            db = open_db(settings.store_path)
            shown = {r["id"]: r["version"] or 0 for r in db.query(
                f"SELECT id, version FROM items WHERE id IN ({','.join('?' * len(chosen))})",
                chosen)}
            db.close()
            r = client.post("/api/items/status", json={
                "ids": chosen, "versions": [shown[i] for i in chosen], "status": status},
                headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200, r.text
    assert retraining_due(settings) == ""  # 40 decisions made, 50 asked for
    for flag, guids in (("--shortlist", range(21, 41)), ("--exclude", range(120, 140))):
        for g in guids:
            digest("tag", str(ids[str(g)]), flag, cwd=desk_folder)
    assert retraining_due(settings) == "80 decisions since the last training"

    few = digest("triage", "train", "--no-shipped", cwd=desk_folder).stdout
    assert "40 relevant, 40 not" in few and "now current" in few
    db = open_db(settings.store_path)
    model, warning = load_current(db)
    db.close()
    assert model is not None and warning == ""
    blend = rules.with_model(model)
    after = [score_text(t, s, {"category": "military"}, blend) for t, s in (unseen_yes, unseen_no)]
    assert after[0].score > before[0] and after[1].score < before[1]
    assert after[0].relevant and not after[1].relevant
    model_reason = next(r for r in after[0].reasons if r["rule"] == "model")
    assert model_reason["weight"] > 0 and '"' in model_reason["match"]

    assert retrain_if_due(settings) is None  # no decision since
    # An issue finalised after the training: the draft flow's task trains and rescores.
    db = open_db(settings.store_path)
    db["issues"].insert({"title": "Digest", "volume": 1, "number": 1, "date": "2026-03-31",
                         "status": "final", "created_at": "2026-03-31T00:00:00Z",
                         "finalized_at": "2999-01-01T00:00:00Z"})
    db.close()
    training = retrain_if_due(settings)
    assert training is not None and training.version == 2 and training.why == "issue finalised"
    assert training.rescored is not None and training.rescored["model"] == 2


def test_too_few_labels_keeps_the_rules_alone(desk_folder):
    settings = load_settings(desk_folder / "digest.toml")
    db = open_db(settings.store_path)
    first = [r["id"] for r in db.query("SELECT id FROM items ORDER BY id LIMIT 35")]
    update_items(db, first, {"status": "included"}, editor="alice")
    db.close()
    training = train_model(settings, shipped=False)
    assert training.version is None
    assert f"at least {MIN_LABELS} of each" in training.summary()
    shown = digest("triage", "train", "--no-shipped", cwd=desk_folder).stdout
    assert "too few labels" in shown and "rules stay alone" in shown
    db = open_db(settings.store_path)
    assert current_model(db) is None
    db.close()


# --- a model that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize("damage", ["corrupt", "format", "foreign"])
def test_unusable_model_falls_back_to_rules_with_a_warning(tmp_path, damage):
    folder = tmp_path
    config = collect_into(folder, {"Written": (DATA / "alliance-written.xml").read_bytes()},
                          triage=True)
    settings = load_settings(config)
    training = train_model(settings)
    assert training.version == 1
    db = open_db(settings.store_path)
    if damage == "corrupt":
        db.execute("UPDATE relevance_models SET model = ?", [b"\x00not zlib"])
    elif damage == "format":
        db.execute("UPDATE relevance_models SET format = 'alliance-digest-relevance/0'")
    else:  # a blob another version wrote: valid, but its inner format differs
        blob = json.loads(zlib.decompress(current_model(db)["model"]))
        blob["format"] = "alliance-digest-relevance/99"
        db.execute("UPDATE relevance_models SET model = ?",
                   [zlib.compress(json.dumps(blob).encode())])
    db.conn.commit()
    model, warning = load_current(db)
    db.close()
    assert model is None and "rules alone" in warning

    rescored = digest("triage", "rescore", cwd=folder)
    assert "with the rules alone" in rescored.stdout and "rules alone" in rescored.stderr
    evaluated = digest("triage", "evaluate", "--labels", str(LABELS), cwd=folder)
    assert "model alone  no model" in evaluated.stdout and "warning" in evaluated.stderr
    # Training again makes a usable model of this version current.
    assert train_model(settings).version == 2
    assert "with relevance model 2" in digest("triage", "rescore", cwd=folder).stdout


def test_collect_summary_warns_of_an_unusable_model(tmp_path):
    from alliance_digest.pipeline.collect import collect_once

    config = collect_into(tmp_path, {"Written": (DATA / "alliance-written.xml").read_bytes()},
                          triage=True)
    settings = load_settings(config)
    assert train_model(settings).version == 1
    db = open_db(settings.store_path)
    db.execute("UPDATE relevance_models SET model = ?", [b"garbage"])
    db.conn.commit()
    db.close()
    from alliance_digest.feedserver import FeedServer

    with FeedServer() as server:
        server.route("/f", body=(DATA / "relevance-written-2.xml").read_bytes())
        (tmp_path / "sources.toml").write_text(
            f'[[source]]\nname = "W2"\nurl = "{server.url("/f")}"\ncategory = "news"\n')
        summary = collect_once(load_settings(config), force=True)
    assert summary.run["status"] == "completed" and summary.run["items_new"] > 400
    assert "damaged" in summary.triage["model_warning"]
    assert summary.triage["model"] is None


def test_model_blob_round_trips_and_refuses_damage(rules):
    result = train(shipped_examples()[:400], rules)
    model = result.model
    assert model is not None
    again = LinearModel.from_blob(model.to_blob(), 7)
    assert again.version == 7 and again.weights.keys() == model.weights.keys()
    from alliance_digest.errors import ModelError

    with pytest.raises(ModelError, match="damaged"):
        LinearModel.from_blob(model.to_blob()[:-10])


# --- the evaluation, borderline items, settings --------------------------------------------------


def test_evaluate_prints_three_rows_with_their_misses(folder, tmp_path):
    digest("triage", "train", cwd=folder)
    held = _write_labels(tmp_path / "held.tsv", [r for r in _labels() if held_out(r["url"])])
    shown = digest("triage", "evaluate", "--labels", str(held), "--show", "3", cwd=folder).stdout
    lines = shown.splitlines()
    for name in ("rules alone", "model alone", "blend"):
        row = next(line for line in lines if line.startswith(name))
        assert len(row[len(name):].split()) == 7
        assert f"{name}: " in shown  # its misses are listed
    assert "false negatives (labelled 1)" in shown


def test_rescore_marks_borderline_items(folder):
    digest("triage", "train", cwd=folder)
    digest("triage", "rescore", cwd=folder)
    db = open_db(folder / "digest.db")
    rows = list(db.query("SELECT score, borderline FROM items WHERE status IN "
                         "('candidate', 'filtered')"))
    row = current_model(db)
    db.close()
    near = [r for r in rows if r["borderline"]]
    assert near and len(near) < len(rows) / 2
    assert all(abs(r["score"] - row["threshold"]) <= row["band"] + 0.01 for r in near)


def test_retrain_after_is_a_checked_setting(tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text("[triage]\nretrain_after = 20\n")
    assert load_settings(config).triage.retrain_after == 20
    config.write_text("[triage]\nretrain_after = 0\n")
    with pytest.raises(ConfigError, match=r"\[triage\]: 'retrain_after' must be greater than 0"):
        load_settings(config)
    config.write_text("[triage]\nretrain_every = 5\n")
    with pytest.raises(ConfigError, match="unknown key 'retrain_every'"):
        load_settings(config)


def test_reasons_name_the_models_terms(folder, rules):
    digest("triage", "train", cwd=folder)
    db = open_db(folder / "digest.db")
    model, _ = load_current(db)
    db.close()
    scored = score_text("Takaichi names her cabinet", "Prime Minister Sanae Takaichi named a "
                        "cabinet that keeps the defense minister.", {"category": "news"},
                        rules.with_model(model))
    reason = next(r for r in scored.reasons if r["rule"] == "model")
    assert reason["match"].count('"') >= 2
    assert any(r["rule"].startswith("group:") for r in scored.reasons)


def test_desk_filters_borderline_items_and_warns_of_an_unusable_model(desk_folder):
    from alliance_digest.editor.app import create_app
    from alliance_digest.store.users import add_user
    from starlette.testclient import TestClient
    from test_editor_http import login

    settings = load_settings(desk_folder / "digest.toml")
    db = open_db(settings.store_path)
    add_user(db, "alice", "correct horse battery")
    titles = {r["id"]: r["title"] for r in db.query("SELECT id, title FROM items")}
    near = [r["id"] for r in db.query("SELECT id FROM items ORDER BY id LIMIT 3")]
    db.execute(f"UPDATE items SET borderline = (id IN ({','.join(map(str, near))})), "
               "status = 'candidate'")
    db.conn.commit()
    db.close()
    with TestClient(create_app(settings)) as client:
        login(client)
        html = client.get("/?borderline=1").text
        shown = [i for i, t in titles.items() if f">{t}<" in html]
        assert sorted(shown) == sorted(near)
        assert 'name="borderline" value="1" checked' in html
        assert html.count('class="borderline"') == len(near)
        everything = client.get("/").text
        assert sum(f">{t}<" in everything for t in titles.values()) > 3
        assert "Relevance:" not in everything

        db = open_db(settings.store_path)
        examples = shipped_examples()
        result = train(examples, load_rules_file(DEFAULT_RULES))
        from alliance_digest.triage.model import store_result

        store_result(db, result, load_rules_file(DEFAULT_RULES))
        db.execute("UPDATE relevance_models SET model = ?", [b"broken"])
        db.conn.commit()
        db.close()
        html = client.get("/").text
        assert "Relevance: relevance model 1 is damaged" in html


@pytest.mark.flow
def test_draft_flow_retrains_after_an_issue_is_finalised(tmp_path):
    import asyncio

    from alliance_digest.flows.draft import draft
    from prefect.testing.utilities import prefect_test_harness

    config = collect_into(tmp_path, {"Written": (DATA / "alliance-written.xml").read_bytes()},
                          triage=True)
    db = open_db(tmp_path / "data" / "digest.db")
    db["issues"].insert({"title": "Digest", "volume": 1, "number": 1, "date": "2025-01-07",
                         "window_start": "2024-12-24", "window_end": "2025-01-07",
                         "status": "final", "created_at": "2025-01-07T00:00:00Z",
                         "finalized_at": "2025-01-08T00:00:00Z"})
    db.close()
    with prefect_test_harness(server_startup_timeout=60):
        result = asyncio.run(draft(date="2026-11-24", out=str(tmp_path / "out"),
                                   config=str(config)))
        again = asyncio.run(draft(date="2026-11-24", out=str(tmp_path / "out"),
                                  config=str(config)))
    trained = result["relevance_model"]
    assert trained["version"] == 1 and trained["why"] == "issue finalised"
    assert trained["rescored"]["scored"] == 79
    assert "relevance_model" not in again  # nothing new since


@pytest.mark.flow
def test_collect_flow_retrains_once_enough_decisions_accumulated(tmp_path):
    import asyncio

    from alliance_digest.flows.collect import collect_with_runner
    from prefect.testing.utilities import prefect_test_harness

    config = collect_into(tmp_path, {"Written": (DATA / "alliance-written.xml").read_bytes()},
                          triage=True)
    (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n[triage]\n'
                                          "retrain_after = 10\n[http]\ntotal_timeout = 5.0\n")
    db = open_db(tmp_path / "data" / "digest.db")
    ids = [r["id"] for r in db.query("SELECT id FROM items ORDER BY id LIMIT 12")]
    update_items(db, ids[:9], {"status": "included"}, editor="alice")
    db.close()
    with prefect_test_harness(server_startup_timeout=60):
        before = asyncio.run(collect_with_runner()(force=True, config=str(config)))
        db = open_db(tmp_path / "data" / "digest.db")
        update_items(db, ids[9:], {"status": "excluded"}, editor="alice")
        db.close()
        after = asyncio.run(collect_with_runner()(force=True, config=str(config)))
    assert "relevance_model" not in before  # 9 decisions, 10 asked for
    trained = after["relevance_model"]
    assert trained["version"] == 1 and trained["why"] == "12 decisions since the last training"
    assert trained["from_editors"] == 12 and trained["rescored"]["model"] == 1


def test_hostile_text_reads_only_the_capped_start(rules):
    from alliance_digest.triage.model import CJK_CHARS, MODEL_CHARS, features

    long_title = "alliance " * 100_000
    feats = features(long_title, "日米" * 100_000, None)
    assert len(feats) < 2 * MODEL_CHARS + CJK_CHARS
    result = train(shipped_examples()[:300], rules)
    assert result.model is not None
    scored = score_text(long_title, "同盟" * 100_000, None, rules.with_model(result.model))
    assert any(r["rule"] == "model" for r in scored.reasons)
