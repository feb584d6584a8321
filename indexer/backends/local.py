"""The local backend: a whoosh keyword index and an exact numpy vector index inside each ``gen-N/`` folder.

Wraps :class:`indexer.keyword.WhooshKeywordIndex` and :class:`indexer.vectors.NumpyVectorIndex` unchanged; a write
batch edits the copy of the generation that the commit renames into place, so readers never see it half-written.
"""
from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np

from ..keyword import WhooshKeywordIndex, warm_tokenizers
from ..store import KeywordHit
from ..types import Passage
from ..vectors import NumpyVectorIndex, one_blas_thread
from .base import Backend, Reader, Terms, WriteBatch

logger = logging.getLogger(__name__)

KEYWORD_DIR, VECTORS_DIR = "keyword", "vectors"


class LocalReader(Reader):
    """Opened whoosh + numpy indexes of one committed generation."""

    def __init__(self, gen_dir: Path, lock_timeout: float, by_doc: Mapping[str, Sequence[str]]):
        # watch=False: a committed generation is never written again, so skip whoosh's per-search commit check.
        self.keyword = WhooshKeywordIndex.open(gen_dir / KEYWORD_DIR, lock_timeout=lock_timeout, watch=False)
        try:
            self.vectors = NumpyVectorIndex.open(gen_dir / VECTORS_DIR)
        except BaseException:
            self.keyword.close()
            raise
        self._by_doc = by_doc
        self.search_lock = threading.Lock()

    def keyword_search_many(self, queries: Sequence[Terms], limit: int,
                            docs: Collection[str] | None = None) -> list[list[KeywordHit]]:
        """BM25F top ``limit`` per query (:meth:`WhooshKeywordIndex.search_terms`)."""
        with self.search_lock:
            return [self.keyword.search_terms(q, limit, docs) for q in queries]

    def vector_search_many(self, matrix: np.ndarray, limit: int,
                           docs: Collection[str] | None = None) -> list[list[tuple[str, float]]]:
        """Exact cosine top ``limit`` per query row; with ``docs``, only those documents' rows are scored."""
        if docs is None:
            return self.vectors.search_many(matrix, limit)
        pids, rows = [], []
        for pid in (pid for d in docs for pid in self._by_doc.get(d, ())):
            vec = self.vectors.get(pid)
            if vec is not None:
                pids.append(pid)
                rows.append(vec)
        qs = np.asarray(matrix, dtype=np.float32).reshape(-1, self.vectors.dim)
        if not rows or limit <= 0:
            return [[] for _ in range(qs.shape[0])]
        norms = np.linalg.norm(qs, axis=1, keepdims=True)
        qs = qs / np.where(norms < 1e-12, 1.0, norms)
        with one_blas_thread():
            scores = qs @ np.vstack(rows).T  # stored rows are unit length: this is the cosine
        out = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:limit]
            out.append([(pids[i], float(row[i])) for i in order])
        return out

    def keyword_count(self) -> int:
        """Passages in the whoosh index."""
        return self.keyword.count()

    def vector_count(self) -> int:
        """Rows of the numpy index."""
        return self.vectors.count()

    @property
    def model_id(self) -> str:
        """The encoder the vectors came from."""
        return self.vectors.model_id

    def close(self) -> None:
        """Release the keyword index's files."""
        try:
            self.keyword.close()
        except Exception:  # pragma: no cover - closing is best effort
            logger.debug("closing keyword index failed", exc_info=True)


class LocalBatch(WriteBatch):
    """Edits the whoosh and numpy folders of the generation copy in ``tmp_dir``."""

    def __init__(self, tmp_dir: Path, lock_timeout: float, keyword_workers: bool = False):
        self.tmp = tmp_dir
        self.lock_timeout = lock_timeout
        self.keyword_workers = keyword_workers

    def keyword(self, drop_docs: Collection[str], passages: Sequence[Passage], rebuild: bool = False) -> None:
        """Delete then add in the whoosh copy (a fresh whoosh index when ``rebuild``)."""
        if not drop_docs and not passages and not rebuild:
            return
        if rebuild:
            shutil.rmtree(self.tmp / KEYWORD_DIR)
            kw = WhooshKeywordIndex.create(self.tmp / KEYWORD_DIR, lock_timeout=self.lock_timeout)
        else:
            kw = WhooshKeywordIndex.open(self.tmp / KEYWORD_DIR, lock_timeout=self.lock_timeout)
        try:
            if drop_docs and not rebuild:
                kw.delete_docs(sorted(drop_docs))
            if passages:
                kw.add(passages, parallel=self.keyword_workers)
        finally:
            kw.close()

    def vectors(self, drop_docs: Collection[str], pids: Sequence[str], vectors: np.ndarray, model_id: str,
                rebuild: bool = False) -> None:
        """Delete then add in the numpy copy (a new index of the vectors' dimension when ``rebuild``)."""
        if rebuild:
            vec = NumpyVectorIndex.create(self.tmp / VECTORS_DIR, model_id=model_id, dim=int(vectors.shape[1]))
        else:
            vec = NumpyVectorIndex.open(self.tmp / VECTORS_DIR)
            if drop_docs:
                vec.delete_docs(sorted(drop_docs))
        if len(pids):
            vec.add(list(pids), vectors)
        vec.save()

    def prepare_commit(self, n_passages: int, n_vectors: int | None = None) -> None:
        """Refuse to commit when the keyword index, the vectors and the passage list disagree."""
        kw = WhooshKeywordIndex.open(self.tmp / KEYWORD_DIR)
        try:
            n_kw = kw.count()
        finally:
            kw.close()
        n_vec = NumpyVectorIndex.open(self.tmp / VECTORS_DIR).count()
        want_vec = n_passages if n_vectors is None else n_vectors
        if not (n_kw == n_passages and n_vec == want_vec):
            raise RuntimeError(f"inconsistent index build: {n_kw} keyword docs, {n_vec} vectors ({want_vec} expected), "
                               f"{n_passages} passages")

    def abort(self) -> None:
        """Nothing to undo: the caller deletes the generation copy."""


class LocalBackend(Backend):
    """whoosh + numpy generations on the local disk (the default, ``PARTYQA_BACKEND=local``)."""

    name = "local"

    def create_empty(self, gen_dir: Path) -> None:
        """An empty whoosh index and a 1-d placeholder vector index (the model is chosen at the first write)."""
        WhooshKeywordIndex.create(gen_dir / KEYWORD_DIR).close()
        NumpyVectorIndex.create(gen_dir / VECTORS_DIR, model_id="", dim=1).save()

    def open_reader(self, gen_dir: Path, number: int, by_doc: Mapping[str, Sequence[str]]) -> LocalReader:
        """Open generation ``number``'s whoosh and numpy indexes."""
        return LocalReader(gen_dir, self.config.lock_timeout, by_doc)

    def warm(self) -> None:
        """Start the keyword tokenizer workers when they are on (``PARTYQA_KEYWORD_WORKERS``)."""
        if self.config.keyword_workers:
            warm_tokenizers()

    def begin(self, base: Path, tmp_dir: Path, number: int) -> LocalBatch:
        """A batch over the copied folders in ``tmp_dir``."""
        return LocalBatch(tmp_dir, self.config.lock_timeout, self.config.keyword_workers)
