"""Ranking: fuse the two halves' candidates, judge whether there is an answer, and build the hit records.

Pure with respect to storage: it reads passages by pid from a mapping, so every backend gets identical hits.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from .analyzer import expand_query, fold, query_terms
from .cite import citation
from .config import Config
from .fuse import rrf
from .highlight import best_sentence, matched_terms, term_spans
from .store import KeywordHit
from .types import Passage


class Results(list):
    """The hits of one question, best first (a plain list of hit dicts), plus what is known about the answer."""

    def __init__(self, hits: Sequence[dict[str, Any]] = (), answer_found: bool = True, confidence: float = 0.0):
        super().__init__(hits)
        self.answer_found = answer_found
        self.confidence = confidence

    def envelope(self) -> dict[str, Any]:
        """The per-question fields the JSON APIs put beside the hit list."""
        return {"answer_found": self.answer_found, "confidence": round(float(self.confidence), 4)}


def fuse(kw_hits: Sequence[KeywordHit], sem_hits: Sequence[tuple[str, float]], mode: str, config: Config,
         known: Callable[[str], bool]) -> tuple[list[tuple[str, float, dict[str, int]]], dict[str, float]]:
    """The fused candidate list (pid, score, {half: rank}) best first, and the score each pid is shown with."""
    kw_ids = [h.pid for h in kw_hits if known(h.pid)]
    sem_ids = [pid for pid, _ in sem_hits if known(pid)]
    if mode == "keyword":
        return rrf({"keyword": kw_ids}, k=config.rrf_k), {h.pid: h.score for h in kw_hits}
    if mode == "semantic":
        return rrf({"semantic": sem_ids}, k=config.rrf_k), dict(sem_hits)
    fused = rrf({"keyword": kw_ids, "semantic": sem_ids},
                weights={"keyword": config.keyword_weight, "semantic": config.semantic_weight}, k=config.rrf_k)
    return fused, {pid: s for pid, s, _ in fused}


def rerank(reranker: Any, passages: Mapping[str, Passage], question: str, fused: list, k: int,
           scores: dict[str, float]) -> list:
    """Reorder the head of the fused list with a cross-encoder (when one is configured)."""
    if reranker is None:
        return fused
    head = fused[: max(k * 4, 20)]
    rr = reranker.rerank(question, [passages[pid].text for pid, _, _ in head])
    order = sorted(range(len(head)), key=lambda i: -rr[i])
    for i in order:
        scores[head[i][0]] = float(rr[i])
    return [head[i] for i in order] + fused[len(head):]


def build_hit(rank: int, p: Passage, question: str, q_terms: Sequence[str], kw_terms: Sequence[str] | None,
              score: float, ranks: Mapping[str, int]) -> dict[str, Any]:
    """One hit record: the passage, where it ranked in each half, matched terms and the best answering sentence."""
    terms = list(kw_terms or matched_terms(p.text, q_terms))
    folded = fold(p.text).lower()
    terms = [t for t in terms if t.lower() in folded] or terms
    b0, b1 = best_sentence(p.text, question, terms)
    return {
        "rank": rank, "pid": p.pid, "doc_id": p.doc_id, "title": p.title, "section": p.section,
        "citation": citation(p),
        "text": p.text, "score": round(float(score), 6),
        "keyword_rank": ranks.get("keyword"), "semantic_rank": ranks.get("semantic"),
        "terms": terms, "best_sentence": p.text[b0:b1], "best_span": [b0, b1],
        "highlights": term_spans(p.text, terms), "start": p.start, "end": p.end, "ordinal": p.ordinal,
    }


def rank(passages: Mapping[str, Passage], question: str, kw_hits: Sequence[KeywordHit],
         sem_hits: Sequence[tuple[str, float]], k: int, mode: str, config: Config, reranker: Any = None,
         docs: set[str] | None = None) -> Results:
    """The top-k hits of one question from both halves' candidates (only from ``docs`` when given)."""
    if docs is None:
        known = passages.__contains__
    else:
        def known(pid: str) -> bool:
            p = passages.get(pid)
            return p is not None and p.doc_id in docs
    fused, scores = fuse(kw_hits, sem_hits, mode, config, known)
    fused = rerank(reranker, passages, question, fused, k, scores)
    q_terms = query_terms(expand_query(question))
    kw_terms = {h.pid: h.terms for h in kw_hits}
    hits = [build_hit(i, passages[pid], question, q_terms, kw_terms.get(pid), scores.get(pid, 0.0), ranks)
            for i, (pid, _, ranks) in enumerate(fused[:k], start=1)]
    return Results(hits, answer_found=bool(hits))
