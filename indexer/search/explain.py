"""What each half said about a hit, for people trying the ranking (the search page's 检索测试 panel, the API).

Convex fusion scores a candidate ``(1 - a) * keyword + a * semantic`` where each half's score is min-max normalised
over that half's candidate list (:func:`indexer.search.fuse.convex`; the keyword half from 0, the semantic half from
``config.semantic_floor`` when set, else its list's minimum) and ``a`` is the semantic share
(:func:`indexer.search.rank.semantic_share`, reported per question as ``Results.semantic_share``). The hit's
``score`` is that sum scaled afterwards by the noise demotion and the answer-kind bonus (its ``why`` says so), or
the reranker's score when one is configured. A passage still waiting for its vector takes its keyword score in
place of the semantic half it lacks (:func:`indexer.search.rank.keyword_only`); its ``semantic_score`` stays 0.
"""
from __future__ import annotations

from typing import Any, Sequence

from indexer.search.fuse import normalise


def half_scores(kw: Sequence[tuple[str, float]] | None, sem: Sequence[tuple[str, float]] | None,
                config: Any) -> dict[str, dict[str, float | None]]:
    """pid -> ``{"keyword_score", "semantic_score"}``: each half's normalised score (0-1) as fusion used it, 0 for
    a candidate the half did not return, None for a half that did not run (``kw`` / ``sem`` None)."""
    lists = {"keyword_score": (kw, 0.0),
             "semantic_score": (sem, config.semantic_floor if config.semantic_floor > 0 else None)}
    out: dict[str, dict[str, float | None]] = {}
    for name, (items, floor) in lists.items():
        if items is None:
            continue
        for (pid, _), score in zip(items, normalise([s for _, s in items], floor)):
            out.setdefault(pid, {})[name] = round(float(score), 6)
    for scores in out.values():
        for name, (items, _) in lists.items():
            scores.setdefault(name, None if items is None else 0.0)
    return out
