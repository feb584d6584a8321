"""Approximate vector search for large indexes: a faiss IVF index of 8-bit scalar-quantised codes beside vectors.npy.

Why faiss IVF-SQ8 (not HNSW, not hnswlib): writes arrive in commits of a few hundred passages, and documents are
replaced and deleted. An IVF index takes both in place -- ``add_with_ids`` assigns new rows to their nearest
centroid, ``remove_ids`` drops rows -- so a commit never rebuilds the graph that HNSW would need (faiss's HNSW
cannot remove; hnswlib only marks deletions and is built from source on this Python). Its 8-bit codes take a quarter
of float32's memory (384 bytes a passage), and the candidates it returns are re-scored exactly from the float32
vectors, so every score handed to fusion is the true cosine. faiss-cpu ships wheels and was already installed by the
test extra (Milvus Lite depends on it). Measured on the 100k bench index: docs/BENCHMARKS.md, docs/SCALING.md.

Labels are the vector index's stable row labels (:class:`indexer.backends.local.vectors.NumpyVectorIndex`), not row numbers, so
deleting rows does not renumber the IVF's contents.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_omp_state = threading.local()  # per thread: whether faiss's OpenMP was limited to one thread there
ANN_FILE = "ann.faiss"
ANN_META = "ann.json"
REFERENCE_LISTS = 400  # lists of the 10k bench index, where AnnSettings.probe was measured
_SEED = 1234


@dataclass
class AnnSettings:
    """When the approximate index is used and how hard it searches (from :class:`indexer.config.Config`)."""

    threshold: int = 50_000  # rows from which the IVF index is built and searched; below it search stays exact
    # Share of the IVF lists searched per question at REFERENCE_LISTS lists (see nprobe). e5 questions are not
    # distributed like passages, so their neighbours spread over many lists: on the 10k bench index (10,001
    # distinct passages, 400 lists) recall@10 against exact search was 0.83 at 4 %, 0.97 at 16 %, 0.986 at 25 %
    # and 0.995 at 40 % of the lists.
    probe: float = 0.4
    rerank: int = 4  # the IVF returns rerank x limit candidates (at least 200), re-scored exactly
    retrain_growth: float = 4.0  # train anew when the rows have grown (or shrunk) by this factor since training

    @classmethod
    def from_config(cls, cfg: Any) -> "AnnSettings":
        """The ANN settings of a Config (``ann_threshold``, ``ann_probe``, ``ann_rerank``)."""
        return cls(threshold=int(cfg.ann_threshold), probe=float(cfg.ann_probe), rerank=int(cfg.ann_rerank))

    @classmethod
    def from_env(cls) -> "AnnSettings":
        """The settings of ``Config.from_env()`` (PARTYQA_ANN_* variables)."""
        from indexer.config import Config

        return cls.from_config(Config.from_env())

    def nprobe(self, nlist: int) -> int:
        """Lists to search in an index of ``nlist`` lists: ``probe`` of them up to REFERENCE_LISTS lists, above it
        ``probe`` x sqrt(REFERENCE_LISTS x nlist), a share falling with the square root of the lists.

        A fixed share scanned 40 % of every index, so the scan grew with the corpus: 3 ms a question at 100k, about
        30 at 1M. The neighbours of a question do not spread over a fixed share of ever smaller lists: at 100k
        (1,265 lists) recall@10 against exact search was 0.9967 at 257 lists and 0.9984 at 385 (this rule: 285),
        at 1M (4,000 lists) 1.0 from 128 lists on (this rule: 506), in 1.6 and 5.2 ms (`python -m bench.speed ann`,
        bench/NOTES.md). Both bench indexes repeat their passages (7 and 77 copies), so the rule keeps the share
        measured on distinct passages at 400 lists and only lets it fall as slowly as sqrt.
        """
        nlist = int(nlist)
        want = self.probe * (math.sqrt(REFERENCE_LISTS * nlist) if nlist > REFERENCE_LISTS else nlist)
        return max(1, min(nlist, math.ceil(want)))

    def wanted(self, rows: int) -> bool:
        """True when an index of ``rows`` vectors should have (and search) an ANN index."""
        return self.threshold > 0 and rows >= self.threshold


def n_lists(rows: int) -> int:
    """IVF lists for ``rows`` vectors: 4 x sqrt(n) (faiss's rule of thumb), at least 16."""
    return max(16, int(4 * math.sqrt(max(rows, 1))))


def _faiss() -> Any:
    import faiss  # imported lazily: small indexes never need it

    return faiss


def _faiss_one_thread() -> Any:
    """faiss, with OpenMP limited to one thread for calls from the current thread (the setting is per thread).

    faiss resolves OpenMP to the libgomp torch already loaded (measured: faiss.omp_set_num_threads changes
    torch.get_num_threads). libgomp keeps a team of workers per calling thread, and a second team beside the query
    encoder's made a question 13 -> 22 ms (bench/NOTES.md, issue 3, item 4); a team of one is no team. Searches
    take ~1 ms on one thread; training and filling the index at 100k passages took 9.7 s on one thread.
    """
    faiss = _faiss()
    if not getattr(_omp_state, "single", False):
        faiss.omp_set_num_threads(1)
        _omp_state.single = True
    return faiss


class AnnIndex:
    """A trained faiss IVF-SQ8 index over unit vectors (inner product = cosine), keyed by int64 labels."""

    def __init__(self, index: Any, trained_rows: int):
        self.index = index
        self.trained_rows = int(trained_rows)
        self._write_lock = threading.Lock()

    @classmethod
    def build(cls, vectors: np.ndarray, labels: np.ndarray) -> "AnnIndex":
        """Train on (a sample of) ``vectors`` and add them all under ``labels``."""
        faiss = _faiss_one_thread()
        n, dim = vectors.shape
        nlist = n_lists(n)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10  # 10 k-means rounds: recall on the bench index equals 25 rounds', training 2.5x faster
        index.cp.seed = _SEED
        sample = min(n, 40 * nlist)
        rows = np.sort(np.random.default_rng(_SEED).choice(n, sample, replace=False)) if sample < n else slice(None)
        index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(labels, dtype=np.int64))
        logger.info("built IVF-SQ8 index: %d vectors, %d lists", n, nlist)
        return cls(index, n)

    @property
    def count(self) -> int:
        """Vectors held."""
        return int(self.index.ntotal)

    def update(self, remove: np.ndarray, add_vectors: np.ndarray, add_labels: np.ndarray) -> None:
        """Drop the rows of ``remove`` labels, then add ``add_vectors`` under ``add_labels`` (no retraining)."""
        _faiss_one_thread()
        with self._write_lock:
            if len(remove):
                self.index.remove_ids(np.asarray(remove, dtype=np.int64))
            if len(add_labels):
                self.index.add_with_ids(np.ascontiguousarray(add_vectors, dtype=np.float32),
                                        np.asarray(add_labels, dtype=np.int64))

    def search(self, queries: np.ndarray, depth: int, nprobe: int) -> np.ndarray:
        """Labels of the ``depth`` best approximate matches per query row (-1 pads a short list)."""
        faiss = _faiss_one_thread()
        params = faiss.SearchParametersIVF(nprobe=int(nprobe))
        _, labels = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), int(depth), params=params)
        return labels

    # ------------------------------------------------------------------ files

    def to_bytes(self) -> bytes:
        """The faiss index serialised (what :data:`ANN_FILE` holds)."""
        return _faiss().serialize_index(self.index).tobytes()

    def meta(self, ids_sha1: str, next_label: int) -> dict[str, Any]:
        """What :data:`ANN_META` records: which vector rows this index matches."""
        return {"kind": "faiss-ivf-sq8", "count": self.count, "trained_rows": self.trained_rows,
                "nlist": int(self.index.nlist), "ids_sha1": ids_sha1, "next_label": int(next_label)}

    @classmethod
    def load(cls, folder: Path, ids_sha1: str, count: int) -> "AnnIndex | None":
        """The saved index if it matches these vector rows; None (logged) if absent, stale or unreadable."""
        meta_path, data_path = folder / ANN_META, folder / ANN_FILE
        if not meta_path.is_file() or not data_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("ids_sha1") != ids_sha1 or int(meta.get("count", -1)) != count:
                logger.warning("%s: approximate index does not match the vectors; searching exactly until the "
                               "next write rebuilds it", folder)
                return None
            raw = np.fromfile(data_path, dtype=np.uint8)
            index = _faiss().deserialize_index(raw)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            logger.warning("%s: approximate index unreadable (%s); searching exactly", folder, exc)
            return None
        if int(index.ntotal) != count:
            logger.warning("%s: approximate index holds %d vectors, expected %d; searching exactly",
                           folder, index.ntotal, count)
            return None
        return cls(index, int(meta.get("trained_rows", count)))
