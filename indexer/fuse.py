"""Reciprocal rank fusion of ranked lists (keyword and semantic)."""
from __future__ import annotations

from typing import Sequence


def rrf(rankings: dict[str, Sequence[str]], weights: dict[str, float] | None = None, k: int = 60) -> list[tuple[str, float, dict[str, int]]]:
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
    # Ties (common when one half is empty) break by the best rank in any list, then by id for determinism.
    order = sorted(scores, key=lambda p: (-scores[p], min(ranks[p].values()), p))
    return [(pid, scores[pid], ranks[pid]) for pid in order]
