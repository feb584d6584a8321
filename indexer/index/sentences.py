"""The sentence-vector store of an index: per passage (keyed by its content hash), its passage vector and its sentence
windows' vectors (:mod:`indexer.text.windows`), float16, beside the index and independent of the backend.

Search re-scores the union of both halves' candidates with these rows (no second vector search), so Milvus and the
local backend get the same sentence scores. Layout, readable without the library::

    sentences/<model>/meta.json    {"model_id", "dim", "dtype": "float16"}
    sentences/<model>/vecs.f16     raw little-endian float16 rows
    sentences/<model>/keys.txt     one line per entry: "<content hash> <rows>"; entries' rows follow each other

Append-only: rows are written and fsynced before their key line, so a killed write leaves at most rows without a
key, dropped on the next open; an entry whose key line is complete is whole. Entries are encoded with the passage
vectors in the keyword-first backlog (a passage without an entry is scored by its passage vector alone).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.embed.cache import _safe_name, embed_passages
from indexer.fsutil import write_json
from indexer.text.windows import window_key, window_texts

logger = logging.getLogger(__name__)

_DTYPE = "<f2"


class SentenceStore:
    """Float16 rows per passage content hash (the passage vector first, then its windows), append-only."""

    def __init__(self, root: str | Path, model_id: str):
        self.dir = Path(root) / _safe_name(str(model_id))
        self.model_id = str(model_id)
        self.dim: int | None = None
        self._entries: dict[str, tuple[int, int]] = {}  # hash -> (first row, rows)
        self._rows = 0
        self._key_bytes = 0  # how much of keys.txt has been read
        self._mm: np.ndarray | None = None
        self._lock = threading.Lock()
        self.refresh()

    def _path(self, name: str) -> Path:
        return self.dir / name

    def refresh(self) -> None:
        """Read key lines appended since the last look (by this or another process)."""
        with self._lock:
            if self.dim is None:
                try:
                    meta = json.loads(self._path("meta.json").read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    return
                if meta.get("model_id") != self.model_id:
                    logger.warning("%s belongs to %s; sentence scores off", self.dir, meta.get("model_id"))
                    return
                self.dim = int(meta["dim"])
            try:
                if self._path("keys.txt").stat().st_size < self._key_bytes:  # the index was rebuilt: start over
                    self._entries, self._rows, self._key_bytes = {}, 0, 0
                with open(self._path("keys.txt"), "rb") as fh:
                    fh.seek(self._key_bytes)
                    tail = fh.read()
                vec_rows = self._path("vecs.f16").stat().st_size // (2 * self.dim)
            except OSError:
                return
            complete, _, _ = tail.rpartition(b"\n")
            if not complete and not tail.startswith(b"\n"):
                return
            for line in complete.split(b"\n"):
                h, _, n = line.decode("ascii", "replace").partition(" ")
                count = int(n) if n.isdigit() else 0
                if not h or count <= 0 or self._rows + count > vec_rows:
                    break  # a torn line, or rows not on disk: stop at the last whole entry
                self._entries[h] = (self._rows, count)
                self._rows += count
                self._key_bytes += len(line) + 1
            self._mm = None

    def _matrix(self) -> np.ndarray:
        if self._mm is None or self._mm.shape[0] != self._rows:
            self._mm = np.memmap(self._path("vecs.f16"), dtype=_DTYPE, mode="r", shape=(self._rows, self.dim or 0))
        return self._mm

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def rows(self, content_hash: str) -> np.ndarray | None:
        """The entry's rows (passage vector, then windows) as a float16 view, or None when it has none yet."""
        entry = self._entries.get(content_hash)
        if entry is None or not self._rows:
            return None
        return self._matrix()[entry[0]:entry[0] + entry[1]]

    def append(self, hashes: Sequence[str], blocks: Sequence[np.ndarray]) -> None:
        """Write entries (one block of rows per hash; a hash already stored is skipped): rows, fsync, then keys."""
        self.refresh()  # another process may have appended since: never cut its rows off
        todo = [(h, np.asarray(b, dtype=_DTYPE)) for h, b in zip(hashes, blocks) if h not in self._entries]
        if not todo:
            return
        dim = int(todo[0][1].shape[1])
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.dim is None:
            write_json(self._path("meta.json"), {"model_id": self.model_id, "dim": dim, "dtype": "float16"})
            self.dim = dim
        with self._lock:
            with open(self._path("vecs.f16"), "ab") as fh:
                fh.truncate(self._rows * 2 * dim)  # rows of a killed write that never got their key
                fh.seek(0, os.SEEK_END)
                for _, block in todo:
                    fh.write(np.ascontiguousarray(block).tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            with open(self._path("keys.txt"), "ab") as fh:
                fh.truncate(self._key_bytes)  # a torn key line
                fh.seek(0, os.SEEK_END)
                fh.write("".join(f"{h} {len(b)}\n" for h, b in todo).encode("ascii"))
                fh.flush()
                os.fsync(fh.fileno())
        self.refresh()


_STORES: dict[tuple[str, str], SentenceStore] = {}
_STORES_LOCK = threading.Lock()


def sentence_store(root: str | Path, model_id: str) -> SentenceStore:
    """The sentence store of the index at ``root`` for one model: one instance per process (the writer, the backlog
    and the searcher share it), refreshed with what any process appended since."""
    key = (str(Path(root).resolve()), str(model_id))
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = SentenceStore(Path(root) / "sentences", model_id)
            return store
    store.refresh()
    return store


def entry_blocks(encoder: Any, cache: Any, passages: Sequence[Any], vectors: np.ndarray,
                 batch_size: int = 16) -> list[np.ndarray]:
    """Per passage, its sentence-store rows: the passage vector, then its windows' vectors (encoded only when the
    embedding cache lacks them; windows are cached by their own text's hash like passages)."""
    texts = [window_texts(p.title, p.section, p.text) for p in passages]
    items = [(window_key(t), t) for ts in texts for t in ts]
    flat = embed_passages(encoder, cache, items, batch_size=batch_size) if items else None
    out, at = [], 0
    for ts, vec in zip(texts, vectors):
        rows = [np.asarray(vec, dtype=np.float32)[None, :]]
        if ts:
            rows.append(flat[at:at + len(ts)])
            at += len(ts)
        out.append(np.vstack(rows))
    return out


def store_entries(store: Any, encoder: Any, cache: Any, passages: Sequence[Any], vectors: np.ndarray,
                  batch_size: int = 16) -> int:
    """Encode and append the sentence-store entries of passages that have none yet; returns windows encoded."""
    todo = [(p, v) for p, v in zip(passages, vectors) if p.content_hash() not in store]
    if not todo:
        return 0
    blocks = entry_blocks(encoder, cache, [p for p, _ in todo], np.asarray([v for _, v in todo]), batch_size)
    store.append([p.content_hash() for p, _ in todo], blocks)
    return sum(len(b) - 1 for b in blocks)
