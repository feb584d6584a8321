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
])
def test_expansion_adds_regulation_wording(question, expected):
    expanded = expand_query(question)
    assert expanded.startswith(question) and expected in expanded
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
