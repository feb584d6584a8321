"""The local backend: a whoosh keyword index and an exact numpy vector index inside each ``gen-N/`` folder.

Wraps :class:`indexer.backends.local.keyword.WhooshKeywordIndex` and :class:`indexer.backends.local.vectors.NumpyVectorIndex` unchanged; a write
batch edits the copy of the generation that the commit renames into place, so readers never see it half-written.
"""
from __future__ import annotations

import logging
import shutil
import threading
import weakref
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np

from indexer.backends.base import Backend, Reader, Terms, WriteBatch
from indexer.backends.local.ann import AnnSettings
from indexer.backends.local.keyword import WhooshKeywordIndex
from indexer.backends.local.tokenize_pool import warm_tokenizers
from indexer.backends.local.vectors import NumpyVectorIndex
from indexer.types import KeywordHit, Passage

logger = logging.getLogger(__name__)

KEYWORD_DIR, VECTORS_DIR = "keyword", "vectors"
# Beside the generations: the keyword half's warmed term scores of the last index state seen, so a restart loads
# them (memory-mapped) instead of decoding whoosh's postings again; keyed by segments and deletions, never stale.
WARM_DIR = "keyword-warm"


class LocalReader(Reader):
    """Opened whoosh + numpy indexes of one committed generation."""

    # Readers open per index directory in this process. Only a reader opened with none beside it (a starting
    # server or CLI) warms the keyword half up in the background (decoding ~600 frequent terms: 4 s of a core at
    # 100k passages, or loading the scores saved by the last start).
    # After a write, the reader of the new generation re-scores the terms the previous reader had cached (in the
    # background, from the decoded postings of the segments the write left alone: indexer.backends.local.postings), so the first
    # questions after an upload do not pay for whoosh decoding again.
    _open: dict[Path, int] = {}
    _latest: dict[Path, "weakref.ref[LocalReader]"] = {}
    _open_lock = threading.Lock()

    def __init__(self, gen_dir: Path, lock_timeout: float, by_doc: Mapping[str, Sequence[str]],
                 ann: AnnSettings | None = None):
        # watch=False: a committed generation is never written again, so skip whoosh's per-search commit check.
        self.keyword = WhooshKeywordIndex.open(gen_dir / KEYWORD_DIR, lock_timeout=lock_timeout, watch=False)
        self._root = Path(gen_dir).resolve().parent
        with LocalReader._open_lock:
            first = not LocalReader._open.get(self._root)
            LocalReader._open[self._root] = LocalReader._open.get(self._root, 0) + 1
            ref = LocalReader._latest.get(self._root)
            previous = ref() if ref is not None and not first else None
            LocalReader._latest[self._root] = weakref.ref(self)
        # the most frequent terms' scores, in the background (the thread, or None when not warming)
        self.warming: threading.Thread | None = None
        if first:
            self.warming = self.keyword.warm_up(persist=self._root / WARM_DIR)
        elif previous is not None:
            hot = previous.keyword.hot_terms()
            self.warming = self.keyword.warm_terms(hot) if hot else None
        try:
            # mmap: above the ANN threshold a search touches only the rows it re-scores, so the float32 rows
            # need not all be resident (serving RSS at 100k, docs/BENCHMARKS.md); below it the page cache holds them.
            self.vectors = NumpyVectorIndex.open_reader(gen_dir / VECTORS_DIR, ann=ann)
        except BaseException:
            self._release()
            self.keyword.close()
            raise
        self._by_doc = by_doc

    def _release(self) -> None:
        with LocalReader._open_lock:
            if not getattr(self, "_released", False) and LocalReader._open.get(self._root):
                LocalReader._open[self._root] -= 1
            self._released = True

    def keyword_search_many(self, queries: Sequence[Terms], limit: int,
                            docs: Collection[str] | None = None) -> list[list[KeywordHit]]:
        """BM25F top ``limit`` per query (:meth:`WhooshKeywordIndex.search_terms`; no lock here: the keyword index
        serialises only its whoosh reads, so concurrent questions on warm terms do not wait on each other)."""
        return [self.keyword.search_terms(q, limit, docs) for q in queries]

    def vector_search_many(self, matrix: np.ndarray, limit: int,
                           docs: Collection[str] | None = None) -> list[list[tuple[str, float]]]:
        """Cosine top ``limit`` per query row (approximate above the ANN threshold, :mod:`indexer.backends.local.ann`); with
        ``docs``, an exact search over only those documents' rows, so a small filter still fills ``limit``."""
        if docs is None:
            return self.vectors.search_many(matrix, limit)
        return self.vectors.search_pids(matrix, [pid for d in docs for pid in self._by_doc.get(d, ())], limit)

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
        self._release()
        try:
            self.keyword.close()
        except Exception:  # pragma: no cover - closing is best effort
            logger.debug("closing keyword index failed", exc_info=True)


class LocalBatch(WriteBatch):
    """Edits the whoosh and numpy folders of the generation copy in ``tmp_dir``."""

    def __init__(self, tmp_dir: Path, lock_timeout: float, keyword_workers: bool = False,
                 ann: AnnSettings | None = None):
        self.tmp = tmp_dir
        self.lock_timeout = lock_timeout
        self.keyword_workers = keyword_workers
        self.ann = ann  # the engine's Config decides when the approximate index is kept (None: PARTYQA_ANN_*)

    def keyword(self, drop_docs: Collection[str], passages: Sequence[Passage], rebuild: bool = False,
                new_pids: bool = False) -> None:
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
                kw.add(passages, parallel=self.keyword_workers, fresh=new_pids or rebuild)
        finally:
            kw.close()

    def vectors(self, drop_docs: Collection[str], pids: Sequence[str], vectors: np.ndarray, model_id: str,
                rebuild: bool = False) -> None:
        """Delete then add in the numpy copy (a new index of the vectors' dimension when ``rebuild``)."""
        if not rebuild and not drop_docs and not len(pids):
            return  # nothing changes: the copy's files stay hard links (rewriting them took 1.1 s at 100k)
        if rebuild:
            vec = NumpyVectorIndex.create(self.tmp / VECTORS_DIR, model_id=model_id, dim=int(vectors.shape[1]),
                                          ann=self.ann)
        else:
            vec = NumpyVectorIndex.open(self.tmp / VECTORS_DIR, ann=self.ann)
            if drop_docs:
                vec.delete_docs(sorted(drop_docs))
        if len(pids):
            vec.add(list(pids), vectors)
        vec.save()

    def prepare_commit(self, n_passages: int, n_vectors: int | None = None) -> None:
        """Refuse to commit when the keyword index, the vectors and the passage list disagree."""
        n_kw = WhooshKeywordIndex.count_at(self.tmp / KEYWORD_DIR)
        n_vec = NumpyVectorIndex.count_at(self.tmp / VECTORS_DIR)  # the reader checks ids against rows
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
        return LocalReader(gen_dir, self.config.lock_timeout, by_doc, AnnSettings.from_config(self.config))

    def warm(self) -> None:
        """Start the keyword tokenizer workers when they are on (``PARTYQA_KEYWORD_WORKERS``)."""
        if self.config.keyword_workers:
            warm_tokenizers()

    def begin(self, base: Path, tmp_dir: Path, number: int) -> LocalBatch:
        """A batch over the copied folders in ``tmp_dir``."""
        return LocalBatch(tmp_dir, self.config.lock_timeout, self.config.keyword_workers,
                          AnnSettings.from_config(self.config))
