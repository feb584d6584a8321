"""Dense vector index of the local backend: numpy files on disk; exact, or approximate above a size (ann.py)."""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.backends.local.ann import ANN_FILE, ANN_META, AnnIndex, AnnSettings
from indexer.embed.encoders import l2_normalize
from indexer.fsutil import stage_file
from indexer.types import PartyQAError


logger = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.json"
META_FILE = "meta.json"
LABELS_FILE = "labels.npy"  # a stable int64 label per row: the approximate index's ids (rows shift on delete)


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


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()


def _doc_of(pid: str) -> str:
    """The doc_id part of a ``doc_id#ordinal`` passage id (doc ids may themselves contain '#')."""
    return pid.rpartition("#")[0]




# Read-only vector indexes this process opened, by the identity of their files (NumpyVectorIndex.open_reader).
_READERS_KEEP = 2
_readers: "OrderedDict[tuple, NumpyVectorIndex]" = OrderedDict()
_readers_lock = threading.Lock()


def _files_key(path: Path, ann: AnnSettings | None) -> tuple | None:
    """(dev, inode, size, mtime) of each vector file (None for an absent optional one) plus the ANN settings."""
    parts: list[Any] = [None if ann is None else (ann.threshold, ann.probe, ann.rerank, ann.retrain_growth)]
    for name in (META_FILE, IDS_FILE, VECTORS_FILE, LABELS_FILE, ANN_FILE, ANN_META):
        try:
            st = os.stat(path / name)
        except FileNotFoundError:
            if name in (META_FILE, IDS_FILE, VECTORS_FILE):
                return None
            parts.append(None)
            continue
        except OSError:
            return None
        parts.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(parts)


def _top_k(scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the ``limit`` highest scores, best first (argpartition, then sort only those)."""
    n = scores.shape[0]
    if limit >= n:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, limit - 1)[:limit]
    return part[np.argsort(-scores[part], kind="stable")]


class NumpyVectorIndex:
    """Cosine-similarity index: ``vectors.npy`` (float32 n x dim), ``ids.json``, ``labels.npy`` and ``meta.json``.

    Below ``AnnSettings.threshold`` rows every search is exact. From it on, :meth:`save` also keeps a faiss IVF-SQ8
    index (``ann.faiss`` + ``ann.json``, :mod:`indexer.backends.local.ann`) in step with the rows -- built once, then updated in
    place by each save (added, replaced and deleted rows), trained anew when the rows grew 4-fold -- and searches
    re-score its candidates exactly, so scores stay true cosines. A search with unsaved changes is exact.
    """

    def __init__(self, path: str | Path, model_id: str, dim: int, ann: AnnSettings | None = None):
        self.path = Path(path)
        self._model_id = str(model_id)
        self.dim = int(dim)
        self._buf: np.ndarray = np.zeros((0, self.dim), dtype=np.float32)  # capacity grows geometrically
        self._n = 0
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._labels = np.zeros(0, dtype=np.int64)  # strictly increasing, one per row
        self._next_label = 0
        self._ann_settings = ann
        self._ann: AnnIndex | None = None
        self._ann_checked = False  # whether the saved ANN files were looked at yet (loaded lazily)
        self._ann_lock = threading.Lock()
        self._saved = ("", 0)  # (ids sha1, count) of the files this instance was opened from or last saved
        self._ann_removed: list[int] = []  # labels whose IVF entries are stale since the last save
        self._ann_added: list[int] = []  # labels to (re-)add to the IVF at the next save

    @property
    def ann_settings(self) -> AnnSettings:
        """The ANN settings (``PARTYQA_ANN_*`` unless given)."""
        if self._ann_settings is None:
            self._ann_settings = AnnSettings.from_env()
        return self._ann_settings

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(cls, path: str | Path, model_id: str, dim: int, ann: AnnSettings | None = None) -> "NumpyVectorIndex":
        """A new empty index at ``path`` (replacing any index there once saved); writes the empty files now."""
        if int(dim) <= 0:
            raise ValueError(f"vector dimension must be positive, got {dim}")
        index = cls(path, model_id, dim, ann)
        index.save()
        return index

    @staticmethod
    def exists(path: str | Path) -> bool:
        """True if ``path`` holds a saved vector index."""
        p = Path(path)
        return all((p / f).is_file() for f in (META_FILE, IDS_FILE, VECTORS_FILE))

    @classmethod
    def open(cls, path: str | Path, ann: AnnSettings | None = None, mmap: bool = False) -> "NumpyVectorIndex":
        """Load a saved index; raises FileNotFoundError if absent, PartyQAError if its files disagree.

        ``mmap=True`` maps ``vectors.npy`` read-only instead of reading it (a reader above the ANN threshold then
        touches only the rows it re-scores; the first write copies it into memory).
        """
        p = Path(path)
        if not (p / META_FILE).is_file():
            raise FileNotFoundError(f"{p}: no vector index here ({META_FILE} missing)")
        last: Exception | None = None
        for attempt in range(3):  # a concurrent save replaces several files: retry a torn read briefly
            try:
                return cls._load(p, ann, mmap)
            except (PartyQAError, ValueError, OSError) as exc:
                last = exc
                time.sleep(0.05 * (attempt + 1))
        raise PartyQAError(f"{p}: vector index files are unreadable or inconsistent ({last}); re-index to rebuild them")

    @staticmethod
    def count_at(path: str | Path) -> int:
        """The row count ``meta.json`` records (what a commit checks: no ids or rows are read)."""
        return int(json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))["count"])

    @classmethod
    def open_reader(cls, path: str | Path, ann: AnnSettings | None = None) -> "NumpyVectorIndex":
        """:meth:`open` memory-mapped, for searching only; reuses the index this process last opened from the same
        files (same inodes, sizes and mtimes: files are replaced, never changed in place), so a generation whose
        vector files are hard links of the previous one's -- every keyword-only commit -- does not parse
        ``ids.json`` and load the IVF again (3-4 s per commit at 1M passages)."""
        p = Path(path)
        key = _files_key(p, ann)
        with _readers_lock:
            known = _readers.get(key) if key is not None else None
            if known is not None:
                _readers.move_to_end(key)
        if known is not None:
            twin = copy.copy(known)  # the same rows, ids and (already loaded) IVF, under this generation's folder
            twin.path = p
            with _readers_lock:
                _readers[key] = twin  # the newest folder: an older one may be garbage-collected
            return twin
        index = cls.open(p, ann=ann, mmap=True)
        index._saved_ann()  # now, not at the first search: copies share it and older folders may go away
        if key is not None and _files_key(p, ann) == key:
            with _readers_lock:
                _readers[key] = index
                while len(_readers) > _READERS_KEEP:
                    _readers.popitem(last=False)
        return index

    @classmethod
    def _load(cls, p: Path, ann: AnnSettings | None, mmap: bool) -> "NumpyVectorIndex":
        meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
        ids = json.loads((p / IDS_FILE).read_text(encoding="utf-8"))
        vectors = np.load(p / VECTORS_FILE, allow_pickle=False, mmap_mode="r" if mmap else None)
        dim = int(meta["dim"])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise PartyQAError(f"{IDS_FILE} is not a list of strings")
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise PartyQAError(f"{VECTORS_FILE} has shape {vectors.shape}, expected (n, {dim})")
        if not (len(ids) == vectors.shape[0] == int(meta["count"])):
            raise PartyQAError(f"{len(ids)} ids, {vectors.shape[0]} vectors, meta count {meta['count']}")
        digest = _ids_digest(ids)
        if "ids_sha1" in meta and meta["ids_sha1"] != digest:
            raise PartyQAError(f"{IDS_FILE} does not match {META_FILE}")
        if len(set(ids)) != len(ids):
            raise PartyQAError(f"{IDS_FILE} has duplicate passage ids")
        index = cls(p, meta["model_id"], dim, ann)
        if mmap and vectors.dtype == np.float32 and vectors.flags.c_contiguous:
            index._buf = vectors
        else:
            index._buf = np.ascontiguousarray(vectors, dtype=np.float32)
        index._n = len(ids)
        index._ids = list(ids)
        index._row = {pid: i for i, pid in enumerate(ids)}
        labels = None
        if (p / LABELS_FILE).is_file():
            labels = np.load(p / LABELS_FILE, allow_pickle=False)
            if labels.shape != (len(ids),) or (len(labels) > 1 and not np.all(np.diff(labels) > 0)):
                logger.warning("%s: %s does not fit the vectors; relabelling (the ANN index is rebuilt)",
                               p, LABELS_FILE)
                labels = None
        if labels is None:  # an index saved before labels existed
            labels = np.arange(len(ids), dtype=np.int64)
        index._labels = labels.astype(np.int64, copy=False)
        index._next_label = max(int(meta.get("next_label", 0)), int(labels[-1]) + 1 if len(labels) else 0)
        index._saved = (digest, len(ids))
        return index

    def save(self) -> None:
        """Write the files atomically each (temp file + os.replace), ANN files included; meta.json goes last."""
        self.path.mkdir(parents=True, exist_ok=True)
        vectors = self._buf[: self._n]
        digest = _ids_digest(self._ids)
        meta = {
            "model_id": self._model_id,
            "dim": self.dim,
            "count": self._n,
            "ids_sha1": digest,
            "next_label": self._next_label,
        }
        ann = self._ann_for_save(vectors)
        files = [
            (VECTORS_FILE, lambda fh: np.save(fh, vectors, allow_pickle=False)),
            (IDS_FILE, lambda fh: fh.write(json.dumps(self._ids, ensure_ascii=False).encode("utf-8"))),
            (LABELS_FILE, lambda fh: np.save(fh, self._labels, allow_pickle=False)),
        ]
        if ann is not None:
            ann_meta = ann.meta(digest, self._next_label)
            files += [(ANN_FILE, lambda fh: fh.write(ann.to_bytes())),
                      (ANN_META, lambda fh: fh.write(json.dumps(ann_meta, indent=1).encode("utf-8")))]
        files.append((META_FILE, lambda fh: fh.write(json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))))
        # Serialise everything first, so a failure leaves every old file in place.
        staged: list[tuple[Path, str]] = []
        try:
            for name, write in files:
                staged.append((self.path / name, stage_file(self.path / name, write)))
        except BaseException:
            for _, tmp in staged:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            with self._ann_lock:  # the in-memory IVF may hold this save's changes: reread it when needed
                self._ann, self._ann_checked = None, False
            raise
        for final, tmp in staged:
            os.replace(tmp, final)
        if ann is None:  # below the threshold: no ANN files (a stale pair would be ignored anyway: ids_sha1)
            for name in (ANN_META, ANN_FILE):
                (self.path / name).unlink(missing_ok=True)
        with self._ann_lock:
            self._ann, self._ann_checked = ann, True
            self._ann_removed, self._ann_added = [], []
            self._saved = (digest, self._n)

    def _ann_for_save(self, vectors: np.ndarray) -> AnnIndex | None:
        """The IVF index that matches the rows about to be saved: updated in place, or built anew; None below
        the threshold."""
        settings = self.ann_settings
        if not settings.wanted(self._n):
            return None
        ann = self._saved_ann()
        if ann is not None and not (ann.trained_rows / settings.retrain_growth <= self._n
                                    <= ann.trained_rows * settings.retrain_growth):
            ann = None  # grown or shrunk too far from the training sample: the lists are unbalanced
        if ann is None:
            t0 = time.perf_counter()
            ann = AnnIndex.build(vectors, self._labels)
            logger.info("%s: approximate index of %d vectors built in %.1f s", self.path, self._n,
                        time.perf_counter() - t0)
            return ann
        added = np.unique(np.asarray(self._ann_added, dtype=np.int64))
        rows = np.searchsorted(self._labels, added)
        present = rows < self._n
        present[present] = self._labels[rows[present]] == added[present]
        ann.update(np.unique(np.asarray(self._ann_removed, dtype=np.int64)), vectors[rows[present]], added[present])
        if ann.count != self._n:  # never expected; a wrong IVF is rebuilt rather than saved
            logger.warning("%s: approximate index holds %d vectors after the update, expected %d; rebuilding",
                           self.path, ann.count, self._n)
            ann = AnnIndex.build(vectors, self._labels)
        return ann

    def _saved_ann(self) -> AnnIndex | None:
        """The ANN index of the files this instance was loaded from or last saved (read once, lazily)."""
        with self._ann_lock:
            if not self._ann_checked:
                self._ann = AnnIndex.load(self.path, *self._saved) if self._saved[1] else None
                self._ann_checked = True
            return self._ann

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

    def _writable(self) -> None:
        if isinstance(self._buf, np.memmap):  # opened with mmap=True: copy before the first change
            self._buf = np.array(self._buf, dtype=np.float32)

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
        self._writable()
        vecs = l2_normalize(vecs)
        new_rows: list[int] = []
        new_ids: list[str] = []
        pending: dict[str, int] = {}
        for i, pid in enumerate(pids):
            row = self._row.get(pid)
            if row is not None:
                self._buf[row] = vecs[i]
                label = int(self._labels[row])
                self._ann_removed.append(label)  # the IVF's code of this row is stale: replace it at save
                self._ann_added.append(label)
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
        labels = np.arange(self._next_label, self._next_label + len(new_rows), dtype=np.int64)
        self._labels = np.concatenate([self._labels, labels])
        self._ann_added.extend(labels.tolist())
        self._next_label += len(new_rows)
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

    def _keep(self, keep: np.ndarray) -> None:
        """Drop the rows where ``keep`` is False (their labels leave the IVF at the next save)."""
        self._ann_removed.extend(self._labels[~keep].tolist())
        self._buf = np.ascontiguousarray(self._buf[: self._n][keep])
        self._labels = self._labels[keep]
        self._ids = [pid for pid, k in zip(self._ids, keep) if k]
        self._n = len(self._ids)
        self._row = {pid: i for i, pid in enumerate(self._ids)}

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Remove every vector whose pid's part before the last '#' is one of ``doc_ids``."""
        gone = set(doc_ids)
        if not gone or not self._n:
            return
        keep = np.fromiter((_doc_of(pid) not in gone for pid in self._ids), dtype=bool, count=self._n)
        if keep.all():
            return
        self._keep(keep)

    def delete_pids(self, pids: Sequence[str]) -> None:
        """Remove the vectors of these exact passage ids (unknown ids are ignored)."""
        gone = set(pids) & self._row.keys()
        if not gone:
            return
        self._keep(np.fromiter((pid not in gone for pid in self._ids), dtype=bool, count=self._n))

    def get(self, pid: str) -> np.ndarray | None:
        """The stored vector of a passage id, or None."""
        row = self._row.get(pid)
        return None if row is None else np.array(self._buf[row], dtype=np.float32)

    # ------------------------------------------------------------------ search

    def search(self, query_vec: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """Top ``limit`` (pid, cosine) pairs for one query vector, best first."""
        q = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query vector has dimension {q.shape[0]}, index has {self.dim}")
        return self.search_many(q.reshape(1, -1), limit)[0]

    def approximate(self) -> bool:
        """True when searches go through the ANN index (at or above the threshold, saved, no unsaved changes)."""
        if not self.ann_settings.wanted(self._n) or self._ann_removed or self._ann_added:
            return False
        return self._saved_ann() is not None

    def _queries(self, query_matrix: np.ndarray) -> np.ndarray:
        qs = np.asarray(query_matrix, dtype=np.float32)
        if qs.ndim == 1:
            qs = qs.reshape(1, -1)
        if qs.ndim != 2 or qs.shape[1] != self.dim:
            raise ValueError(f"query matrix has shape {qs.shape}, expected (m, {self.dim})")
        return l2_normalize(qs)

    def search_many(self, query_matrix: np.ndarray, limit: int, exact: bool = False) -> list[list[tuple[str, float]]]:
        """Top ``limit`` (pid, cosine) pairs for each row of a (m, dim) query matrix.

        Approximate (IVF candidates, re-scored exactly) when :meth:`approximate`, unless ``exact``.
        """
        qs = self._queries(query_matrix)
        if limit <= 0 or self._n == 0:
            return [[] for _ in range(qs.shape[0])]
        limit = min(int(limit), self._n)
        if not exact and self.approximate():
            return self._search_ann(qs, limit)
        # (n, dim) @ (dim, m) is the fast BLAS orientation; transpose to one contiguous row per query.
        with one_blas_thread():
            scores = np.ascontiguousarray((self._buf[: self._n] @ qs.T).T)
        results: list[list[tuple[str, float]]] = []
        for row in scores:
            top = _top_k(row, limit)
            results.append([(self._ids[i], float(row[i])) for i in top])
        return results

    def _search_ann(self, qs: np.ndarray, limit: int) -> list[list[tuple[str, float]]]:
        """IVF candidates (rerank x limit, at least 200) re-scored with the float32 rows, best ``limit`` kept."""
        ann = self._saved_ann()
        assert ann is not None
        settings = self.ann_settings
        depth = min(self._n, max(limit * settings.rerank, 200))
        labels = ann.search(qs, depth, settings.nprobe(int(ann.index.nlist)))
        results: list[list[tuple[str, float]]] = []
        for q, found in zip(qs, labels):
            found = found[found >= 0]
            rows = np.searchsorted(self._labels, found)
            ok = rows < self._n
            ok[ok] = self._labels[rows[ok]] == found[ok]
            rows = rows[ok]
            if not len(rows):
                results.append([])
                continue
            scores = np.asarray(self._buf[rows] @ q, dtype=np.float32)  # exact cosines of the candidates
            # ties (identical passages) to the lower row, as the exact search orders them
            order = np.lexsort((rows, -scores))[:limit]
            results.append([(self._ids[int(rows[i])], float(scores[i])) for i in order])
        return results

    def search_pids(self, query_matrix: np.ndarray, pids: Sequence[str], limit: int) -> list[list[tuple[str, float]]]:
        """Exact top ``limit`` per query row among the vectors of ``pids`` only (unknown pids are skipped), so a
        filter to a few documents still fills ``limit``."""
        qs = self._queries(query_matrix)
        rows = np.fromiter((r for r in (self._row.get(p) for p in pids) if r is not None), dtype=np.int64)
        if not len(rows) or limit <= 0:
            return [[] for _ in range(qs.shape[0])]
        rows = np.unique(rows)
        with one_blas_thread():
            scores = np.asarray(qs @ np.asarray(self._buf[rows]).T)
        out = []
        for row in scores:
            order = np.lexsort((rows, -row))[:limit]
            out.append([(self._ids[int(rows[i])], float(row[i])) for i in order])
        return out


# --------------------------------------------------------------------------------------------- embedding cache


