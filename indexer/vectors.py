"""Exact dense vector index (numpy files on disk) and a persistent cache of passage embeddings."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .types import PartyQAError

if TYPE_CHECKING:
    from .encoders import Encoder

logger = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.json"
META_FILE = "meta.json"


_blas: Any = None
_blas_guard = threading.Lock()


def one_blas_thread() -> AbstractContextManager:
    """A context in which numpy's BLAS uses one thread (nothing where threadpoolctl cannot find it).

    The exact search is ~1 ms on one core at 10k passages; with OpenBLAS's default of all cores its threads
    then spin and starve the query encoder and the keyword half running beside it (semantic p50 17 -> 36 ms).
    """
    global _blas
    with _blas_guard:
        if _blas is None:
            try:
                from threadpoolctl import ThreadpoolController

                _blas = ThreadpoolController()
            except Exception as exc:  # pragma: no cover - threadpoolctl is a dependency
                logger.debug("threadpoolctl unavailable: %s", exc)
                _blas = False
    return _blas.limit(limits=1, user_api="blas") if _blas else nullcontext()


def _normalize_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    norms[norms < 1e-12] = 1.0
    return (v / norms).astype(np.float32, copy=False)


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()


def _doc_of(pid: str) -> str:
    """The doc_id part of a ``doc_id#ordinal`` passage id (doc ids may themselves contain '#')."""
    return pid.rpartition("#")[0]


def _write_atomic(path: Path, write) -> None:
    """Write a file via a temp file in the same folder, fsync, then os.replace over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _top_k(scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the ``limit`` highest scores, best first (argpartition, then sort only those)."""
    n = scores.shape[0]
    if limit >= n:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, limit - 1)[:limit]
    return part[np.argsort(-scores[part], kind="stable")]


class NumpyVectorIndex:
    """Exact cosine-similarity index: ``vectors.npy`` (float32 n x dim), ``ids.json`` and ``meta.json`` in a folder."""

    def __init__(self, path: str | Path, model_id: str, dim: int):
        self.path = Path(path)
        self._model_id = str(model_id)
        self.dim = int(dim)
        self._buf = np.zeros((0, self.dim), dtype=np.float32)  # capacity grows geometrically
        self._n = 0
        self._ids: list[str] = []
        self._row: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(cls, path: str | Path, model_id: str, dim: int) -> "NumpyVectorIndex":
        """A new empty index at ``path`` (replacing any index there once saved); writes the empty files now."""
        if int(dim) <= 0:
            raise ValueError(f"vector dimension must be positive, got {dim}")
        index = cls(path, model_id, dim)
        index.save()
        return index

    @staticmethod
    def exists(path: str | Path) -> bool:
        """True if ``path`` holds a saved vector index."""
        p = Path(path)
        return all((p / f).is_file() for f in (META_FILE, IDS_FILE, VECTORS_FILE))

    @classmethod
    def open(cls, path: str | Path) -> "NumpyVectorIndex":
        """Load a saved index; raises FileNotFoundError if absent, PartyQAError if its files disagree."""
        p = Path(path)
        if not (p / META_FILE).is_file():
            raise FileNotFoundError(f"{p}: no vector index here ({META_FILE} missing)")
        last: Exception | None = None
        for attempt in range(3):  # a concurrent save replaces three files: retry a torn read briefly
            try:
                return cls._load(p)
            except (PartyQAError, ValueError, OSError) as exc:
                last = exc
                time.sleep(0.05 * (attempt + 1))
        raise PartyQAError(f"{p}: vector index files are unreadable or inconsistent ({last}); re-index to rebuild them")

    @classmethod
    def _load(cls, p: Path) -> "NumpyVectorIndex":
        meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
        ids = json.loads((p / IDS_FILE).read_text(encoding="utf-8"))
        vectors = np.load(p / VECTORS_FILE, allow_pickle=False)
        dim = int(meta["dim"])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise PartyQAError(f"{IDS_FILE} is not a list of strings")
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise PartyQAError(f"{VECTORS_FILE} has shape {vectors.shape}, expected (n, {dim})")
        if not (len(ids) == vectors.shape[0] == int(meta["count"])):
            raise PartyQAError(f"{len(ids)} ids, {vectors.shape[0]} vectors, meta count {meta['count']}")
        if "ids_sha1" in meta and meta["ids_sha1"] != _ids_digest(ids):
            raise PartyQAError(f"{IDS_FILE} does not match {META_FILE}")
        if len(set(ids)) != len(ids):
            raise PartyQAError(f"{IDS_FILE} has duplicate passage ids")
        index = cls(p, meta["model_id"], dim)
        index._buf = np.ascontiguousarray(vectors, dtype=np.float32)
        index._n = len(ids)
        index._ids = list(ids)
        index._row = {pid: i for i, pid in enumerate(ids)}
        return index

    def save(self) -> None:
        """Write the three files atomically each (temp file + os.replace); meta.json goes last."""
        self.path.mkdir(parents=True, exist_ok=True)
        vectors = self._buf[: self._n]
        meta = {
            "model_id": self._model_id,
            "dim": self.dim,
            "count": self._n,
            "ids_sha1": _ids_digest(self._ids),
        }
        # Serialise everything first, so a failure leaves every old file in place.
        staged: list[tuple[Path, str]] = []
        try:
            for name, write in (
                (VECTORS_FILE, lambda fh: np.save(fh, vectors, allow_pickle=False)),
                (IDS_FILE, lambda fh: fh.write(json.dumps(self._ids, ensure_ascii=False).encode("utf-8"))),
                (META_FILE, lambda fh: fh.write(json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))),
            ):
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
                staged.append((self.path / name, tmp))
                with os.fdopen(fd, "wb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
        except BaseException:
            for _, tmp in staged:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            raise
        for final, tmp in staged:
            os.replace(tmp, final)

    # ------------------------------------------------------------------ contents

    @property
    def model_id(self) -> str:
        """Id of the encoder that produced these vectors."""
        return self._model_id

    def count(self) -> int:
        """Number of vectors."""
        return self._n

    def ids(self) -> list[str]:
        """Passage ids in row order (a copy)."""
        return list(self._ids)

    def add(self, pids: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors (normalised here), replacing the vector of any pid already present."""
        pids = [str(p) for p in pids]
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim == 1 and len(pids) == 1:
            vecs = vecs.reshape(1, -1)
        if vecs.ndim != 2 or vecs.shape[0] != len(pids) or (len(pids) and vecs.shape[1] != self.dim):
            raise ValueError(f"expected vectors of shape ({len(pids)}, {self.dim}), got {vecs.shape}")
        if not len(pids):
            return
        vecs = _normalize_rows(vecs)
        new_rows: list[int] = []
        new_ids: list[str] = []
        pending: dict[str, int] = {}
        for i, pid in enumerate(pids):
            row = self._row.get(pid)
            if row is not None:
                self._buf[row] = vecs[i]
            elif pid in pending:  # repeated within this call: the last one wins
                new_rows[pending[pid]] = i
            else:
                pending[pid] = len(new_rows)
                new_rows.append(i)
                new_ids.append(pid)
        if not new_rows:
            return
        self._reserve(self._n + len(new_rows))
        self._buf[self._n : self._n + len(new_rows)] = vecs[new_rows]
        for pid in new_ids:
            self._row[pid] = self._n
            self._ids.append(pid)
            self._n += 1

    def _reserve(self, needed: int) -> None:
        if needed <= self._buf.shape[0]:
            return
        capacity = max(needed, int(self._buf.shape[0] * 1.5) + 64)
        grown = np.zeros((capacity, self.dim), dtype=np.float32)
        grown[: self._n] = self._buf[: self._n]
        self._buf = grown

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Remove every vector whose pid's part before the last '#' is one of ``doc_ids``."""
        gone = set(doc_ids)
        if not gone or not self._n:
            return
        keep = np.fromiter((_doc_of(pid) not in gone for pid in self._ids), dtype=bool, count=self._n)
        if keep.all():
            return
        self._buf = np.ascontiguousarray(self._buf[: self._n][keep])
        self._ids = [pid for pid, k in zip(self._ids, keep) if k]
        self._n = len(self._ids)
        self._row = {pid: i for i, pid in enumerate(self._ids)}

    def delete_pids(self, pids: Sequence[str]) -> None:
        """Remove the vectors of these exact passage ids (unknown ids are ignored)."""
        gone = set(pids) & self._row.keys()
        if not gone:
            return
        keep = np.fromiter((pid not in gone for pid in self._ids), dtype=bool, count=self._n)
        self._buf = np.ascontiguousarray(self._buf[: self._n][keep])
        self._ids = [pid for pid, k in zip(self._ids, keep) if k]
        self._n = len(self._ids)
        self._row = {pid: i for i, pid in enumerate(self._ids)}

    def get(self, pid: str) -> np.ndarray | None:
        """The stored vector of a passage id, or None."""
        row = self._row.get(pid)
        return None if row is None else self._buf[row].copy()

    # ------------------------------------------------------------------ search

    def search(self, query_vec: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """Top ``limit`` (pid, cosine) pairs for one query vector, best first."""
        q = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query vector has dimension {q.shape[0]}, index has {self.dim}")
        return self.search_many(q.reshape(1, -1), limit)[0]

    def search_many(self, query_matrix: np.ndarray, limit: int) -> list[list[tuple[str, float]]]:
        """Top ``limit`` (pid, cosine) pairs for each row of a (m, dim) query matrix."""
        qs = np.asarray(query_matrix, dtype=np.float32)
        if qs.ndim == 1:
            qs = qs.reshape(1, -1)
        if qs.ndim != 2 or qs.shape[1] != self.dim:
            raise ValueError(f"query matrix has shape {qs.shape}, expected (m, {self.dim})")
        if limit <= 0 or self._n == 0:
            return [[] for _ in range(qs.shape[0])]
        limit = min(int(limit), self._n)
        # (n, dim) @ (dim, m) is the fast BLAS orientation; transpose to one contiguous row per query.
        with one_blas_thread():
            scores = np.ascontiguousarray((self._buf[: self._n] @ _normalize_rows(qs).T).T)
        results: list[list[tuple[str, float]]] = []
        for row in scores:
            top = _top_k(row, limit)
            results.append([(self._ids[i], float(row[i])) for i in top])
        return results


# --------------------------------------------------------------------------------------------- embedding cache


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
            _write_atomic(meta_path, lambda fh: fh.write(json.dumps(meta, ensure_ascii=False).encode("utf-8")))
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
    from .encoders import _progress_bar

    bar = _progress_bar(len(miss_hashes), progress)
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
