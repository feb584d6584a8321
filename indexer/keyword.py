"""Keyword half of the index: a whoosh BM25F index over passages, with jieba analysis and safe term queries."""
from __future__ import annotations

import heapq
import logging
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import whoosh.index
from whoosh import scoring
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import LockError
from whoosh.query import Or, Term

from .analyzer import ChineseAnalyzer, query_terms
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


def build_query(terms: Sequence[str]) -> Or:
    """An OR over every field of every (already analysed) term; nothing is parsed as query syntax.

    This is the whoosh query whose BM25F scores :meth:`WhooshKeywordIndex.search` reproduces exactly.
    """
    return Or([Term(field, term, boost=boost) for term in terms for field, boost in FIELD_BOOSTS.items()])


class WhooshKeywordIndex:
    """A :class:`indexer.store.KeywordStore` backed by a whoosh index directory.

    One searcher stays open and is reused; it is reopened only when another commit changed the index.
    Writers take whoosh's file lock with ``lock_timeout`` seconds of patience.
    """

    def __init__(self, ix: Any, path: Path, lock_timeout: float = 30.0):
        self._ix = ix
        self.path = path
        self.lock_timeout = float(lock_timeout)
        self._lock = threading.RLock()
        self._searcher: Any = ix.searcher(weighting=make_weighting())
        self._lengths: dict[str, dict[int, int]] = {}  # field -> docnum -> field length, for this searcher
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
    def open(cls, path: str | Path, lock_timeout: float = 30.0) -> "WhooshKeywordIndex":
        """Open an existing index in ``path``; FileNotFoundError if there is none."""
        path = Path(path)
        if not path.is_dir() or not whoosh.index.exists_in(str(path)):
            raise FileNotFoundError(f"{path}: no keyword index here (build the index first)")
        return cls(whoosh.index.open_dir(str(path)), path, lock_timeout)

    # -- writing ---------------------------------------------------------------------------

    def _writer(self) -> Any:
        try:
            return self._ix.writer(timeout=self.lock_timeout)
        except LockError as exc:
            raise IndexLockedError(
                f"{self.path}: keyword index is locked by another writer (waited {self.lock_timeout:g} s); "
                "wait for the other indexing run to finish, or raise lock_timeout"
            ) from exc

    def add(self, passages: Sequence[Passage]) -> None:
        """Index passages; a passage whose pid is already indexed (or repeated in the batch) replaces it."""
        self._check_open()
        batch = {p.pid: p for p in passages}  # last one of a repeated pid wins
        if not batch:
            return
        replace = not self._ix.is_empty()
        writer = self._writer()
        try:
            put = writer.update_document if replace else writer.add_document
            for p in batch.values():
                put(pid=p.pid, doc_id=p.doc_id, text=p.text or "", section=p.section or "", title=p.title or "")
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
            old.close()
            self._lengths = {}
            return True

    def search(self, question: str, limit: int) -> list[KeywordHit]:
        """Top ``limit`` passages by BM25F for a free-text question; each hit lists the query terms it contains."""
        self._check_open()
        terms = query_terms(question)[:MAX_QUERY_TERMS]
        if not terms or limit <= 0:
            return []
        with self._lock:
            self.refresh()
            searcher = self._searcher
            scores, masks = self._accumulate(searcher, terms)
            top = heapq.nlargest(limit, scores.items(), key=lambda item: (item[1], -item[0]))
            reader = searcher.reader()
            return [
                KeywordHit(
                    pid=reader.stored_fields(docnum)["pid"],
                    score=score,
                    terms=[t for i, t in enumerate(terms) if masks[docnum] >> i & 1],
                )
                for docnum, score in top
            ]

    def _accumulate(self, searcher: Any, terms: Sequence[str]) -> tuple[dict[int, float], dict[int, int]]:
        """Term-at-a-time BM25F: the exact scores whoosh gives ``build_query(terms)``, without its matcher tree.

        whoosh's own search of a wide OR walks a binary tree of union matchers and was 3-5x slower here.
        Scores use whoosh's BM25F scorer statistics (idf, average length, per-field B, K1) and the same
        formula as ``whoosh.scoring.bm25``; ``masks`` has bit i set for documents containing terms[i].
        """
        reader = searcher.reader()
        weighting = searcher.weighting
        lengths = self._lengths
        scores: dict[int, float] = {}
        masks: dict[int, int] = {}
        get_score, get_mask = scores.get, masks.get
        for i, term in enumerate(terms):
            bit = 1 << i
            for field, boost in FIELD_BOOSTS.items():
                if (field, term) not in reader:
                    continue
                scorer = weighting.scorer(searcher, field, term)
                idf, avgfl, b, k1 = scorer.idf, scorer.avgfl, scorer.B, scorer.K1
                # bm25 = idf * tf * (k1 + 1) / (tf + k1 * ((1 - b) + b * length / avgfl)), times the field boost
                c_num, c_base, c_len = boost * idf * (k1 + 1), k1 * (1 - b), k1 * b / avgfl
                field_lengths = lengths.setdefault(field, {})
                m = reader.postings(field, term)
                while m.is_active():
                    docnum = m.id()
                    tf = m.weight()
                    length = field_lengths.get(docnum)
                    if length is None:
                        length = field_lengths[docnum] = reader.doc_field_length(docnum, field, 1)
                    scores[docnum] = get_score(docnum, 0.0) + c_num * tf / (tf + c_base + c_len * length)
                    masks[docnum] = get_mask(docnum, 0) | bit
                    m.next()
        return scores, masks

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


def _text(term: Any) -> str:
    return term.decode("utf-8") if isinstance(term, bytes) else str(term)
