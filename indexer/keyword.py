"""Keyword half of the index: a whoosh BM25F index over passages, with jieba analysis and safe term queries."""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import whoosh.index
from whoosh import scoring
from whoosh.analysis import Token
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import LockError
from whoosh.query import Or, Term

from .analyzer import ChineseAnalyzer, segmenter, weighted_query_terms
from .postings import PostingsCache
from .store import KeywordHit
from .types import IndexLockedError, Passage

logger = logging.getLogger(__name__)

# Query-time field weights: the passage text counts most; section headings and document titles
# are shared by many passages, so they only nudge the ranking.
FIELD_BOOSTS: dict[str, float] = {"text": 1.0, "section": 0.6, "title": 0.4}
# BM25F length normalisation per field: full for text, weaker for the short heading fields.
FIELD_B: dict[str, float] = {"text": 0.75, "section": 0.5, "title": 0.3}
K1 = 1.2
# A pasted paragraph can give hundreds of terms; beyond this many, extra terms only cost time.
MAX_QUERY_TERMS = 100
# Weight of a query token that is only a dictionary sub-word of a longer query word (see weighted_query_terms).
# At 1.0 a long compound (中国特色社会主义: 8 tokens) outweighed the rarer words that single out the answer.
# Passage R@5 over the whole party-docs corpus, keyword / hybrid: quiz 0.895 / 0.881 -> 0.938 / 0.890 and
# dev questions 0.485 / 0.621 -> 0.495 / 0.631 at 0.3 (0.2-0.5 within one question of it).
SUBWORD_WEIGHT = 0.3
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
    """A :class:`indexer.store.KeywordStore` backed by a whoosh index directory.

    One searcher stays open and is reused; it is reopened only when another commit changed the index (checked
    before each search unless ``watch`` is off, and after this instance's own writes). Decoded postings of
    recent terms are cached per searcher (:class:`indexer.postings.PostingsCache`).
    Writers take whoosh's file lock with ``lock_timeout`` seconds of patience.
    """

    def __init__(self, ix: Any, path: Path, lock_timeout: float = 30.0, watch: bool = True):
        self._ix = ix
        self.path = path
        self.lock_timeout = float(lock_timeout)
        self.watch = watch
        self._lock = threading.RLock()
        self._searcher: Any = ix.searcher(weighting=make_weighting())
        self._cache = PostingsCache(self._searcher.reader())
        self._closed = False

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
    def open(cls, path: str | Path, lock_timeout: float = 30.0, watch: bool = True) -> "WhooshKeywordIndex":
        """Open an existing index in ``path``; FileNotFoundError if there is none.

        ``watch=False`` is for a directory nobody else writes to (a committed engine generation): searches then
        skip whoosh's check for newer commits, a directory listing per question.
        """
        path = Path(path)
        if not path.is_dir() or not whoosh.index.exists_in(str(path)):
            raise FileNotFoundError(f"{path}: no keyword index here (build the index first)")
        return cls(whoosh.index.open_dir(str(path)), path, lock_timeout, watch)

    # -- writing ---------------------------------------------------------------------------

    def _writer(self) -> Any:
        try:
            return self._ix.writer(timeout=self.lock_timeout)
        except LockError as exc:
            raise IndexLockedError(
                f"{self.path}: keyword index is locked by another writer (waited {self.lock_timeout:g} s); "
                "wait for the other indexing run to finish, or raise lock_timeout"
            ) from exc

    def add(self, passages: Sequence[Passage], parallel: bool = False) -> None:
        """Index passages; a passage whose pid is already indexed (or repeated in the batch) replaces it.

        ``parallel`` tokenizes a batch of PARALLEL_MIN_PASSAGES or more in worker processes.
        """
        self._check_open()
        batch = {p.pid: p for p in passages}  # last one of a repeated pid wins
        if not batch:
            return
        parallel = parallel and len(batch) >= PARALLEL_MIN_PASSAGES and (os.cpu_count() or 1) > 1
        replace = not self._ix.is_empty()
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
            old = self._searcher
            if old.up_to_date():
                return False
            # Not old.refresh(): in whoosh-reloaded 2.7.5 reader reuse keeps segments that were merged away
            # and ignores new deletions (duplicate and deleted passages came back), and it crashes on an
            # empty index. A fresh searcher only costs reopening the segment files.
            self._searcher = self._ix.searcher(weighting=make_weighting())
            self._cache = PostingsCache(self._searcher.reader())
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
        terms = [t for t, _ in weighted]
        if not terms or limit <= 0:
            return []
        with self._lock:  # whoosh readers share file handles: one search at a time per index
            if self.watch:
                self.refresh()
            searcher = self._searcher
            scores, postings = self._accumulate(searcher, self._cache, weighted)
            reader = searcher.reader()
            if docs is not None:
                allowed = np.zeros(len(scores), dtype=bool)
                for doc_id in docs:
                    if ("doc_id", doc_id) in reader:
                        allowed[np.fromiter(reader.postings("doc_id", doc_id).all_ids(), dtype=np.int64)] = True
                scores[~allowed] = 0.0
            hit = np.flatnonzero(scores)
            if not len(hit):
                return []
            if len(hit) > limit:
                # the limit best by score, ties to the lower doc number (as heapq.nlargest on (score, -docnum))
                cut = np.partition(scores[hit], len(hit) - limit)[len(hit) - limit]
                hit = hit[scores[hit] >= cut]
            top = hit[np.lexsort((hit, -scores[hit]))][:limit]
            stored = [reader.stored_fields(int(d))["pid"] for d in top]
        contains = [np.isin(top, ids) for ids in postings]
        return [
            KeywordHit(pid=pid, score=float(scores[d]), terms=[t for t, inside in zip(terms, contains) if inside[j]])
            for j, (pid, d) in enumerate(zip(stored, top))
        ]

    def _accumulate(self, searcher: Any, cache: PostingsCache,
                    terms: Sequence[tuple[str, float]]) -> tuple[np.ndarray, list]:
        """Term-at-a-time BM25F: the exact scores whoosh gives ``build_query(terms)``, without its matcher tree.

        Scores use whoosh's BM25F scorer statistics (idf, average length, per-field B, K1) and the same formula
        as ``whoosh.scoring.bm25``, over numpy postings (see :mod:`indexer.postings`); whoosh's own search of a
        wide OR walks a tree of union matchers one posting at a time and was 3-5x slower even before that.
        Returns dense scores by doc number and, per term, the doc numbers containing it in any field.
        """
        weighting = searcher.weighting
        scores = np.zeros(cache.doc_count_all, dtype=np.float64)
        having: list[np.ndarray] = []
        for term, weight in terms:
            docs = []
            for field, boost in FIELD_BOOSTS.items():
                ids, tf = cache.postings(field, term)
                if not len(ids):
                    continue
                scorer = weighting.scorer(searcher, field, term)
                idf, avgfl, b, k1 = scorer.idf, scorer.avgfl, scorer.B, scorer.K1
                # bm25 = idf * tf * (k1 + 1) / (tf + k1 * ((1 - b) + b * length / avgfl)), times the field boost
                c_num, c_base, c_len = weight * boost * idf * (k1 + 1), k1 * (1 - b), k1 * b / avgfl
                tf64 = tf.astype(np.float64)
                scores[ids] += c_num * tf64 / (tf64 + c_base + c_len * cache.lengths(field)[ids])
                docs.append(ids)
            having.append(np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64))
        return scores, having

    def count(self) -> int:
        """Number of passages indexed (as of the latest commit)."""
        self._check_open()
        with self._lock:
            self.refresh()
            return int(self._searcher.doc_count())

    def doc_ids(self) -> set[str]:
        """The ids of all documents that have passages in the index."""
        self._check_open()
        with self._lock:
            self.refresh()
            return {fields["doc_id"] for fields in self._searcher.reader().all_stored_fields()}

    def close(self) -> None:
        """Close the searcher; the instance cannot be used afterwards."""
        if self._closed:
            return
        with self._lock:
            self._searcher.close()
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
