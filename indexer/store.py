"""The keyword hit record every backend returns, and the protocols the local backend's two parts follow.

The Engine's storage seam is :mod:`indexer.backends.base`; these protocols only describe
:class:`indexer.keyword.WhooshKeywordIndex` and :class:`indexer.vectors.NumpyVectorIndex`, which the local
backend wraps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from .types import Passage


@dataclass
class KeywordHit:
    """One keyword match: passage id, BM25F score, and the query terms that matched in it."""

    pid: str
    score: float
    terms: list[str] = field(default_factory=list)


class KeywordStore(Protocol):
    """A keyword (BM25) index over passages."""

    def add(self, passages: Sequence[Passage]) -> None:
        """Index passages (replacing any with the same pid)."""

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Remove every passage of these documents."""

    def search(self, question: str, limit: int) -> list[KeywordHit]:
        """Best passages for a free-text question; user text is never parsed as query syntax."""

    def count(self) -> int:
        """Number of passages indexed."""

    def close(self) -> None:
        """Release files and locks."""


class VectorStore(Protocol):
    """A dense vector index over passages (L2-normalised, cosine similarity)."""

    model_id: str

    def add(self, pids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace vectors for these passage ids."""

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Remove every vector whose pid belongs to these documents."""

    def search(self, query: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """Top passages by cosine similarity to one query vector."""

    def count(self) -> int:
        """Number of vectors."""

    def save(self) -> None:
        """Write to disk."""
