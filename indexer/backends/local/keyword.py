"""Keyword half of the index: a whoosh BM25F index over passages, with jieba analysis and safe term queries."""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import weakref
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import whoosh.index
from whoosh import scoring
from whoosh.analysis import Token
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import LockError
from whoosh.query import Or, Term

from indexer.backends.local.postings import ArrayLRU, PostingsCache
from indexer.text.analyzer import MAX_QUERY_TERMS, SUBWORD_WEIGHT, ChineseAnalyzer, segmenter, weighted_query_terms
from indexer.types import IndexLockedError, KeywordHit, Passage

logger = logging.getLogger(__name__)

# Query-time field weights: the passage text counts most; section headings and document titles
# are shared by many passages, so they only nudge the ranking.
FIELD_BOOSTS: dict[str, float] = {"text": 1.0, "section": 0.6, "title": 0.4}
# BM25F length normalisation per field: full for text, weaker for the short heading fields.
FIELD_B: dict[str, float] = {"text": 0.75, "section": 0.5, "title": 0.3}
K1 = 1.2
# Indexing throughput: jieba takes ~60 % of keyword indexing (profiled on the 8gui regulations), so large batches
# are tokenized in worker processes while this process writes the postings: the workers run ChineseAnalyzer and
# return each field's tokens, and during the write the fields' analyzer replays them (:class:`_Replay`), so the
# index is identical to a one-process build (tests/test_jobs.py compares every term's postings and positions).
# Below PARALLEL_MIN_PASSAGES, shipping the texts costs more than it saves.
# Off by default: on the shared 2-core bench machine (other processes on both cores) the workers got no spare core
# and a 1,558-passage build took 3.9 s with them against 2.5 s without (docs/BENCHMARKS.md, "Adding documents"),
# although the writing process's own CPU fell from 2.4 s to 1.35 s. PARTYQA_KEYWORD_WORKERS=1 turns it on.
PARALLEL_MIN_PASSAGES = 200
ANALYSED_FIELDS = ("text", "section", "title")
TOKENIZE_CHUNK = 200  # texts per worker call (50: +30 % pool overhead, measured on 1,558 passages)
_pool: Executor | None = None
_pool_lock = threading.Lock()
# Per-term BM25F score arrays kept per searcher, counted in postings (16 bytes each: doc number + score): ~64 MB,
# or TERM_CACHE_PER_DOC postings a passage in a larger index. A fixed 4M held only ~160 terms at 1M passages (a
# frequent term there has ~500k postings): the 200 bench questions then cycled through it, evicting every term
# before its next use: the keyword half took 97 / 471 ms p50 / p95 on the 1M bench index (loaded machine); with
# 40 a passage a second pass over the same questions took 9.0 / 26 ms (21 / 90 ms with 4M; docs/SCALING.md).
TERM_CACHE_POSTINGS = 4_000_000
TERM_CACHE_PER_DOC = 40  # ~40 % of an index's postings (~83 a passage over the three fields); 640 MB at 1M


def term_cache_postings(doc_count: int) -> int:
    """How many postings the term-score cache of a searcher over ``doc_count`` passages holds."""
    return max(TERM_CACHE_POSTINGS, TERM_CACHE_PER_DOC * int(doc_count))
# Share of that cache that WhooshKeywordIndex.warm_up fills with the most frequent terms (at 100k passages: the
# ~600 most frequent, ~4 s of one core; the first-pass figures in docs/BENCHMARKS.md are with it).
WARM_SHARE = 0.6
# ... but only terms with at least this many postings (over the three fields): a term of one or two posting blocks
# decodes in well under a millisecond when a question needs it, and warming every such term of a small index kept
# a restarting server's two cores busy for seconds.
WARM_MIN_POSTINGS = 256


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
    (over all three fields, query weight 1) are computed once per searcher and cached (:class:`_SearchState`), so
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
        self._st: _SearchState | None = None  # opened on first use: a writer (a generation copy) never searches
        self._closed = False

    @property
    def _state(self) -> "_SearchState":
        """The open searcher and its caches (opened on first use)."""
        st = self._st
        if st is None:
            with self._lock:
                if self._st is None:
                    self._st = _SearchState(self._ix.searcher(weighting=make_weighting()), share=self.share)
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
            with _replaying(writer.schema, parallel):
                for p, fields in zip(batch.values(), _analysed(list(batch.values()), parallel)):
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
            self._st = _SearchState(self._ix.searcher(weighting=make_weighting()), share=self.share)
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
            except _StaleSearcher:  # a refresh closed that searcher mid-question: ask the new one
                continue
        raise RuntimeError(f"{self.path}: the keyword index kept changing during a search; try again")

    def _search(self, state: "_SearchState", weighted: Sequence[tuple[str, float]], limit: int,
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
    def _accumulate(state: "_SearchState", terms: Sequence[tuple[str, float]]) -> tuple[np.ndarray, list]:
        """Term-at-a-time BM25F: the exact scores whoosh gives ``build_query(terms)``, without its matcher tree.

        Each term's score over the three fields (weight 1) comes from :meth:`_SearchState.term`; a question adds
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


def _fields(p: Passage) -> dict[str, str]:
    return {"text": p.text or "", "section": p.section or "", "title": p.title or ""}


class _Analysed(str):
    """A field value whose tokens a worker computed: (position of the first token, token texts)."""

    tokens: tuple[int, list[str]]


def _tokenize_fields(chunk: list[dict[str, str]]) -> list[dict[str, tuple[int, list[str]]]]:
    """Worker: each field's index-time tokens as (first position, texts); ChineseAnalyzer's positions run on by
    one from the first kept token (its StopFilter renumbers), so that pair is the whole token stream."""
    analyzer = _worker_analyzer()
    out = []
    for fields in chunk:
        analysed = {}
        for name, value in fields.items():
            tokens = [(t.text, t.pos) for t in analyzer(value, positions=True)]
            first = tokens[0][1] if tokens else 0
            if any(pos != first + i for i, (_, pos) in enumerate(tokens)):  # the replay could not reproduce them
                raise ValueError(f"token positions of {name} are not consecutive")
            analysed[name] = (first, [t for t, _ in tokens])
        out.append(analysed)
    return out


@lru_cache(maxsize=1)
def _worker_analyzer() -> Any:
    return ChineseAnalyzer()


class _Replay:
    """Stands in for a field's analyzer while a batch is written: replays a worker's tokens of an
    :class:`_Analysed` value, analyses any other value with the real analyzer."""

    def __init__(self, analyzer: Any):
        self.analyzer = analyzer

    def __call__(self, value: Any, positions: bool = False, chars: bool = False, **kwargs: Any) -> Iterator[Token]:
        if not isinstance(value, _Analysed):
            yield from self.analyzer(value, positions=positions, chars=chars, **kwargs)
            return
        first, texts = value.tokens
        t = Token(positions, chars, **kwargs)
        for i, text in enumerate(texts):
            t.text, t.boost, t.stopped = text, 1.0, False
            if positions:
                t.pos = first + i
            yield t


@contextmanager
def _replaying(schema: Any, enabled: bool) -> Iterator[None]:
    """Swap the text fields' analyzers for :class:`_Replay` on a writer's own schema, and back before its commit
    (the commit pickles the schema into the index)."""
    if not enabled:
        yield
        return
    originals = {name: schema[name].analyzer for name in ANALYSED_FIELDS}
    try:
        for name, analyzer in originals.items():
            schema[name].analyzer = _Replay(analyzer)
        yield
    finally:
        for name, analyzer in originals.items():
            schema[name].analyzer = analyzer


def tokenizer_pool() -> Executor:
    """The worker processes that tokenize big batches (started once per process; jieba initialised in each).

    fork, not spawn/forkserver: those re-import the caller's main script in every worker (a user's script without
    a ``__main__`` guard would run again there). The workers only run jieba; the server starts them early
    (:func:`warm_tokenizers`), while it has few threads.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            _pool = ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 4),
                                        mp_context=multiprocessing.get_context(method), initializer=_init_worker,
                                        initargs=(os.getpid(),))
        return _pool


def _init_worker(parent: int) -> None:
    """Worker start: initialise jieba, and exit when the parent dies (a SIGKILLed server must not leave workers)."""
    segmenter()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="partyqa-parent-watch", daemon=True).start()


def warm_tokenizers() -> None:
    """Start the tokenizer workers now (they initialise jieba in the background), so a big write need not wait."""
    pool = tokenizer_pool()
    for _ in range(min(os.cpu_count() or 1, 4)):
        pool.submit(_tokenize_fields, [])


def _analysed(passages: list[Passage], parallel: bool) -> Iterator[dict[str, Any]]:
    """Field values for whoosh: the texts, or (parallel) their token lists, in order, as workers finish them.

    If the workers fail (a broken pool, no processes allowed), the rest is tokenized here.
    """
    done = 0
    if parallel:
        chunks = [[_fields(p) for p in passages[i:i + TOKENIZE_CHUNK]]
                  for i in range(0, len(passages), TOKENIZE_CHUNK)]
        try:
            for chunk_fields, chunk in zip(chunks, tokenizer_pool().map(_tokenize_fields, chunks)):
                for fields, analysed in zip(chunk_fields, chunk):
                    out = {}
                    for name, value in fields.items():
                        out[name] = _Analysed(value)
                        out[name].tokens = analysed[name]
                    yield out
                done += len(chunk)
        except Exception as exc:
            global _pool
            logger.warning("tokenizer workers failed (%s); tokenizing in this process", exc)
            with _pool_lock:
                _pool = None
    yield from (_fields(p) for p in passages[done:])


def _text(term: Any) -> str:
    return term.decode("utf-8") if isinstance(term, bytes) else str(term)


def _members(sorted_ids: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """For each of ``docs``, whether it is in ``sorted_ids`` (a binary search: cheaper than np.isin for few docs)."""
    if not len(sorted_ids):
        return np.zeros(len(docs), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ids, docs), len(sorted_ids) - 1)
    return sorted_ids[pos] == docs


WARM_BUDGET_FILE = "budget.json"  # beside a saved warm-up: the postings budget it was warmed under


def _saved_budget(folder: Path) -> float:
    """The postings budget a saved warm-up folder was made under (0 when unrecorded or unreadable)."""
    try:
        return float(json.loads((folder / WARM_BUDGET_FILE).read_text(encoding="utf-8"))["postings_budget"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


class _StaleSearcher(Exception):
    """The search state was closed by a refresh while a question still used it."""


class _Tables:
    """What a searcher derives from one state of a keyword index: per-term scores, pid by doc number, doc numbers
    by doc id. Shared by every searcher of the process that opens the same state (:meth:`_SearchState.identity`):
    a commit that leaves the keyword index alone (a vector commit of an upload, every 256 passages) opens a
    generation whose whoosh files are hard links of the same segments, and its searcher keeps the warm scores."""

    def __init__(self, max_postings: int):
        self.terms = ArrayLRU(max_postings)
        self.pids: dict[int, str] = {}
        self.docs: dict[str, np.ndarray] = {}
        self.lock = threading.Lock()  # pids and docs


_tables_lock = threading.Lock()
_tables: "weakref.WeakValueDictionary[tuple[str, int], _Tables]" = weakref.WeakValueDictionary()


def _tables_for(identity: str, max_postings: int) -> _Tables:
    """The tables of the index state ``identity`` if a live searcher has them, else new ones ("" is never shared)."""
    if not identity:
        return _Tables(max_postings)
    with _tables_lock:
        found = _tables.get((identity, max_postings))
        if found is None:
            found = _tables[(identity, max_postings)] = _Tables(max_postings)
        return found


class _SearchState:
    """One open whoosh searcher and what the keyword half derives from it, computed on first use and cached.

    Per term: the sorted doc numbers that contain it in any field and its BM25F score there at query weight 1
    (whoosh's idf, average field length, per-field B, K1 and field boost -- the same formula as
    ``whoosh.scoring.bm25``), least recently used dropped beyond ``max_postings``; per doc number its pid; per
    doc id its doc numbers. whoosh's readers share file handles, so every whoosh read holds ``lock``; cached
    entries are read without it.
    """

    def __init__(self, searcher: Any, max_postings: int | None = None, share: bool = True):
        self.searcher = searcher
        self.reader = searcher.reader()
        if max_postings is None:
            max_postings = term_cache_postings(self.reader.doc_count_all())
        self.postings = PostingsCache(self.reader, shared=share, segment_bound=max_postings)
        self.doc_count_all = self.postings.doc_count_all
        self.lock = threading.Lock()  # whoosh reads
        self.tables = _tables_for(self.identity(), max_postings) if share else _Tables(max_postings)
        self._cache_lock = self.tables.lock  # the dicts below
        self._terms = self.tables.terms
        self._pids = self.tables.pids
        self._docs = self.tables.docs
        self.closed = False

    def term(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted doc numbers, BM25F score at weight 1) of ``term`` over text, section and title."""
        hit = self._terms.get(term)
        if hit is None:
            with self.lock:
                if self.closed:
                    raise _StaleSearcher
                hit = self._score(term)
            self._terms.put(term, hit)
        return hit

    def _score(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        weighting = self.searcher.weighting
        id_parts, score_parts = [], []
        for field, boost in FIELD_BOOSTS.items():
            ids, tf = self.postings.read(field, term)
            if not len(ids):
                continue
            scorer = weighting.scorer(self.searcher, field, term)
            idf, avgfl, b, k1 = scorer.idf, scorer.avgfl, scorer.B, scorer.K1
            # bm25 = idf * tf * (k1 + 1) / (tf + k1 * ((1 - b) + b * length / avgfl)), times the field boost
            tf64 = tf.astype(np.float64)
            length = self.postings.lengths(field)[ids]
            id_parts.append(ids)
            score_parts.append(boost * idf * (k1 + 1) * tf64 / (tf64 + k1 * (1 - b) + k1 * b / avgfl * length))
        if not id_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        if len(id_parts) == 1:
            return id_parts[0], score_parts[0]
        ids, where = np.unique(np.concatenate(id_parts), return_inverse=True)
        return ids, np.bincount(where, weights=np.concatenate(score_parts), minlength=len(ids))

    def warm(self, share: float, min_postings: int = WARM_MIN_POSTINGS, persist: Path | None = None) -> int:
        """Score terms by falling document frequency (all fields) until ``share`` of the cache is used, the terms
        have fewer than ``min_postings`` postings, or the searcher is closed; returns how many were scored.

        With ``persist``: load the scores saved for exactly this index instead, or save them after scoring."""
        key = self.identity() if persist is not None else None
        saved = persist / key if persist is not None and key else None
        budget = share * self._terms.max_items
        if saved is not None:
            loaded = self._load_warm(saved)
            if loaded and _saved_budget(saved) >= budget:
                return loaded
            # else saved by a smaller cache (or none): warm on from what loaded, and save the larger set
        try:
            with self.lock:
                if self.closed:
                    return 0
                freq: dict[str, int] = {}
                for field in FIELD_BOOSTS:
                    if field in self.reader.schema:
                        for raw, info in self.reader.iter_field(field):
                            term = _text(raw)
                            freq[term] = freq.get(term, 0) + info.doc_frequency()
            done = 0
            for term in sorted(freq, key=freq.__getitem__, reverse=True):
                if freq[term] < min_postings:
                    break
                if self._terms.get(term) is None:  # loaded from a saved set: already counted in the size
                    if self._terms.size + freq[term] > budget:
                        break
                    self.term(term)
                done += 1
            logger.debug("keyword warm-up: %d terms, %d postings", done, self._terms.size)
            if saved is not None and done and not self.closed:
                self._save_warm(saved, sorted(freq, key=freq.__getitem__, reverse=True)[:done], budget)
            return done
        except _StaleSearcher:
            return 0
        except Exception:  # a warm-up is an optimisation: never let it take a reader down
            logger.warning("keyword warm-up stopped", exc_info=True)
            return 0

    def cached_terms(self) -> list[str]:
        """Terms with cached scores, most recently used first."""
        return self._terms.keys_recent_first()

    def rewarm(self, terms: Sequence[str], share: float = WARM_SHARE) -> int:
        """Score ``terms`` in order until ``share`` of the cache is used or the searcher closes; how many were."""
        budget = share * self._terms.max_items
        done = 0
        try:
            for term in terms:
                if self.closed or self._terms.size >= budget:
                    break
                self.term(term)
                done += 1
                time.sleep(0)  # let a question's thread in between terms
        except _StaleSearcher:
            pass
        except Exception:  # an optimisation: never let it take a reader down
            logger.warning("keyword re-warm stopped", exc_info=True)
        logger.debug("keyword re-warm: %d of %d terms", done, len(terms))
        return done

    def identity(self) -> str:
        """A digest of what the scores depend on: every segment (id, size, deletions) and the BM25F parameters;
        "" when the reader does not say (an empty index, another codec)."""
        try:
            segs = [(seg._segment.segment_id(), int(seg.doc_count_all()), int(seg._segment.deleted_count()))
                    for seg, _ in self.reader.leaf_readers()]
        except (AttributeError, TypeError):
            return ""
        key = json.dumps([segs, FIELD_BOOSTS, FIELD_B, K1], sort_keys=True)
        return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]

    def _save_warm(self, folder: Path, terms: list[str], budget: float = 0.0) -> None:
        """Write the cached scores of ``terms`` to ``folder`` (a temp folder renamed into place; best effort).

        ``budget``: the postings the warm-up was allowed (recorded). A folder already there is kept unless it was
        saved under a smaller budget (a smaller cache: when the cache grew with the index at 1M passages, the old
        small set was otherwise loaded at every start and nothing more was warmed)."""
        if folder.exists() and _saved_budget(folder) >= budget:
            return
        entries = [(t, v) for t, v in ((t, self._terms.get(t)) for t in terms) if v is not None]
        if not entries:
            return
        tmp: Path | None = None
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".warm-", dir=folder.parent))
            blob = [t.encode("utf-8") for t, _ in entries]
            np.save(tmp / "terms.npy", np.frombuffer(b"".join(blob), dtype=np.uint8))
            np.save(tmp / "term_ends.npy", np.cumsum([len(b) for b in blob]).astype(np.int64))
            np.save(tmp / "ends.npy", np.cumsum([len(v[0]) for _, v in entries]).astype(np.int64))
            np.save(tmp / "ids.npy", np.concatenate([v[0] for _, v in entries]).astype(np.int32))
            np.save(tmp / "scores.npy", np.concatenate([v[1] for _, v in entries]).astype(np.float64))
            (tmp / WARM_BUDGET_FILE).write_text(json.dumps({"postings_budget": budget}), encoding="utf-8")
            if folder.exists():  # a smaller set: moved aside, then replaced (a reader meanwhile decodes instead)
                aside = Path(tempfile.mkdtemp(prefix=".old-", dir=folder.parent))
                os.replace(folder, aside / "warm")
                shutil.rmtree(aside, ignore_errors=True)
            os.replace(tmp, folder)  # atomic; if another process's identical folder won the race, this fails
            tmp = None
            for old in folder.parent.iterdir():  # scores of earlier states of the index are of no use any more,
                # nor temp folders of a process that exited mid-save (an hour old: no save takes that long)
                stale = not old.name.startswith(".") or time.time() - old.stat().st_mtime > 3600
                if old.name != folder.name and stale and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            logger.debug("keyword warm-up not saved in %s: %s", folder, exc)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _load_warm(self, folder: Path) -> int:
        """Fill the cache from scores saved for this index (memory-mapped); the number of terms, 0 if none."""
        try:
            if not (folder / "scores.npy").is_file():
                return 0
            terms_raw = np.load(folder / "terms.npy").tobytes()
            term_ends = np.load(folder / "term_ends.npy")
            ends = np.load(folder / "ends.npy")
            ids = np.load(folder / "ids.npy", mmap_mode="r")
            scores = np.load(folder / "scores.npy", mmap_mode="r")
            if len(term_ends) != len(ends) or (len(ends) and (ends[-1] != len(ids) or len(ids) != len(scores))):
                raise ValueError("inconsistent arrays")
        except (OSError, ValueError) as exc:
            logger.debug("keyword warm-up in %s unreadable: %s", folder, exc)
            return 0
        start, t_start = 0, 0
        for t_end, end in zip(term_ends.tolist(), ends.tolist()):
            self._terms.put(terms_raw[t_start:t_end].decode("utf-8"), (ids[start:end], scores[start:end]))
            start, t_start = end, t_end
        return len(ends)

    def pids(self, docs: np.ndarray) -> list[str]:
        """The pid stored for each doc number."""
        with self._cache_lock:
            known = [self._pids.get(int(d)) for d in docs]
        if any(p is None for p in known):
            with self.lock:
                if self.closed:
                    raise _StaleSearcher
                fresh = {int(d): self.reader.stored_fields(int(d))["pid"] for d, p in zip(docs, known) if p is None}
            with self._cache_lock:
                self._pids.update(fresh)
            known = [p if p is not None else fresh[int(d)] for d, p in zip(docs, known)]
        return known  # type: ignore[return-value]

    def doc_numbers(self, doc_id: str) -> np.ndarray:
        """Doc numbers of the passages of document ``doc_id`` (empty if unknown)."""
        with self._cache_lock:
            hit = self._docs.get(doc_id)
        if hit is not None:
            return hit
        with self.lock:
            if self.closed:
                raise _StaleSearcher
            found = (np.fromiter(self.reader.postings("doc_id", doc_id).all_ids(), dtype=np.int64)
                     if ("doc_id", doc_id) in self.reader else np.zeros(0, dtype=np.int64))
        with self._cache_lock:
            self._docs[doc_id] = found
        return found

    def close(self) -> None:
        """Close the searcher (a question still using this state then raises _StaleSearcher and retries)."""
        with self.lock:
            self.closed = True
            self.searcher.close()
