"""Sentence-level meaning at search time: the candidates of both halves re-scored with their sentence windows'
vectors (:mod:`indexer.index.sentences`), with no second vector search."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

SENTENCE_TOP = 15  # each half's first candidates whose sentence windows are scored (the union, no second search)


def sentence_scores(store: Any, passages: Mapping[str, Any], pids: Sequence[str],
                    qvec: np.ndarray) -> dict[str, tuple[float, float, int]]:
    """Per candidate with a store entry: (passage cosine, best window cosine, best window's index; -1 when the
    passage is one window)."""
    out: dict[str, tuple[float, float, int]] = {}
    q = np.asarray(qvec, dtype=np.float32)
    for pid in pids:
        p = passages.get(pid)
        rows = store.rows(p.content_hash()) if p is not None else None
        if rows is None:
            continue
        cos = np.asarray(rows, dtype=np.float32) @ q
        if len(cos) > 1:
            w = int(np.argmax(cos[1:]))
            out[pid] = (float(cos[0]), float(cos[1 + w]), w)
        else:
            out[pid] = (float(cos[0]), float(cos[0]), -1)
    return out


def sentence_candidates(store: Any, passages: Mapping[str, Any], qvecs: np.ndarray, keyword_lists: Sequence[Any],
                        semantic_lists: Sequence[Any], top: int = SENTENCE_TOP) -> list[dict[str, tuple[float, float, int]]]:
    """Per question, :func:`sentence_scores` of the union of both halves' first ``top`` candidates (none when the
    store is empty: an index built before sentence vectors, or one still encoding them)."""
    if store is None or not len(store):
        return [{} for _ in qvecs]
    out = []
    for qv, kw, sem in zip(qvecs, keyword_lists, semantic_lists):
        pids = list(dict.fromkeys([h.pid for h in kw[:top]] + [pid for pid, _ in sem[:top]]))
        out.append(sentence_scores(store, passages, pids, qv))
    return out
