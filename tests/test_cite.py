"""Citations on real split output: the seed essay, the regulation fixture, and a compiled handbook (party_rules.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from indexer.ingest.prepare import prepare
from indexer.ingest.files import load_file_checked
from indexer.text.cite import citation, is_document_name

from conftest import PARTY_DOCS, ROOT, SEED


def _passages(path: Path) -> list:
    raws, problems = load_file_checked(path)
    assert raws and not problems
    out = []
    for raw in raws:
        out.extend(prepare(raw)[1])
    return out


def test_seed_essay_is_cited_by_its_title_and_heading():
    passages = _passages(SEED)
    for p in passages:
        c = citation(p)
        assert c.startswith("《基层党支部工作论文》"), c
        if p.section:
            assert c == f"《基层党支部工作论文》{p.section}"
    assert any("做好监督者" in citation(p) for p in passages)


def test_regulation_fixture_cites_chapter_and_article():
    passages = _passages(ROOT / "tests" / "fixtures" / "regulation_sample.txt")
    by_section = {p.section: citation(p) for p in passages}
    assert by_section["第五章 组织生活 > 第十二条"] == "《党支部工作示范条例（试行）》第五章 组织生活 第十二条"
    assert all(c.startswith("《党支部工作示范条例（试行）》第") for c in by_section.values())


def test_compiled_handbook_cites_the_regulation_not_the_handbook():
    path = PARTY_DOCS / "partymate" / "party_rules.md"
    if not path.exists():
        pytest.skip("../shared/bench/party-docs/partymate/party_rules.md is absent: the handbook citation test needs "
                    "the shared bench data beside the project")
    passages = _passages(path)
    handbook = passages[0].title
    assert "手册" in handbook
    rules = [p for p in passages if p.section.startswith("中国共产党支部工作条例（试行） > ")]
    assert len(rules) > 20
    for p in rules:
        c = citation(p)
        assert c.startswith("《中国共产党支部工作条例（试行）》"), c
        assert handbook not in c
    art = next(p for p in rules if p.section.endswith("第五章 组织生活 > 第十九条"))
    assert citation(art) == "《中国共产党支部工作条例（试行）》第五章 组织生活 第十九条"
    fees = [p for p in passages if p.section.startswith("关于中国共产党党费收缴、使用和管理的规定")]
    assert fees and all(citation(p).startswith("《关于中国共产党党费收缴、使用和管理的规定》") for p in fees)
    # a passage before the first regulation heading falls back to the handbook's title
    untitled = [p for p in passages if not p.section]
    assert all(citation(p) == f"《{handbook}》" for p in untitled)


@pytest.mark.parametrize("heading, expected", [
    ("中国共产党支部工作条例（试行）", True),
    ("《中国共产党廉洁自律准则》", True),
    ("关于新形势下党内政治生活的若干准则", True),
    ("中国共产党纪律处分条例（2023年修订）", True),
    ("第五章 组织生活", False),
    ("第十九条", False),
    ("二、制度建设不放松,狠抓制度落实工作,严格监督监管工作,做好监督者", False),
    ("（三）组织生活的有关规定", False),
    ("总则", False),
    ("关于印发《贵州省发展党员工作规程（试行）》的通知", True),
    ("基层党委审批意见", False),
    ("特此通知", False),
    ("管理使用办法（修订）》的通知", False),
    ("", False),
])
def test_is_document_name(heading, expected):
    assert is_document_name(heading) is expected


def test_citation_accepts_dicts_and_avoids_repeating_the_title():
    assert citation({"title": "支部工作规则", "section": "支部工作规则 > 第一章 总则 > 第一条"}) == "《支部工作规则》第一章 总则 第一条"
    assert citation({"title": "《党章》", "section": ""}) == "《党章》"
    nested = {"title": "汇编", "section": "关于印发《贵州省发展党员工作规程（试行）》的通知 > 第一条"}
    assert citation(nested) == "《关于印发〈贵州省发展党员工作规程（试行）〉的通知》第一条"


def test_forms_after_the_last_article_are_not_cited_as_that_article():
    """Issue 22: forms and tables after a sub-regulation's last article were cited as that article
    (《暂行办法》第四章 其他 第二十一条); they have sections of their own (indexer.text.tails)."""
    path = PARTY_DOCS / "partymate" / "party_rules.md"
    if not path.exists():
        pytest.skip("../shared/bench/party-docs/partymate/party_rules.md is absent: the handbook citation test needs "
                    "the shared bench data beside the project")
    forms = [p for p in _passages(path) if p.text.lstrip().startswith(("|", "--- 表格")) or "| | | |" in p.text]
    assert len(forms) > 10
    cited_as_article = [citation(p) for p in forms if citation(p).endswith("条")]
    assert not cited_as_article, cited_as_article[:5]
