"""Article look-up, cross-references and version facts (issue 23): the rules on their own, the regulation fixture
(always), and real regulations from ../shared/bench/party-docs (skipped with a message when absent)."""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import PARTY_DOCS, ROOT, make_corpus, require_party_docs

sys.path.insert(0, str(ROOT))
from bench.common import HashEncoder  # noqa: E402
from indexer import Config, Engine  # noqa: E402
from indexer.search.rank import LEARNED_NOTE  # noqa: E402
from indexer.search import lookup as lookup_mod  # noqa: E402
from indexer.text.articles import (find_cross_refs, find_refs, mention_score, name_keys,  # noqa: E402
                                   year_request)
from indexer.text.numerals import cn_to_int, int_to_cn  # noqa: E402

MODES = ("keyword", "hybrid", "semantic")
FIXTURE_DOC = "支部工作条例示例.txt"


def _article(hit: dict) -> str:
    """The last article label of a hit's section path."""
    parts = [p for p in hit["section"].split(" > ") if p.startswith("第") and p.endswith("条")]
    return parts[-1] if parts else ""


def _engine(index: Path, corpus: Path) -> Engine:
    eng = Engine.open(index, Config())
    eng._encoder = HashEncoder()  # the look-up does not depend on the model; the semantic half is noise here
    eng.index(corpus)
    return eng


@contextlib.contextmanager
def _shipped_engine(tmp_path: Path, *names: str) -> Iterator[Engine]:
    """An engine over a copy of the named shipped corpus/ files (hash encoder), closed after the block."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in names:
        shutil.copy(ROOT / "corpus" / name, corpus / name)
    eng = _engine(tmp_path / "index", corpus)
    try:
        yield eng
    finally:
        eng.close()


def _without_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup_mod, "lookup", lambda *a, **kw: None)


# ------------------------------------------------------------------------------------------------ the rules
@pytest.mark.parametrize("text,n", [("十", 10), ("十一", 11), ("二十", 20), ("二十七", 27), ("一百", 100),
                                    ("一百零一", 101), ("一百一十", 110), ("一百五十八", 158), ("三百零五", 305),
                                    ("27", 27), ("２７", 27), ("两百", 200)])
def test_chinese_and_arabic_numerals(text, n):
    assert cn_to_int(text) == n
    assert cn_to_int(int_to_cn(n)) == n


def test_numerals_round_trip_and_reject_words():
    assert [int_to_cn(n) for n in (10, 15, 20, 101, 110, 158)] == ["十", "十五", "二十", "一百零一", "一百一十", "一百五十八"]
    assert all(cn_to_int(int_to_cn(n)) == n for n in range(1, 1000))
    assert cn_to_int("条例") is None and cn_to_int("") is None


def test_article_chains_and_separate_refs():
    refs = find_refs("纪律处分条例第二十七条第二款第（三）项和第7条；第五章第十九条")
    assert [(r.article, r.clause, r.item, r.chapter) for r in refs] == [(27, 2, 3, None), (7, None, None, None),
                                                                       (19, None, None, 5)]
    assert refs[0].label == "第二十七条第二款第三项"
    assert find_refs("党章规定党员有哪些权利") == []


def test_year_and_version_words():
    assert year_request("2018年版纪律处分条例第七条").year == 2018
    assert year_request("二〇一五年处分条例第八条").year == 2015
    assert year_request("纪律处分条例（2015年修订）第27条").year == 2015
    assert year_request("十九大党章第四十条").year == 2017
    assert year_request("旧版纪律处分条例第七条").older
    assert year_request("纪律处分条例第二十七条").year is None


def test_names_and_short_names():
    assert {"党章", "中国共产党章程"} <= name_keys("中国共产党章程")
    assert "章程" not in name_keys("中国共产党章程")  # any organisation's charter
    assert {"处分条例", "党纪处分条例", "纪律处分条例"} <= name_keys("中国共产党纪律处分条例2018")
    assert "支部工作条例" in name_keys("中国共产党支部工作条例（试行）")
    assert mention_score("根据处分条例", "纪律处分条例") > 0
    assert mention_score("组织工作条例", "巡视工作条例") == 0  # another regulation that shares 工作条例
    assert mention_score("八项规定实施细则", "节庆活动管理办法实施细则") == 0
    assert {"纪委工作条例", "纪检委工作条例", "纪委条例"} <= name_keys("中国共产党纪律检查委员会工作条例")


def test_discipline_commission_rules_by_their_short_names(tmp_path):
    """纪检委工作条例第三条 is the 纪律检查委员会工作条例's 第三条; before the alias it was ranked, and the
    监督执纪工作规则's 第三条 came first."""
    with _shipped_engine(tmp_path, "中国共产党纪律检查委员会工作条例.md", "中国共产党纪律检查机关监督执纪工作规则.md") as eng:
        for question in ("纪检委工作条例第三条", "纪委条例第三条是什么", "纪委工作条例第三条"):
            hits = eng.search(question, k=3, mode="keyword")
            assert hits.found is not None and hits.found.unit.doc_id == "中国共产党纪律检查委员会工作条例.md", question
            assert hits[0]["doc_id"] == "中国共产党纪律检查委员会工作条例.md" and _article(hits[0]) == "第三条"


def test_cross_reference_forms():
    text = "依照本条例第二十七条规定，并按《中国共产党章程》第八条和第九条处理。\n有前款行为的，依照前两款规定；本条第二款另有规定。"
    got = [(c.kind, c.text, c.name, c.ref.article, c.ref.clause, c.back) for c in find_cross_refs(text)]
    assert got == [("same", "本条例第二十七条", "", 27, None, 0),
                   ("named", "《中国共产党章程》第八条", "中国共产党章程", 8, None, 0),
                   ("named", "第九条", "中国共产党章程", 9, None, 0),
                   ("clause", "前款", "", None, None, 1), ("clause", "前两款", "", None, None, 2),
                   ("clause", "本条第二款", "", None, 2, 0)]
    for c in find_cross_refs(text):
        assert text[c.start:c.end] == c.text
    assert find_cross_refs("第三条 党支部工作应当遵循以下原则") == []  # an article's own label is no reference


# ------------------------------------------------------------------------------------------------ fixture index
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The seed essay and the regulation fixture (党支部工作示范条例（试行）, eighteen articles)."""
    base = tmp_path_factory.mktemp("lookup-small")
    eng = _engine(base / "index", make_corpus(base / "corpus"))
    yield eng
    eng.close()


@pytest.mark.parametrize("mode", MODES)
def test_fixture_article_first_in_every_mode(small, mode):
    for q, label in [("党支部工作示范条例第五条是怎么规定的", "第五条"), ("党支部工作示范条例第7条", "第七条"),
                     ("党支部工作示范条例第十六条", "第十六条")]:
        hits = small.search(q, k=5, mode=mode)
        assert hits[0]["doc_id"] == FIXTURE_DOC and _article(hits[0]) == label, (q, mode, hits[0]["section"])
        env = hits.envelope()
        assert env["answer_found"] is True and env["lookup"]["article"] == label and "message" not in env


def test_fixture_missing_article_says_so(small):
    hits = small.search("党支部工作示范条例第九十九条", k=5)
    assert list(hits) == [] and hits.answer_found is False
    assert "共十八条" in hits.message and "18 articles" in hits.message
    env = hits.envelope()
    assert env["message"] == hits.message and env["lookup"]["found"] is False


def test_fixture_ordinary_question_is_left_as_ranked(small, monkeypatch):
    q = "党支部的基本任务是什么"
    with_lookup = small.search(q, k=5, mode="keyword")
    assert "lookup" not in with_lookup.envelope()
    _without_lookup(monkeypatch)
    alone = small.search(q, k=5, mode="keyword")
    assert [h["pid"] for h in with_lookup] == [h["pid"] for h in alone]


def test_fixture_unknown_regulation_is_not_looked_up(small):
    hits = small.search("党章第五条", k=5, mode="keyword")  # no 党章 in this index
    assert "lookup" not in hits.envelope()


def test_fixture_document_filter_names_the_regulation(small):
    hits = small.search("第七条讲了什么", k=3, mode="keyword", docs=[FIXTURE_DOC])
    assert _article(hits[0]) == "第七条"


SELF_CITING = "学习制度条例.txt"
SELF_CITING_TEXT = ("学习制度条例\n\n第一章　总则\n\n"
                    "第一条　党小组每月组织一次集中学习，学习党章党规和党的创新理论，由党小组组长主持，党员轮流领学。\n\n"
                    "第二条　因公出差等原因无法参加集中学习的党员，依照本条例第一条的规定，在一个月内另行补学并交流心得。\n")


def test_fixture_hits_carry_references_field(small, tmp_path):
    # The fixture cites no article (no 本条例第…, 前款, 本条第…款, 《…》第…): every hit carries an empty list.
    hits = small.search("党支部委员会怎么设立", k=5, mode="keyword")
    assert hits and all("references" in h for h in hits)
    plain = [h for h in hits if not re.search(r"本条例第|前[一二两三]?款|本条第|》\s*第", h["text"])]
    assert plain and all(h["references"] == [] for h in plain), [(h["pid"], h["references"]) for h in plain]
    # A regulation citing its own article: the reference is the words in the passage, and points at that article.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / SELF_CITING).write_text(SELF_CITING_TEXT, encoding="utf-8")
    eng = _engine(tmp_path / "index", corpus)
    try:
        hit = next(h for h in eng.search("学习制度条例第二条", k=3, mode="keyword") if "依照本条例第一条" in h["text"])
        refs = [r for r in hit["references"] if r["text"] == "本条例第一条"]
        assert len(refs) == 1, hit["references"]
        assert hit["text"][refs[0]["start"]:refs[0]["end"]] == "本条例第一条"
        first = next(p for p in eng.document(SELF_CITING)["passages"] if "党小组每月组织一次集中学习" in p["text"])
        assert refs[0]["doc_id"] == SELF_CITING and refs[0]["pid"] == f"{SELF_CITING}#{first['ordinal']}"
        assert refs[0]["citation"].endswith("第一条"), refs[0]
    finally:
        eng.close()


def test_fixture_disabled_article_is_never_pinned(tmp_path):
    eng = _engine(tmp_path / "index", make_corpus(tmp_path / "corpus"))
    try:
        first = eng.search("党支部工作示范条例第五条", k=5, mode="keyword")[0]
        assert _article(first) == "第五条"
        eng.set_passage_enabled([first["pid"]], False)
        hits = eng.search("党支部工作示范条例第五条", k=5, mode="keyword")
        assert first["pid"] not in [h["pid"] for h in hits]
    finally:
        eng.close()


# ------------------------------------------------------------------------------------------------ shipped versions
S18, S23 = "中国共产党纪律处分条例（2018）.md", "中国共产党纪律处分条例（2023）.md"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """Both shipped 纪律处分条例 versions (2023 renumbers: its 第二十七条 is the 2018 第二十六条), 党章 and the 准则."""
    base = tmp_path_factory.mktemp("lookup-shipped")
    corpus = base / "corpus"
    corpus.mkdir()
    for name in (S18, S23, "中国共产党章程.md", "中国共产党廉洁自律准则.md"):
        shutil.copy(ROOT / "corpus" / name, corpus / name)
    eng = _engine(base / "index", corpus)
    yield eng
    eng.close()


# question, the pinned article (doc, label), the same article in the other version (doc, label) -- read off the texts
PINNED_VERSIONS = [
    ("2015年纪律处分条例第八条", (S18, "第八条"), (S23, "第八条")),  # 2015 not indexed: the 2018 version in force then
    ("旧版纪律处分条例第八条", (S18, "第八条"), (S23, "第八条")),
    ("纪律处分条例第二十七条", (S23, "第二十七条"), (S18, "第二十六条")),
    ("2018年版纪律处分条例第二十六条", (S18, "第二十六条"), (S23, "第二十七条")),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("question,pinned,other", PINNED_VERSIONS)
def test_pinned_article_carries_its_other_versions_and_k_hits(shipped, mode, question, pinned, other):
    """Issue 23: the pinned article is a hit like any other -- its other version in ``also_in``, not a hit of its
    own beside it nor folded under another hit -- and the results still hold k hits, each passage once."""
    k = 5
    hits = shipped.search(question, k=k, mode=mode)
    top = hits[0]
    assert (top["doc_id"], _article(top)) == pinned and hits.found.pids[0] == top["pid"]
    folded = [(o["doc_id"], _article(o), o["fold"]) for o in top["also_in"]]
    assert (*other, "version") in folded, (question, mode, folded)
    assert all((h["doc_id"], _article(h)) != other for h in hits[1:]), [h["section"] for h in hits]
    shown = [h["pid"] for h in hits] + [o["pid"] for h in hits for o in h["also_in"]]
    assert len(shown) == len(set(shown)), shown
    assert len(hits) == k and [h["rank"] for h in hits] == list(range(1, k + 1))


# question, the document, the heading, the first passage's section (read off the shipped texts)
HEADING_ASKS = [
    ("党章总纲", "中国共产党章程.md", "总纲", "总纲"),
    ("《中国共产党章程》的总纲讲了什么", "中国共产党章程.md", "总纲", "总纲"),
    ("纪律处分条例的附则", S23, "附则", "第三编 附则 > 第一百五十五条"),
    ("2018年版纪律处分条例总则", S18, "总则", "第一编 总则 > 第一章 指导思想、原则和适用范围 > 第一条"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("question,doc,heading,section", HEADING_ASKS)
def test_named_heading_first(shipped, mode, question, doc, heading, section):
    """A question asking for a regulation's 总纲 / 总则 / 附则 by name gets its opening passages first, in the version
    it names (else the one in force); before, 党章总纲 answered with 纪律处分条例第三条 (党章是最根本的党内法规)."""
    hits = shipped.search(question, k=5, mode=mode)
    assert hits.found is not None and hits.found.ref.label == heading
    assert hits[0]["doc_id"] == doc and hits[0]["section"] == section, (question, mode, hits[0]["citation"])
    assert [h["pid"] for h in hits[:len(hits.found.pids)]] == hits.found.pids
    assert hits.envelope()["lookup"]["article"] == heading


@pytest.mark.parametrize("question", ["党章总纲对党的建设提出了哪些要求", "总则", "廉洁自律准则的总则"])
def test_heading_inside_a_question_or_without_a_named_regulation_is_ranked(shipped, question):
    """Asking something inside the 总纲, naming no regulation, or naming one with no such part (the 准则 has none):
    no look-up, the ranking answers."""
    hits = shipped.search(question, k=5, mode="keyword")
    assert getattr(hits, "found", None) is None and len(hits)


# question, the document, the articles pinned in order (read off the shipped texts)
SEVERAL = [
    ("党章第七条和第八条", "中国共产党章程.md", ["第七条", "第八条"]),
    ("党章第七条至第九条", "中国共产党章程.md", ["第七条", "第八条", "第九条"]),
    ("2018年版纪律处分条例第二十六条、第二十七条", S18, ["第二十六条", "第二十七条"]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("question,doc,articles", SEVERAL)
def test_several_articles_of_one_regulation_are_pinned_in_order(shipped, mode, question, doc, articles):
    """第七条和第八条 / 第七条至第九条: every article asked for, in order, before the ranked hits (before, only the
    first was pinned and 纪律处分条例第七条 followed it)."""
    hits = shipped.search(question, k=10, mode=mode)
    n = len(hits.found.pids)
    assert [h["pid"] for h in hits[:n]] == hits.found.pids
    assert all(h["doc_id"] == doc for h in hits[:n])
    assert list(dict.fromkeys(_article(h) for h in hits[:n])) == articles, [h["section"] for h in hits[:n]]
    assert hits.envelope()["lookup"]["article"] == "、".join(articles)
    # each pinned card's rank line says the question named it, not the ranking's reasons
    assert all(h["why"][0] == f"问题指明{_article(h)}" and LEARNED_NOTE not in h["why"] for h in hits[:n])


def test_a_second_article_of_another_regulation_is_not_pinned(shipped):
    """党章第七条和纪律处分条例第八条: the second names another regulation, so only 党章第七条 is looked up."""
    hits = shipped.search("党章第七条和纪律处分条例第八条", k=5, mode="keyword")
    assert hits.envelope()["lookup"]["article"] == "第七条"
    pinned = hits[:len(hits.found.pids)]
    assert {(h["doc_id"], _article(h)) for h in pinned} == {("中国共产党章程.md", "第七条")}


def test_a_regulation_without_articles_is_not_taken_for_one_with_them(tmp_path):
    """若干准则第三条: the 若干准则 has no 第X条, and the 廉洁自律准则 is named 准则 for short; before, the question was
    looked up as 廉洁自律准则第三条 (an answer with a look-up's confidence to a question about another regulation).
    Its numbered sections (一、坚定理想信念 … 十二、) are its parts: 若干准则第三条 / 第三部分 get 三、. A copy without
    those headings has neither articles nor parts, and the question goes to ranking. 准则第三条 and 廉洁准则第三条
    still are the 廉洁自律准则's."""
    with _shipped_engine(tmp_path, "中国共产党廉洁自律准则.md", "关于新形势下党内政治生活的若干准则.md") as eng:
        for question in ("若干准则第三条", "若干准则第三部分", "《关于新形势下党内政治生活的若干准则》的第三部分讲了什么"):
            hits = eng.search(question, k=3, mode="keyword")
            assert hits.found is not None and hits[0]["doc_id"] == "关于新形势下党内政治生活的若干准则.md", question
            assert hits[0]["section"].startswith("三、坚决维护党中央权威") and hits[0]["why"][0] == "问题指明第三部分"
            assert hits.envelope()["lookup"]["article"] == "第三部分"
        hits = eng.search("若干准则第十三部分", k=3, mode="keyword")
        assert len(hits) == 0 and "共十二部分" in hits.envelope()["message"]
        for question in ("准则第三条", "廉洁准则第三条"):
            hits = eng.search(question, k=3, mode="keyword")
            assert hits.found is not None and hits[0]["doc_id"] == "中国共产党廉洁自律准则.md"
            assert _article(hits[0]) == "第三条"
        # 第三部分 names no article: a regulation with 第X条 is not looked up by it
        assert getattr(eng.search("廉洁自律准则第三部分", k=3, mode="keyword"), "found", None) is None
    # the same text without its section headings: no parts, no look-up
    plain = tmp_path / "plain"
    plain.mkdir()
    text = (ROOT / "corpus" / "关于新形势下党内政治生活的若干准则.md").read_text(encoding="utf-8")
    headless = "\n".join(line for line in text.splitlines() if not re.match(r"^#*\s*[一二三四五六七八九十]{1,3}、", line))
    assert headless.count("\n") < text.count("\n") - 10
    (plain / "关于新形势下党内政治生活的若干准则.md").write_text(headless, encoding="utf-8")
    shutil.copy(ROOT / "corpus" / "中国共产党廉洁自律准则.md", plain / "中国共产党廉洁自律准则.md")
    eng = _engine(tmp_path / "index-plain", plain)
    try:
        assert getattr(eng.search("若干准则第三条", k=3, mode="keyword"), "found", None) is None
    finally:
        eng.close()


@pytest.mark.parametrize("question,name,article", [("党内监督条例第五条", "党内监督条例", "第五条"),
                                                   ("中国共产党党内监督条例第十条讲了什么", "中国共产党党内监督条例", "第十条"),
                                                   ("宪法第一条", "宪法", "第一条")])
def test_an_article_of_a_regulation_not_indexed_is_not_answered_by_another(shipped, question, name, article):
    """An article of a regulation the index does not hold: the ranked passages stay as related text, but nothing
    passes for the answer (before, 党内监督条例第五条 was answered by 纪律处分条例第五条 with answer_found true)."""
    hits = shipped.search(question, k=5, mode="keyword")
    assert len(hits) and not hits.answer_found
    assert hits.message.startswith(f"未收录《{name}》") and f"not in the index" in hits.message
    assert hits.envelope()["lookup"] == {"regulation": name, "article": article, "found": False, "indexed": False}


def test_a_standard_answer_linked_to_an_unindexed_article_question_stands(shipped):
    """A person linked 党内监督条例第五条 to a passage (标准问题): that answer stands, without the 未收录 note."""
    pid = shipped.search("党员的权利", k=1, mode="keyword")[0]["pid"]
    shipped.curator.link_question("党内监督条例第五条", pid)
    try:
        hits = shipped.search("党内监督条例第五条", k=5, mode="keyword")
        assert hits.answer_found and hits[0]["pid"] == pid
        assert not getattr(hits, "message", None) and "message" not in hits.envelope()
    finally:
        shipped.curator.unlink_question("党内监督条例第五条")
    assert not shipped.search("党内监督条例第五条", k=5, mode="keyword").answer_found


@pytest.mark.parametrize("question", ["党章规定第七条", "本条例第五条", "根据规定第五条", "处分条例规定第五条",
                                      "纪律处分规定第五条"])
def test_a_named_or_generic_mention_is_not_taken_for_an_unindexed_regulation(shipped, question):
    """党章规定第七条 names 党章 (looked up); 本条例 / 规定 alone name nothing; 处分条例规定 and 纪律处分规定 misname
    an indexed regulation (纪律处分 in order in its title): no "未收录" message for any of them."""
    hits = shipped.search(question, k=5, mode="keyword")
    assert not hasattr(hits, "unindexed") and "未收录" not in (getattr(hits, "message", None) or "")


# ------------------------------------------------------------------------------------------------ numbered items
G8, G8X = "中央八项规定.md", "中央八项规定实施细则.md"


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    """The shipped 中央八项规定 (rules 一、… 八、, several to a passage) and its 实施细则 (items 1. … 30. under
    一、… headings): regulations written without 第X条."""
    base = tmp_path_factory.mktemp("lookup-items")
    corpus = base / "corpus"
    corpus.mkdir()
    for name in (G8, G8X, "中国共产党章程.md"):
        shutil.copy(ROOT / "corpus" / name, corpus / name)
    eng = _engine(base / "index", corpus)
    yield eng
    eng.close()


# question, document, the answer sentence's start (read off the shipped texts)
ITEM_ASKS = [
    ("八项规定第一条", G8, "一、中央政治局全体同志要改进调查研究"),
    ("中央八项规定第三条是什么", G8, "三、要精简文件简报，切实改进文风"),  # shares its passage with 二、
    ("八项规定第八条", G8, "八、要厉行勤俭节约"),
    ("八项规定第三点是什么", G8, "三、要精简文件简报，切实改进文风"),  # 第X点, as people name its rules too
    ("八项规定实施细则第3条", G8X, "3.简化接待工作。"),
    ("中央八项规定实施细则第三十条", G8X, "30.本细则自发布之日起施行。"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("question,doc,answer", ITEM_ASKS)
def test_numbered_item_is_looked_up_as_an_article(eight, mode, question, doc, answer):
    """"八项规定第三条": the third numbered rule first, its own sentence the answer even where one passage holds
    several rules (before, the question was ranked: 八项规定第一条 answered with the 实施细则's preamble)."""
    hits = eight.search(question, k=3, mode=mode)
    assert hits.found is not None and hits.found.unit.doc_id == doc
    top = hits[0]
    assert top["doc_id"] == doc and top["best_sentence"].startswith(answer), (question, mode, top["best_sentence"])
    assert top["why"] == [f"问题指明{hits.found.ref.label}"]
    assert top["text"][top["best_span"][0]:top["best_span"][1]] == top["best_sentence"]


def test_numbered_item_past_the_last_says_so(eight):
    hits = eight.search("八项规定第九条", k=3)
    assert len(hits) == 0 and not hits.answer_found
    assert "共八条" in hits.message and "8 articles" in hits.message
    hits = eight.search("八项规定第九点", k=3)
    assert len(hits) == 0 and "共八点，没有第九点" in hits.message


def test_numbered_rule_keeps_the_questions_word(eight):
    """八项规定 asked by 第三点 is labelled 第三点 on the card's rank line and in the look-up facts, never 第三条 (its
    rules are 一、二、三、, and the question did not say 条)."""
    hits = eight.search("八项规定第三点是什么", k=3)
    assert hits[0]["why"] == ["问题指明第三点"]
    assert hits.envelope()["lookup"]["article"] == "第三点"
    assert eight.search("八项规定第三条是什么", k=3)[0]["why"] == ["问题指明第三条"]
    # two rules asked, one passage holding both (二、 and 三、): its rank line names both
    assert eight.search("八项规定第二点和第三点", k=3)[0]["why"] == ["问题指明第二点、第三点"]


# ------------------------------------------------------------------------------------------------ real regulations
REAL = ["xtjeyvc-dangfa/dangfa008.md", "xtjeyvc-dangfa/dangfa009.md", "xtjeyvc-dangfa/dangfa0010.md",
        "xtjeyvc-dangfa/dangfa002.md", "xtjeyvc-dangfa/dangfa0024.md", "xtjeyvc-dangfa/dangfa0034.md",
        "xtjeyvc-dangfa/dangfa0015.md", "partymate/party_rules.md"]
D23, D18, D15, DZ = REAL[0], REAL[1], REAL[2], REAL[3]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """纪律处分条例 2023/2018/2015, 党章, three other regulations with rival article numbers, the handbook."""
    require_party_docs()
    base = tmp_path_factory.mktemp("lookup-real")
    corpus = base / "corpus"
    for rel in REAL:
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PARTY_DOCS / rel, corpus / rel)
    eng = _engine(base / "index", corpus)
    yield eng
    eng.close()


@pytest.mark.parametrize("question,doc,label,name", [
    ("2018年版纪律处分条例第七条", D18, "第七条", ""),
    ("纪律处分条例第七条", D23, "第七条", ""),
    ("2015年纪律处分条例第二十七条", D15, "第二十七条", ""),
    ("党章第八条", DZ, "第八条", ""),  # 案件检查工作条例 and 问责条例 have a 第八条 too
    ("党章第二十三条", DZ, "第二十三条", ""),
    ("党纪处分条例第一百零一条", D23, "第一百零一条", ""),
    ("党章第四条规定了党员哪些权利", DZ, "第四条", ""),
    ("处分条例第17条讲的是什么", D23, "第十七条", ""),
    ("发展党员工作细则第十条", "partymate/party_rules.md", "第十条", "发展党员工作细则"),
    ("支部工作条例第十九条", "partymate/party_rules.md", "第十九条", "支部工作条例"),
])
def test_real_named_article_first(real, question, doc, label, name):
    for mode in MODES:
        hit = real.search(question, k=5, mode=mode)[0]
        assert (hit["doc_id"], _article(hit)) == (doc, label), (question, mode, hit["citation"])
        assert name in hit["citation"]


def test_real_lookup_beats_ranking_alone(real, monkeypatch):
    q = "2018年版纪律处分条例第七条"
    _without_lookup(monkeypatch)
    alone = real.search(q, k=5, mode="keyword")
    assert (alone[0]["doc_id"], _article(alone[0])) != (D18, "第七条")  # what the look-up is for


def test_real_scraped_preamble_is_looked_up(real):
    """party-docs' 党章 is a scraped copy whose " 总纲 " line the splitter does not take for a heading (its passages
    have no section): the passages before 第一章 are the 总纲, because the text names it on a line of its own."""
    hits = real.search("党章总纲", k=5, mode="keyword")
    assert hits.found is not None and hits.found.ref.label == "总纲" and hits.found.unit.doc_id == DZ
    pinned = hits[:len(hits.found.pids)]
    assert all(h["doc_id"] == DZ and h["section"] == "" for h in pinned)
    assert any("中国共产党是中国工人阶级的先锋队" in h["text"] for h in pinned)


def test_real_missing_article(real):
    hits = real.search("纪律处分条例第三百条", k=5)
    assert list(hits) == [] and hits.answer_found is False
    assert "共一百五十八条" in hits.message and "158 articles" in hits.message
    hits = real.search("2018年版纪律处分条例第一百五十条", k=5)
    assert "共一百四十二条" in hits.message  # the 2018 version's count, not the current one's


def test_real_version_not_indexed_takes_the_one_in_force(real):
    hits = real.search("2016年纪律处分条例第七条", k=5, mode="keyword")
    assert hits[0]["doc_id"] == D15  # the 2015 version was in force in 2016


def test_real_references_resolve_to_articles(real):
    # 第三十条: "…依照前款规定处理" points at its first clause
    hit = real.search("纪律处分条例第三十条", k=3, mode="keyword")[0]
    refs = [r for r in hit["references"] if r["text"] == "前款"]
    assert refs and refs[0]["doc_id"] == D23 and refs[0]["citation"].endswith("第三十条第一款")
    assert hit["text"][refs[0]["start"]:refs[0]["end"]] == "前款"
    # 第十九条 cites 本条例第十七条 of the same version
    hit = real.search("纪律处分条例第十九条", k=3, mode="keyword")[0]
    ref = next(r for r in hit["references"] if r["text"] == "本条例第十七条")
    target = real.document(D23)["passages"]
    first17 = next(p for p in target if p["section"].endswith("第十七条"))
    assert ref["pid"] == f"{D23}#{first17['ordinal']}"
    # another document: 《中国共产党章程》第四十二条 in the 党组 procedure rules
    hit = real.search("党组讨论和决定党员处分事项工作程序规定第六条", k=3, mode="keyword")[0]
    ref = next(r for r in hit["references"] if r["text"].startswith("《中国共产党章程》"))
    assert ref["doc_id"] == DZ and ref["citation"].endswith("第四十二条")


def test_real_documents_list_versions(real):
    docs = {d["doc_id"]: d for d in real.documents()}
    assert docs[D23]["version_status"] == "current" and docs[D23]["version_year"] == 2023
    assert docs[D18]["version_status"] == "historical" and docs[D18]["version_label"] == "2018年版"
    assert [v["doc_id"] for v in docs[D23]["versions"]] == [D18, D15]
    assert docs[DZ]["version_status"] is None and docs[DZ]["version_year"] == 2017 and docs[DZ]["versions"] == []
    assert real.document(D15)["versions"][0]["doc_id"] == D23


def test_real_compare_pairs_articles_by_content(real):
    from indexer.search.compare import compare_article
    from indexer.search.lookup import build_catalog

    gen = real._state()
    cat = build_catalog(gen.passages, gen.by_doc, gen.texts, gen.manifest["documents"])
    got = compare_article(cat, gen.passages, gen.texts, D23, 101, real._searcher.versions(gen))
    rows = {r["doc_id"]: r for r in got["versions"]}
    assert [r["doc_id"] for r in got["versions"]] == [D23, D18, D15]  # newest first
    assert rows[D18]["article"] == "第九十二条" and rows[D15]["article"] == "第八十六条"  # numbers shifted
    base = rows[D23]["text"]
    for r in (rows[D18], rows[D15]):
        segs = r["segments"]
        assert "".join(s["text"] for s in segs if s["kind"] != "removed") == r["text"]
        assert "".join(s["text"] for s in segs if s["kind"] != "added") == base
        assert any(s["kind"] != "same" for s in segs)
    assert compare_article(cat, gen.passages, gen.texts, D23, 300) is None


def test_real_compare_on_an_engine(real):
    from indexer.search.compare import article_versions

    got = article_versions(real, D18, "第九十二条")
    assert [v["article"] for v in got["versions"]] == ["第一百零一条", "第九十二条", "第八十六条"]
    assert [v["asked"] for v in got["versions"]] == [False, True, False]
    assert article_versions(real, D18, "92") == got
    assert article_versions(real, D23, "第三百条") is None
    with pytest.raises(KeyError):
        article_versions(real, "nope.md", "1")


def test_real_document_view_has_versions_and_references(real):
    doc = real.document(D23)
    assert doc["version_status"] == "current" and [v["doc_id"] for v in doc["versions"]] == [D18, D15]
    p30 = next(p for p in doc["passages"] if p["section"].endswith("第三十条"))
    refs = [r for r in p30["references"] if r["text"] == "前款"]
    assert refs and refs[0]["citation"].endswith("第三十条第一款")
    assert p30["text"][refs[0]["start"]:refs[0]["end"]] == "前款"


def test_cli_ask_says_what_the_lookup_found(small, capsys):
    from indexer.cli import main

    assert main(["--index-dir", str(small.root), "ask", "党支部工作示范条例第九十九条", "--mode", "keyword"]) == 0
    out = capsys.readouterr().out
    assert "共十八条" in out and "18 articles" in out
    assert main(["--index-dir", str(small.root), "ask", "党支部工作示范条例第五条", "--mode", "keyword",
                 "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["lookup"]["article"] == "第五条" and body["results"][0]["section"].endswith("第五条")


# ------------------------------------------------------------------------------------------------ corrected titles
def test_lookup_by_corrected_title(tmp_path):
    """A document whose file gives a wrong title (附件1, front matter and heading) is looked up by the title a person corrected it to, and by
    that title's short name; the old title keeps working. The shipped 问责条例 and 纪律处分条例 (2023) both have a
    第八条, so the right one must be chosen by the name."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = (ROOT / "corpus" / "中国共产党问责条例.md").read_text(encoding="utf-8")
    assert "title: 中国共产党问责条例\n" in text and "# 中国共产党问责条例\n" in text
    text = text.replace("title: 中国共产党问责条例\n", "title: 附件1\n").replace("# 中国共产党问责条例\n", "# 附件1\n")
    (corpus / "fj1.md").write_text(text, encoding="utf-8")
    shutil.copy(ROOT / "corpus" / S23, corpus / S23)
    eng = _engine(tmp_path / "index", corpus)
    try:
        before = eng.search("问责条例第八条", k=5, mode="keyword")
        # the file's title names no regulation yet: nothing is looked up, and the page says 问责条例 is not indexed
        assert before.envelope()["lookup"] == {"regulation": "问责条例", "article": "第八条", "found": False,
                                              "indexed": False}
        eng.set_metadata("fj1.md", title="中国共产党问责条例")
        for q in ("问责条例第八条", "中国共产党问责条例第八条讲了什么", "附件1第八条"):
            for mode in MODES:
                hits = eng.search(q, k=5, mode=mode)
                env = hits.envelope()
                assert env.get("lookup", {}).get("found") is True, (q, mode)
                assert hits[0]["doc_id"] == "fj1.md" and _article(hits[0]) == "第八条", (q, mode, hits[0]["section"])
                assert "问责决定应当由党中央" in hits[0]["text"]
        assert eng.search("问责条例第八条", k=3).envelope()["lookup"]["regulation"] == "中国共产党问责条例"
        missing = eng.search("问责条例第九十条", k=3)
        assert list(missing) == [] and "《中国共产党问责条例》" in missing.message
        eng.set_metadata("fj1.md", title=None)  # reverted: the corrected name no longer names it
        assert eng.search("问责条例第八条", k=5, mode="keyword").envelope()["lookup"]["indexed"] is False
    finally:
        eng.close()


# ------------------------------------------------------------------------------------------------ standard answers
@pytest.mark.parametrize("mode", MODES)
def test_standard_answer_carries_its_other_versions_and_k_hits(tmp_path, mode):
    """A standard question's passage put first is a hit like a ranked one: the same article of the regulation's
    other version is in its ``also_in`` (also when the ranking showed that one as a hit of its own with the linked
    passage folded under it), shown nowhere else, and the list still holds k hits."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in (S18, S23, "中国共产党章程.md"):
        shutil.copy(ROOT / "corpus" / name, corpus / name)
    eng = _engine(tmp_path / "index", corpus)
    k = 5
    try:
        for question, label in [("纪律处分有几种", "第八条"), ("支部书记怎么选", "第十八条")]:
            old = next(p["pid"] for p in eng.passages(S18) if _article(p) == label)
            eng.curator.link_question(question, old)  # the 2018 version's article (the 2023 one is the same)
            hits = eng.search(question, k=k, mode=mode)
            top = hits[0]
            assert top["pid"] == old and top["standard_answer"] is True
            folded = [(o["doc_id"], _article(o), o["fold"]) for o in top["also_in"]]
            assert (S23, label, "version") in folded, (question, mode, folded)
            assert all((h["doc_id"], _article(h)) != (S23, label) for h in hits[1:]), [h["section"] for h in hits]
            shown = [h["pid"] for h in hits] + [o["pid"] for h in hits for o in h["also_in"]]
            assert len(shown) == len(set(shown)), shown
            assert len(hits) == k and [h["rank"] for h in hits] == list(range(1, k + 1))
    finally:
        eng.close()


# ------------------------------------------------------------------------------------------------ a quoted article
# question (naming an article and quoting text), the article pinned (doc, label), the article the question wrote --
# read off the shipped texts: "党员犯罪情节轻微，人民检察院依法作出不起诉决定的…" is 2023 第三十三条 and 2018 第三十一条
CRIME = "规定，党员犯罪情节轻微，人民检察院依法作出不起诉决定的，应当给予处分。被判缓刑的怎么办？"
QUOTED = [
    (f"纪律处分条例第三十二条{CRIME}", (S23, "第三十三条"), "第三十二条"),
    (f"2018年版纪律处分条例第三十二条{CRIME}", (S18, "第三十一条"), "第三十二条"),
    (f"纪律处分条例第三十三条{CRIME}", (S23, "第三十三条"), None),
    ("党章第七条规定，预备党员在预备期内享有和正式党员一样的权利，对吗？", ("中国共产党章程.md", "第七条"), None),
    ("党章第七条“预备党员的义务同正式党员一样”怎么理解", ("中国共产党章程.md", "第七条"), None),
    ("党章第七条规定了什么", ("中国共产党章程.md", "第七条"), None),  # 规定了什么: no quote
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("question,pinned,cited", QUOTED)
def test_a_quoted_article_is_found_by_what_it_says(shipped, mode, question, pinned, cited):
    """A question quoting the article it names ("第三十二条规定，……") gets the article that says it: people cite an
    older numbering (2018's 第三十一条 is 2023's 第三十三条; 2023's 第三十二条 is about 留置). The card says where the
    quote is and which article the question wrote; a question whose quote its article holds is pinned as named."""
    hits = shipped.search(question, k=5, mode=mode)
    top, env = hits[0], hits.envelope()
    assert (top["doc_id"], _article(top)) == pinned, (question, mode, top["citation"])
    assert env["lookup"]["article"] == pinned[1] and env["lookup"].get("cited_article") == cited
    if cited:
        assert f"问题所引的内容在" in env["message"] and f"不在{cited}" in env["message"]
        assert top["why"][0] == f"问题所引的内容在{pinned[1]}"
        other = (S18, "第三十一条") if pinned[0] == S23 else (S23, "第三十三条")
        assert (*other, "version") in [(o["doc_id"], _article(o), o["fold"]) for o in top["also_in"]]
    else:
        assert "message" not in env and top["why"][0] == f"问题指明{pinned[1]}"


def test_a_quote_no_article_holds_leaves_the_question_to_ranking(shipped):
    """党章第七条 (预备党员) does not speak of what the question quotes, and no article does: no look-up, rather than
    第七条 answering a question about something else (as the 2019 监督执纪工作规则第二十八条 would answer a quote of
    the 试行 version's)."""
    hits = shipped.search("党章第七条规定，党员领导干部每年要向组织报告个人收入和房产情况，这个要求具体是什么？", k=5,
                          mode="keyword")
    assert getattr(hits, "found", None) is None and "lookup" not in hits.envelope()
    assert not any(h["doc_id"] == "中国共产党章程.md" and _article(h) == "第七条" for h in hits[:1])
