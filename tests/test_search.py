"""Full-text search on a real SQLite file: syntax, Japanese, ranking, freshness, hostile input."""

from __future__ import annotations

import sqlite3

import pytest
from alliance_digest.errors import SearchQueryError
from alliance_digest.store import items, sources
from alliance_digest.triage.search import parse_query, search
from support import make_entry

# key: (source, published_at, title, summary_text)
ITEMS = {
    "deterrence": ("The Japan Times", "2025-03-01T09:00:00Z",
                   "U.S. reaffirms extended deterrence commitment to Japan",
                   "Washington will use the full range of its capabilities, including nuclear, "
                   "to defend Japan, officials said after the extended deterrence dialogue."),
    "scattered": ("Kyodo News", "2025-03-02T09:00:00Z",
                  "Japan extended its missile defense study",
                  "The study considers deterrence by denial and the extension of radar "
                  "coverage over the East China Sea."),
    "okinawa": ("Ryukyu Shimpo", "2025-03-03T09:00:00Z",
                "Okinawa governor urges faster return of base land",
                "Governor Denny Tamaki asked Tokyo to accelerate the return of land used by "
                "U.S. forces in Okinawa."),
    "okinawa_covid": ("Stars and Stripes", "2022-01-10T09:00:00Z",
                      "COVID outbreak at Okinawa Marine base",
                      "Camp Hansen reported a COVID cluster among Marines on Okinawa."),
    "okinawa_in_summary": ("Stars and Stripes", "2025-03-04T09:00:00Z",
                           "Marines rehearse typhoon evacuation",
                           "Marines practised the plan at Camp Foster; Okinawa has seen "
                           "stronger storms."),
    "nichibei": ("NHK", "2025-03-05T09:00:00Z",
                 "日米首脳会談 同盟の抑止力強化で一致",
                 "石破総理大臣はトランプ大統領と会談し、日米同盟の抑止力と対処力の強化で一致した。"),
    "zainichi": ("NHK", "2025-03-06T09:00:00Z",
                 "在日米軍の統合軍司令部への改編 協議を開始",
                 "防衛省は在日米軍の指揮統制の見直しについて米側と協議を始めた。"),
    "beichu": ("NHK", "2025-03-07T09:00:00Z",
               "米中首脳が電話会談",
               "アメリカと中国の首脳が電話で会談し、日本の周辺情勢についても意見を交わした。"),
    "us_word": ("Kyodo News", "2025-03-08T09:00:00Z",
                "Japan, US to co-develop interceptor missiles",
                "Tokyo and Washington agreed to co-develop the Glide Phase Interceptor."),
    "thus": ("Kyodo News", "2025-03-09T09:00:00Z",
             "Budget passes lower house, thus clearing the way for defense spending",
             "The August vote will be followed by upper house deliberations."),
}


@pytest.fixture
def db(new_db):
    names = sorted({v[0] for v in ITEMS.values()})
    d = new_db(*[{"name": n, "url": f"http://127.0.0.1/{i}", "category": "news"}
                 for i, n in enumerate(names)])
    ids = {}
    for key, (source, published, title, text) in ITEMS.items():
        source_id = sources.get_source(d, source)["id"]
        with d.atomic():
            items.store_entries(d, source_id, [make_entry(
                f"guid:{key}", guid=key, url=f"https://example.org/{key}", title=title,
                summary=f"<p>{text}</p>", summary_text=text, published_at=published)])
        ids[key] = d.execute("SELECT id FROM items WHERE guid = ?", [key]).fetchone()[0]
    d.ids = ids  # type: ignore[attr-defined]
    return d


def keys(db, rows) -> list[str]:
    by_id = {v: k for k, v in db.ids.items()}
    return [by_id[r["id"]] for r in rows]


def found(db, query: str, **kw) -> set[str]:
    return set(keys(db, search(db, query, **kw)))


def test_phrase_matches_words_together_only(db):
    assert found(db, '"extended deterrence"') == {"deterrence"}
    # Plain words are ANDed anywhere in the item.
    assert found(db, "extended deterrence") == {"deterrence", "scattered"}


def test_exclusion(db):
    assert found(db, "Okinawa") == {"okinawa", "okinawa_covid", "okinawa_in_summary"}
    assert found(db, "Okinawa -COVID") == {"okinawa", "okinawa_in_summary"}
    assert found(db, 'Okinawa -"typhoon evacuation" -covid') == {"okinawa"}


def test_or_binds_tighter_than_and(db):
    assert found(db, "typhoon OR governor Okinawa") == {"okinawa", "okinawa_in_summary"}
    assert found(db, "typhoon OR 日米") == {"okinawa_in_summary", "nichibei", "zainichi"}


def test_japanese_two_character_term(db):
    # Trigrams cannot match 日米; the short-term path must, and must not match 日 or 米 alone.
    assert found(db, "日米") == {"nichibei", "zainichi"}  # 在日米軍 contains 日米
    assert found(db, "米中") == {"beichu"}
    assert found(db, "日米 -抑止力") == {"zainichi"}
    assert found(db, "会談 -日米") == {"beichu"}


def test_japanese_longer_terms(db):
    assert found(db, "在日米軍") == {"zainichi"}
    assert found(db, "抑止力 日米") == {"nichibei"}
    assert found(db, '"統合軍司令部"') == {"zainichi"}


def test_short_latin_terms_match_whole_words(db):
    assert found(db, "US") == {"us_word"}
    assert "thus" not in found(db, "us")


def test_title_matches_rank_above_summary_matches(db):
    rows = search(db, "Okinawa")
    assert keys(db, rows)[-1] == "okinawa_in_summary"
    assert rows[0]["bm25"] <= rows[-1]["bm25"]
    rows = search(db, "deterrence")
    assert keys(db, rows) == ["deterrence", "scattered"]


def test_results_carry_source_score_and_snippet(db):
    db["items"].update(db.ids["okinawa"], {"score": 7.5})
    row = search(db, "governor")[0]
    assert row["source"] == "Ryukyu Shimpo"
    assert row["score"] == 7.5
    assert "governor" in row["snippet"] and "\x02" not in row["snippet"]
    assert "<mark>" in row["snippet_html"]
    # Short-term results get an excerpt too.
    row = search(db, "日米")[0]
    assert "日米" in row["snippet"] and "<mark>日米</mark>" in row["snippet_html"]
    assert row["bm25"] is None


def test_snippet_html_is_escaped(db):
    db["items"].update(db.ids["okinawa"], {"headline": "<b>alert</b>"})
    html = search(db, "alert")[0]["snippet_html"]
    assert html == "&lt;b&gt;<mark>alert</mark>&lt;/b&gt;"


def test_index_follows_editor_edits(db):
    assert found(db, "land-return pledge") == set()
    db["items"].update(db.ids["okinawa"], {"headline": "Tamaki presses land-return pledge",
                                           "blurb": "A rare joint appeal with Ginowan."})
    assert found(db, "land-return pledge") == {"okinawa"}
    assert found(db, "Ginowan") == {"okinawa"}
    # A headline hit outranks the same word elsewhere.
    db["items"].update(db.ids["scattered"], {"blurb": "Tamaki not involved."})
    assert keys(db, search(db, "Tamaki"))[0] == "okinawa"
    # Replaced text is no longer found.
    db["items"].update(db.ids["okinawa"], {"headline": "Tamaki presses Tokyo"})
    assert found(db, "land-return") == set()


def test_triage_writes_do_not_touch_the_index(db):
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'items_au'").fetchone()[0]
    assert "UPDATE OF" in sql
    before = db.execute("SELECT count(*) FROM items_fts_data").fetchone()[0]
    with db.atomic():
        for item_id in db.ids.values():
            db["items"].update(item_id, {"score": 1.0, "cluster_id": item_id})
    assert db.execute("SELECT count(*) FROM items_fts_data").fetchone()[0] == before
    assert found(db, "Okinawa -COVID") == {"okinawa", "okinawa_in_summary"}


def test_status_filter(db):
    db["items"].update(db.ids["okinawa"], {"status": "shortlisted"})
    assert found(db, "Okinawa", status="shortlisted") == {"okinawa"}
    assert found(db, "Okinawa", status="candidate") == {"okinawa_covid", "okinawa_in_summary"}
    assert len(found(db, "Okinawa", status="all")) == 3
    with pytest.raises(ValueError, match="unknown status"):
        search(db, "Okinawa", status="bogus")


def test_limit_and_offset(db):
    everything = keys(db, search(db, "Okinawa"))
    assert keys(db, search(db, "Okinawa", limit=1)) == everything[:1]
    assert keys(db, search(db, "Okinawa", limit=2, offset=1)) == everything[1:]
    with pytest.raises(ValueError):
        search(db, "Okinawa", limit=0)


@pytest.mark.parametrize("query", [
    "", "   ", '"', '"extended deterrence', '""', "OR", "Okinawa OR", "OR Okinawa",
    "Okinawa OR OR base", "-COVID", '-"typhoon evacuation"', "Okinawa OR -COVID", "()", ":",
    "***",
])
def test_bad_queries_raise_one_clear_value_error(db, query):
    with pytest.raises(SearchQueryError) as info:
        search(db, query)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value) and repr(query) in str(info.value)


@pytest.mark.parametrize("query", [
    "NEAR(Okinawa base, 2)", "title:Okinawa", "Okinawa*", "^Okinawa", "(Okinawa OR Guam",
    "Okinawa AND base", "Okinawa NOT base", "'; DROP TABLE items; --", '"Okinawa" "" base',
    "Oki\"nawa\"", "{title}: Okinawa", "-", "- Okinawa", "Okinawa -", "%", "_", "\\", "日",
    "100%", "a_b", "x" * 500, "Okinawa " * 60, '"NEAR" AND "OR"', "co-develop", "U.S.",
])
def test_hostile_queries_never_reach_sqlite_as_syntax(db, query):
    try:
        rows = search(db, query)
    except SearchQueryError:
        return
    except sqlite3.Error as e:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"{query!r} raised {e!r}")
    assert isinstance(rows, list)
    assert db["items"].count == len(ITEMS)


def test_syntax_words_are_searched_as_text(db):
    assert found(db, "co-develop") == {"us_word"}
    assert found(db, "U.S.") == {"deterrence", "okinawa"}
    assert found(db, "title:Okinawa") == set()  # "title" is a word to find, not a column
    assert found(db, "%") == set() and found(db, "100%") == set()


def test_parse_query():
    q = parse_query('"extended deterrence" Okinawa OR Guam -COVID -"base closure"')
    assert q.groups == (("extended deterrence",), ("Okinawa", "Guam"))
    assert q.excluded == ("COVID", "base closure")
