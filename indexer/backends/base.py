"""The storage seam: what the Engine asks of a search backend (txtai-style: one small base, one file per backend).

A backend owns the two search structures of a committed index state -- the keyword half (weighted terms in,
``KeywordHit`` out) and the vector half (query matrix in, ``(pid, score)`` out). The passage store (manifest,
cleaned texts, passages.jsonl under ``gen-N/`` with the atomic ``CURRENT`` switch, see
:mod:`indexer.index.generations`) stays in PartyQA for every backend and is committed last, so it is the source of
truth: a backend row that the committed passage store does not list is never shown.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np

from indexer.config import Config
from indexer.types import KeywordHit, Passage

Terms = Sequence[tuple[str, float]]


class Reader(ABC):
    """The search structures of one committed generation, opened for reading (thread-safe searches)."""

    @abstractmethod
    def keyword_search_many(self, queries: Sequence[Terms], limit: int,
                            docs: Collection[str] | None = None) -> list[list[KeywordHit]]:
        """Top ``limit`` passages by BM25 per query (already analysed, weighted terms), only from ``docs`` if given."""

    @abstractmethod
    def vector_search_many(self, matrix: np.ndarray, limit: int,
                           docs: Collection[str] | None = None) -> list[list[tuple[str, float]]]:
        """Top ``limit`` ``(pid, cosine)`` per row of a (m, dim) query matrix, only from ``docs`` if given."""

    @abstractmethod
    def keyword_count(self) -> int:
        """Passages in the keyword half."""

    @abstractmethod
    def vector_count(self) -> int:
        """Vectors in the vector half."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Id of the encoder whose vectors the vector half holds ("" while empty)."""

    def close(self) -> None:
        """Release files and connections held for this generation."""


class WriteBatch(ABC):
    """The changes that turn one generation into the next; nothing is visible to readers before the commit.

    Call order (the kill-test checkpoints sit between the steps): :meth:`keyword`, :meth:`vectors`,
    :meth:`prepare_commit`; then the caller writes the passage store and switches CURRENT, and calls
    :meth:`Backend.committed`. :meth:`abort` undoes a batch that will not be committed.
    """

    @abstractmethod
    def keyword(self, drop_docs: Collection[str], passages: Sequence[Passage], rebuild: bool = False,
                new_pids: bool = False) -> None:
        """Drop these documents' passages from the keyword half and index ``passages``; ``rebuild`` starts it
        empty (the analyzer changed: ``passages`` are then every passage of the generation). ``new_pids``: none
        of ``passages`` is in the keyword half once ``drop_docs`` are gone (a backend may skip replacing)."""

    @abstractmethod
    def vectors(self, drop_docs: Collection[str], pids: Sequence[str], vectors: np.ndarray, model_id: str,
                rebuild: bool = False) -> None:
        """Drop these documents' vectors and add ``vectors`` for ``pids``; ``rebuild`` starts empty (new model)."""

    @abstractmethod
    def prepare_commit(self, n_passages: int, n_vectors: int | None = None) -> None:
        """Make the batch durable and check that the keyword half holds ``n_passages`` and the vector half
        ``n_vectors`` (default: ``n_passages``; fewer while passages wait for their vectors); raise if not."""

    @abstractmethod
    def abort(self) -> None:
        """Discard the batch (best effort; also safe after a partial failure)."""


class Backend(ABC):
    """A search backend for one index directory: opens readers of committed generations and write batches."""

    name = "base"
    # Keyword first: a write may commit passages to the keyword half before their vectors exist (listed as pending
    # in the manifest), and commit the vectors in later generations. A backend whose rows hold both halves of a
    # passage together (milvus) sets this False: its writes embed before the commit, as before.
    keyword_first = True

    def __init__(self, root: Path, config: Config):
        self.root = Path(root)
        self.config = config

    @abstractmethod
    def create_empty(self, gen_dir: Path) -> None:
        """Write the backend's part of a new, empty generation 0 into ``gen_dir``."""

    @abstractmethod
    def open_reader(self, gen_dir: Path, number: int, by_doc: Mapping[str, Sequence[str]]) -> Reader:
        """Open the search structures of committed generation ``number`` (``by_doc``: doc id -> its pids)."""

    @abstractmethod
    def begin(self, base: Path, tmp_dir: Path, number: int) -> WriteBatch:
        """Start generation ``number`` from the committed generation in ``base``; ``tmp_dir`` is a copy of it
        that becomes ``gen-<number>/`` at the commit."""

    def warm(self) -> None:
        """Prepare for large writes in a long-lived process (e.g. start helper processes while it has few threads)."""

    def committed(self, gen_dir: Path, number: int) -> None:
        """Called after CURRENT names generation ``number``: clean up what the batch left for after the switch."""

    def close(self) -> None:
        """Release connections held by the backend itself."""
