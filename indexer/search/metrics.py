"""Recall@k and MRR of ranked results: how `partyqa eval` and the benchmarks score answers against gold."""
from __future__ import annotations

from typing import Any, Callable, Sequence

KS = (1, 5, 10)


def first_rank(items: Sequence[Any], ok: Callable[[Any], bool]) -> int | None:
    """1-based rank of the first item for which ``ok(item)`` is true, or None."""
    for i, item in enumerate(items, start=1):
        if ok(item):
            return i
    return None


def recall_mrr(ranks: Sequence[int | None], ks: Sequence[int] = KS, digits: int | None = None,
               depth: int | None = None) -> dict[str, float]:
    """Recall@k for each k and MRR@depth (default max(k)) from the ranks of the first correct hit (None = not
    retrieved)."""
    n = max(1, len(ranks))
    depth = max(ks) if depth is None else depth

    def share(x: float) -> float:
        return round(x, digits) if digits is not None else x

    out = {f"R@{k}": share(sum(1 for r in ranks if r is not None and r <= k) / n) for k in ks}
    out[f"MRR@{depth}"] = share(sum(1.0 / r for r in ranks if r is not None and r <= depth) / n)
    return out
