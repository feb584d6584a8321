"""The embedding backlog: passages a write committed keyword first, encoded afterwards and committed in chunks.

Keyword first, vectors behind: a write commits the passage store and the keyword half at once and lists the new
passages in the manifest's ``pending_vectors``. :class:`BacklogEncoder` encodes them (one process at a time per
index: it appends to the embedding cache under :class:`indexer.embed.cache.CacheLock`) and commits their vectors
through the :class:`indexer.index.writer.Writer` in further generations -- called by the writer's caller, or by
its background thread in a long-lived process. :class:`Backlog` tells listeners (the job queue) how it goes.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from indexer.config import Config
from indexer.embed.cache import CacheLock, EmbeddingCache, embed_passages
from indexer.embed.encoders import Encoder, passage_context
from indexer.fsutil import checkpoint
from indexer.index.generations import PENDING_KEY, CurrentGeneration, Snapshot
from indexer.index.sentences import sentence_store, store_entries
from indexer.index.writer import Writer
from indexer.progress import progress_bar

logger = logging.getLogger(__name__)

# Each commit of backlog vectors comes after at most EMBED_CHUNK passages or EMBED_COMMIT_SECONDS of encoding (the
# model does ~10 passages/s on 2 cores, so a commit every ~20 s makes semantic search catch up visibly while a
# commit stays a small share of the time).
EMBED_CHUNK = 256
EMBED_COMMIT_SECONDS = 20.0
# ... but never more often than every COMMIT_COST_SPACING times the last vector commit took: a commit rewrites the
# vector files (vectors.npy and the IVF index: ~2 s at 100k passages, far more at 1M), which must stay a small
# share of the backlog's time however large the index.
COMMIT_COST_SPACING = 10.0
BACKGROUND_POLL_SECONDS = 2.0  # how soon a server notices pending passages another process committed
RATE_WINDOW_SECONDS = 60.0  # the embedding rate is measured over this recent window


class Backlog:
    """Progress of the embedding backlog: passages encoded but not committed yet, and the recent rate."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS):
        self._lock = threading.Lock()
        self._window = window
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self._uncommitted: set[str] = set()
        self.active = False
        self.error: str | None = None
        self._listeners: list[Callable[[], None]] = []

    def listen(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (no arguments, quickly) whenever passages were encoded or committed."""
        with self._lock:
            self._listeners.append(fn)

    def unlisten(self, fn: Callable[[], None]) -> None:
        """Stop calling ``fn``."""
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _notify(self) -> None:
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:  # pragma: no cover - a listener must not stop the embedding
                logger.exception("backlog listener failed")

    def started(self, pending: int) -> None:
        """An encoder starts a chunk of a backlog of ``pending`` passages."""
        with self._lock:
            self.active = True
        self._notify()

    def encoded(self, pids: Sequence[str], n_encoded: int) -> None:
        """``pids`` have vectors now (``n_encoded`` of them were encoded, the rest came from the cache)."""
        with self._lock:
            self._uncommitted.update(pids)
            self._events.append((time.monotonic(), len(pids)))
        self._notify()

    def committed(self, pids: Iterable[str]) -> None:
        """Vectors of ``pids`` were committed (or are no longer wanted)."""
        with self._lock:
            self._uncommitted.difference_update(pids)
        self._notify()

    def idle(self) -> None:
        """The encoder stopped (backlog empty, stopped, or failed)."""
        with self._lock:
            self.active = False
            self._uncommitted.clear()
        self._notify()

    def uncommitted(self) -> set[str]:
        """Passages encoded whose vectors are not committed yet (they count as embedded for progress)."""
        with self._lock:
            return set(self._uncommitted)

    def rate(self) -> float | None:
        """Passages per second over the recent window, None before two batches were encoded in it."""
        with self._lock:
            now = time.monotonic()
            while self._events and now - self._events[0][0] > self._window:
                self._events.popleft()
            if not self._events:
                return None
            if len(self._events) < 2 or self._events[-1][0] <= self._events[0][0]:
                return None
            # Passages encoded after the first event, over the time since it.
            done = sum(n for _, n in self._events) - self._events[0][1]
            return done / (self._events[-1][0] - self._events[0][0])


class BacklogEncoder:
    """Encodes the pending passages of one index and commits their vectors, a chunk per generation."""

    def __init__(self, config: Config, current: CurrentGeneration, writer: Writer, encoder: Callable[[], Encoder],
                 cache_lock: CacheLock, progress: Backlog):
        self.config = config
        self.root = writer.root
        self.current = current
        self.writer = writer
        self._encoder = encoder
        self.cache_lock = cache_lock
        self.progress = progress
        self.last_commit_s = 0.0  # how long the last commit of backlog vectors took (spaces them)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reembed = threading.Event()

    def run(self, pids: set[str] | None = None, progress: bool = False, stop: threading.Event | None = None) -> int:
        """Encode pending passages and commit their vectors, a chunk per generation; returns passages encoded.

        Runs until no passage is pending (``pids`` given: until none of those is; they go first). When another
        process holds the backlog, waits for its commits instead of encoding the same passages twice. An index
        embedded with another model is re-embedded first (a write, never done by a search).
        """
        mine = set(pids) if pids is not None else None
        encoded = 0
        bar = None
        try:
            while stop is None or not stop.is_set():
                gen = self.current.get()
                if gen.manifest.get("model_id") not in (None, self._encoder().model_id):
                    logger.warning("index %s was built with model %s but the configured model is %s: re-embedding "
                                   "%d passages", self.root, gen.manifest.get("model_id"), self._encoder().model_id,
                                   len(gen.passages))
                    self.writer.reembed()  # re-embeds everything, pending included
                    gen = self.current.get()
                pending = gen.manifest.get(PENDING_KEY) or []
                if mine is not None:
                    mine &= set(pending)
                    if not mine:
                        break
                if not pending:
                    break
                if progress and bar is None:
                    bar = progress_bar(len(mine if mine is not None else pending), "语义索引 embedding", "段")
                with self.cache_lock(timeout=0.5) as held:
                    if not held:
                        continue  # another process (or thread) encodes the backlog: its commits shrink it
                    chunk = self._encode_chunk(mine, stop, bar)
                if chunk is None:
                    continue
                pids_done, hashes, vectors, n = chunk
                encoded += n
                t0 = time.monotonic()
                self.writer.commit_vectors(pids_done, hashes, vectors, self._encoder().model_id)
                self.progress.committed(pids_done)
                self.last_commit_s = time.monotonic() - t0
        finally:
            if bar is not None:
                bar.close()
            self.progress.idle()
        return encoded

    def _encode_chunk(self, mine: set[str] | None, stop: threading.Event | None,
                      bar: Any) -> tuple[list[str], list[str], np.ndarray, int] | None:
        """Encode up to EMBED_CHUNK pending passages (or EMBED_COMMIT_SECONDS' worth; cached ones are free) into
        the embedding cache.

        Called with the cache lock held. Returns (pids, content hashes, vectors, passages encoded) or None.
        """
        gen = self.current.get()
        pending = gen.manifest.get(PENDING_KEY) or []
        order = [p for p in pending if mine is not None and p in mine] + \
            [p for p in pending if mine is None or p not in mine]
        if not order:
            return None
        encoder = self._encoder()
        cache = EmbeddingCache(self.root / "cache", encoder.model_id)  # fresh: sees other processes' rows
        pids: list[str] = []
        hashes: list[str] = []
        vectors: list[np.ndarray] = []
        encoded = 0
        started = time.monotonic()
        step = max(1, int(self.config.encode_batch))
        self.progress.started(len(pending))
        start = 0
        while start < len(order):
            if start:
                # A batch boundary: a write committed meanwhile (a document removed, a file changed) may have taken
                # passages off the backlog. They are not encoded; the rest is read from the new generation.
                gen, order, start = self._still_pending(gen, order, start)
                if not order:
                    break
            batch = [gen.passages[pid] for pid in order[start:start + step]]
            items = [(p.content_hash(), passage_context(p.title, p.section, p.text)) for p in batch]
            missing = len({h for h, _ in items} - set(cache.get_many([h for h, _ in items])))
            vecs = embed_passages(encoder, cache, items, batch_size=step)
            # issue 22: the batch's sentence windows, beside the index, before its vectors are committed
            store_entries(sentence_store(self.root, encoder.model_id), encoder, cache, batch, vecs, batch_size=step)
            encoded += missing
            pids.extend(p.pid for p in batch)
            hashes.extend(h for h, _ in items)
            vectors.append(vecs)
            self.progress.encoded([p.pid for p in batch], missing)
            if bar is not None:
                bar.update(len(batch))
            if len(pids) == len(batch):
                checkpoint(self.root, "embedding")  # kill test: part of the backlog is in the cache, not committed
            start += step
            # Cached vectors cost nothing to fetch: only encoded passages and time count toward a commit.
            elapsed = time.monotonic() - started
            if ((encoded >= EMBED_CHUNK or elapsed > EMBED_COMMIT_SECONDS)
                    and elapsed >= COMMIT_COST_SPACING * self.last_commit_s) \
                    or (stop is not None and stop.is_set()):
                break
        return pids, hashes, np.concatenate(vectors), encoded

    def _still_pending(self, gen: Snapshot, order: list[str], start: int) -> tuple[Snapshot, list[str], int]:
        """(generation, passages still to encode, 0): ``order[start:]`` as the newest generation still lists them
        as pending (unchanged when no write committed since ``gen``)."""
        now = self.current.get()
        if now is gen:
            return gen, order, start
        left = [pid for pid in order[start:] if pid in now.pending]
        dropped = len(order) - start - len(left)
        if dropped:
            logger.info("%d passages left the embedding backlog while it was encoded (their documents were removed "
                        "or changed): not encoded", dropped)
        return now, left, 0

    # ------------------------------------------------------------------ in the background
    def start(self) -> None:
        """Encode pending passages in a background thread, now and whenever a write (of any process) adds some."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._background, name="partyqa-embed", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A write listed new pending passages: look now instead of at the next poll."""
        self._wake.set()

    def reembed_soon(self) -> None:
        """A search found the index embedded with another model: the background thread re-embeds it."""
        self._reembed.set()
        self._wake.set()

    def stop(self) -> None:
        """Stop the background thread (after its current batch); pending passages stay listed in the index."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _background(self) -> None:
        while not self._stop.is_set():
            try:
                if self.current.get().manifest.get(PENDING_KEY) or self._reembed.is_set():
                    self._reembed.clear()
                    self.run(stop=self._stop)
                    self.progress.error = None
            except Exception as exc:  # keep serving searches; the pending list stays and is retried
                logger.exception("background embedding failed; retrying in 30 s")
                self.progress.error = f"语义索引失败，稍后重试 / embedding failed, will retry: {exc}"
                self._stop.wait(30)
            self._wake.wait(BACKGROUND_POLL_SECONDS)
            self._wake.clear()

