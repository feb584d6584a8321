"""Results page, issue 25 §1 "other cards get a lighter mark, graded by confidence", over the seed essay and the
regulation fixture (server-rendered HTML through the Flask test client): the strong answer mark on the top card
only, below it a lighter mark whose level follows each hit's own ``confidence`` (none under the answer threshold).
"""
from __future__ import annotations

import re
from itertools import combinations

from indexer import Engine
from indexer.search.rank import answer_confidence, hit_signals
from indexer.search.query import analyse
from webui import create_app
from webui.pages import HINT_LEVELS, hint_level
from webui.render import covers_passage, enumeration_span

# Questions whose lower cards span the levels on this corpus (keyword mode).
QUESTIONS = ["党支部每月召开几次支部委员会会议", "支部委员会由党员大会选举产生", "组织生活会多久开一次",
             "正式党员不够三个人怎么设支部", "党支部怎样当好监督者"]
CARD = re.compile(r'<li class="(result[^"]*)" id="result-(\d+)".*?<p class="passage">(.*?)</p>', re.S)


def cards(html: str) -> dict[int, tuple[str, str]]:
    """Rank -> (the card's classes, its passage HTML) of each result card."""
    return {int(rank): (classes, passage) for classes, rank, passage in CARD.findall(html)}


def mark_of(passage: str) -> str | int | None:
    """"strong" for the top card's answer mark, a hint's level (1-3), None for no answer mark."""
    if '<strong class="answer">' in passage:
        return "strong"
    found = re.findall(r'<span class="answer-hint" data-level="(\d)">', passage)
    assert len(found) <= 1, passage
    assert found or 'class="answer-hint"' not in passage, passage  # every lighter mark is graded
    return int(found[0]) if found else None


def test_lower_cards_marks_are_graded_by_each_hits_confidence(eng: Engine) -> None:
    client = create_app(eng).test_client()
    floor = eng.config.min_confidence
    seen: set = set()
    tops: set = set()
    stronger = 0  # pairs of lower cards where the higher confidence has the strictly stronger mark
    for q in QUESTIONS:
        res = eng.search(q, k=5, mode="keyword")
        assert res.answer_found and len(res) == 5, q
        shown = cards(client.get("/", query_string={"q": q, "mode": "keyword"}).get_data(as_text=True))
        assert sorted(shown) == [1, 2, 3, 4, 5], q
        top_classes, top_passage = shown[1]
        if "whole-answer" in top_classes.split():  # the answer is the whole passage: marked as a whole, not painted
            assert mark_of(top_passage) is None, q
        else:
            assert top_passage.count('<strong class="answer">') == 1, q  # the top card: the one strong mark
        tops.add("whole-answer" in top_classes.split())
        lower = []
        for hit in res[1:]:
            mark = mark_of(shown[hit["rank"]][1])
            assert mark != "strong", (q, hit["rank"])
            conf = hit["confidence"]
            assert 0.0 <= conf <= 1.0
            span = enumeration_span(hit["text"], hit.get("best_span"), q)
            if span is None or covers_passage(hit["text"], span):  # no sentence, or the whole passage: unpainted
                assert mark is None, (q, hit["rank"])
                continue
            if conf < floor:
                assert mark is None, (q, hit["rank"], conf)  # under the answer threshold: no mark at all
            else:
                assert mark == hint_level(conf, floor) and mark in (1, 2, 3), (q, hit["rank"], conf, mark)
            lower.append((conf, 0 if mark is None else mark))
            seen.add(mark)
        for (c1, m1), (c2, m2) in combinations(lower, 2):
            if c1 != c2:  # a higher confidence never gets a weaker mark
                (hi, mh), (lo, ml) = ((c1, m1), (c2, m2)) if c1 > c2 else ((c2, m2), (c1, m1))
                assert mh >= ml, (q, lower)
                stronger += mh > ml
    assert seen >= {None, 1, 3} and stronger >= 3, (seen, stronger)  # the levels are used, not one mark for all
    assert False in tops  # a strong mark on a top card was seen


def test_a_hits_confidence_is_the_answer_model_on_its_own_signals(eng: Engine) -> None:
    """What a hit's ``confidence`` is: the model behind ``answer_found`` on the signals that passage alone gives;
    a card holding every word of the question is as sure as the question's best, one holding fewer less so."""
    q = "支部委员会由党员大会选举产生"
    res = eng.search(q, k=5, mode="keyword")
    query = analyse(q)
    kw = [(h["pid"], 1.0) for h in res]  # only the first five's membership enters (both halves' first five)
    for hit in res:
        own = hit_signals(query, hit["pid"], hit["text"], kw, [])
        assert hit["confidence"] == round(answer_confidence(own, "keyword"), 4)
    full = [h["confidence"] for h in res if all(t in h["text"] for t in ("支部委员会", "党员大会", "选举产生"))]
    assert full and max(full) == max(h["confidence"] for h in res) >= round(res.confidence, 4) - 1e-4
    assert min(h["confidence"] for h in res) < max(full)


def test_hint_levels() -> None:
    assert [bound for bound, _ in HINT_LEVELS] == sorted((bound for bound, _ in HINT_LEVELS), reverse=True)
    assert hint_level(0.95, 0.2) == 3 and hint_level(0.5, 0.2) == 2 and hint_level(0.25, 0.2) == 1
    assert hint_level(0.19, 0.2) is None and hint_level(0.65, 0.7) is None  # the threshold the search used wins
    assert hint_level(None, 0.2) == 1  # a hit without a confidence (the article look-up's): the lightest mark


def test_answer_box_says_the_other_asked_articles_follow(eng: Engine) -> None:
    """党支部工作示范条例第三条至第五条: the answer box quotes 第三条 and says 第四条、第五条 follow below, instead of
    passing one article's sentence off as the whole answer; one asked article gets no such note."""
    client = create_app(eng).test_client()
    html = client.get("/", query_string={"q": "党支部工作示范条例第三条至第五条", "mode": "keyword"}).get_data(as_text=True)
    box = re.search(r'<section class="answer-box".*?</section>', html, re.S).group(0)
    assert "第三条" in re.search(r'id="answer-citation">(.*?)<', box).group(1)
    assert re.search(r'id="answer-more">另见下方：第四条、第五条<', box), box
    shown = cards(html)
    firsts = [re.sub(r"<[^>]+>", "", shown[r][1]).strip()[:3] for r in sorted(shown)[:3]]
    assert firsts == ["第三条", "第四条", "第五条"], firsts  # the asked articles' cards, in order
    single = client.get("/", query_string={"q": "党支部工作示范条例第三条", "mode": "keyword"}).get_data(as_text=True)
    assert 'id="answer-box"' in single and 'id="answer-more"' not in single


def test_page_says_a_regulation_is_not_indexed(eng: Engine) -> None:
    """党内监督条例第五条 over a corpus without it: no answer box (another regulation's 第五条 is not its answer), the
    note that it is not indexed, and the closest passages still listed."""
    client = create_app(eng).test_client()
    html = client.get("/", query_string={"q": "党内监督条例第五条", "mode": "keyword"}).get_data(as_text=True)
    assert 'id="answer-box"' not in html
    note = re.search(r'id="lookup-message"[^>]*>(.*?)</p>', html, re.S)
    assert note and note.group(1).startswith("未收录《党内监督条例》"), html[:2000]
    assert cards(html)
