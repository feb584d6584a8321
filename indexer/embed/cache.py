"""Passage embeddings cached by (model, content hash), shared by every backend; encoding only what is missing."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import filelock
import numpy as np

from indexer.fsutil import write_json
from indexer.progress import progress_bar

if TYPE_CHECKING:
    from indexer.embed.encoders import Encoder

logger = logging.getLogger(__name__)


CACHE_LOCK = "embed.lock"  # beside the index: one process appends to its embedding cache at a time


class CacheLock:
    """The right to append to an index's embedding cache: one thread of this process, one process of the machine."""

    def __init__(self, path: Path):
        self._mutex = threading.Lock()
        self._file_lock = filelock.FileLock(str(path), is_singleton=False, thread_local=False)

    @contextmanager
    def __call__(self, timeout: float = -1) -> Iterator[bool]:
        """Hold the lock; yields False when it could not be taken within ``timeout`` seconds (-1: wait)."""
        if not self._mutex.acquire(timeout=timeout):
            yield False
            return
        try:
            try:
                self._file_lock.acquire(timeout=timeout, poll_interval=0.1)
            except filelock.Timeout:
                yield False
                return
            try:
                yield True
            finally:
                self._file_lock.release()
        finally:
            self._mutex.release()


def _safe_name(model_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._")[:80] or "model"
    return f"{slug}-{hashlib.sha1(model_id.encode('utf-8')).hexdigest()[:8]}"


class EmbeddingCache:
    """Passage embeddings keyed by (model_id, content hash), persisted under ``<root>/<safe model id>/``.

    Append-only files, so saving costs only the new entries: ``keys.txt`` (one hash a line), ``vecs.f32``
    (raw little-endian float32 rows, ``np.fromfile(path, "<f4").reshape(-1, dim)``) and ``meta.json``.
    Vectors are appended and fsynced before their keys, so a crash mid-save loses at most the unsaved
    entries: on open, trailing rows without a key (or a torn last key) are dropped and the files trimmed.
    """

    KEYS = "keys.txt"
    VECS = "vecs.f32"
    META = "meta.json"

    def __init__(self, root: str | Path, model_id: str):
        self.model_id = str(model_id)
        self.dir = Path(root) / _safe_name(self.model_id)
        self.dim: int | None = None
        self._row: dict[str, int] = {}
        self._saved_rows = 0
        self._disk: np.ndarray | None = None  # memmap of saved rows, opened lazily
        self._pending_keys: list[str] = []
        self._pending_vecs: list[np.ndarray] = []
        self._pending_row: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        meta_path = self.dir / self.META
        if not meta_path.is_file():
            return
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("model_id") != self.model_id:
                raise ValueError(f"cache belongs to {meta.get('model_id')!r}")
            self.dim = int(meta["dim"])
            raw = (self.dir / self.KEYS).read_bytes() if (self.dir / self.KEYS).exists() else b""
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("%s: embedding cache unreadable (%s); starting it afresh", self.dir, exc)
            self._reset_files()
            return
        lines = raw.split(b"\n")
        complete = lines[:-1]  # the part after the last newline is empty or a torn key
        vec_bytes = (self.dir / self.VECS).stat().st_size if (self.dir / self.VECS).exists() else 0
        row_bytes = 4 * self.dim
        rows = min(len(complete), vec_bytes // row_bytes)
        keys = [k.decode("ascii", "replace") for k in complete[:rows]]
        if rows != len(complete) or lines[-1] or vec_bytes != rows * row_bytes:
            logger.warning("%s: trimming an interrupted cache write to %d entries", self.dir, rows)
            with open(self.dir / self.KEYS, "wb") as fh:
                fh.write(b"".join(k.encode("ascii") + b"\n" for k in keys))
            with open(self.dir / self.VECS, "ab") as fh:
                fh.truncate(rows * row_bytes)
        self._row = {k: i for i, k in enumerate(keys)}  # a duplicate key keeps its last row
        self._saved_rows = rows

    def _reset_files(self) -> None:
        self.dim = None
        for name in (self.KEYS, self.VECS, self.META):
            try:
                (self.dir / name).unlink()
            except OSError:
                pass

    def __len__(self) -> int:
        return len(self._row) + len(self._pending_row)

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self._pending_row or content_hash in self._row

    def _disk_rows(self) -> np.ndarray:
        if self._disk is None or self._disk.shape[0] != self._saved_rows:
            if self._saved_rows == 0 or self.dim is None:
                return np.zeros((0, self.dim or 0), dtype=np.float32)
            self._disk = np.memmap(self.dir / self.VECS, dtype="<f4", mode="r", shape=(self._saved_rows, self.dim))
        return self._disk

    def get_many(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors for those of ``hashes`` that are present (missing ones are simply absent)."""
        found: dict[str, np.ndarray] = {}
        disk_hits: list[tuple[str, int]] = []
        for h in hashes:
            if h in found:
                continue
            if h in self._pending_row:
                found[h] = self._pending_vecs[self._pending_row[h]].copy()
            elif h in self._row:
                disk_hits.append((h, self._row[h]))
        if disk_hits:
            disk = self._disk_rows()
            rows = np.asarray(disk[[r for _, r in disk_hits]], dtype=np.float32)
            for (h, _), vec in zip(disk_hits, rows):
                found[h] = vec
        return found

    def put_many(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Remember vectors for these content hashes (kept in memory until :meth:`save`)."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(hashes):
            raise ValueError(f"expected {len(hashes)} vectors, got shape {vecs.shape}")
        if not len(hashes):
            return
        if self.dim is None:
            self.dim = int(vecs.shape[1])
        elif vecs.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vecs.shape[1]}, cache for {self.model_id} has {self.dim}")
        for h, vec in zip(hashes, vecs):
            if not re.fullmatch(r"[0-9A-Za-z_-]+", h):
                raise ValueError(f"content hash {h!r} must be alphanumeric")
            if h in self._row:
                continue  # already saved; an unchanged passage has the same embedding
            if h in self._pending_row:
                self._pending_vecs[self._pending_row[h]] = vec.copy()
            else:
                self._pending_row[h] = len(self._pending_keys)
                self._pending_keys.append(h)
                self._pending_vecs.append(vec.copy())

    def save(self) -> None:
        """Append the entries put since the last save (vectors first, fsynced, then keys)."""
        if not self._pending_keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta_path = self.dir / self.META
        if not meta_path.is_file():
            meta = {"model_id": self.model_id, "dim": self.dim, "format": "keys.txt + raw float32 vecs.f32"}
            write_json(meta_path, meta)
        block = np.ascontiguousarray(np.stack(self._pending_vecs), dtype="<f4")
        with open(self.dir / self.VECS, "ab") as fh:
            if fh.tell() != self._saved_rows * 4 * int(self.dim or 0):
                fh.truncate(self._saved_rows * 4 * int(self.dim or 0))
            fh.write(block.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        with open(self.dir / self.KEYS, "ab") as fh:
            fh.write(b"".join(k.encode("ascii") + b"\n" for k in self._pending_keys))
            fh.flush()
            os.fsync(fh.fileno())
        for i, h in enumerate(self._pending_keys):
            self._row[h] = self._saved_rows + i
        self._saved_rows += len(self._pending_keys)
        self._pending_keys, self._pending_vecs, self._pending_row = [], [], {}
        self._disk = None


def embed_passages(
    encoder: "Encoder",
    cache: EmbeddingCache | None,
    items: list[tuple[str, str]],
    batch_size: int = 16,
    progress: bool = False,
) -> np.ndarray:
    """Vectors for (content_hash, context_text) items in order, encoding only hashes not already cached.

    Each unique hash is encoded once even if repeated. Misses are encoded a batch at a time and appended to
    the cache after every batch, so an interrupted indexing run resumes where it stopped.
    """
    if cache is not None and cache.model_id != encoder.model_id:
        raise ValueError(f"embedding cache is for {cache.model_id!r}, encoder is {encoder.model_id!r}")
    out = np.zeros((len(items), encoder.dim), dtype=np.float32)
    if not items:
        return out
    hashes = [h for h, _ in items]
    known = cache.get_many(hashes) if cache is not None else {}
    todo: dict[str, str] = {}
    for h, text in items:
        if h not in known and h not in todo:
            todo[h] = text
    if todo:
        logger.info("embedding %d passages (%d cached)", len(todo), len(set(hashes)) - len(todo))
    miss_hashes = list(todo)
    step = max(1, int(batch_size))
    bar = progress_bar(len(miss_hashes), "embedding", "passage", progress, leave=False)
    try:
        for start in range(0, len(miss_hashes), step):
            chunk = miss_hashes[start : start + step]
            vecs = encoder.encode_passages([todo[h] for h in chunk], batch_size=step, progress=False)
            known.update(zip(chunk, vecs))
            if cache is not None:
                cache.put_many(chunk, vecs)
                cache.save()
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    for i, h in enumerate(hashes):
        out[i] = known[h]
    return out
