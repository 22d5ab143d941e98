"""Relevance rules, scoring, rescoring and the evaluation against the hand-labelled set."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.errors import ConfigError
from alliance_digest.settings import Settings
from alliance_digest.sources.feeds import parse_feed
from alliance_digest.store import items, sources
from alliance_digest.store.db import open_db
from alliance_digest.triage.evaluate import evaluate, format_report, read_labels
from alliance_digest.triage.relevance import apply_relevance, score_text
from alliance_digest.triage.rules import (
    DEFAULT_RULES,
    load_rules,
    load_rules_file,
    rules_from_mapping,
)
from support import SHARED, make_entry

DATA = Path(__file__).parent / "data"
CORPUS = SHARED / "corpus"
LABELS = DATA / "relevance-labels.tsv"

WHITE_HOUSE = {"name": "White House", "category": "government", "owner": "The White House",
               "country": "US"}
NEWS = {"name": "Some paper", "category": "news", "country": "JP"}


@pytest.fixture(scope="module")
def rules():
    return load_rules_file(DEFAULT_RULES)


def small(**extra: Any) -> dict[str, Any]:
    """A tiny rules table: Japan and US groups, one combination, threshold 5."""
    table: dict[str, Any] = {
        "threshold": 5,
        "groups": {
            "japan": {"weight": 2, "terms": ["Japan", "Japanese", "日本", "USFJ", "Okinawa*"]},
            "us": {"weight": 1, "terms": ["United States", "U.S."]},
            "quad": {"weight": 5, "terms": ["Quad"]},
            "alliance": {"weight": 5, "terms": ["alliance", "同盟"]},
        },
        "combos": [{"name": "Japan + US", "all": ["japan", "us"], "weight": 3}],
        "false_friends": ["Star Alliance", "スターアライアンス"],
    }
    table.update(extra)
    return rules_from_mapping(table, "test.toml")


# --- matching ------------------------------------------------------------------------------------


def test_words_not_substrings():
    r = small()
    assert score_text("Quad leaders meet", "", None, r).relevant
    assert score_text("DOE opens Quadrennial Energy Review", "", None, r).score == 0
    assert score_text("Quadrant and squad", "", None, r).score == 0
    # "Japan" does not cover "Japanese" unless listed: here both are, each counts once.
    assert score_text("Japanese", "", None, r).reasons[0]["match"] == "Japanese"


def test_star_alliance_is_a_false_friend(rules):
    r = small()
    scored = score_text("Star Alliance opens lounge", "A new alliance lounge", None, r)
    assert scored.reasons[0] == {"rule": "false friend", "match": "Star Alliance", "weight": 0.0}
    assert [x["match"] for x in scored.reasons[1:]] == ["alliance"]
    assert score_text("スターアライアンス、新ラウンジ", "", None, r).score == 0
    assert not score_text("Star Alliance opens new flagship lounge at Tokyo Narita",
                          "Shared by ANA and United.", NEWS, rules).relevant


def test_japanese_terms_match_inside_words():
    r = small()
    scored = score_text("日米同盟の強化", "", None, r)
    assert {x["match"] for x in scored.reasons} == {"同盟"}
    assert score_text("日本政府は", "", None, r).reasons[0]["match"] == "日本"


def test_full_width_and_case_are_ignored():
    r = small()
    assert score_text("ＵＳＦＪ commander", "", None, r).reasons[0]["match"] == "USFJ"
    assert score_text("ｊａｐａｎ", "", None, r).reasons[0]["match"] == "Japan"
    assert score_text("JAPAN", "", None, r).reasons[0]["match"] == "Japan"


def test_prefix_terms_and_separators():
    r = small()
    assert score_text("Okinawan voters", "", None, r).reasons[0]["match"] == "Okinawa*"
    m = rules_from_mapping({"groups": {"b": {"terms": ["U.S.-Japan"]}}}, "t.toml")
    for text in ("U.S.-Japan talks", "US–Japan talks", "U.S. – Japan talks", "US Japan"):
        assert score_text(text, "", None, m).score > 0, text
    # The pronoun is not the country.
    assert score_text("join us japan", "", None, m).score == 0


def test_title_counts_more_and_groups_are_capped():
    r = small(title_factor=2)
    assert score_text("Japan", "", None, r).score == 4
    assert score_text("", "Japan", None, r).score == 2
    # Each distinct term adds, up to the cap (by default what one title term adds).
    assert score_text("", "Japan Japanese", None, r).score == 4
    assert score_text("", "Japan Japanese 日本 Japan", None, r).score == 4
    assert score_text("Japan", "Japanese", None, r).score == 4
    capped = small(combos=[],
                   groups={"japan": {"weight": 2, "max": 3, "terms": ["Japan", "Japanese"]}})
    assert score_text("", "Japan Japanese", None, capped).score == 3


def test_combinations_only_count_together():
    r = small()
    assert score_text("", "Japan", None, r).score == 2
    assert score_text("", "United States", None, r).score == 1
    both = score_text("", "Japan and the United States", None, r)
    assert both.score == 6 and both.relevant
    assert both.reasons[-1] == {"rule": "combo:Japan + US", "match": "Japan + United States",
                                "weight": 3.0}


def test_us_abbreviations_found_as_the_plain_look_behind_finds_them():
    """The US pattern starts with its literal "U" for speed; it matches what it replaced."""
    import re

    from alliance_digest.triage import rules as rules_module
    from support import random_texts

    plain = re.compile(r"(?<![\w.])U\.?S\.?(?:A\.?)?(?![\w])")
    for text in random_texts("USAusa. _x1-日\n", seed=3, count=30_000, longest=16):
        assert rules_module._US_ABBREV.sub("u.s.", text) == plain.sub("u.s.", text)


def test_priors_add_weight_and_imply_groups():
    r = small(priors=[{"category": "government", "country": ["US"], "weight": 1,
                       "implies": ["us"]}])
    scored = score_text("", "Japan", WHITE_HOUSE, r)
    assert scored.score == 6  # japan 2 + prior 1 + combination 3
    assert score_text("", "Japan", NEWS, r).score == 2
    assert score_text("", "Japan", None, r).score == 2


def test_none_cancels_a_combination():
    r = small(combos=[{"name": "US only", "all": ["us", "quad"], "none": ["japan"],
                       "weight": -10}])
    assert score_text("Quad", "U.S.", None, r).score < 0
    assert score_text("Quad", "U.S. Japan", None, r).score > 0


def test_packaged_rules_on_typical_items(rules):
    yes = [
        ("Japan-U.S. Extended Deterrence Dialogue", "Both sides met in Tokyo.", NEWS),
        ("在日米軍 統合軍司令部への格上げ", "自衛隊との連携を強化", NEWS),
        ("Readout of President Biden's Call with Prime Minister Kishida of Japan", "", WHITE_HOUSE),
        ("Quad Leaders' Joint Statement", "Australia, India, Japan and the United States", NEWS),
    ]
    no = [
        ("Nikkei 225 hits record as chip stocks extend AI rally", "Tokyo Electron led.", NEWS),
        ("Quad bike safety rebate scheme extended", "Farmers get rebates.", NEWS),
        ("Readout of President Biden's Call with President Yoon of the Republic of Korea",
         "They reaffirmed the ironclad alliance.", WHITE_HOUSE),
        ("大谷翔平 2試合連続ホームラン", "ドジャースの大谷翔平選手が本拠地で", NEWS),
    ]
    for title, summary, source in yes:
        assert score_text(title, summary, source, rules).relevant, title
    for title, summary, source in no:
        assert not score_text(title, summary, source, rules).relevant, title


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"groups": {"j": {"terms": ["Japan"], "weight": "x"}}},
         r"^t.toml: \[groups.j\]: 'weight' must be a number"),
        ({"groups": {"j": {"terms": []}}}, r"\[groups.j\]: 'terms' is empty"),
        ({"groups": {"j": {"terms": ["Japan"], "colour": 1}}},
         r"\[groups.j\]: unknown key 'colour'"),
        ({"groups": {"j": {"terms": ["Japan"]}}, "combos": [{"name": "c", "all": ["j", "x"],
                                                             "weight": 1}]},
         r"\[\[combos\]\] #1 \(c\): 'all' names unknown group 'x'"),
        ({"groups": {"j": {"terms": ["Japan"]}}, "priors": [{"weight": 1}]},
         r"\[\[priors\]\] #1: give at least one of"),
        ({"groups": {"j": {"terms": ["Japan"]}}, "threshold": True},
         r"'threshold' must be a number"),
        ({"groups": {}}, r"'groups' must be a table"),
        ({"groups": {"j": {"terms": [""]}}}, r"empty or non-string term"),
        ({"groups": {"j": {"terms": ["Japan"]}}, "treshold": 3}, r"unknown key 'treshold'"),
    ],
)
def test_config_errors_are_one_line_naming_file_and_key(table, message):
    with pytest.raises(ConfigError, match=message) as info:
        rules_from_mapping(table, "t.toml")
    assert "\n" not in str(info.value)


def _settings(config: Path | None, sections: dict[str, Any] | None = None) -> Settings:
    return Settings(config_path=config, store_path=Path("x.db"), sources_file=Path("s.toml"),
                    sections=sections or {})


def test_where_rules_come_from(tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text("")
    # Nothing beside digest.toml: the packaged rules.
    assert load_rules(_settings(config)).where == str(DEFAULT_RULES)
    assert load_rules(_settings(None)).where == str(DEFAULT_RULES)
    # relevance.toml beside digest.toml.
    (tmp_path / "relevance.toml").write_text('threshold = 2\n[groups.j]\nterms = ["Japan"]\n')
    assert load_rules(_settings(config)).threshold == 2
    # [relevance] in digest.toml wins, and its errors name digest.toml and the full table.
    table = {"threshold": 3, "groups": {"j": {"terms": ["Japan"]}}}
    assert load_rules(_settings(config, {"relevance": table})).threshold == 3
    bad = {"groups": {"j": {"terms": ["Japan"], "max": -1}}}
    with pytest.raises(ConfigError, match=rf"^{config}: \[relevance.groups.j\]: 'max'"):
        load_rules(_settings(config, {"relevance": bad}))
    (tmp_path / "relevance.toml").write_text("threshold = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_rules(_settings(config))


# --- the database ------------------------------------------------------------------------------


@pytest.fixture
def db(new_db):
    return new_db({"name": "wh", "url": "https://example.test/wh",
                   **{k: v for k, v in WHITE_HOUSE.items() if k != "name"}})


def _entry(n: int, title: str) -> dict[str, Any]:
    return make_entry(n, title=title)


def test_apply_relevance_never_touches_editor_statuses(db):
    r = small()
    source_id = sources.get_source(db, "wh")["id"]
    titles = ["Japan and the United States", "Japan and the United States", "Nothing",
              "Nothing", "Japan and the United States"]
    items.store_entries(db, source_id, [_entry(i, t) for i, t in enumerate(titles)])
    ids = [row["id"] for row in db["items"].rows_where(order_by="id")]
    db["items"].update(ids[0], {"status": "excluded", "status_by": "ann"})
    db["items"].update(ids[2], {"status": "shortlisted", "status_by": "ann"})
    # An editor put this one back among candidates: their decision, not triage's.
    db["items"].update(ids[3], {"status": "candidate", "status_by": "bob"})

    counts = apply_relevance(db, r)
    assert counts["scored"] == 5
    rows = {row["id"]: row for row in db["items"].rows}
    assert (rows[ids[0]]["status"], rows[ids[0]]["status_by"]) == ("excluded", "ann")
    assert (rows[ids[2]]["status"], rows[ids[2]]["status_by"]) == ("shortlisted", "ann")
    assert (rows[ids[3]]["status"], rows[ids[3]]["status_by"]) == ("candidate", "bob")
    assert (rows[ids[1]]["status"], rows[ids[1]]["status_by"]) == ("candidate", None)
    # Every item is scored, editors' included.
    assert all(row["score"] is not None and row["triaged_at"] for row in rows.values())
    assert json.loads(rows[ids[0]]["reasons"])[-1]["rule"] == "combo:Japan + US"


def test_rescore_counts_moves_and_filtered_items_stay(db):
    source_id = sources.get_source(db, "wh")["id"]
    items.store_entries(db, source_id, [
        _entry(1, "Japan and the United States"), _entry(2, "Japan"), _entry(3, "Quad")])
    first = apply_relevance(db, small())
    assert first == {"scored": 3, "moved_in": 0, "moved_out": 0, "candidates": 2, "filtered": 1}
    assert items.count_items(db) == {"candidate": 2, "filtered": 1}
    row = next(db["items"].rows_where("title = 'Japan'"))
    assert (row["status"], row["status_by"], row["score"]) == ("filtered", "triage", 2.0)

    # The editor tunes: Japan alone now counts, the Quad no longer does.
    tuned = small(groups={"japan": {"weight": 5, "terms": ["Japan"]},
                          "us": {"terms": ["United States"]},
                          "quad": {"weight": 0, "terms": ["Quad"]},
                          "alliance": {"terms": ["alliance"]}})
    again = apply_relevance(db, tuned)
    assert (again["moved_in"], again["moved_out"], again["scored"]) == (1, 1, 3)
    assert items.count_items(db) == {"candidate": 2, "filtered": 1}
    # Rescoring with the same rules moves nothing.
    assert apply_relevance(db, tuned)["moved_in"] == 0

    # Only new items, or only given ones.
    items.store_entries(db, source_id, [_entry(4, "Japan")])
    assert apply_relevance(db, tuned, only_untriaged=True)["scored"] == 1
    assert apply_relevance(db, tuned, item_ids=[1, 2])["scored"] == 2


# --- evaluation ----------------------------------------------------------------------------------


def _source_for(origin: str) -> dict[str, str]:
    """How the labelled set's origins would be registered as sources."""
    base = {"name": origin, "url": f"https://corpus.test/{origin}", "kind": "feed"}
    if origin.startswith(("whitehouse/", "real/wh-briefings/")):
        return {**base, "category": "government", "owner": "The White House", "country": "US"}
    if origin.startswith("real/afmil/"):
        return {**base, "category": "military", "owner": "U.S. Air Force", "country": "US"}
    if "_jp" in origin:
        return {**base, "category": "news", "country": "JP", "language": "ja"}
    return {**base, "category": "news"}


#: Written items' feeds by origin; `demo/NAME` is a feed of the demo's snapshot.
WRITTEN = {"written": DATA / "alliance-written.xml", "written-2": DATA / "relevance-written-2.xml"}


def _origin_path(origin: str) -> Path:
    if origin in WRITTEN:
        return WRITTEN[origin]
    if origin.startswith("demo/"):
        return Path(__file__).parents[1] / "demo_data" / "feeds" / origin.removeprefix("demo/")
    return CORPUS / origin


@pytest.fixture(scope="module")
def labelled_db(tmp_path_factory):
    """A real database holding every entry of the feeds the labels come from."""
    with LABELS.open(encoding="utf-8") as f:
        origins = sorted({row["origin"] for row in csv.DictReader(
            f, delimiter="\t", quoting=csv.QUOTE_NONE)})
    missing = [o for o in origins if not _origin_path(o).is_file()]
    if missing:
        pytest.skip(f"corpus not available: {missing[0]}")
    db = open_db(tmp_path_factory.mktemp("eval") / "eval.db")
    sources.sync_sources(db, [_source_for(o) for o in origins])
    with db.atomic():
        for origin in origins:
            src = sources.get_source(db, origin)
            feed = parse_feed(_origin_path(origin).read_bytes(), {}, src["url"])
            items.store_entries(db, src["id"], [dataclasses.asdict(e) for e in feed.entries])
    yield db
    db.close()


def _split(labels_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The tuning two thirds and the held-out third of the labels (`triage.model.held_out`)."""
    from alliance_digest.triage.model import held_out

    text = labels_path.read_text(encoding="utf-8").splitlines()
    parts: tuple[list[str], list[str]] = ([text[0]], [text[0]])
    for line in text[1:]:
        parts[held_out(line.split("\t", 1)[0])].append(line)
    paths = (tmp_path / "tune.tsv", tmp_path / "held.tsv")
    for path, lines in zip(paths, parts, strict=True):
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def test_rules_alone_on_the_labelled_set(labelled_db, rules, tmp_path):
    """The rules' own floor on the grown set (1,952 items read under issue 12's wider rule).

    The rules were written for the first 727 items; the implied coverage added since (unit
    training, Japan's domestic decisions, previews) is what the learned model is for.
    """
    labelled = len(read_labels(LABELS))
    counts = apply_relevance(labelled_db, rules)
    assert counts["scored"] >= labelled

    report = evaluate(labelled_db, LABELS, rules)
    print(format_report(report))
    assert report.unmatched == []
    assert report.matched == labelled
    assert report.recall >= 0.80
    assert report.precision >= 0.90

    _tune, held = _split(LABELS, tmp_path)
    held_report = evaluate(labelled_db, held, rules)
    assert held_report.recall >= 0.80 and held_report.precision >= 0.90

    # Stored statuses agree with a fresh evaluation (apply_relevance and evaluate score alike).
    candidates = {row["url"] for row in labelled_db.query(
        "SELECT url FROM items WHERE status = 'candidate'")}
    fp_urls = {m.url for m in report.wrong if m.label == 0}
    assert fp_urls <= candidates


def test_evaluate_reports_unmatched_labels_and_bad_files(labelled_db, rules, tmp_path):
    labels = tmp_path / "l.tsv"
    labels.write_text(
        "guid\tlabel\textra\n"
        "https://example.test/nowhere\t1\tx\n"
        "https://example.test/defense/2025/12/hegseth-koizumi-pentagon-meeting\t1\ty\n",
        encoding="utf-8",
    )
    report = evaluate(labelled_db, labels, rules)
    assert [lab.line for lab in report.unmatched] == [2]
    assert "Labels with no matching item: 1" in format_report(report)

    labels.write_text("url\tlabel\nhttps://a.test/\tyes\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"l.tsv: line 2: 'label' must be 0 or 1"):
        read_labels(labels)
    labels.write_text("title\tlabel\nx\t1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1: the header needs"):
        read_labels(labels)


def test_a_rules_file_is_compiled_again_only_when_it_changes(tmp_path):
    """`digest collect` checks the rules before it starts and loads them again to collect:
    the second load reuses the first while the file is the same file, unchanged."""
    path = tmp_path / "relevance.toml"
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    first = load_rules_file(path)
    assert load_rules_file(path) is first
    path.write_text(text + "\n# edited\n", encoding="utf-8")
    edited = load_rules_file(path)
    assert edited is not first and edited == first  # the same rules, compiled again
    replacement = tmp_path / "new.toml"
    replacement.write_text(text + "\n# edited\n", encoding="utf-8")
    replacement.replace(path)  # same size, a new file: compiled again
    assert load_rules_file(path) is not edited
    path.unlink()
    with pytest.raises(ConfigError, match="file not found"):
        load_rules_file(path)
