"""Fusion of ranked lists (keyword and semantic): weighted reciprocal rank fusion and a convex combination of
normalised scores.

Bruch, Gai and Ingber ("An Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023) find that a convex
combination of normalised scores beats RRF in and out of domain and needs few labelled questions to set its one
weight; RRF ignores how confident each half is. Both are pure functions of the lists they are given.
"""
from __future__ import annotations

from typing import Mapping, Sequence

Fused = list[tuple[str, float, dict[str, int]]]


def rrf(rankings: dict[str, Sequence[str]], weights: dict[str, float] | None = None, k: int = 60) -> Fused:
    """Fuse named rankings of ids with weighted RRF; return (id, score, {name: 1-based rank}) best first."""
    weights = weights or {}
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ids in rankings.items():
        w = float(weights.get(name, 1.0))
        for pos, pid in enumerate(ids, start=1):
            ranks.setdefault(pid, {})[name] = pos
            if w > 0:
                scores[pid] = scores.get(pid, 0.0) + w / (k + pos)
            else:
                scores.setdefault(pid, 0.0)
    return _ordered(scores, ranks)


def normalise(scores: Sequence[float], floor: float | None = None) -> list[float]:
    """Min-max normalise one list's scores to [0, 1]; ``floor`` replaces the observed minimum (a theoretical one).

    With a floor the top score still maps to 1 but a list of uniformly weak scores keeps them apart from 0, which
    is what tells "the best of a bad lot" from "a clear winner" (Bruch et al.'s TMM). A list whose scores are all
    equal maps to 1.
    """
    if not scores:
        return []
    hi = max(scores)
    lo = min(scores) if floor is None else min(floor, min(scores))
    if hi - lo <= 1e-12:
        return [1.0] * len(scores)
    return [(s - lo) / (hi - lo) for s in scores]


def convex(lists: Mapping[str, Sequence[tuple[str, float]]], weights: Mapping[str, float],
           floors: Mapping[str, float | None] | None = None) -> Fused:
    """Convex combination of min-max normalised scores: sum over lists of weight * normalised score.

    An id missing from a list contributes 0 for it (it scored below that list's cut-off). Returns
    (id, fused score, {name: 1-based rank}) best first; ties break by best rank, then id.
    """
    floors = floors or {}
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, items in lists.items():
        w = float(weights.get(name, 0.0))
        normed = normalise([s for _, s in items], floors.get(name))
        for pos, ((pid, _), ns) in enumerate(zip(items, normed), start=1):
            seen = ranks.get(pid)
            if seen is None:
                ranks[pid] = {name: pos}
            else:
                seen[name] = pos
            scores[pid] = scores.get(pid, 0.0) + w * ns
    return _ordered(scores, ranks)


def _ordered(scores: dict[str, float], ranks: dict[str, dict[str, int]]) -> Fused:
    # Ties (common when one half is empty) break by the best rank in any list, then by id for determinism. The
    # keys are built in one pass and sorted as tuples (ids are unique, so no two keys tie): a third less time
    # than sorted() with a key function over ~100 candidates.
    keys = sorted([(-s, min(ranks[p].values()), p) for p, s in scores.items()])
    return [(p, scores[p], ranks[p]) for _, _, p in keys]
