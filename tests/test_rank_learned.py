"""Ranking round 4 (issue 22): the head re-ranker's features and ordering on real regulation text."""
from __future__ import annotations

import sys

import pytest

from conftest import ROOT, require_party_docs
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from indexer.ingest import files as ingest  # noqa: E402
from indexer.ingest.prepare import prepare  # noqa: E402
from indexer.search import learned  # noqa: E402
from indexer.search.query import analyse  # noqa: E402
from indexer.text.cite import citation  # noqa: E402

HANDBOOK = "partymate/party_rules.md"


@pytest.fixture(scope="module")
def handbook():
    raw = ingest.load_file(require_party_docs() / HANDBOOK, doc_id=HANDBOOK)[0]
    return prepare(raw)[1]


def _article(ps, label: str, containing: str, regulation: str):
    found = [p for p in ps if p.section.endswith(label) and containing in p.text and regulation in citation(p)]
    assert found, (label, containing, regulation)
    return found[0]


def _features(question, ps, fused_scores, sentences=None, best=None):
    passages = {p.pid: p for p in ps}
    fused = [(p.pid, s, {"keyword": i + 1}) for i, (p, s) in enumerate(zip(ps, fused_scores))]
    kw = [(p.pid, 10.0 - i) for i, p in enumerate(ps)]
    rows = learned.head_features(fused, passages, analyse(question), kw, [], sentences or {}, best or {})
    return fused, [dict(zip(learned.FEATURES, r)) for r in rows]


def test_features_tell_the_answering_article_from_a_neighbour(handbook) -> None:
    """支委会多久开一次会: 支部工作条例第十二条 holds the period asked for (每月召开1次), 第二十一条 (terms of office) does
    not; both name 支部委员会, so the keyword half alone cannot tell them apart."""
    art12 = _article(handbook, "第十二条", "每月召开", "支部工作条例")
    art21 = _article(handbook, "第二十一条", "任期", "支部工作条例")
    best = {art12.pid: next(s for s in art12.text.split("。") if "每月召开" in s),
            art21.pid: next(s for s in art21.text.split("。") if "选举产生" in s)}
    _, (f21, f12) = _features("支委会多久开一次会", [art21, art12], [1.0, 0.9], best=best)
    assert f12["kind"] == 1.0 and f21["kind"] == 0.0
    assert f21["fused"] == 1.0 and f12["fused"] == pytest.approx(0.9)
    assert f21["keyword_rr"] == 1.0 and f12["keyword_rr"] == 0.5
    assert f12["doc_support"] == pytest.approx(1.0 / 5) and f12["section_support"] == 0.0  # one file, two chapters
    assert f12["window"] == -1.0 and f12["passage"] == -1.0  # no sentence scores: the fallback value


def test_coverage_and_title_count_the_question_words_a_passage_holds(handbook) -> None:
    art = _article(handbook, "第十三条", "党费", "党费收缴")
    _, (f,) = _features("党费由谁负责收缴", [art], [1.0], best={art.pid: art.text})
    assert 0.0 < f["coverage"] <= 1.0 and f["sentence_coverage"] == f["coverage"]
    assert f["title"] > 0.0  # 党费 is in the regulation's name
    _, (g,) = _features("入党誓词怎么写", [art], [1.0], best={art.pid: art.text})
    assert g["coverage"] == 0.0 and g["title"] == 0.0


def test_learned_order_reorders_the_head_and_keeps_the_rest_below(handbook) -> None:
    a, b, c = handbook[10], handbook[11], handbook[12]
    fused = [(a.pid, 1.0, {}), (b.pid, 0.8, {}), (c.pid, 0.5, {})]
    rows = [[1.0, 0.0], [0.8, 1.0]]  # the head is the first two; the second holds the answer kind
    assert learned.learned_order(fused, rows, None) == fused
    out = learned.learned_order(fused, rows, (1.0, 2.0))
    assert [pid for pid, _, _ in out] == [b.pid, a.pid, c.pid]
    assert out[1][1] > out[2][1] > 0.0  # the tail stays below the head, in its order
    out = learned.learned_order(fused, rows, (1.0, -2.0))
    assert [pid for pid, _, _ in out] == [a.pid, b.pid, c.pid]


# ------------------------------------------------------------------------------------------------ real model
@pytest.mark.slow
@pytest.mark.parametrize("question, regulation, article", [
    ("党员出国定居以后党籍怎么处理？", "党员教育管理工作条例", "第二十四条"),
    ("党费由哪一级组织部门统一管理？", "党费收缴、使用和管理的规定", "第二十二条"),
    ("党员大会多长时间开一次？", "支部工作条例", "第十一条"),
    ("留党察看期间的党员有没有选举权？", "中国共产党章程", "第四十一条"),
    ("入党积极分子由谁来确定？", "发展党员工作细则", "第八条"),
    ("支部委员会的委员由谁选出来？", "支部工作条例", "第二十一条"),
    ("发展一个党员需要几个入党介绍人？", "发展党员工作细则", "第十四条"),
    ("党员领导干部多久参加一次双重组织生活？", "党员教育管理工作条例", "第十六条")])
def test_paraphrased_questions_get_the_answering_article_first(shipped_library, question: str, regulation: str,
                                                               article: str) -> None:
    """Short questions as a branch secretary asks them (支委会 words, not the article's sentence): the article that
    answers is the first hit, with the learned head re-ranker on (it runs with sentence scores, the shipped weight)."""
    from indexer.search import rank as rank_mod

    assert rank_mod.LEARNED_WEIGHTS is not None and len(rank_mod.LEARNED_WEIGHTS) == len(learned.FEATURES)
    hits = shipped_library.search(question, k=5)
    top = hits[0]
    assert regulation in top["citation"] and top["section"].endswith(article), [h["citation"] for h in hits]
    assert top["best_sentence"] and top["best_sentence"] in top["text"]


def test_a_hit_the_re_ranker_moved_up_says_so(handbook, monkeypatch) -> None:
    """rank() itself: with sentence scores the head is re-ordered by the weights; a candidate moved above one the
    fusion put first names it in ``why`` (the rank line explains the card's place), the one it passed does not; a
    tried semantic weight turns the re-ranker off."""
    from indexer.config import Config
    from indexer.search import rank as rank_mod
    from indexer.types import KeywordHit

    art12 = _article(handbook, "第十二条", "每月召开", "支部工作条例")
    art21 = _article(handbook, "第二十一条", "任期", "支部工作条例")
    passages = {art12.pid: art12, art21.pid: art21}
    q = analyse("支委会多久开一次会")
    kw = [KeywordHit(art21.pid, 9.0, []), KeywordHit(art12.pid, 8.0, [])]
    sem = [(art21.pid, 0.86), (art12.pid, 0.85)]
    sentences = {art21.pid: (0.86, 0.86, -1), art12.pid: (0.85, 0.85, -1)}
    fused_only = rank_mod.rank(passages, q, kw, sem, 5, "hybrid", Config(search_alpha=0.8), sentences=sentences)
    assert [h["pid"] for h in fused_only] == [art21.pid, art12.pid]  # both halves put 第二十一条 first
    assert all(rank_mod.LEARNED_NOTE not in h["why"] for h in fused_only)  # a tried weight is used as given
    weights = [0.0] * len(learned.FEATURES)
    weights[learned.FEATURES.index("fused")] = 1.0
    weights[learned.FEATURES.index("keyword_rr")] = -5.0  # weights that distrust the keyword half's first
    monkeypatch.setattr(rank_mod, "LEARNED_WEIGHTS", tuple(weights))
    res = rank_mod.rank(passages, q, kw, sem, 5, "hybrid", Config(), sentences=sentences)
    assert [h["pid"] for h in res] == [art12.pid, art21.pid]
    assert rank_mod.LEARNED_NOTE in res[0]["why"] and rank_mod.LEARNED_NOTE not in res[1]["why"]
    assert res[0]["score"] > res[1]["score"]
