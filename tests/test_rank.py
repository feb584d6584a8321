"""Ranking after retrieval: score fusion, noise demotion, near-duplicate folding, versions, answer confidence."""
from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_corpus, require_party_docs
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import HashEncoder  # noqa: E402
from indexer.config import Config  # noqa: E402
from indexer.search.fuse import convex, normalise, rrf  # noqa: E402
from indexer.search.rank import near_duplicate  # noqa: E402
from indexer.text.noise import is_noise_line, noise_share  # noqa: E402
from indexer.text.versions import document_year, family_key, version_families  # noqa: E402


# ------------------------------------------------------------------------------------------------ fusion
def test_normalise_maps_the_best_to_one_and_respects_a_floor() -> None:
    assert normalise([3.0, 2.0, 1.0]) == [1.0, 0.5, 0.0]
    weak = normalise([0.74, 0.72], floor=0.7)
    assert weak[0] == 1.0 and weak[1] == pytest.approx(0.5)
    assert normalise([]) == [] and normalise([0.3, 0.3]) == [1.0, 1.0]


def test_convex_uses_scores_where_rrf_sees_only_ranks() -> None:
    # keyword is sure about "a" (far ahead); semantic barely prefers "b" over "a"
    kw = [("a", 20.0), ("b", 2.0), ("c", 1.0)]
    sem = [("b", 0.86), ("a", 0.859), ("c", 0.80)]
    fused = convex({"keyword": kw, "semantic": sem}, {"keyword": 0.5, "semantic": 0.5},
                   {"keyword": 0.0, "semantic": 0.7})
    assert [pid for pid, _, _ in fused][:1] == ["a"]
    assert fused[0][2] == {"keyword": 1, "semantic": 2}
    # equal-weight RRF cannot tell the two apart and ties them, broken by id
    tied = rrf({"keyword": [p for p, _ in kw], "semantic": [p for p, _ in sem]})
    assert tied[0][1] == tied[1][1]


def test_convex_counts_a_missing_half_as_zero() -> None:
    fused = convex({"keyword": [("a", 5.0)], "semantic": [("b", 0.9), ("a", 0.8)]},
                   {"keyword": 0.3, "semantic": 0.7}, {"keyword": 0.0, "semantic": 0.7})
    scores = {pid: s for pid, s, _ in fused}
    assert scores["b"] == pytest.approx(0.7)
    assert scores["a"] == pytest.approx(0.3 + 0.7 * 0.5)


# ------------------------------------------------------------------------------------------------ noise
def test_noise_lines_on_real_handbook_tables() -> None:
    party_docs = require_party_docs()
    text = (party_docs / "partymate" / "party_rules.md").read_text("utf-8")
    table_rows = [ln for ln in text.splitlines() if ln.count("|") >= 3]
    assert len(table_rows) > 50 and all(is_noise_line(ln) for ln in table_rows)
    assert is_noise_line("--- 表格47 ---")
    assert is_noise_line("填写人（签名）： 年 月 日")
    articles = [ln for ln in text.splitlines() if ln.lstrip("# ").startswith("第") and "条" in ln[:12] and len(ln) > 30]
    assert len(articles) > 50 and not any(is_noise_line(ln) for ln in articles)
    assert noise_share("第十二条 党支部应当组织党员按期参加党员大会。\n--- 表格3 ---") < 0.5


def test_best_sentence_never_picks_a_table_row() -> None:
    from indexer.search.highlight import best_sentence

    text = ("申请人 | 入党申请书 | 递交时间 | 谈话人 |\n"
            "年满十八岁的中国公民，承认党的纲领和章程，可以向党组织递交入党申请书。")
    b0, b1 = best_sentence(text, "入党申请书什么时候递交", ["入党", "申请书", "递交"])
    assert text[b0:b1].startswith("年满十八岁")


def test_folding_a_whole_passage_equals_folding_each_sentence() -> None:
    """best_sentence folds a passage once and slices it per sentence: on real traditional-script and simplified
    text (the t2s phrase table's phrases inside sentences) that must equal folding each sentence on its own."""
    from indexer.text.analyzer import _t2s_data, fold
    from indexer.text.structure import sentence_spans

    party_docs = require_party_docs()
    phrases = list(_t2s_data()[1])
    texts = [(party_docs / "partymate" / "party_rules.md").read_text("utf-8")[:20000],
             # traditional text with table phrases at sentence ends and starts, and across a line break
             "。".join(f"{p}後，黨員瞭解{p}\n{p}" for p in phrases[:60])]
    checked = 0
    for text in texts:
        folded = fold(text)
        assert len(folded) == len(text)
        for start, end in sentence_spans(text):
            assert folded[start:end] == fold(text[start:end]), text[start:end]
            checked += 1
    assert checked > 200


# ------------------------------------------------------------------------------------------------ versions
def test_version_families_of_the_real_discipline_regulations() -> None:
    party_docs = require_party_docs()
    from indexer.ingest import files as ingest
    from indexer.ingest.prepare import prepare

    docs = {}
    for name in ("dangfa008.md", "dangfa009.md", "dangfa0010.md", "dangfa0011.md", "dangfa0012.md", "dangfa002.md",
                 "dangfa0015.md"):
        for raw in ingest.load_file(party_docs / "xtjeyvc-dangfa" / name, doc_id=name):
            doc, _ = prepare(raw)
            docs[name] = {"title": doc.title, "text": doc.text, "meta": doc.meta}
    found = version_families(docs)
    assert set(found) == {"dangfa008.md", "dangfa009.md", "dangfa0010.md", "dangfa0011.md", "dangfa0012.md"}
    assert [d for d, v in found.items() if v.status == "current"] == ["dangfa008.md"]
    assert found["dangfa008.md"].year == 2023 and found["dangfa009.md"].label == "2018年版"


def test_version_rules_titles_metadata_and_false_families() -> None:
    assert family_key("中国共产党纪律处分条例（2018年修订）") == family_key("中国共产党纪律处分条例 2023")
    assert document_year("某某规定", "（2019年3月1日起施行）\n第一条 为了……", {}) == 2019
    assert document_year("某某规定", "", {"effective": "2021-07-01"}) == 2021
    assert document_year("中国共产党章程", "（一九八二年九月六日通过）\n第一章") == 1982
    same_header = {f"a{i}": {"title": "【典型案例】", "text": f"（20{10 + i}年）"} for i in range(3)}
    assert version_families(same_header) == {}
    declared = {"x": {"title": "学习手册", "meta": {"version": "2020"}},
                "y": {"title": "学习手册（2024年版）", "meta": {"version": "2024"}}}
    assert version_families(declared)["y"].status == "current"


# ------------------------------------------------------------------------------------------------ folding
def test_near_duplicate_is_containment_of_the_shorter_text() -> None:
    article = "第七条 党组织和党员违反党章和其他党内法规，违反国家法律法规，违反党和国家政策，违反社会主义道德。"
    assert near_duplicate(article, article.replace("第七条", "第八条") + "危害党、国家和人民利益的行为。")
    assert not near_duplicate(article, "第九条 对于违犯党纪的党员，应当本着惩前毖后、治病救人的精神。")


@pytest.fixture(scope="module")
def versions_engine(tmp_path_factory: pytest.TempPathFactory):
    """The seed essay, the regulation fixture and two real versions of 纪律处分条例 (hashing stand-in vectors)."""
    party_docs = require_party_docs()
    import indexer.engine as engine_mod
    from indexer import Engine

    work = tmp_path_factory.mktemp("versions")
    corpus = make_corpus(work / "corpus")
    for name, year in (("dangfa008.md", 2023), ("dangfa009.md", 2018)):
        shutil.copy(party_docs / "xtjeyvc-dangfa" / name, corpus / f"纪律处分条例{year}.md")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_mod, "load_encoder", lambda cfg: HashEncoder())
        with Engine.open(work / "index") as eng:
            assert eng.index(corpus).errors == []
            yield eng


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_one_hit_per_article_across_versions_current_first(versions_engine, mode: str) -> None:
    hits = versions_engine.search("受到留党察看处分的党员恢复党员权利后有什么限制", k=10, mode=mode)
    assert len(hits) == 10  # folded slots are refilled from further down
    for i, a in enumerate(hits):
        for b in hits[i + 1:]:
            assert not near_duplicate(a["text"], b["text"]), (a["pid"], b["pid"])
    folded = [h for h in hits if h["also_in"]]
    assert folded, [h["pid"] for h in hits]
    across = [h for h in folded if any(a["doc_id"] != h["doc_id"] for a in h["also_in"])]
    assert across, "the same article of the 2023 and 2018 versions was not folded"
    for h in folded:
        if any(a["version_status"] == "current" for a in h["also_in"]) or h["version_status"] == "current":
            assert h["version_status"] == "current" and h["doc_id"].endswith("2023.md"), h["pid"]
            assert h["version_label"] == "2023年版"
            assert all(a["version_status"] == "historical" for a in h["also_in"] if a["doc_id"] != h["doc_id"])


def test_every_version_stays_reachable_with_a_document_filter(versions_engine) -> None:
    old = versions_engine.search("留党察看处分期满后恢复党员权利", k=3, mode="keyword", docs=["纪律处分条例2018.md"])
    assert old and all(h["doc_id"] == "纪律处分条例2018.md" for h in old)
    assert old[0]["version_status"] == "historical"


def test_noise_is_demoted_below_answering_prose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import indexer.engine as engine_mod
    from indexer import Engine

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    form = "\n".join(["--- 表格5 ---"] + ["入党申请人 | 递交入党申请书时间 | 党组织派人谈话时间 | 谈话人 |"] * 3)
    (corpus / "表格.md").write_text(f"# 入党申请表格\n\n{form}\n", "utf-8")
    (corpus / "细则.txt").write_text("发展党员工作细则\n\n第九条 党组织收到入党申请书后，应当在一个月内派人同入党申请人"
                                    "谈话，了解基本情况。\n", "utf-8")
    monkeypatch.setattr(engine_mod, "load_encoder", lambda cfg: HashEncoder())
    with Engine.open(tmp_path / "index") as eng:
        eng.index(corpus)
        hits = eng.search("递交入党申请书后多久党组织派人谈话", k=2, mode="keyword")
    assert [h["doc_id"] for h in hits] == ["细则.txt", "表格.md"]
    assert "|" not in hits[0]["best_sentence"]


def _search_with(eng, question: str, mode: str = "hybrid", **settings) -> list[dict]:
    """A search of ``eng``'s index by an engine opened with other fusion settings."""
    from indexer import Engine

    with Engine.open(eng.root, dataclasses.replace(eng.config, **settings)) as other:
        return other.search(question, k=5, mode=mode)


def test_rrf_setting_ranks_by_reciprocal_ranks(versions_engine) -> None:
    """fusion="rrf" orders by sum(weight / (rrf_k + rank)) over the two halves (the rule written out here), which
    changes the convex ranking of this question; a zero weight leaves exactly the other half's ranking."""
    question = "党员受到警告处分后多久不得晋升职务"
    assert Config().fusion == "convex"
    convex_hits = _search_with(versions_engine, question)
    rrf_hits = _search_with(versions_engine, question, fusion="rrf")
    assert [h["pid"] for h in rrf_hits] != [h["pid"] for h in convex_hits], "the rrf setting changed nothing"

    def by_hand(h: dict, kw: float = 1.0, sem: float = 1.0, k: int = 60) -> float:
        return sum(w / (k + r) for w, r in ((kw, h["keyword_rank"]), (sem, h["semantic_rank"])) if r)

    assert all(h["keyword_rank"] and h["semantic_rank"] for h in rrf_hits), "rrf's top hits are found by both halves"
    assert rrf_hits[0]["pid"] == max(rrf_hits, key=by_hand)["pid"]
    assert by_hand(rrf_hits[-1]) <= by_hand(rrf_hits[1])
    # weights: one half weighted 0 leaves the other half's own ranking (hybrid's semantic half re-scores both halves'
    # first candidates by their sentences, so it is the order of its ranks, not the semantic mode's list)
    for zero, half in (("semantic_weight", "keyword_rank"), ("keyword_weight", "semantic_rank")):
        one_half = _search_with(versions_engine, question, fusion="rrf", **{zero: 0.0})
        ranks = [h[half] for h in one_half]
        assert None not in ranks and ranks == sorted(ranks), (zero, ranks)


def test_convex_weight_moves_the_ranking_between_the_halves(versions_engine) -> None:
    """alpha is the semantic half's share: 0 gives the keyword ranking, 1 the semantic half's own order (hybrid's
    semantic half re-scores both halves' first candidates by their best sentence)."""
    question = "党员受到警告处分后多久不得晋升职务"
    keyword = [h["pid"] for h in _search_with(versions_engine, question, mode="keyword")]
    semantic = [h["pid"] for h in _search_with(versions_engine, question, mode="semantic")]
    assert keyword != semantic
    assert [h["pid"] for h in _search_with(versions_engine, question, alpha=0.0)] == keyword
    one = _search_with(versions_engine, question, alpha=1.0, verbatim_shift=0.0)
    ranks = [h["semantic_rank"] for h in one]
    assert None not in ranks and ranks == sorted(ranks), ranks
    assert [h["pid"] for h in one] != keyword


def test_front_matter_version_orders_two_copies_of_a_regulation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import indexer.engine as engine_mod
    from indexer import Engine

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    body = ("第一条 党员领导干部应当每年在党的组织生活会上报告个人有关事项的执行情况，接受组织监督和同志们的评议，"
            "对存在的问题要作出说明并提出整改措施。\n")
    (corpus / "old.md").write_text(f"---\ntitle: 领导干部报告个人有关事项规定\neffective: 2010-05-26\n---\n{body}", "utf-8")
    (corpus / "new.md").write_text(f"---\ntitle: 领导干部报告个人有关事项规定（修订）\nversion: 2017\n---\n{body}", "utf-8")
    monkeypatch.setattr(engine_mod, "load_encoder", lambda cfg: HashEncoder())
    with Engine.open(tmp_path / "index") as eng:
        eng.index(corpus)
        hits = eng.search("领导干部要在组织生活会上报告哪些个人事项", k=3, mode="hybrid")
    assert len(hits) == 1 and hits[0]["doc_id"] == "new.md", [h["pid"] for h in hits]
    assert hits[0]["version_status"] == "current" and hits[0]["version_label"] == "2017年版"
    assert [(a["doc_id"], a["version_status"]) for a in hits[0]["also_in"]] == [("old.md", "historical")]


def test_highlight_spans_do_not_depend_on_the_string_hash() -> None:
    """Two overlapping terms of one length: the earlier in the text wins, in every process (a set's order follows
    PYTHONHASHSEED, and two runs of the same search highlighted different words)."""
    import subprocess

    code = ("from indexer.search.highlight import term_spans;"
            "print(term_spans('党员领导干部带头遵守党章党规', ['领导干部', '干部带头', '党章', '党规', '遵守党章']))")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"}).stdout
            for seed in range(8)}
    assert outs == {"[[2, 6], [8, 12], [12, 14]]\n"}
