"""Story clusters on a real SQLite file, with realistic multi-outlet coverage.

The coverage below is written the way each outlet writes: MOFA's releases open with the time
and length of the meeting and the ministers' formal titles; wire services lead with the
outcome; NHK World is short. Next to each story sits a look-alike that must stay apart: the
same two ministers a week later, and a Japan-Australia 2+2 two days after the Japan-US one
with the same Japanese ministers in the same city.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from alliance_digest.errors import NotFoundError
from alliance_digest.store import items, sources
from alliance_digest.timestamps import utc_timestamp
from alliance_digest.triage import tokens
from alliance_digest.triage.clusters import (
    DEFAULT_WINDOW_DAYS,
    LINK_PROBABILITY,
    ClusterStats,
    Pool,
    candidate_pairs,
    cluster_items,
    cluster_members,
    pair_probability,
)
from alliance_digest.triage.tokens import story_keys

SOURCES = [
    ("MOFA Japan", "government"),
    ("Japan Ministry of Defense", "government"),
    ("U.S. Department of Defense", "military"),
    ("Australia DFAT", "government"),
    ("The Japan Times", "news"),
    ("Kyodo News", "news"),
    ("NHK World", "news"),
    ("Stars and Stripes", "news"),
]

# key: (source, published_at, title, summary). The key's prefix names the true story.
COVERAGE: dict[str, tuple[str, str, str, str]] = {
    # Japan-US foreign ministers in Munich, 2025-02-15.
    "fm/mofa": (
        "MOFA Japan", "2025-02-15T10:30:00Z", "Japan-U.S. Foreign Ministers' Meeting",
        "On February 15, commencing at 9:40 a.m. (local time; 5:40 p.m. Japan time) for "
        "approximately 35 minutes, Mr. IWAYA Takeshi, Minister for Foreign Affairs of Japan, "
        "held a Japan-U.S. Foreign Ministers' Meeting with the Honorable Marco Rubio, Secretary "
        "of State of the United States, on the margins of the Munich Security Conference. The "
        "two ministers confirmed that they would further strengthen the Japan-U.S. Alliance and "
        "work together toward a free and open Indo-Pacific."),
    "fm/jt": (
        "The Japan Times", "2025-02-15T14:05:00Z",
        "Iwaya and Rubio affirm alliance in first talks in Munich",
        "Foreign Minister Takeshi Iwaya and U.S. Secretary of State Marco Rubio agreed on "
        "Saturday to further strengthen the Japan-U.S. alliance and to work toward a free and "
        "open Indo-Pacific, meeting on the sidelines of the Munich Security Conference in "
        "Germany."),
    "fm/kyodo": (
        "Kyodo News", "2025-02-15T12:48:00Z",
        "Japan, U.S. foreign ministers vow to boost alliance amid China concerns",
        "Japanese Foreign Minister Takeshi Iwaya and U.S. Secretary of State Marco Rubio on "
        "Saturday vowed to bolster the bilateral alliance, as they met in Munich amid China's "
        "growing military assertiveness in the region."),
    "fm/nhk": (
        "NHK World", "2025-02-15T11:20:00Z", "Japanese, US top diplomats meet in Munich",
        "Japan's Foreign Minister Iwaya Takeshi has held talks with US Secretary of State Marco "
        "Rubio in Germany. The two met on the sidelines of the Munich Security Conference and "
        "confirmed they will strengthen the alliance."),
    # The same two ministers nine days later: a phone call about something else.
    "fm2/mofa": (
        "MOFA Japan", "2025-02-24T01:00:00Z", "Japan-U.S. Foreign Ministers' Telephone Talk",
        "On February 24, commencing at 8:00 a.m. for approximately 20 minutes, Mr. IWAYA "
        "Takeshi, Minister for Foreign Affairs of Japan, held a telephone talk with the "
        "Honorable Marco Rubio, Secretary of State of the United States. The two ministers "
        "exchanged views on the situation in Ukraine and on North Korea's nuclear and missile "
        "development."),
    "fm2/kyodo": (
        "Kyodo News", "2025-02-24T04:10:00Z",
        "Iwaya, Rubio discuss Ukraine, North Korea in phone talks",
        "Japanese Foreign Minister Takeshi Iwaya and U.S. Secretary of State Marco Rubio held "
        "phone talks on Monday and discussed the war in Ukraine three years after Russia's "
        "invasion, as well as North Korea's nuclear and missile programs."),
    # A bilateral exercise: the Pentagon's release and Stars and Stripes a day later.
    "ex/dod": (
        "U.S. Department of Defense", "2024-07-28T03:00:00Z",
        "U.S. Marines, Japan Ground Self-Defense Force Begin Exercise Resolute Dragon 24",
        "U.S. Marines with the 12th Marine Littoral Regiment and the Japan Ground Self-Defense "
        "Force began Exercise Resolute Dragon 24 across Hokkaido and Okinawa. The bilateral "
        "exercise strengthens the ability of the 12th MLR and the JGSDF to defend the "
        "southwestern islands."),
    "ex/sns": (
        "Stars and Stripes", "2024-07-29T08:15:00Z",
        "Marines, Japanese troops launch Resolute Dragon drills from Hokkaido to Okinawa",
        "Roughly 1,500 Marines from the 12th Marine Littoral Regiment and Japan Ground "
        "Self-Defense Force soldiers kicked off Resolute Dragon 24 this week, training to defend "
        "Japan's southwestern islands with anti-ship missiles and HIMARS."),
    "ship/sns": (
        "Stars and Stripes", "2024-07-29T10:00:00Z",
        "Navy destroyer USS Howard arrives in Yokosuka for maintenance",
        "The guided-missile destroyer USS Howard arrived at Yokosuka Naval Base on Monday for "
        "scheduled maintenance, the Navy said, joining the 7th Fleet's forward-deployed ships "
        "in Japan."),
    # Japan-US 2+2 in Tokyo, and a Japan-Australia 2+2 two days later: same Japanese
    # ministers, same city, same format.
    "us22/mod": (
        "Japan Ministry of Defense", "2024-07-28T08:00:00Z",
        'Japan-U.S. Security Consultative Committee ("2+2")',
        'On July 28, Minister of Defense KIHARA Minoru and Minister for Foreign Affairs '
        'KAMIKAWA Yoko held the Japan-U.S. Security Consultative Committee ("2+2") with '
        'Secretary of Defense Lloyd J. Austin III and Secretary of State Antony J. Blinken in '
        'Tokyo. The four ministers decided to upgrade U.S. Forces Japan to a joint force '
        'headquarters.'),
    "us22/jt": (
        "The Japan Times", "2024-07-28T12:00:00Z",
        "Japan and U.S. hold 2+2 talks, agree to overhaul U.S. military command in Japan",
        "Japan and the United States agreed Sunday to upgrade U.S. Forces Japan into a joint "
        "force headquarters, as Defense Minister Minoru Kihara and Foreign Minister Yoko "
        "Kamikawa met Defense Secretary Lloyd Austin and Secretary of State Antony Blinken for "
        "2+2 security talks in Tokyo."),
    "au22/jt": (
        "The Japan Times", "2024-07-30T12:00:00Z",
        "Japan and Australia hold 2+2 talks, agree to deepen defense cooperation",
        "Japan and Australia agreed Tuesday to deepen defense cooperation, as Defense Minister "
        "Minoru Kihara and Foreign Minister Yoko Kamikawa met Australian Deputy Prime Minister "
        "Richard Marles and Foreign Minister Penny Wong for 2+2 security talks in Tokyo."),
    "au22/dfat": (
        "Australia DFAT", "2024-07-30T06:00:00Z",
        "Joint Statement: Eleventh Japan-Australia 2+2 Foreign and Defence Ministerial "
        "Consultations",
        "The Deputy Prime Minister and Minister for Defence, the Hon Richard Marles MP, and the "
        "Minister for Foreign Affairs, Senator the Hon Penny Wong, met Minister for Foreign "
        "Affairs Kamikawa Yoko and Minister of Defense Kihara Minoru in Tokyo for the Eleventh "
        "Japan-Australia 2+2."),
}

#: The stories COVERAGE must come out as, lead first.
EXPECTED = [
    ["fm/mofa", "fm/jt", "fm/kyodo", "fm/nhk"],
    ["fm2/mofa", "fm2/kyodo"],
    ["ex/dod", "ex/sns"],
    ["ship/sns"],
    ["us22/mod", "us22/jt"],
    ["au22/dfat", "au22/jt"],
]


@pytest.fixture
def db(new_db):
    return new_db(*[{"name": n, "url": f"http://127.0.0.1/{i}", "category": c}
                    for i, (n, c) in enumerate(SOURCES)])


def add(db, key: str, **override: str) -> int:
    """Store one COVERAGE entry the way the collect flow does; returns its item id."""
    source, published, title, summary = COVERAGE[key]
    values = {"source": source, "published_at": published, "title": title, "summary": summary}
    values.update(override)
    source_id = sources.get_source(db, values["source"])["id"]
    identity = f"url:https://example.org/{key}/{values['published_at']}"
    with db.atomic():
        items.store_entries(db, source_id, [{
            "identity": identity, "guid": None, "url": identity[4:], "title": values["title"],
            "summary": values["summary"], "summary_text": values["summary"],
            "published_at": values["published_at"]}])
    return db.execute("SELECT id FROM items WHERE identity = ?", [identity]).fetchone()[0]


def stories(db, ids: dict[str, int]) -> list[list[str]]:
    """Stored clusters as lists of keys, lead first, sorted for comparison."""
    by_id = {v: k for k, v in ids.items()}
    groups: dict[int, list[str]] = defaultdict(list)
    for item_id, cluster_id in db.execute("SELECT id, cluster_id FROM items"):
        assert cluster_id is not None, f"{by_id[item_id]} was not clustered"
        groups[cluster_id].append(by_id[item_id])
    out = []
    for lead, keys in groups.items():
        assert by_id[lead] in keys, "a story's lead is one of its own items"
        out.append([by_id[lead], *sorted(k for k in keys if k != by_id[lead])])
    return sorted(out)


def expected() -> list[list[str]]:
    return sorted([s[0], *sorted(s[1:])] for s in EXPECTED)


def test_multi_outlet_coverage_becomes_stories_led_by_the_primary_source(db):
    ids = {key: add(db, key) for key in COVERAGE}
    stats = cluster_items(db)
    assert stories(db, ids) == expected()
    assert stats == ClusterStats(items=len(COVERAGE), in_stories=12, stories=5,
                                 window_items=0, pairs=stats.pairs, candidates=stats.candidates)


def test_batches_in_any_arrival_order_give_the_same_stories(db):
    # News is fetched first, ministries' releases an hour later: the release still leads.
    ids = {}
    for wave in (["fm/jt", "fm/kyodo", "us22/jt", "ex/sns", "au22/jt", "fm2/kyodo"],
                 ["fm/nhk", "ship/sns", "au22/dfat", "fm2/mofa"],
                 ["fm/mofa", "us22/mod", "ex/dod"]):
        ids.update({key: add(db, key) for key in wave})
        stats = cluster_items(db)
        assert stats.items == len(wave)
    assert stories(db, ids) == expected()
    assert stats.window_items > 0


def test_primary_source_leads_even_when_published_last(db):
    news = {key: add(db, key) for key in ("fm/jt", "fm/kyodo", "fm/nhk")}
    cluster_items(db)
    assert {m["source"] for m in cluster_members(db, news["fm/jt"])} == {"Kyodo News",
                                                                          "NHK World"}
    # Earliest news report leads until the ministry's release arrives.
    assert db["items"].get(news["fm/jt"])["cluster_id"] == news["fm/nhk"]
    mofa = add(db, "fm/mofa", published_at="2025-02-15T18:00:00Z")
    cluster_items(db)
    leads = {db["items"].get(i)["cluster_id"] for i in [*news.values(), mofa]}
    assert leads == {mofa}
    members = cluster_members(db, news["fm/kyodo"])
    assert members[0]["id"] == mofa and members[0]["is_lead"] == 1
    assert members[0]["source"] == "MOFA Japan"
    assert members[0]["source_category"] == "government"
    assert {m["source"] for m in members} == {"MOFA Japan", "The Japan Times", "NHK World"}


def test_military_source_counts_as_primary(db):
    sns = add(db, "ex/sns")
    dod = add(db, "ex/dod", published_at="2024-07-29T20:00:00Z")
    cluster_items(db)
    assert db["items"].get(sns)["cluster_id"] == dod


def test_window_boundary(db):
    # The same report republished by another outlet: only the window keeps them apart.
    start = datetime(2025, 2, 15, 12, tzinfo=UTC)
    first = add(db, "fm/jt", published_at=utc_timestamp(start))
    at_edge = add(db, "fm/jt", source="NHK World",
                  published_at=utc_timestamp(start + timedelta(days=3)))
    cluster_items(db, window_days=3)
    assert db["items"].get(at_edge)["cluster_id"] == first

    beyond = add(db, "fm/jt", source="Kyodo News",
                 published_at=utc_timestamp(start + timedelta(days=3, minutes=1)))
    cluster_items(db, window_days=3)
    assert db["items"].get(beyond)["cluster_id"] == beyond

    # A narrower window splits what the default joined.
    cluster_items(db, [first, at_edge, beyond], window_days=1)
    assert db["items"].get(at_edge)["cluster_id"] == at_edge


def test_reports_in_other_words_need_more_evidence_the_further_apart_they_are(db):
    start = datetime(2025, 2, 15, 12, tzinfo=UTC)
    jt = add(db, "fm/jt", published_at=utc_timestamp(start))
    nhk = add(db, "fm/nhk", published_at=utc_timestamp(start + timedelta(hours=2)))
    late = add(db, "fm/kyodo", published_at=utc_timestamp(start + timedelta(days=2, hours=20)))
    cluster_items(db)
    assert db["items"].get(nhk)["cluster_id"] == jt
    assert db["items"].get(late)["cluster_id"] == late


def test_a_story_spans_at_most_the_window(db):
    # Each report is within 3 days of the previous one, but not of the first: no chaining.
    start = datetime(2025, 2, 15, 12, tzinfo=UTC)
    ids = [add(db, "fm/jt", source=name,
               published_at=utc_timestamp(start + timedelta(days=2 * k)))
           for k, name in enumerate(["The Japan Times", "Kyodo News", "NHK World"])]
    cluster_items(db)
    leads = [db["items"].get(i)["cluster_id"] for i in ids]
    assert leads[0] == leads[1] == ids[0]
    assert leads[2] == ids[2]


def test_reclustering_changes_nothing(db):
    ids = {key: add(db, key) for key in COVERAGE}
    cluster_items(db)
    before = list(db.execute("SELECT id, cluster_id FROM items ORDER BY id"))
    assert cluster_items(db).items == 0
    again = cluster_items(db, list(ids.values()))
    assert again.items == len(ids)
    assert list(db.execute("SELECT id, cluster_id FROM items ORDER BY id")) == before
    # Re-clustering part of a story (its lead included) also leaves it as it was.
    cluster_items(db, [ids["fm/mofa"], ids["fm/kyodo"], ids["au22/jt"]])
    assert list(db.execute("SELECT id, cluster_id FROM items ORDER BY id")) == before


def test_window_days_must_be_positive(db):
    with pytest.raises(ValueError, match="window_days"):
        cluster_items(db, window_days=-1)


def test_edited_text_refreshes_stored_tokens(db):
    jt = add(db, "fm/jt")
    nhk = add(db, "fm/nhk")
    cluster_items(db)
    assert db.execute("SELECT count(*) FROM item_tokens").fetchone()[0] == 2
    # The feed rewrites the Japan Times headline: its stored tokens are stale and forgotten...
    source_id = sources.get_source(db, "The Japan Times")["id"]
    identity = db["items"].get(jt)["identity"]
    with db.atomic():
        items.store_entries(db, source_id, [{
            "identity": identity, "guid": None, "url": identity[4:],
            "title": "Iwaya and Rubio affirm alliance in Munich talks",
            "summary": COVERAGE["fm/jt"][3], "summary_text": COVERAGE["fm/jt"][3],
            "published_at": COVERAGE["fm/jt"][1]}])
    assert db.execute("SELECT tokens FROM item_tokens WHERE item_id = ?",
                      [jt]).fetchone()[0] is None
    # ...and recomputed from the text when a later batch compares against it.
    kyodo = add(db, "fm/kyodo")
    cluster_items(db)
    assert db.execute("SELECT count(*) FROM item_tokens WHERE tokens IS NOT NULL"
                      ).fetchone()[0] == 3
    assert {db["items"].get(i)["cluster_id"] for i in (jt, nhk, kyodo)} == {nhk}


def test_short_or_empty_items_stay_alone(db):
    a = add(db, "fm/jt", title="Press Release", summary="")
    b = add(db, "fm/nhk", title="Press Release", summary="")
    cluster_items(db)
    assert db["items"].get(a)["cluster_id"] == a
    assert db["items"].get(b)["cluster_id"] == b


def test_cluster_members_of_a_lone_or_unknown_item(db):
    ship = add(db, "ship/sns")
    assert cluster_members(db, ship) == []  # not clustered yet
    cluster_items(db)
    assert cluster_members(db, ship) == []
    with pytest.raises(NotFoundError):
        cluster_members(db, 999_999)


def test_candidate_search_finds_every_likely_pair():
    """Candidates are found approximately; none of the pairs the model would link is missed."""
    texts = [(v[2], v[3]) for v in COVERAGE.values()]
    days = [datetime.fromisoformat(v[1]).timestamp() / 86400 for v in COVERAGE.values()]
    pool = Pool.build([story_keys(*t) for t in texts], days, list(range(len(texts))))
    everything = np.array([(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))
                           if abs(days[i] - days[j]) <= DEFAULT_WINDOW_DAYS])
    likely = pair_probability(pool, everything[:, 0], everything[:, 1]) >= LINK_PROBABILITY
    wanted = {tuple(p) for p in everything[likely].tolist()}
    assert wanted, "the coverage has stories"
    i, j = candidate_pairs(pool, len(texts), DEFAULT_WINDOW_DAYS)
    assert wanted <= set(zip(i.tolist(), j.tolist(), strict=True))


def test_pairs_are_scored_in_blocks_bounded_by_the_keys_their_rows_hold(monkeypatch):
    """However long the items, a block of pair products gathers a bounded number of keys;
    blocking changes no probability."""
    from alliance_digest.triage import clusters

    texts = [(v[2], v[3]) for v in COVERAGE.values()]
    days = [datetime.fromisoformat(v[1]).timestamp() / 86400 for v in COVERAGE.values()]
    pool = Pool.build([story_keys(*t) for t in texts], days, list(range(len(texts))))
    n = len(texts)
    i, j = np.array([(a, b) for a in range(n) for b in range(a + 1, n)]).T
    whole = pair_probability(pool, i, j)
    per_item = np.diff(pool.keys.indptr)
    budget = int(per_item.max()) * 3  # a block holds one or two pairs
    monkeypatch.setattr(clusters, "_PAIR_KEYS", budget)
    blocks = list(clusters._pair_blocks(pool, i, j))
    assert blocks[0][0] == 0 and blocks[-1][1] == len(i)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    assert len(blocks) > len(i) // 3
    for start, stop in blocks:
        held = int((per_item[i[start:stop]] + per_item[j[start:stop]]).sum())
        assert held <= budget or stop == start + 1
    np.testing.assert_allclose(pair_probability(pool, i, j), whole, rtol=0, atol=1e-12)


def test_keys_cross_languages_through_names_concepts_and_codes():
    english = story_keys(
        "Blinken, Hayashi hold phone call on 2+2 ahead of Osprey review",
        "Secretary Blinken spoke with Foreign Minister Hayashi about the $550 billion "
        "investment and the crash off Yakushima on Nov. 29.")
    japanese = story_keys(
        "日米外相電話会談 2プラス2へ調整",
        "林外務大臣はブリンケン国務長官と電話会談を行い、5500億ドルの投資と29日の屋久島沖の"
        "オスプレイ墜落について協議した。")
    shared = set(english.keys) & set(japanese.keys)
    kinds = {k >> 30 for k in shared}
    assert {tokens.NAME, tokens.CONCEPT, tokens.CODE} <= kinds
    expected = {tokens._key(tokens.NAME, tokens.skeleton(w))
                for w in ("Blinken", "Hayashi", "Osprey", "Yakushima")}
    expected |= {tokens._key(tokens.CONCEPT, c) for c in ("call", "foreign-minister", "crash")}
    expected |= {tokens._key(tokens.CODE, c) for c in ("2+2", "5.5e+11", "day29")}
    assert expected <= shared
    # Words do not cross languages: only names, concepts and codes do.
    assert all(k >> 30 != tokens.WORD for k in shared)
    assert japanese.facts.japanese and not english.facts.japanese
    assert english.facts.meeting == japanese.facts.meeting == 1  # both a call
    assert english.facts.preview and japanese.facts.preview


def test_title_facts_and_the_packed_format_round_trip():
    keys = story_keys("Japan-U.S.-ROK Defense Ministers' Meeting on Nov. 5",
                      "The three ministers met in Tokyo with Australia's observer.")
    facts = keys.facts
    assert facts.parties_title == 1 << tokens.PARTIES.index("korea")
    assert facts.parties_text & 1 << tokens.PARTIES.index("australia")
    assert facts.level == 1 << tokens.LEVELS.index("defense-minister")
    assert facts.meeting == 2 and facts.day == 5 and not facts.preview
    assert tokens.Facts.unpack(facts.pack()) == facts
    back = tokens.unpack(tokens.pack(keys))
    assert back is not None and back.facts == keys.facts
    assert (tuple(back.keys), tuple(back.title_keys)) == (keys.keys, keys.title_keys)
    # An older format (or nothing) is not read: the text is tokenised again.
    assert tokens.unpack(b"\x01\x02\x03\x04") is None and tokens.unpack(None) is None


def test_a_title_case_word_is_not_a_name_when_the_text_uses_it_in_lower_case():
    keys = set(story_keys("Signing of the Framework Agreement",
                          "The framework agreement was signed by Kishida.").keys)
    assert tokens._key(tokens.NAME, tokens.skeleton("Framework")) not in keys
    assert tokens._key(tokens.NAME, tokens.skeleton("Kishida")) in keys
