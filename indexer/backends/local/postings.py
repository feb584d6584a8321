"""Whoosh postings and field lengths as numpy arrays, read a block at a time and cached per searcher.

whoosh's matcher API hands out one posting per Python call; a question of ~30 terms walks ~10k postings at 10k
passages. Reading each stored block (up to 128 postings) in one go and keeping the decoded arrays of recently used
terms makes the keyword half a few numpy operations. This relies on whoosh-reloaded 2.7.5's W3 codec layout (the
version pinned in pyproject.toml); any other matcher falls back to the generic one-posting-at-a-time walk.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Decoded postings kept per searcher, counted in postings (12 bytes each: id + tf + room): ~50 MB.
DEFAULT_CACHE_POSTINGS = 4_000_000
# Decoded postings per whoosh *segment*, shared by every reader of the process, counted in postings (12 bytes
# each): ~48 MB, as many as the per-searcher score cache holds (indexer.backends.local.scores). A segment's postings never
# change once written (whoosh keeps deletions apart and names every segment with a random id), so after a commit
# the next generation's reader decodes only the segments the commit wrote; the unchanged ones come from here.
# Decoding is ~70 % of a question on a cold reader at 100k passages.
SEGMENT_CACHE_POSTINGS = 4_000_000
_EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


def _length_table() -> np.ndarray:
    from whoosh.util.numeric import byte_to_length

    return np.array([byte_to_length(b) for b in range(256)], dtype=np.float64)


_LENGTHS: np.ndarray | None = None


def _block_arrays(m: Any) -> tuple[np.ndarray, np.ndarray]:
    """(doc ids, term frequencies) of the current block of a W3LeafMatcher."""
    if m._data is None:
        m._read_data()
    raw_ids, raw_weights = m._data[0], m._data[1]
    ids = np.asarray(raw_ids, dtype=np.int64)
    if not m._byteids:
        ids = np.cumsum(ids)  # stored delta-encoded, as whoosh.util.numlists.delta_decode undoes
    n = m._blocklength
    if raw_weights is None:
        tf = np.ones(n, dtype=np.float32)
    elif isinstance(raw_weights, float):
        tf = np.full(n, raw_weights, dtype=np.float32)
    else:
        tf = np.asarray(raw_weights, dtype=np.float32)
    return ids, tf


def _read_matcher(m: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every (doc id, tf) of a leaf matcher: block-wise for whoosh's W3 codec, posting-wise otherwise."""
    from whoosh.codec.whoosh3 import W3LeafMatcher

    if type(m) is W3LeafMatcher:
        id_parts, tf_parts = [], []
        while not m._atend:
            ids, tf = _block_arrays(m)
            id_parts.append(ids)
            tf_parts.append(tf)
            m._next_block()
        if not id_parts:
            return _EMPTY
        return np.concatenate(id_parts), np.concatenate(tf_parts)
    ids_list, tf_list = [], []
    while m.is_active():
        ids_list.append(m.id())
        tf_list.append(m.weight())
        m.next()
    return np.asarray(ids_list, dtype=np.int64), np.asarray(tf_list, dtype=np.float32)


class ArrayLRU:
    """Tuples of arrays by key, least recently used dropped once the first arrays' lengths pass ``max_items`` in
    total (the last entry always stays). Safe across threads."""

    def __init__(self, max_items: int):
        self.max_items = int(max_items)
        self.entries: OrderedDict[Any, tuple[np.ndarray, ...]] = OrderedDict()
        self.size = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        """The cached value (now most recently used), or None."""
        with self._lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
            return hit

    def keys_recent_first(self) -> list[Any]:
        """The keys held, most recently used first."""
        with self._lock:
            return list(reversed(self.entries))

    def put(self, key: Any, value: tuple[np.ndarray, ...]) -> None:
        """Keep ``value`` (unless another thread already did), dropping the least recently used beyond the bound."""
        with self._lock:
            if key in self.entries:
                return
            self.entries[key] = value
            self.size += len(value[0])
            while self.size > self.max_items and len(self.entries) > 1:
                _, old = self.entries.popitem(last=False)
                self.size -= len(old[0])


_segment_postings: "ArrayLRU | None" = None
_segment_lock = threading.Lock()


def segment_postings(at_least: int = 0) -> "ArrayLRU":
    """The process-wide cache of decoded postings by (segment id, field, term) (made on first use), holding at
    least ``at_least`` postings (a reader of a large index raises the bound to its term cache's)."""
    global _segment_postings
    with _segment_lock:
        if _segment_postings is None:
            _segment_postings = ArrayLRU(max(SEGMENT_CACHE_POSTINGS, at_least))
        elif _segment_postings.max_items < at_least:
            _segment_postings.max_items = int(at_least)
        return _segment_postings


def forget_segment_postings() -> None:
    """Drop every decoded segment posting of the process (what a new process starts with; bench.speed's first
    passes use it so that each begins as cold as a restarted server)."""
    global _segment_postings
    with _segment_lock:
        _segment_postings = None


def _segment_key(seg: Any) -> str | None:
    """The segment's id (index name + random name), or None when the reader does not say (another codec)."""
    try:
        return str(seg._segment.segment_id())
    except AttributeError:
        return None


class PostingsCache:
    """Postings of (field, term) over all segments of one whoosh reader, as global doc numbers and tfs.

    Deleted documents are dropped. Arrays of recently used terms stay cached up to ``max_postings`` in total
    (least recently used dropped first); field lengths are decoded once per field. Safe across threads.
    """

    def __init__(self, reader: Any, max_postings: int = DEFAULT_CACHE_POSTINGS, shared: bool = True,
                 segment_bound: int = 0):
        self._reader = reader
        self._leaves = list(reader.leaf_readers())
        self._shared = shared  # use (and fill) the process-wide per-segment cache
        self._segment_bound = int(segment_bound)  # postings this reader needs the shared cache to hold at least
        self._deleted = [np.array(sorted(seg.deleted_docs_set), dtype=np.int64) if seg.has_deletions() else None
                         for seg, _ in self._leaves]
        self._segkeys = [_segment_key(seg) if shared else None for seg, _ in self._leaves]
        self.doc_count_all = int(reader.doc_count_all())
        self.cache = ArrayLRU(max_postings)
        self._lengths: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def postings(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted global doc numbers, term frequencies) of ``term`` in ``field``; empty arrays if absent."""
        hit = self.cache.get((field, term))
        if hit is None:
            hit = self._read(field, term)
            self.cache.put((field, term), hit)
        return hit

    def read(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`postings` without keeping the arrays (for a caller that caches what it derives from them)."""
        return self._read(field, term)

    def _read(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        id_parts, tf_parts = [], []
        shared = segment_postings(self._segment_bound) if self._shared else None
        for (seg, offset), deleted, segkey in zip(self._leaves, self._deleted, self._segkeys):
            key = (segkey, field, term) if shared is not None and segkey is not None else None
            hit = shared.get(key) if key is not None else None
            if hit is None:
                if (field, term) not in seg:
                    continue
                tbytes = seg._text_to_bytes(field, term)
                m = seg._terms.matcher(field, tbytes, seg.schema[field].format)
                hit = _read_matcher(m)
                for arr in hit:
                    arr.flags.writeable = False  # shared between readers: nobody may edit it in place
                if key is not None:
                    shared.put(key, hit)  # type: ignore[union-attr]
            ids, tf = hit
            if deleted is not None and len(ids):
                keep = ~np.isin(ids, deleted)
                ids, tf = ids[keep], tf[keep]
            id_parts.append(ids + offset)
            tf_parts.append(tf)
        if not id_parts:
            return _EMPTY
        return np.concatenate(id_parts), np.concatenate(tf_parts)

    def lengths(self, field: str) -> np.ndarray:
        """Length (in tokens, as whoosh stores it: one byte, approximate) of ``field`` for every doc number."""
        with self._lock:
            cached = self._lengths.get(field)
        if cached is not None:
            return cached
        parts = [self._segment_lengths(seg, field) for seg, _ in self._leaves]
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)
        with self._lock:
            self._lengths[field] = out
        return out

    @staticmethod
    def _segment_lengths(seg: Any, field: str) -> np.ndarray:
        global _LENGTHS
        n = int(seg.doc_count_all())
        try:
            from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield

            column = seg._perdoc._cached_reader(_lenfield(field), LENGTHS_COLUMN)
            if _LENGTHS is None:
                _LENGTHS = _length_table()
            codes = np.zeros(n, dtype=np.uint8)
            if column is not None:
                stored = min(int(column._count), n)
                raw = column._dbfile.get(column._basepos, stored * column._fixedlen)
                codes[:stored] = np.frombuffer(raw, dtype=np.uint8)[:stored]
            return _LENGTHS[codes]
        except (AttributeError, ImportError, TypeError, ValueError) as exc:  # another codec: ask per document
            logger.debug("field lengths of %s read per document (%s)", field, exc)
            return np.array([seg.doc_field_length(d, field, 0) or 0 for d in range(n)], dtype=np.float64)
