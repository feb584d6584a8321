"""Recall@k and MRR@10 from ranked lists of passage ids and per-question sets of gold passage ids."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from indexer.search.metrics import KS, first_rank, recall_mrr

def metrics(ranks: Sequence[int | None], ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall@k for each k and MRR@max(k) (4 decimals) from the ranks of the first correct hit, and n."""
    return {**recall_mrr(ranks, ks, digits=4), "n": len(ranks)}


def hit_in(item: str | Sequence[str], gold: set[str]) -> bool:
    """True when a ranked item -- a pid, or a group of pids shown as one hit (folded near-duplicates) -- is gold."""
    return item in gold if isinstance(item, str) else any(pid in gold for pid in item)


def hit_rank(hits: Sequence[dict[str, Any]], gold: set[str]) -> int | None:
    """1-based rank of the first hit (a result record) that is, or folds in (``also_in``), a gold passage."""
    return first_rank(hits, lambda h: hit_in((h["pid"], *(a["pid"] for a in h.get("also_in", ()))), gold))


def gold_ranks(rankings: Sequence[Sequence[Any]], gold: Sequence[set[str]]) -> list[int | None]:
    """For each question, the rank of its first ranked item (pid or pid group) that is in its gold set."""
    if len(rankings) != len(gold):
        raise ValueError(f"{len(rankings)} rankings but {len(gold)} gold sets")
    return [first_rank(items, lambda item, g=g: hit_in(item, g)) for items, g in zip(rankings, gold)]


def score(rankings: Sequence[Sequence[str]], gold: Mapping[str, Sequence[set[str]]],
          subsets: Mapping[str, Sequence[int]]) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, list]]:
    """Metrics per subset and gold kind, plus the per-question first-correct ranks per kind.

    ``gold`` maps a kind ("passage", "doc", ...) to one set of gold pids per question; ``subsets`` maps a subset
    name ("all", "low_overlap", ...) to question indices.
    """
    ranks = {kind: gold_ranks(rankings, sets) for kind, sets in gold.items()}
    table = {name: {kind: metrics([r[i] for i in idx]) for kind, r in ranks.items()} for name, idx in subsets.items()}
    return table, ranks
