"""Ranking round 3 (issue 22) on real text: honest folding, handbook tails, sentence windows and their store, answer
kinds, and (slow, real model) the three questions whose answering article must come first."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SEED, SHIPPED, require_party_docs
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from indexer.config import Config  # noqa: E402
from indexer.index.sentences import SentenceStore, sentence_store  # noqa: E402
from indexer.ingest import files as ingest  # noqa: E402
from indexer.ingest.prepare import prepare  # noqa: E402
from indexer.search.fold import fold_reason, source_of  # noqa: E402
from indexer.search.query import analyse  # noqa: E402
from indexer.search.rank import rank  # noqa: E402
from indexer.text.answers import DEFINITION, NUMBER, PERIOD, PERMISSION, VERBATIM, holds, question_kind  # noqa: E402
from indexer.text.cite import citation  # noqa: E402
from indexer.text.tails import attachment_section, is_tail_section  # noqa: E402
from indexer.text.versions import version_families  # noqa: E402
from indexer.text.windows import window_texts, windows  # noqa: E402
from indexer.types import KeywordHit, Passage  # noqa: E402

HANDBOOK = "partymate/party_rules.md"
CHARTER = "xtjeyvc-dangfa/dangfa002.md"  # 中国共产党章程
DISCIPLINE_2023 = "xtjeyvc-dangfa/dangfa008.md"
DISCIPLINE_2018 = "xtjeyvc-dangfa/dangfa009.md"


def _passages(rel: str, root: Path | None = None) -> tuple[dict, list[Passage]]:
    """One file (``rel`` under ``root``, default ../shared/bench/party-docs) read and split as the import does."""
    raw = ingest.load_file((root or require_party_docs()) / rel, doc_id=rel)[0]
    doc, ps = prepare(raw)
    return {"title": doc.title, "text": doc.text, "meta": doc.meta}, ps


def _article(ps: list[Passage], label: str, containing: str = "", regulation: str = "") -> Passage:
    found = [p for p in ps if p.section.endswith(label) and containing in p.text and regulation in citation(p)]
    assert found, (label, containing, regulation)
    return found[0]


@pytest.fixture(scope="module")
def docs() -> dict[str, tuple[dict, list[Passage]]]:
    return {rel: _passages(rel) for rel in (HANDBOOK, CHARTER, DISCIPLINE_2023, DISCIPLINE_2018)}


# ------------------------------------------------------------------------------------------------ folding
def test_a_shared_sentence_never_folds_two_regulations(docs) -> None:
    """The issue's case: 发展党员工作细则第三十二条 holds 党章第七条's sentence and 纪律处分条例第三十六条's, yet the three
    are three answers; the 2023 and 2018 第三十六条 (one regulation, two versions) are one, led by the current one."""
    charter = _article(docs[CHARTER][1], "第七条", "预备期满")
    rules = _article(docs[HANDBOOK][1], "第三十二条", "预备期为一年", "发展党员工作细则")
    d2023 = _article(docs[DISCIPLINE_2023][1], "第三十六条", "预备党员违犯党纪")
    d2018 = next(p for p in docs[DISCIPLINE_2018][1] if "预备党员违犯党纪，情节较轻" in p.text)
    versions = version_families({rel: docs[rel][0] for rel in docs})
    assert versions[DISCIPLINE_2023].status == "current" and versions[DISCIPLINE_2018].status == "historical"
    # the old rule (4-gram containment of the shorter text) would fold all of them into the handbook article
    assert fold_reason(rules, charter, versions) is None
    assert fold_reason(rules, d2023, versions) is None
    assert fold_reason(d2018, d2023, versions) == "version"
    passages = {p.pid: p for p in (rules, charter, d2018, d2023)}
    order = [rules.pid, charter.pid, d2018.pid, d2023.pid]  # the 2023 article is last: it leads with its own rank
    hits = [KeywordHit(pid, 10.0 - i, []) for i, pid in enumerate(order)]
    res = rank(passages, analyse("预备党员的预备期是多长"), hits, [], 5, "keyword", Config(), versions=versions)
    shown = [[h["pid"]] + [a["pid"] for a in h["also_in"]] for h in res]
    assert shown == [[rules.pid], [charter.pid], [d2023.pid, d2018.pid]]
    for h in res:
        assert all(source_of(h["title"], h["section"])[0] == source_of(a["title"], a["section"])[0]
                   for a in h["also_in"])
    led = res[2]
    assert led["keyword_rank"] == 4 and led["also_in"][0]["fold"] == "version"
    assert led["version_status"] == "current"


def test_one_handbook_two_regulations_do_not_fold(docs) -> None:
    """支部工作条例第十七条 and 党员教育管理工作条例第十七条 (one file) say nearly the same; they are two regulations."""
    ps = docs[HANDBOOK][1]
    a = _article(ps, "第十七条", "组织生活会", "支部工作条例")
    b = _article(ps, "第十七条", "组织生活会", "党员教育管理工作条例")
    assert a.doc_id == b.doc_id and fold_reason(a, b) is None
    twin = dataclasses.replace(a, ordinal=9999)  # the same article printed twice in one file is a repeat
    assert fold_reason(a, twin) == "repeat"


def test_a_list_repeating_a_regulation_folds_under_the_regulation() -> None:
    """清单80条 item 16 repeats 党政机关国内公务接待管理规定第十条: one answer, led by the regulation with its own
    rank, so no hit hides a regulation in its also_in."""
    _, listing = _passages("xtjeyvc-8gui/02.md")
    _, rule = _passages("xtjeyvc-8gui/16.md")
    item = next(p for p in listing if p.text.startswith("16.接待对象"))
    article = _article(rule, "第十条", "工作餐")
    assert fold_reason(item, article) == "repeat"
    res = rank({item.pid: item, article.pid: article}, analyse("公务接待陪餐人数有什么规定"),
               [KeywordHit(item.pid, 9.0, []), KeywordHit(article.pid, 8.0, [])], [], 5, "keyword", Config())
    assert [h["pid"] for h in res] == [article.pid] and res[0]["keyword_rank"] == 2
    assert [(a["pid"], a["fold"]) for a in res[0]["also_in"]] == [(item.pid, "repeat")]


# ------------------------------------------------------------------------------------------------ handbook tails
def test_forms_after_a_last_article_are_not_cited_as_it(docs) -> None:
    ps = docs[HANDBOOK][1]
    last = [p for p in ps if citation(p).startswith("《暂行办法》") and p.section.endswith("第二十一条")]
    assert len(last) == 1 and "附" not in last[0].text and "表格" not in last[0].text
    assert last[0].text.startswith("第二十一条") and last[0].text.endswith("执行。")
    tables = [p for p in ps if "| |" in p.text or "×年 × 月 × 日" in p.text]
    assert len(tables) > 50 and all(is_tail_section(p.section) for p in tables), \
        [citation(p) for p in tables if not is_tail_section(p.section)][:3]
    assert not any(p.section.endswith("第二十一条") for p in tables)
    forms = [p for p in ps if citation(p).startswith("《管理实施办法（试行）》附件")]
    assert [citation(p).split("》")[1][:3] for p in forms][:5] == ["附件1", "附件2", "附件3", "附件4", "附件5"]
    # a notice after 细则's last article is its own section, not 第四十四条
    art44 = _article(ps, "第四十四条", "本细则自发布之日起施行")
    assert "高校毕业生" not in art44.text
    assert any("贵州省发展党员工作规程" in citation(p) for p in ps)


def test_attachment_openers() -> None:
    assert attachment_section("附件1：") == "附件1"
    assert attachment_section("附件 3:出国（境）党员停止党籍审批登记表") == "附件3 出国（境）党员停止党籍审批登记表"
    assert attachment_section("--- 表格47 ---") == "表格47"
    assert attachment_section("附件1 | | | |") is None  # a table row
    assert attachment_section("附件：本办法所称党员是指已经取得党籍的人员，包括预备党员。") is None  # prose


def test_a_form_is_demoted_and_never_the_answer(docs) -> None:
    ps = docs[HANDBOOK][1]
    form = next(p for p in ps if is_tail_section(p.section) and "学时" in p.text)
    prose = _article(ps, "第十四条", "学时", "暂行办法")
    passages = {form.pid: form, prose.pid: prose}
    res = rank(passages, analyse("集中培训学时怎么计算"), [KeywordHit(form.pid, 9.0, []), KeywordHit(prose.pid, 6.0, [])],
               [], 5, "keyword", Config())
    assert [h["pid"] for h in res] == [prose.pid, form.pid]
    assert res[1]["best_sentence"] == "" and res[1]["best_span"] is None
    alone = rank({form.pid: form}, analyse("集中培训学时怎么计算"), [KeywordHit(form.pid, 9.0, [])], [], 5, "keyword", Config())
    assert not alone.answer_found


# ------------------------------------------------------------------------------------------------ sentence windows
def test_windows_cover_the_passage_and_join_short_sentences() -> None:
    _, ps = prepare(ingest.load_file(SEED)[0])
    for p in ps:
        spans = windows(p.text)
        assert spans and spans[0][0] == 0 and spans[-1][1] == len(p.text.rstrip())
        assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))
        assert all(e - s >= 12 for s, e in spans) or len(spans) == 1
    text = "第十二条 党支部委员会是党支部日常工作的领导机构。\n党支部委员会会议一般每月召开1次，根据需要可以随时召开。"
    texts = window_texts("中国共产党支部工作条例（试行）", "第四章 工作机制 > 第十二条", text)
    assert texts == ["支部工作条例：第十二条 党支部委员会是党支部日常工作的领导机构。",
                     "支部工作条例：党支部委员会会议一般每月召开1次，根据需要可以随时召开。"]
    assert window_texts("t", "", "只有一句话，没有第二句。") == []


def test_sentence_store_survives_a_torn_write(tmp_path: Path) -> None:
    store = SentenceStore(tmp_path, "m")
    a, b = np.ones((3, 4), dtype=np.float32), np.full((2, 4), 0.5, dtype=np.float32)
    store.append(["a", "b"], [a, b])
    # a killed writer: rows without a key line, and half a key line
    with open(store.dir / "vecs.f16", "ab") as fh:
        fh.write(np.zeros((5, 4), dtype="<f2").tobytes())
    with open(store.dir / "keys.txt", "ab") as fh:
        fh.write(b"c 5")
    again = SentenceStore(tmp_path, "m")
    assert len(again) == 2 and "c" not in again
    assert np.array_equal(again.rows("b"), b.astype("<f2"))
    again.append(["d"], [np.full((1, 4), 0.25)])
    reader = SentenceStore(tmp_path, "m")
    assert sorted(reader._entries) == ["a", "b", "d"] and float(reader.rows("d")[0, 0]) == 0.25
    store.refresh()  # the first instance sees the other's entry
    assert "d" in store and store.rows("a").shape == (3, 4)


# ------------------------------------------------------------------------------------------------ answer kinds
@pytest.mark.parametrize("question, kind", [
    ("支委会多久开一次会", PERIOD), ("预备党员的预备期是多长", PERIOD), ("党费按多少比例交纳", NUMBER),
    ("什么是民主集中制", DEFINITION), ("党员的权利包括哪些", DEFINITION), ("预备党员能不能参加表决", PERMISSION),
    ("入党誓词是什么", VERBATIM), ("党员可以信仰宗教吗", PERMISSION)])
def test_question_kinds(question: str, kind: str) -> None:
    assert question_kind(question) == kind


def test_sentences_hold_the_kind_asked_for(docs) -> None:
    ps = docs[HANDBOOK][1]
    art12 = _article(ps, "第十二条", "每月召开", "支部工作条例").text
    meeting = next(s for s in art12.split("。") if "每月召开" in s)
    assert holds(meeting, PERIOD) and not holds("党支部委员会是党支部日常工作的领导机构", PERIOD)
    oath = _article(docs[CHARTER][1], "第六条", "誓词").text
    assert holds(oath, VERBATIM) and not holds("引导党员牢记入党誓词，坚持合格党员标准", VERBATIM)
    assert holds("党员必须面向党旗进行入党宣誓。誓词如下：“我志愿加入中国共产党，拥护党的纲领”", VERBATIM)
    assert holds("预备党员没有表决权", PERMISSION) is False and holds("预备党员不得参加表决", PERMISSION)


# ------------------------------------------------------------------------------------------------ real model
@pytest.mark.slow
@pytest.mark.parametrize("question, regulation, article", [
    ("支委会多久开一次会", "支部工作条例", "第十二条"),
    ("预备党员的预备期是多长", "中国共产党章程", "第七条"),  # 发展党员工作细则第三十二条 says it too
    ("入党誓词是什么", "中国共产党章程", "第六条")])
def test_the_answering_article_comes_first(shipped_library, question: str, regulation: str,
                                           article: str) -> None:
    hits = shipped_library.search(question, k=5)
    top = hits[0]
    assert regulation in top["citation"] and top["section"].endswith(article), [h["citation"] for h in hits]
    assert top["best_sentence"] and top["best_sentence"] in top["text"]
    store = sentence_store(shipped_library.root, shipped_library.encoder.model_id)
    assert len(store) >= shipped_library.stats()["passages"] * 0.9  # every passage has its windows (or is one)


# ------------------------------------------------------------------------------------------------ a named version
SHIPPED_2023, SHIPPED_2018 = "中国共产党纪律处分条例（2023）.md", "中国共产党纪律处分条例（2018）.md"


@pytest.fixture(scope="module")
def shipped_discipline() -> tuple[dict[str, tuple[dict, list[Passage]]], dict]:
    """The shipped library's two 纪律处分条例 (corpus/), read as the import reads them, and their version facts."""
    docs = {name: _passages(name, SHIPPED) for name in (SHIPPED_2023, SHIPPED_2018)}
    return docs, version_families({name: docs[name][0] for name in docs})


def test_a_question_naming_a_version_gets_that_version_first(shipped_discipline) -> None:
    """"2018年版…" : the 2018 article leads its group (the 2023 one is listed under it); without a year the current
    version leads. The shipped library's two 纪律处分条例 (corpus/), the article on accepting gifts in both."""
    docs, versions = shipped_discipline
    new, old = SHIPPED_2023, SHIPPED_2018
    assert versions[new].status == "current" and versions[old].year == 2018
    gift = "收受可能影响公正执行公务的礼品"
    a2023 = _article(docs[new][1], "第九十七条", gift)
    a2018 = _article(docs[old][1], "第八十八条", gift)
    passages = {p.pid: p for p in (a2023, a2018)}
    hits = [KeywordHit(a2023.pid, 10.0, []), KeywordHit(a2018.pid, 9.0, [])]

    def lead(question: str) -> dict:
        res = rank(passages, analyse(question), hits, [], 5, "keyword", Config(), versions=versions)
        assert len(res) == 1, [h["pid"] for h in res]  # one answer in two versions: one card
        return res[0]

    named = lead("2018年版条例里收受礼品礼金怎么处分")
    assert named["pid"] == a2018.pid and [a["pid"] for a in named["also_in"]] == [a2023.pid]
    assert named["version_status"] == "historical" and "问题指明2018年版，其他版本已合并" in named["why"]
    plain = lead("收受礼品礼金怎么处分")
    assert plain["pid"] == a2023.pid and [a["pid"] for a in plain["also_in"]] == [a2018.pid]
    assert lead("二〇一八年版处分条例收受礼金怎么处理")["pid"] == a2018.pid  # the year in Chinese numerals
    assert lead("2015年版处分条例收受礼金怎么处理")["pid"] == a2023.pid  # a version not indexed: the current one


def test_a_named_version_comes_before_the_other_versions_wording(shipped_discipline) -> None:
    """"2018年版纪律处分条例什么时候开始施行": the 2018 附则 (自2018年10月1日起施行) is worded differently from the 2023
    one (自2024年1月1日起施行), so the two are not folded; the 2023 article scores higher on the question, yet the named
    version's comes first. Without a year the current one does."""
    docs, versions = shipped_discipline
    new, old = SHIPPED_2023, SHIPPED_2018
    a2023 = next(p for p in docs[new][1] if "本条例自2024年1月1日起施行" in p.text)
    a2018 = next(p for p in docs[old][1] if "本条例自2018年10月1日起施行" in p.text)
    passages = {p.pid: p for p in (a2023, a2018)}
    hits = [KeywordHit(a2023.pid, 10.0, []), KeywordHit(a2018.pid, 7.0, [])]

    def ranked(question: str) -> list[dict]:
        return rank(passages, analyse(question), hits, [], 5, "keyword", Config(), versions=versions)

    named = ranked("2018年版纪律处分条例什么时候开始施行")
    assert [h["pid"] for h in named] == [a2018.pid, a2023.pid] and "问题指明2018年版" in named[0]["why"]
    assert [h["pid"] for h in ranked("纪律处分条例什么时候开始施行")] == [a2023.pid, a2018.pid]
