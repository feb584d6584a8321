"""Question analysis: validate a question once and analyse it once into a :class:`Query` both halves use.

The search modes and the k limit are defined here only; the engine, the CLI and the web UI import them. The
analyzer (jieba, whoosh) is imported on first use, so that importing the rules stays light (`partyqa split`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from indexer.types import QueryError

MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
K_MIN, K_MAX = 1, 100


@dataclass(frozen=True)
class Query:
    """One analysed question: the cleaned text, its synonym expansion and the terms every search step uses."""

    text: str  # whitespace collapsed; what hits are built and best sentences chosen against
    expanded: str  # text plus the regulation wording of abbreviations it contains
    terms: tuple[tuple[str, float], ...]  # weighted keyword terms of ``expanded`` (the keyword half's query)
    hit_terms: tuple[str, ...] = ()  # every term of ``expanded``: what a hit's matched terms are looked up from
    signal_terms: tuple[tuple[str, float], ...] = ()  # weighted terms of ``text``: the answer-confidence coverage
    year: int | None = None  # the version the question names ("2018年版…"): it leads its regulation's versions
    asked: str = ""  # the question as checked, courtesy and all (``text`` is without it); standard questions match it

    @property
    def words(self) -> list[str]:
        """The keyword terms without weights."""
        return [t for t, _ in self.terms]


def check_mode(mode: Any) -> str:
    """The mode if it is one of MODES; QueryError otherwise."""
    if mode not in MODES:
        raise QueryError(f"未知的检索方式 {mode!r}，可选：{'、'.join(MODES)} / unknown mode {mode!r}; "
                         f"use one of {', '.join(MODES)}")
    return mode


def check_k(k: Any) -> int:
    """k if it is a whole number from K_MIN to K_MAX; QueryError otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or not K_MIN <= k <= K_MAX:
        raise QueryError(f"结果数 k 必须是 {K_MIN} 到 {K_MAX} 的整数 / k must be a whole number from {K_MIN} to "
                         f"{K_MAX} (got {k!r})")
    return k


SHARE_NAMES = {"semantic_weight": "语义权重", "min_confidence": "置信阈值"}


def check_share(value: Any, name: str) -> float | None:
    """A retrieval-test knob (``semantic_weight``, ``min_confidence``): None, or a number from 0 to 1 as a float;
    QueryError (naming the knob in Chinese and English) otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise QueryError(f"{SHARE_NAMES.get(name, name)} {name} 必须是 0 到 1 之间的数（收到 {value!r}） / {name} must "
                         f"be a number from 0 to 1 (got {value!r})")
    return float(value)


def check_question(question: Any, max_chars: int) -> str:
    """The question with whitespace collapsed; QueryError when it is not text, empty, symbols only or too long."""
    from indexer.text.analyzer import has_searchable_text

    if not isinstance(question, str):
        raise QueryError("问题必须是文本 / question must be text")
    q = " ".join(question.split())
    if not q:
        raise QueryError("问题为空，请输入问题 / the question is empty")
    if not has_searchable_text(q):
        raise QueryError("问题中没有可检索的文字（只有标点或符号） / the question has no searchable words "
                         "(only punctuation or symbols)")
    if len(q) > max_chars:
        raise QueryError(f"问题过长（{len(q)} 字，最多 {max_chars} 字） / the question is too long "
                         f"({len(q)} chars, max {max_chars})")
    return q


def analyse(question: str, keyword: bool = True) -> Query:
    """Analyse an already checked question: strip its courtesy (indexer.text.courtesy), expand synonyms, then weight
    its terms (once per question).

    ``keyword=False`` (semantic-only searches) leaves out the keyword half's terms. Ranking takes the Query as it
    is: nothing analyses the question again.
    """
    from indexer.text import analyzer
    from indexer.text.articles import year_request
    from indexer.text.courtesy import strip_courtesy

    asked, question = question, strip_courtesy(question)  # "老师您好，请问…？谢谢！" is searched as "…？"
    expanded = analyzer.expand_query(question)
    # The sub-word weight and the term cap are read at call time, so the keyword half weighs terms exactly as
    # WhooshKeywordIndex.search does for the same text.
    weight = analyzer.SUBWORD_WEIGHT
    terms = tuple(analyzer.weighted_query_terms(expanded, weight)[:analyzer.MAX_QUERY_TERMS]) if keyword else ()
    return Query(text=question, expanded=expanded, terms=terms, hit_terms=tuple(analyzer.query_terms(expanded)),
                 signal_terms=tuple(analyzer.weighted_query_terms(question, weight)),
                 year=year_request(question).year, asked=asked)
