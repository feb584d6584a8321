"""Query expansion: abbreviations users type reach the wording regulations use."""
from __future__ import annotations

import shutil

import pytest

from conftest import ROOT, with_seed_cache
from indexer import Config, Engine
from indexer.text.analyzer import expand_query, synonyms, tokenize


def test_synonym_table_is_real_and_parsed():
    table = synonyms()
    assert len(table) >= 50
    assert "党支部委员会" in table["支委会"]
    assert all(word and expansions for word, expansions in table.items())


@pytest.mark.parametrize("question, expected", [
    ("支委会一般多久开一次会？", "党支部委员会"),
    ("政审主要审查什么", "政治审查"),
    ("支书任期几年", "党支部书记"),
    # everyday words for the texts' wording (the 2026-12-08 blocks of synonyms.txt)
    ("员工有意见可以直接找支部说吗", "职工"),
    ("党员的亲戚开公司要不要报告", "亲属"),
    ("党员的孩子能不能入党", "子女"),
])
def test_expansion_adds_regulation_wording(question, expected):
    expanded = expand_query(question)
    assert expanded.startswith(question) and expected in expanded[len(question):].split()
    assert expected not in question


def test_expansion_leaves_plain_questions_alone_and_adds_nothing_twice():
    assert expand_query("党支部怎样当好监督者") == "党支部怎样当好监督者"
    expanded = expand_query("党支部委员会即支委会多久开会")
    assert expanded.count("党支部委员会") == 1


def test_abbreviation_finds_the_article_by_keyword(tmp_path, seed_cache):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "regulation_sample.txt", corpus / "条例.txt")
    eng = Engine.open(with_seed_cache(seed_cache, tmp_path / "index"), Config())  # the fixture's vectors: cached
    report = eng.index(corpus)
    assert not report.errors and report.passages_encoded == 0, report.to_dict()
    # Without expansion the keyword half has nothing to match on: 支委会 is not in the text at all.
    assert "支委会" not in eng.document("条例.txt")["text"]
    assert not set(tokenize("支委会")) & set(tokenize(eng.document("条例.txt")["text"])) - set(tokenize("会"))
    hits = eng.search("支委会一般多久开一次会？", k=3, mode="keyword")
    assert any("一般每月召开1次会议" in h["text"] for h in hits)
    assert "党支部委员会" in hits[0]["terms"]


def test_an_everyday_word_finds_the_essays_wording(tmp_path, seed_cache, monkeypatch):
    """The essay says 职工 (over fifty times) where people say 员工 (once, in passing): asked with 员工, the keyword
    half matches the essay's 职工, which it does not without the expansion."""
    from indexer.text import analyzer

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(ROOT / "corpus" / "基层党支部工作论文.txt", corpus / "基层党支部工作论文.txt")
    eng = Engine.open(with_seed_cache(seed_cache, tmp_path / "index"), Config())
    try:
        report = eng.index(corpus)
        assert not report.errors and report.passages_encoded == 0, report.to_dict()
        text = eng.document("基层党支部工作论文.txt")["text"]
        assert text.count("职工") > 50 and text.count("员工") <= 1

        def matched(question: str) -> list[list[str]]:
            return [h["terms"] for h in eng.search(question, k=5, mode="keyword")]

        question = "员工思想有波动，支部该怎么做工作"
        assert all("职工" in terms for terms in matched(question)), matched(question)
        table = {w: e for w, e in analyzer.synonyms().items() if w != "员工"}
        monkeypatch.setattr(analyzer, "synonyms", lambda: table)
        assert not any("职工" in terms for terms in matched(question)), matched(question)
    finally:
        eng.close()
