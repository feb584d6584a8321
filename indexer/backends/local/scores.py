"""BM25F scores of the keyword half, term at a time: the BM25F parameters, each term's score arrays per searcher
(shared by searchers of one index state), and the warm-up that fills them or loads them saved."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.backends.local.postings import ArrayLRU, PostingsCache

logger = logging.getLogger(__name__)

# Query-time field weights: the passage text counts most; section headings and document titles
# are shared by many passages, so they only nudge the ranking.
FIELD_BOOSTS: dict[str, float] = {"text": 1.0, "section": 0.6, "title": 0.4}
# BM25F length normalisation per field: full for text, weaker for the short heading fields.
FIELD_B: dict[str, float] = {"text": 0.75, "section": 0.5, "title": 0.3}
K1 = 1.2
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


def _text(term: Any) -> str:
    return term.decode("utf-8") if isinstance(term, bytes) else str(term)


WARM_BUDGET_FILE = "budget.json"  # beside a saved warm-up: the postings budget it was warmed under


def _saved_budget(folder: Path) -> float:
    """The postings budget a saved warm-up folder was made under (0 when unrecorded or unreadable)."""
    try:
        return float(json.loads((folder / WARM_BUDGET_FILE).read_text(encoding="utf-8"))["postings_budget"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


class StaleSearcher(Exception):
    """The search state was closed by a refresh while a question still used it."""


class _Tables:
    """What a searcher derives from one state of a keyword index: per-term scores, pid by doc number, doc numbers
    by doc id. Shared by every searcher of the process that opens the same state (:meth:`SearchState.identity`):
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


class SearchState:
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
                    raise StaleSearcher
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
        except StaleSearcher:
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
        except StaleSearcher:
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
                    raise StaleSearcher
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
                raise StaleSearcher
            found = (np.fromiter(self.reader.postings("doc_id", doc_id).all_ids(), dtype=np.int64)
                     if ("doc_id", doc_id) in self.reader else np.zeros(0, dtype=np.int64))
        with self._cache_lock:
            self._docs[doc_id] = found
        return found

    def close(self) -> None:
        """Close the searcher (a question still using this state then raises StaleSearcher and retries)."""
        with self.lock:
            self.closed = True
            self.searcher.close()
