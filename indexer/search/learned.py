"""A small learned re-ranker of the fused list's head (issue 22, round 4): a linear score over signals the ranking
already has (keyword and semantic scores, passage and best-window cosines, answer kind, authority, title match,
coverage), fitted by ``python -m bench.learn fit`` on the tuning questions; see bench/NOTES.md "Ranking round 4".

Pure and cheap: a few term look-ups per candidate of the first :data:`HEAD` candidates, no model call.
"""
from __future__ import annotations

import math
from typing import Collection, Mapping, Sequence

from indexer.search.fuse import Fused, normalise
from indexer.search.highlight import folded_lower
from indexer.search.query import Query
from indexer.text.answers import authority, holds, question_kind

HEAD = 20  # candidates re-scored (the rest keep their order below them)

FEATURES = ("fused", "keyword", "semantic", "window", "passage", "kind", "authority", "title", "coverage",
            "keyword_rr", "semantic_rr", "length", "both", "sentence_coverage", "doc_support", "section_support")


def head_features(fused: Fused, passages: Mapping[str, object], query: Query, kw: Sequence[tuple[str, float]],
                  sem: Sequence[tuple[str, float]], sentences: Mapping[str, tuple[float, float, int]],
                  best_text: Mapping[str, str], head: int = HEAD,
                  pending: Collection[str] = ()) -> list[list[float]]:
    """One feature row (:data:`FEATURES`) per candidate of the fused list's first ``head``.

    ``sem`` is the semantic half as fused (re-scored with sentence windows when the index has them); ``best_text``
    each candidate's best sentence (for the answer kind); cosines are taken relative to the head's best, per 0.1.
    A ``pending`` passage (no vector yet: keyword first, vectors behind) has no semantic signals; as in the fusion
    (``rank.keyword_only``) its missing semantic ones take its keyword counterparts, and its cosines the head's best,
    so a passage is not pushed down for waiting for its vector.
    """
    rows: list[list[float]] = []
    part = fused[:head]
    if not part:
        return rows
    top = part[0][1] or 1.0
    kw_n = dict(zip([p for p, _ in kw], normalise([s for _, s in kw])))
    sem_n = dict(zip([p for p, _ in sem], normalise([s for _, s in sem])))
    sem_raw = dict(sem)
    kind = question_kind(query.text)
    weighted = query.signal_terms
    total = sum(w * len(t) for t, w in weighted) or 1.0
    win = {pid: (sentences[pid][1] if pid in sentences else sem_raw.get(pid)) for pid, _, _ in part}
    pas = {pid: (sentences[pid][0] if pid in sentences else sem_raw.get(pid)) for pid, _, _ in part}
    by_doc: dict[str, float] = {}
    by_section: dict[tuple[str, str], float] = {}
    for pid, score, _ in part:
        p = passages[pid]
        by_doc[p.doc_id] = by_doc.get(p.doc_id, 0.0) + score / top
        key = (p.doc_id, p.section.rsplit(">", 1)[0])
        by_section[key] = by_section.get(key, 0.0) + score / top
    win_top = max([v for v in win.values() if v is not None], default=0.0)
    pas_top = max([v for v in pas.values() if v is not None], default=0.0)
    for pid, score, ranks in part:
        p = passages[pid]
        text = folded_lower(p.text)
        head_text = folded_lower(f"{p.title} {p.section}")
        cov = sum(w * len(t) for t, w in weighted if t in text) / total
        title = sum(w * len(t) for t, w in weighted if t in head_text) / total
        w_cos, p_cos = win.get(pid), pas.get(pid)
        waiting = pid in pending and pid not in sem_raw
        if waiting:
            w_cos, p_cos = win_top, pas_top
        sem_here = kw_n.get(pid, 0.0) if waiting else sem_n.get(pid, 0.0)
        sem_rr = ranks.get("keyword") if waiting else ranks.get("semantic")
        rows.append([
            score / top,
            kw_n.get(pid, 0.0),
            sem_here,
            10 * (w_cos - win_top) if w_cos is not None else -1.0,
            10 * (p_cos - pas_top) if p_cos is not None else -1.0,
            float(kind is not None and holds(best_text.get(pid, ""), kind)),
            authority(p.title, p.section) / 5.0,
            title,
            cov,
            1.0 / ranks["keyword"] if "keyword" in ranks else 0.0,
            1.0 / sem_rr if sem_rr else 0.0,
            math.log1p(len(p.text)) / 6.0,
            min(kw_n.get(pid, 0.0), sem_here),
            sum(w * len(t) for t, w in weighted if t in folded_lower(best_text.get(pid, ""))) / total,
            (by_doc[p.doc_id] - score / top) / 5.0,
            by_section[(p.doc_id, p.section.rsplit(">", 1)[0])] - score / top,
        ])
    return rows


def learned_order(fused: Fused, rows: Sequence[Sequence[float]], weights: Sequence[float] | None) -> Fused:
    """The head re-ordered by ``weights`` . features (a candidate's score becomes the logistic of it); the rest keep
    their order and fused scores below the head's lowest. Unchanged when ``weights`` is None or empty."""
    if not weights or not rows:
        return fused
    n = len(rows)
    scored = []
    for (pid, _, ranks), x in zip(fused[:n], rows):
        z = sum(w * v for w, v in zip(weights, x))
        scored.append((pid, 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), ranks))
    scored.sort(key=lambda c: -c[1])
    floor = scored[-1][1]
    rest = fused[n:]
    if rest:
        hi = max(s for _, s, _ in rest) or 1.0
        rest = [(pid, floor * 0.999 * s / hi, r) for pid, s, r in rest]
    return scored + rest
