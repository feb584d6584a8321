"""Keyword half of the index: a whoosh BM25F index over passages, with jieba analysis and safe term queries.

Its scores are computed term at a time by :mod:`indexer.backends.local.scores`; big batches are tokenized in worker
processes by :mod:`indexer.backends.local.tokenize_pool`."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import whoosh.index
from whoosh import scoring
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import LockError
from whoosh.query import Or, Term

from indexer.backends.local.scores import (FIELD_B, FIELD_BOOSTS, K1, WARM_MIN_POSTINGS, WARM_SHARE, SearchState,
                                           StaleSearcher)
from indexer.backends.local.tokenize_pool import PARALLEL_MIN_PASSAGES, field_values, replaying
from indexer.backends.local.whoosh_views import install as _read_segments_in_place
from indexer.text.analyzer import MAX_QUERY_TERMS, SUBWORD_WEIGHT, ChineseAnalyzer, weighted_query_terms
from indexer.types import IndexLockedError, KeywordHit, Passage

logger = logging.getLogger(__name__)
_read_segments_in_place()  # a compound segment's files are read from its mmap, not copied into the heap


def make_schema() -> Schema:
    """The whoosh schema: pid (unique), doc_id, and the analysed text, section and title fields."""
    analyzer = ChineseAnalyzer()
    return Schema(
        pid=ID(stored=True, unique=True),
        doc_id=ID(stored=True),
        text=TEXT(analyzer=analyzer, phrase=True),
        section=TEXT(analyzer=analyzer, phrase=False),
        title=TEXT(analyzer=analyzer, phrase=False),
    )


def make_weighting() -> scoring.BM25F:
    """BM25F with the per-field length normalisation in FIELD_B."""
    return scoring.BM25F(K1=K1, B=FIELD_B["text"], **{f"{name}_B": b for name, b in FIELD_B.items()})


def build_query(terms: Sequence[str | tuple[str, float]]) -> Or:
    """An OR over every field of every (already analysed) term, optionally weighted; nothing is parsed as syntax.

    This is the whoosh query whose BM25F scores :meth:`WhooshKeywordIndex.search` reproduces exactly.
    """
    pairs = [(t, 1.0) if isinstance(t, str) else t for t in terms]
    return Or([Term(field, term, boost=boost * weight) for term, weight in pairs
               for field, boost in FIELD_BOOSTS.items()])


class WhooshKeywordIndex:
    """The local backend's keyword half: BM25F over a whoosh index directory.

    One searcher stays open and is reused; it is reopened only when another commit changed the index (checked
    before each search unless ``watch`` is off, and after this instance's own writes). Each term's BM25F scores
    (over all three fields, query weight 1) are computed once per searcher and cached (:class:`SearchState`), so
    a question on warm terms is a few numpy additions, and concurrent questions wait on each other only while
    whoosh decodes postings not seen before.
    Writers take whoosh's file lock with ``lock_timeout`` seconds of patience.
    """

    def __init__(self, ix: Any, path: Path, lock_timeout: float = 30.0, watch: bool = True, share: bool = True):
        self._ix = ix
        self.path = path
        self.lock_timeout = float(lock_timeout)
        self.watch = watch
        self.share = share
        self._lock = threading.RLock()
        self._st: SearchState | None = None  # opened on first use: a writer (a generation copy) never searches
        self._closed = False

    @property
    def _state(self) -> "SearchState":
        """The open searcher and its caches (opened on first use)."""
        st = self._st
        if st is None:
            with self._lock:
                if self._st is None:
                    self._st = SearchState(self._ix.searcher(weighting=make_weighting()), share=self.share)
                st = self._st
        return st

    @property
    def _searcher(self) -> Any:
        return self._state.searcher

    @classmethod
    def create(cls, path: str | Path, lock_timeout: float = 30.0) -> "WhooshKeywordIndex":
        """Create a new, empty index in ``path`` (made if missing; an old index there is replaced)."""
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"{path}: cannot create keyword index directory: {exc}") from exc
        ix = whoosh.index.create_in(str(path), make_schema())
        logger.info("created keyword index at %s", path)
        return cls(ix, path, lock_timeout)

    @classmethod
    def open(cls, path: str | Path, lock_timeout: float = 30.0, watch: bool = True,
             share: bool = True) -> "WhooshKeywordIndex":
        """Open an existing index in ``path``; FileNotFoundError if there is none.

        ``watch=False`` is for a directory nobody else writes to (a committed engine generation): searches then
        skip whoosh's check for newer commits, a directory listing per question. ``share=False`` keeps this
        searcher's caches its own (a cold reader, as a new process has), instead of sharing the scores and
        decoded postings of readers of the same index state in this process.
        """
        path = Path(path)
        if not path.is_dir() or not whoosh.index.exists_in(str(path)):
            raise FileNotFoundError(f"{path}: no keyword index here (build the index first)")
        return cls(whoosh.index.open_dir(str(path)), path, lock_timeout, watch, share)

    # -- writing ---------------------------------------------------------------------------

    def _writer(self) -> Any:
        try:
            return self._ix.writer(timeout=self.lock_timeout)
        except LockError as exc:
            raise IndexLockedError(
                f"{self.path}: keyword index is locked by another writer (waited {self.lock_timeout:g} s); "
                "wait for the other indexing run to finish, or raise lock_timeout"
            ) from exc

    def add(self, passages: Sequence[Passage], parallel: bool = False, fresh: bool = False) -> None:
        """Index passages; a passage whose pid is already indexed (or repeated in the batch) replaces it.

        ``parallel`` tokenizes a batch of PARALLEL_MIN_PASSAGES or more in worker processes. ``fresh``: the caller
        knows no pid is indexed yet (their documents are new or were just deleted), so whoosh need not look each
        one up to replace it (that opens every segment's term index: 0.5 s per write at 100k passages).
        """
        self._check_open()
        batch = {p.pid: p for p in passages}  # last one of a repeated pid wins
        if not batch:
            return
        parallel = parallel and len(batch) >= PARALLEL_MIN_PASSAGES and (os.cpu_count() or 1) > 1
        replace = not fresh and not self._ix.is_empty()
        writer = self._writer()
        try:
            put = writer.update_document if replace else writer.add_document
            with replaying(writer.schema, parallel):
                for p, fields in zip(batch.values(), field_values(list(batch.values()), parallel)):
                    put(pid=p.pid, doc_id=p.doc_id, **fields)
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        logger.debug("indexed %d passages in %s", len(batch), self.path)
        self.refresh()

    def delete_docs(self, doc_ids: Sequence[str] | Iterable[str]) -> None:
        """Remove every passage of these documents (unknown ids are ignored)."""
        self._check_open()
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return
        writer = self._writer()
        try:
            for doc_id in ids:
                writer.delete_by_term("doc_id", doc_id)
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        logger.debug("deleted documents %s from %s", ids, self.path)
        self.refresh()

    # -- reading ---------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reopen the searcher if the index changed since it was opened; True if it did."""
        self._check_open()
        with self._lock:
            old = self._st
            if old is None:
                return False  # nothing opened yet: the first search opens the latest commit
            with old.lock:
                if old.searcher.up_to_date():
                    return False
            # Not searcher.refresh(): in whoosh-reloaded 2.7.5 reader reuse keeps segments that were merged away
            # and ignores new deletions (duplicate and deleted passages came back), and it crashes on an
            # empty index. A fresh searcher only costs reopening the segment files.
            self._st = SearchState(self._ix.searcher(weighting=make_weighting()), share=self.share)
            old.close()
            return True

    def search(self, question: str, limit: int) -> list[KeywordHit]:
        """Top ``limit`` passages by BM25F for a free-text question; each hit lists the query terms it contains."""
        self._check_open()
        return self.search_terms(weighted_query_terms(question, SUBWORD_WEIGHT)[:MAX_QUERY_TERMS], limit)

    def search_terms(self, weighted: Sequence[tuple[str, float]], limit: int,
                     docs: Iterable[str] | None = None) -> list[KeywordHit]:
        """:meth:`search` from already analysed, weighted terms, optionally only over the passages of ``docs``.

        A doc filter zeroes the other passages' scores before the top ``limit`` are taken, so a filter to a small
        document still fills ``limit``.
        """
        self._check_open()
        weighted = list(weighted)
        if not weighted or limit <= 0:
            return []
        for _ in range(3):
            if self.watch:
                self.refresh()
            state = self._state
            try:
                return self._search(state, weighted, limit, docs)
            except StaleSearcher:  # a refresh closed that searcher mid-question: ask the new one
                continue
        raise RuntimeError(f"{self.path}: the keyword index kept changing during a search; try again")

    def _search(self, state: "SearchState", weighted: Sequence[tuple[str, float]], limit: int,
                docs: Iterable[str] | None) -> list[KeywordHit]:
        scores, having = self._accumulate(state, weighted)
        if docs is not None:
            allowed = np.zeros(len(scores), dtype=bool)
            for doc_id in docs:
                allowed[state.doc_numbers(doc_id)] = True
            scores[~allowed] = 0.0
        hit = np.flatnonzero(scores)
        if not len(hit):
            return []
        if len(hit) > limit:
            # the limit best by score, ties to the lower doc number (as heapq.nlargest on (score, -docnum))
            cut = np.partition(scores[hit], len(hit) - limit)[len(hit) - limit]
            hit = hit[scores[hit] >= cut]
        top = hit[np.lexsort((hit, -scores[hit]))][:limit]
        pids = state.pids(top)
        terms = [t for t, _ in weighted]
        contains = [_members(ids, top) for ids in having]
        return [
            KeywordHit(pid=pid, score=float(scores[d]), terms=[t for t, inside in zip(terms, contains) if inside[j]])
            for j, (pid, d) in enumerate(zip(pids, top))
        ]

    @staticmethod
    def _accumulate(state: "SearchState", terms: Sequence[tuple[str, float]]) -> tuple[np.ndarray, list]:
        """Term-at-a-time BM25F: the exact scores whoosh gives ``build_query(terms)``, without its matcher tree.

        Each term's score over the three fields (weight 1) comes from :meth:`SearchState.term`; a question adds
        them up, weighted. whoosh's own search of a wide OR walks a tree of union matchers one posting at a time
        and was 3-5x slower. Returns dense scores by doc number and, per term, the sorted doc numbers containing it.
        """
        scores = np.zeros(state.doc_count_all, dtype=np.float64)
        having: list[np.ndarray] = []
        for term, weight in terms:
            ids, partial = state.term(term)
            if len(ids):
                scores[ids] += weight * partial
            having.append(ids)
        return scores, having

    def warm_up(self, share: float = WARM_SHARE, min_postings: int = WARM_MIN_POSTINGS,
                persist: Path | None = None) -> threading.Thread:
        """Score the most frequent terms in a background thread, filling ``share`` of the term cache.

        A question's cost on a freshly opened index is whoosh decoding its terms' postings (pickled,
        zlib-compressed blocks: ~70 % of a first pass at 100k passages, profiled), and the frequent terms are most
        of it. Decoding them from the open on means the first users of a restarted server rarely pay for them; a
        question that comes first pays for its own terms, as before. With ``persist`` (a folder), the warmed
        scores are saved there, keyed by the exact segments and deletions of this index, and the next open of the
        same index (a restart) loads them memory-mapped instead of decoding. Returns the (daemon) thread.
        """
        return self._in_background(self._state.warm, (share, min_postings, persist), "partyqa-keyword-warm")

    def hot_terms(self) -> list[str]:
        """The terms whose scores this index's searcher holds, most recently used first (none, and no searcher
        opened, when it never searched)."""
        st = self._st
        return st.cached_terms() if st is not None else []

    def warm_terms(self, terms: Sequence[str]) -> threading.Thread:
        """Score ``terms`` (most wanted first) in a background thread, up to the share of the cache warm_up fills.

        For the next generation after a write: its searcher starts with no scores, but the terms the previous one
        had cached are what the next questions will ask, and their postings in the segments the write left alone
        come decoded from :func:`indexer.backends.local.postings.segment_postings`, so re-scoring them is numpy work, not whoosh
        decoding. Returns the (daemon) thread."""
        return self._in_background(self._state.rewarm, (list(terms),), "partyqa-keyword-rewarm")

    @staticmethod
    def _in_background(work: Callable[..., Any], args: tuple, name: str) -> threading.Thread:
        """Start ``work(*args)`` in a daemon thread named ``name``; returns the thread."""
        thread = threading.Thread(target=work, args=args, name=name, daemon=True)
        thread.start()
        return thread

    @staticmethod
    def count_at(path: str | Path) -> int:
        """Passages in the index at ``path`` as of its latest commit, from its table of contents alone (no searcher
        is opened: opening one reads every segment's term index, 0.1-0.2 s at 100k passages)."""
        return sum(int(seg.doc_count()) for seg in whoosh.index.open_dir(str(path))._segments())

    def count(self) -> int:
        """Number of passages indexed (as of the latest commit)."""
        self._check_open()
        with self._lock:
            self.refresh()
            with self._state.lock:
                return int(self._state.searcher.doc_count())

    def doc_ids(self) -> set[str]:
        """The ids of all documents that have passages in the index."""
        self._check_open()
        with self._lock:
            self.refresh()
            with self._state.lock:
                return {fields["doc_id"] for fields in self._state.reader.all_stored_fields()}

    def close(self) -> None:
        """Close the searcher; the instance cannot be used afterwards."""
        if self._closed:
            return
        with self._lock:
            if self._st is not None:
                self._st.close()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path}: keyword index is closed")

    def __enter__(self) -> "WhooshKeywordIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _members(sorted_ids: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """For each of ``docs``, whether it is in ``sorted_ids`` (a binary search: cheaper than np.isin for few docs)."""
    if not len(sorted_ids):
        return np.zeros(len(docs), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ids, docs), len(sorted_ids) - 1)
    return sorted_ids[pos] == docs
